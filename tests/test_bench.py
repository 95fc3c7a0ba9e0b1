"""`brandbot bench` at tiny scale: every figure is there and well-formed, every answer right.

Timings are printed, never asserted: these machines are shared and noisy.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from .helpers import REPO


def test_the_benchmark_runs_and_reports_every_figure(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    project = rendered(REPO / "examples/retail.yml")
    out = tmp_path / "bench.json"
    plot = tmp_path / "bench.png"
    result = subprocess.run(
        [sys.executable, "-m", "brandbot", "bench", str(project), "--sessions", "3", "--messages", "2", "--rounds",
         "2", "--sweep", "1,3", "--idle-sessions", "5", "--long-messages", "25", "--no-generation", "--json",
         str(out), "--plot", str(plot)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "120"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "app / floor throughput" in result.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))

    rounds = figures["rounds"] + figures["sweep"] + list(figures["single_session"].values())
    assert {row["target"] for row in rounds} == {"app", "floor"}
    assert len(figures["rounds"]) == 4 and len(figures["sweep"]) == 4
    for row in rounds:
        assert row["errors"] == 0 and row["wrong"] == 0, row
        for key in ("throughput", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb"):
            assert math.isfinite(row[key]) and row[key] > 0, (key, row)
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
    assert 0 < figures["ratio"] < 10
    assert all(math.isfinite(kb) for kb in figures["idle_session_kb"].values())
    long = figures["long_conversation"]
    assert long["answered"] == 25
    assert long["longest_history"] == 2 * 20 + 1  # HISTORY_MAX_TURNS exchanges plus the message: bounded
    assert figures["machine"]["cpus"] >= 1
    assert plot.stat().st_size > 10_000 and plot.read_bytes().startswith(b"\x89PNG")


def test_the_persistence_mode_reports_every_figure_on_sqlite_and_postgresql(
        rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    """`--persistence sqlite,postgres`: app, floor storing through the same layer and floor storing none
    alternate; writes per answer are counted; the database goes down and comes back; every answer right."""
    project = rendered(REPO / "examples/retail.yml")
    out = tmp_path / "stored.json"
    sessions, messages, rounds = 3, 2, 2
    result = subprocess.run(
        [sys.executable, "-m", "brandbot", "bench", str(project), "--persistence", "sqlite,postgres", "--sessions",
         str(sessions), "--messages", str(messages), "--rounds", str(rounds), "--json", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["config"]["persistence"] == ["sqlite", "postgres"]
    assert set(figures["stored_conversations"]) == {"sqlite", "postgres"}
    for kind, stored in figures["stored_conversations"].items():
        assert f"{kind}: app / floor with the same data layer" in result.stdout
        rows = stored["rounds"] + [down["figures"] for down in stored["database_down"].values()]
        assert [row["target"] for row in stored["rounds"]] == ["app", "floor-db", "floor-none"] * rounds
        for row in rows:
            assert row["errors"] == 0 and row["wrong"] == 0, (kind, row)
            for key in ("throughput", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb"):
                assert math.isfinite(row[key]) and row[key] > 0, (kind, key, row)
            assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]
        for row in stored["rounds"]:
            assert 0 < row["sustained"] <= row["throughput"] * 1.01, (kind, row)
            assert (row["writes"] is None) == (row["target"] == "floor-none")
        for key in ("ratio_same_database", "ratio_no_database", "sustained_ratio_same_database",
                    "sustained_ratio_no_database"):
            assert 0 < stored[key] < 10, (kind, key)
        assert set(stored["writes_per_answer"]) == {"app", "floor-db"}
        for target, writes in stored["writes_per_answer"].items():
            assert writes["answers"] == rounds * sessions * messages, (kind, target)
            assert writes["write_statements"] > 0 and writes["failed"] == 0, (kind, target, writes)
            # each answer stores at least the customer's message, the run step and the answer; a thread per session
            assert writes["rows_added"]["steps"] >= 3 and writes["rows_added"]["threads"] > 0, (kind, target, writes)
            assert math.isfinite(writes["drain_ms"]) and writes["drain_ms"] >= 0
        assert stored["database_log_lines"] == 0, (kind, "the app logged database trouble while it was up")
        assert set(stored["database_down"]) == {"app", "floor-db"}
        for target, down in stored["database_down"].items():
            assert down["seconds_to_store_again"] is not None, (kind, target, "answers never stored again")
            if kind == "postgres":
                assert down["writes_while_down"] == 0, (kind, target)


def test_the_streaming_mode_reports_every_figure(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    """`--stream`: the app behind the streaming middleware and the streaming floor alternate, loaded and alone;
    every answer is right, every first token is set against its sender's record of the piece it shows."""
    project = rendered(REPO / "examples/retail.yml")
    out = tmp_path / "streamed.json"
    sessions, messages, rounds = 2, 2, 2
    result = subprocess.run(
        [sys.executable, "-m", "brandbot", "bench", str(project), "--stream", "--sessions", str(sessions),
         "--messages", str(messages), "--rounds", str(rounds), "--json", str(out)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "app / streaming floor" in result.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert (figures["config"]["stream"], figures["config"]["deltas"], figures["config"]["token_ms"]) == (True, 40, 20)
    assert set(figures["clocks"]) == {"perf_counter", "monotonic"}
    streamed = figures["streamed_answers"]
    assert [row["target"] for row in streamed["rounds"]] == ["app", "floor"] * rounds
    assert [row["target"] for row in streamed["single_rounds"]] == ["app", "floor"] * rounds
    answers = {"rounds": sessions * messages, "single_rounds": 2 * messages,
               "loaded": rounds * sessions * messages, "single_session": rounds * 2 * messages}
    for part, count in answers.items():
        rows = streamed[part] if isinstance(streamed[part], list) else list(streamed[part].values())
        for row in rows:
            assert (row["answers"], row["errors"], row["wrong"], row["unmatched"]) == (count, 0, 0, 0), (part, row)
            for key in ("throughput", "p50_ms", "p95_ms", "first_token_p50_ms", "first_token_p95_ms", "peak_rss_mb",
                        "added_p50_ms", "added_p95_ms", "after_piece_p50_ms", "after_piece_p95_ms", "word_wait_p50_ms",
                        "word_wait_p95_ms", "cpu_ms_per_delta", "cpu_ms_per_answer"):
                # >= 0 for the first-token figures: a token cannot arrive before the piece it shows left its
                # sender, which holds only if both read the same clock and the piece is the right one
                assert math.isfinite(row[key]) and row[key] >= 0, (part, key, row)
            for low, high in (("p50_ms", "p95_ms"), ("first_token_p50_ms", "first_token_p95_ms"),
                              ("added_p50_ms", "added_p95_ms"), ("after_piece_p50_ms", "after_piece_p95_ms"),
                              ("word_wait_p50_ms", "word_wait_p95_ms")):
                assert row[low] <= row[high], (part, low, row)
            assert row["deltas_per_answer"] == 40, (part, row)
            middleware_cpu = row["middleware_cpu_ms_per_delta"]  # the app's rounds only
            if row["target"] == "floor":
                assert middleware_cpu is None, (part, row)
            else:
                assert math.isfinite(middleware_cpu) and middleware_cpu >= 0, (part, row)
            if row["target"] == "floor":  # every piece its own token, shown as it comes
                assert row["tokens_per_answer"] == 40 and row["word_wait_p95_ms"] == 0, (part, row)
            else:  # the app shows complete words only: fewer tokens than pieces
                assert 1 <= row["tokens_per_answer"] <= 40, (part, row)
    assert set(streamed["loaded"]) == set(streamed["single_session"]) == {"app", "floor"}
    assert 0 < streamed["ratio"] < 10 and len(streamed["round_ratios"]) == rounds
    assert len(streamed["goals"]) == 3
    for goal in streamed["goals"]:
        assert isinstance(goal["met"], bool) and math.isfinite(goal["value"]), goal


def test_the_replicas_mode_reports_every_figure(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    """`--replicas 1,2`: the floor and 1 and 2 replicas behind the project's HAProxy alternate; then a replica is
    SIGKILLed and both restarted in turn under load (PostgreSQL shared); every answer right, no message lost.
    A missing haproxy or PostgreSQL fails the run (and so this test), in CI or not, as in test_replicas."""
    project = rendered(REPO / "examples/retail.yml")
    out, plot = tmp_path / "replicas.json", tmp_path / "replicas.png"
    sessions, messages, rounds = 4, 2, 2
    result = subprocess.run(
        [sys.executable, "-m", "brandbot", "bench", str(project), "--replicas", "1,2", "--sessions", str(sessions),
         "--messages", str(messages), "--rounds", str(rounds), "--json", str(out), "--plot", str(plot)],
        capture_output=True, text=True, timeout=600, env={**os.environ, "COLUMNS": "200"})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "replicas through HAProxy" in result.stdout
    figures = json.loads(out.read_text(encoding="utf-8"))
    assert figures["config"]["replicas"] == [1, 2] and figures["counts"] == [1, 2]
    assert [row["replicas"] for row in figures["rounds"]] == [0, 1, 2] * rounds
    for row in figures["rounds"]:
        measured = row["figures"]
        assert (measured["errors"], measured["wrong"]) == (0, 0), row
        for key in ("throughput", "p50_ms", "p95_ms", "p99_ms", "peak_rss_mb"):
            assert math.isfinite(measured[key]) and measured[key] > 0, (key, row)
        assert measured["p50_ms"] <= measured["p95_ms"] <= measured["p99_ms"]
        assert len(row["replica_cpu_cores"]) == len(row["replica_peak_rss_mb"]) == max(1, row["replicas"])
        assert sum(row["sessions_per_replica"]) == sessions, row  # every session landed on one replica
        assert all(math.isfinite(mb) and mb > 0 for mb in row["replica_peak_rss_mb"]), row
        for key in ("middleware_cpu_cores", "haproxy_cpu_cores", "client_cpu_cores", "machine_cpu_cores"):
            assert math.isfinite(row[key]) and row[key] >= 0, (key, row)
    assert set(figures["summary"]) == {"floor", "1", "2"}
    assert 0 < figures["ratios"]["2/1"] < 10 and len(figures["round_ratios"]["2/1"]) == rounds
    resilience = figures["resilience"]
    assert resilience["replicas"] == 2 and resilience["victim_customers"] >= 1
    assert resilience["never_answered_again"] == 0
    assert len(resilience["failover_seconds"]) == resilience["victim_customers"]
    assert all(math.isfinite(seconds) and seconds > 0 for seconds in resilience["failover_seconds"])
    assert resilience["lost"] == {"steady": 0, "failover": 0, "rolling": 0}, resilience["problems"]
    assert [step["exit"] for step in resilience["restarts"]] == [0, 0]
    assert resilience["outcomes"]["rolling"].get("answered", 0) >= sessions
    assert plot.stat().st_size > 10_000 and plot.read_bytes().startswith(b"\x89PNG")


def test_the_floor_without_sleeps_loses_chainlits_sleeps_the_way_the_bot_does(rendered: Callable[[Path], Path],
                                                                               tmp_path: Path) -> None:
    """`--floor-without-sleeps`: the floor app imports the project's own fix; without the flag it is bare Chainlit."""
    from brandbot.bench.servers import FLOOR_APP

    project = rendered(REPO / "examples/retail.yml")
    probe = (f"import runpy, time, importlib; runpy.run_path({str(FLOOR_APP)!r}); "
             "print(importlib.import_module('chainlit.message').time.sleep is time.sleep, "
             "importlib.import_module('chainlit.step').time.sleep is time.sleep)")
    sleeps = {}
    for flag in ("0", "1"):
        env = {**os.environ, "FLOOR_LATENCY_MS": "50", "FLOOR_REPLY": "ok", "FLOOR_NO_SLEEPS": flag,
               "FLOOR_PROJECT": str(project)}
        env.pop("FLOOR_DATABASE_URL", None)
        result = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        sleeps[flag] = result.stdout.split()
    assert sleeps == {"0": ["True", "True"], "1": ["False", "False"]}
