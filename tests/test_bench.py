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
