"""The `brandbot` command: new, validate, examples, middleware, smoke, demo, embed, bench.

Every user mistake (a missing file, a bad YAML line, a port in use, a bad answer) ends in one
clear sentence on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from . import __version__
from .brand_check import BrandCheck, check_brand
from .brand_file import BrandFileError, load_answers
from .template_paths import examples_dir
from .validation import Problem

if TYPE_CHECKING:
    from .bench import BenchConfig

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Turn one brand file into a tested, deployable Chainlit customer-service bot.")
console = Console()
errors = Console(stderr=True)

DEFAULT_BRAND = "retail.yml"


def fail(message: str) -> typer.Exit:
    """Print one clear sentence to stderr and return the exit to raise."""
    errors.print(f"[red]error:[/red] {message}", markup=True, highlight=False, soft_wrap=True)
    return typer.Exit(1)


def checked_brand(brand_file: Path) -> BrandCheck:
    """A brand file checked (once), or exit with every problem listed as `file: question: problem`."""
    try:
        answers = load_answers(brand_file)
    except BrandFileError as error:
        raise fail(str(error)) from None
    brand = check_brand(answers, brand_file.parent)
    if brand.problems:
        _print_problems(brand_file, brand.problems)
        raise typer.Exit(1)
    return brand


def _render_fresh(brand: BrandCheck, brand_file: Path, destination: Path) -> None:
    """Render the brand into `destination`, replacing whatever an earlier run left there."""
    from .render import render_brand

    if destination.exists():
        shutil.rmtree(destination)
    render_brand(brand.answers, destination, base_dir=brand_file.parent)


def _file_count(directory: Path) -> int:
    return sum(1 for path in directory.rglob("*") if path.is_file())


def _print_problems(brand_file: Path, problems: list[Problem]) -> None:
    for problem in problems:
        errors.print(f"{brand_file}: {problem}", markup=False, highlight=False, soft_wrap=True)


@app.command()
def new(
    brand_file: Annotated[Path, typer.Argument(help="The brand's answers (a copier data file).")],
    destination: Annotated[Path | None, typer.Argument(help="Where to render (default: ./<brand_slug>-bot).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Render into a non-empty directory, overwriting.")] = False,
) -> None:
    """Validate a brand file, then render its bot (the same as `copier copy --data-file`)."""
    from .render import render_brand

    brand = checked_brand(brand_file)
    destination = destination or Path(f"{brand.resolved['brand_slug']}-bot")
    if destination.exists() and not destination.is_dir():
        raise fail(f"{destination} exists and is not a directory")
    if destination.is_dir() and any(destination.iterdir()) and not force:
        raise fail(f"{destination} is not empty; choose another directory or pass --force to overwrite")
    started = time.perf_counter()
    render_brand(brand.answers, destination, base_dir=brand_file.parent, overwrite=force)
    seconds = time.perf_counter() - started
    console.print(f"Rendered {_file_count(destination)} files into {destination} in {seconds:.2f} s.")
    console.print(f"Next: cd {destination} && python -m venv .venv && .venv/bin/pip install -r requirements.txt",
                  markup=False, highlight=False, soft_wrap=True)


@app.command()
def validate(
    brand_files: Annotated[list[Path], typer.Argument(help="Brand files to check.")],
) -> None:
    """Check brand files against copier.yml's rules; every problem is reported at once."""
    bad = 0
    for brand_file in brand_files:
        try:
            problems = check_brand(load_answers(brand_file), brand_file.parent).problems
        except BrandFileError as error:
            errors.print(str(error), markup=False, highlight=False, soft_wrap=True)
            bad += 1
            continue
        if problems:
            _print_problems(brand_file, problems)
            bad += 1
        else:
            console.print(f"{brand_file}: ok", markup=False, highlight=False)
    if bad:
        raise typer.Exit(1)


@app.command()
def examples(
    out: Annotated[Path, typer.Option(help="Directory to render the examples into.")] = Path("build/examples"),
) -> None:
    """Regenerate every example brand, then print a table: brand, files, render time."""
    brand_files = sorted(examples_dir().glob("*.yml"))
    if not brand_files:
        raise fail(f"no example brand files in {examples_dir()}")
    rows = []
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True) as progress:
        task = progress.add_task("rendering examples", total=len(brand_files))
        for brand_file in brand_files:
            progress.update(task, description=f"rendering {brand_file.stem}")
            brand = checked_brand(brand_file)
            destination = out / brand_file.stem
            started = time.perf_counter()
            _render_fresh(brand, brand_file, destination)
            seconds = time.perf_counter() - started
            rows.append((brand_file.stem, brand.resolved["brand_name"], _file_count(destination), seconds))
            progress.advance(task)
    table = Table(title=f"examples rendered into {out}")
    for column, justify in [("example", "left"), ("brand", "left"), ("files", "right"), ("render time", "right")]:
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for stem, brand_name, files, seconds in rows:
        table.add_row(stem, brand_name, str(files), f"{seconds * 1000:.0f} ms")
    console.print(table)


@app.command()
def middleware(
    port: Annotated[int, typer.Option(help="Port on 127.0.0.1 to listen on.")] = 8001,
    latency_ms: Annotated[float, typer.Option(help="Delay before every answer, in milliseconds.")] = 0.0,
    brand: Annotated[Path | None, typer.Option(help="Brand file, brand.toml or project to route for.")] = None,
    auth_header: Annotated[str | None, typer.Option(help="Header carrying the secret (default: the brand's).")] = None,
    stream: Annotated[Literal["sse", "ndjson"] | None, typer.Option(
        help="Stream every answer as SSE or NDJSON to a bot whose Accept header takes it.")] = None,
    token_ms: Annotated[float, typer.Option(
        min=0, help="Milliseconds between two deltas of a streamed answer.")] = 20.0,
    deltas: Annotated[int | None, typer.Option(
        min=1, help="Cut each streamed answer into N deltas (default: one a word).")] = None,
) -> None:
    """Run the reference AI middleware (the secret is read from BACKEND_API_SECRET)."""
    from .processes import port_is_free
    from .reference_middleware import routing_for, serve
    from .rendered_project import ProjectError, brand_data_for

    secret = os.environ.get("BACKEND_API_SECRET", "")
    if not secret:
        raise fail("set BACKEND_API_SECRET to the secret the bot will send")
    try:
        if brand is not None and brand.suffix != ".toml" and not brand.is_dir():
            routing = brand_data_for(checked_brand(brand).answers)  # a brand file, checked as `validate` would
        else:
            routing = routing_for(brand)
    except (BrandFileError, ProjectError) as error:
        raise fail(str(error)) from None
    if not port_is_free(port):
        raise fail(f"port {port} on 127.0.0.1 is already in use; pick another with --port")
    header = auth_header or routing.auth_header
    errors.print(f"reference middleware on http://127.0.0.1:{port}/chat (secret in header {header}); "
                 f"feedback: set BACKEND_FEEDBACK_URL=http://127.0.0.1:{port}/feedback, GET it to list what came"
                 + (f"; answers stream as {stream}" if stream else ""),
                 markup=False, highlight=False)
    serve(routing, host="127.0.0.1", port=port, secret=secret, auth_header=header,
          latency_seconds=latency_ms / 1000, stream=stream, token_seconds=token_ms / 1000, deltas=deltas)


@app.command()
def smoke(
    project: Annotated[Path, typer.Argument(help="A rendered project directory.")],
    timeout: Annotated[float, typer.Option(help="REQUEST_TIMEOUT_SECONDS for the run, in seconds.")] = 2.0,
) -> None:
    """Run the project under chainlit with the reference middleware and play every path once."""
    from .processes import ServiceError
    from .rendered_project import ProjectError
    from .smoke import Check, run_smoke

    table = Table(title=f"brandbot smoke {project}")
    table.add_column("check", no_wrap=True, max_width=26)
    table.add_column("ok", no_wrap=True, min_width=4)
    table.add_column("time", justify="right", no_wrap=True, min_width=7)
    table.add_column("what the customer saw", no_wrap=True, max_width=30)

    started = time.perf_counter()
    try:
        with _stop_signals(), console.status("starting the middleware and the app...") as status:

            def show(check: Check) -> None:
                status.update(f"{len(checks_seen) + 1} checks run, last: {check.name}")
                checks_seen.append(check)

            checks_seen: list[Check] = []
            checks = run_smoke(project, request_timeout=timeout, on_check=show)
    except ProjectError as error:
        raise fail(str(error)) from None
    except ServiceError as error:
        raise fail(f"could not start the bot: {error}") from None
    except Stopped as stop:
        raise stop.exit() from None
    for check in checks:
        table.add_row(check.name, "[green]pass[/green]" if check.passed else "[red]FAIL[/red]",
                      f"{check.seconds * 1000:.0f} ms", Text(check.detail, overflow="ellipsis"))
    console.print(table)
    failed = [check for check in checks if not check.passed]
    summary = f"{len(checks) - len(failed)}/{len(checks)} checks passed in {time.perf_counter() - started:.1f} s"
    console.print(summary if not failed else f"[red]{summary}[/red]")
    if failed:
        raise typer.Exit(1)


@app.command()
def demo(
    brand_file: Annotated[Path | None, typer.Argument(help="Brand file (default: the retail example).")] = None,
    port: Annotated[int, typer.Option(help="Port for the chat app.")] = 8000,
    middleware_port: Annotated[int, typer.Option(help="Port for the reference middleware.")] = 8001,
    out: Annotated[Path, typer.Option(help="Where to render the demo bot.")] = Path("build/demo"),
    site_port: Annotated[int | None, typer.Option(help="Port for the brand's demo website (default: --port + 2).")] = (
        None),
) -> None:
    """Render a brand and run it with the reference middleware until Ctrl-C, with a fake website of the
    brand that shows the chat widget."""
    from .demo_site import DemoSite
    from .processes import ServiceError, port_is_free, start_bot

    brand_file = brand_file or examples_dir() / DEFAULT_BRAND
    brand = checked_brand(brand_file)
    site_port = port + 2 if site_port is None else site_port
    for wanted, option in [(port, "--port"), (middleware_port, "--middleware-port"), (site_port, "--site-port")]:
        if not port_is_free(wanted):
            raise fail(f"port {wanted} on 127.0.0.1 is already in use; pick another with {option}")
    _render_fresh(brand, brand_file, out)
    log_dir = Path(tempfile.mkdtemp(prefix="brandbot-demo-"))
    bot = site = None
    try:
        with _stop_signals():
            try:
                site_origins = f"http://localhost:{site_port},http://127.0.0.1:{site_port}"
                bot = start_bot(out, log_dir=log_dir, port=port, middleware_port=middleware_port,
                                app_env={"ALLOWED_ORIGINS": site_origins})
                site = DemoSite(site_port, brand_name=brand.resolved["brand_name"],
                                colour=brand.resolved["primary_color"], bot_url=f"http://localhost:{port}")
                _print_demo_guide(brand.resolved, out, port, log_dir, site.url)
                while bot.app.process.poll() is None and bot.middleware.process.poll() is None:
                    time.sleep(0.5)
                raise fail(f"a demo process stopped unexpectedly; see the logs in {log_dir}")
            except Stopped:
                _say("\nStopping the demo...")
                raise
            finally:
                if site is not None:
                    site.stop()
                if bot is not None:
                    bot.stop()
    except ServiceError as error:
        raise fail(f"could not start the demo: {error}") from None
    except Stopped as stop:
        _say("Demo stopped.")
        if stop.signum != signal.SIGINT:  # Ctrl-C is how the demo is meant to end: status 0
            raise typer.Exit(stop.exit_code) from None


def _print_demo_guide(resolved: dict, out: Path, port: int, log_dir: Path, site_url: str) -> None:
    from .rendered_project import category_label

    labels = [category_label(category, (details or {}).get("label"))
              for category, details in resolved["categories"].items()]
    console.print(f"\n[bold]{resolved['brand_name']}[/bold] bot is running: [link]http://localhost:{port}[/link]\n",
                  highlight=False)
    console.print("Try asking:", highlight=False)
    console.print("  - Hello!                       (a general answer)", markup=False, highlight=False)
    for label in labels[:3]:
        console.print(f"  - I have a question about {label}   (the specialist transition)",
                      markup=False, highlight=False)
    console.print("  - simulate error / simulate timeout / simulate bad answer   (the failure messages)",
                  markup=False, highlight=False)
    console.print(f"\nThe brand's website with the chat widget (two pages): [link]{site_url}[/link]", highlight=False)
    console.print(f"\nProject: {out}   Logs: {log_dir}\nPress Ctrl-C to stop.", markup=False, highlight=False)


#: What ends a command politely: Ctrl-C, `kill`, docker stop or a cancelled CI job, a closed terminal.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stop signal arrived: the command stops what it started, then exits 128 + the signal's number."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        return 128 + self.signum

    def exit(self) -> typer.Exit:
        """Say so on stderr (if it is still there) and return the exit to raise."""
        with suppress(OSError):  # after SIGHUP the terminal may be gone
            errors.print(f"stopped by {signal.Signals(self.signum).name}; every process started was stopped",
                         markup=False, highlight=False)
        return typer.Exit(self.exit_code)


@contextmanager
def _stop_signals() -> Iterator[None]:
    """Turn the first TERM, INT or HUP into Stopped, so `finally` blocks stop every child process.

    Later ones are ignored until the block ends: when a whole process group gets SIGTERM, make
    also forwards its own to us, and that second signal must not cut the clean stop short (it
    used to, leaving the middleware running). Linux's parent-death signal covers SIGKILL.
    """
    received: list[int] = []

    def handle(signum: int, frame: object) -> None:
        if not received:
            received.append(signum)
            raise Stopped(signum)

    previous = {signum: signal.signal(signum, handle) for signum in STOP_SIGNALS}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _say(message: str) -> None:
    """Print to stdout unless it is gone (a closed terminal after SIGHUP)."""
    with suppress(OSError):
        console.print(message, markup=False, highlight=False)


@app.command()
def bench(
    project: Annotated[Path, typer.Argument(help="A rendered project directory.")],
    sessions: Annotated[int, typer.Option(help="Concurrent sessions.")] = 50,
    messages: Annotated[int, typer.Option(help="Messages per session.")] = 6,
    latency_ms: Annotated[float, typer.Option(help="The reference middleware's latency.")] = 50.0,
    rounds: Annotated[int, typer.Option(help="Rounds per server, alternating app and floor.")] = 5,
    sweep: Annotated[str, typer.Option(help="Session counts for the sweep, e.g. 1,10,50,100,200.")] = "",
    idle_sessions: Annotated[int, typer.Option(help="Idle sessions opened to measure memory.")] = 200,
    long_messages: Annotated[int, typer.Option(help="Length of the one long conversation.")] = 500,
    generation: Annotated[bool, typer.Option(help="Also time rendering the example brands.")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every figure to this JSON file.")] = None,
    plot_out: Annotated[Path | None, typer.Option("--plot", help="Write the sweep's plot to this PNG.")] = None,
    persistence: Annotated[str, typer.Option(
        help="Persistence mode: database kinds, e.g. sqlite,postgres. The run then measures only stored "
             "conversations: the bot storing in the database, beside a bare Chainlit floor storing through the "
             "same data layer and one storing nothing (rounds alternating), SQL writes per answer, and answers "
             "with the database down (SQLite: its write lock held; PostgreSQL: a throw-away cluster stopped).",
    )] = "",
    guarded_floor: Annotated[bool, typer.Option(
        help="Persistence mode: the storing floor also goes through the bot's data_layer_guard, to tell the "
             "guard's cost from the rest of the bot's.")] = False,
    floor_without_sleeps: Annotated[bool, typer.Option(
        help="The floor (bare Chainlit) also loses Chainlit's blocking 1 ms sleep per message and step, as the "
             "bot does (the project's edge fix), to tell that fix's share from the rest of the bot's.")] = False,
    stream: Annotated[bool, typer.Option(
        "--stream", help="Streaming mode: the middleware streams every answer (SSE) after its latency, beside a "
                         "bare Chainlit floor streaming the same pieces; the run then measures only the time from "
                         "the first piece sent to the first token at the customer (1 session and --sessions), "
                         "answer throughput against the floor, and CPU per delta.")] = False,
    token_ms: Annotated[float, typer.Option(min=0, help="Streaming mode: milliseconds between two deltas.")] = 20.0,
    deltas: Annotated[int, typer.Option(min=1, help="Streaming mode: deltas per answer.")] = 40,
    replicas: Annotated[str, typer.Option(
        help="Replicas mode: replica counts, e.g. 1,2,3 (N alone: 1..N). Each count runs behind the project's "
             "deploy/haproxy.cfg (Debian's haproxy), rounds alternating with the single-process floor; then one "
             "replica is SIGKILLed and every replica restarted in turn under load (PostgreSQL shared). --plot "
             "writes throughput and p95 against replicas.")] = "",
    failover: Annotated[bool, typer.Option(help="Replicas mode: measure the failover after a SIGKILL.")] = True,
    rolling: Annotated[bool, typer.Option(help="Replicas mode: restart every replica in turn under load.")] = True,
) -> None:
    """Measure the bot against the framework floor, with real processes and socket.io."""
    from . import bench as benchmark
    from .processes import ServiceError
    from .rendered_project import ProjectError, project_brand

    try:
        project_brand(project)
        counts = tuple(int(part) for part in sweep.split(",") if part.strip())
    except ProjectError as error:
        raise fail(str(error)) from None
    except ValueError:
        raise fail(f"--sweep takes session counts separated by commas, not {sweep!r}") from None
    kinds = tuple(dict.fromkeys(part.strip().lower() for part in persistence.split(",") if part.strip()))
    if unknown := [kind for kind in kinds if kind not in benchmark.DATABASE_KINDS]:
        raise fail(f"--persistence takes {' and '.join(benchmark.DATABASE_KINDS)}, not {', '.join(unknown)}")
    if stream and kinds:
        raise fail("--stream and --persistence are separate runs: give one of them")
    try:
        replica_counts = benchmark.replica_counts(replicas) if replicas.strip() else ()
    except ValueError:
        raise fail(f"--replicas takes replica counts separated by commas (or N for 1..N), not {replicas!r}") from None
    if replica_counts and (stream or kinds):
        raise fail("--replicas is a run of its own: leave out --stream and --persistence")
    config = benchmark.BenchConfig(project=project, sessions=sessions, messages=messages, latency_ms=latency_ms,
                                   rounds=rounds, sweep=counts, idle_sessions=idle_sessions,
                                   long_messages=long_messages, persistence=kinds, guarded_floor=guarded_floor,
                                   floor_without_sleeps=floor_without_sleeps,
                                   stream=stream, token_ms=token_ms, deltas=deltas, replicas=replica_counts,
                                   failover=failover, rolling=rolling)
    if replica_counts:
        _bench_replicas(benchmark, config, json_out, plot_out)
        return
    if stream:
        _bench_streamed(benchmark, config, json_out)
        return
    if kinds:
        _bench_stored(benchmark, config, json_out)
        return
    console.print(f"benchmark: {sessions} sessions x {messages} messages, middleware latency {latency_ms:g} ms, "
                  f"{rounds} rounds each, alternating app and floor", highlight=False)
    try:
        with _stop_signals():
            results = benchmark.run_bench(config, report=lambda line: console.print(
                line, highlight=False, markup=False, soft_wrap=True))
            if generation:
                results.generation = benchmark.generation_times(sorted(examples_dir().glob("*.yml")))
    except ServiceError as error:
        raise fail(f"could not start a server: {error}") from None
    except Stopped as stop:
        raise stop.exit() from None
    console.print(benchmark.bench_table(results))
    if json_out:
        benchmark.write_json(results, json_out)
        console.print(f"figures written to {json_out}", highlight=False)
    if plot_out and results.sweep:
        try:
            benchmark.plot(results, plot_out)
        except ImportError:
            raise fail("--plot needs matplotlib: pip install 'brandbot[dev]'") from None
        console.print(f"plot written to {plot_out}", highlight=False)


def _bench_stored(benchmark: ModuleType, config: BenchConfig, json_out: Path | None) -> None:
    """`brandbot bench --persistence ...`: the stored-conversations figures, table per database."""
    from .processes import ServiceError

    console.print(f"benchmark, stored conversations ({', '.join(config.persistence)}): {config.sessions} sessions x "
                  f"{config.messages} messages, middleware latency {config.latency_ms:g} ms, {config.rounds} rounds "
                  "each, alternating app, floor with the same data layer"
                  f"{' behind the guard' if config.guarded_floor else ''}, floor without a database"
                  f"{'; the floors without Chainlit sleeps' if config.floor_without_sleeps else ''}", highlight=False)
    try:
        with _stop_signals():
            results = benchmark.run_stored_bench(config, report=lambda line: console.print(
                line, highlight=False, markup=False, soft_wrap=True))
    except ServiceError as error:
        raise fail(f"could not start a server: {error}") from None
    except benchmark.DatabaseUnavailable as error:
        raise fail(f"no database for the persistence mode: {error}") from None
    except Stopped as stop:
        raise stop.exit() from None
    for table in benchmark.stored_tables(results):
        console.print(table)
    if json_out:
        benchmark.write_json(results, json_out)
        console.print(f"figures written to {json_out}", highlight=False)


def _bench_replicas(benchmark: ModuleType, config: BenchConfig, json_out: Path | None,
                    plot_out: Path | None) -> None:
    """`brandbot bench --replicas ...`: throughput per replica count against the floor, failover, rolling restart."""
    from .load_balancer import LoadBalancerError, LoadBalancerMissing
    from .postgres_cluster import PostgresMissing
    from .processes import ServiceError

    console.print(f"benchmark, replicas {', '.join(map(str, config.replicas))} through the project's HAProxy: "
                  f"{config.sessions} sessions x {config.messages} messages, middleware latency "
                  f"{config.latency_ms:g} ms, {config.rounds} rounds each, alternating with the single-process floor",
                  highlight=False)
    try:
        with _stop_signals():
            results = benchmark.run_replicas_bench(config, report=lambda line: console.print(
                line, highlight=False, markup=False, soft_wrap=True))
    except ServiceError as error:
        raise fail(f"could not start a server: {error}") from None
    except (LoadBalancerMissing, LoadBalancerError, PostgresMissing) as error:
        raise fail(str(error)) from None
    except Stopped as stop:
        raise stop.exit() from None
    console.print(benchmark.replicas_table(results))
    if results.resilience is not None:
        for line in benchmark.resilience_lines(results.resilience):
            console.print(line, highlight=False, markup=False, soft_wrap=True)
    if json_out:
        benchmark.write_json(results, json_out)
        console.print(f"figures written to {json_out}", highlight=False)
    if plot_out:
        try:
            benchmark.replicas_plot(results, plot_out)
        except ImportError:
            raise fail("--plot needs matplotlib: pip install 'brandbot[dev]'") from None
        console.print(f"plot written to {plot_out}", highlight=False)


def _bench_streamed(benchmark: ModuleType, config: BenchConfig, json_out: Path | None) -> None:
    """`brandbot bench --stream`: the streamed-answer figures, goals first."""
    from .processes import ServiceError

    console.print(f"benchmark, streamed answers: {config.sessions} sessions x {config.messages} messages and "
                  f"1 session x {2 * config.messages}, first delta after {config.latency_ms:g} ms, "
                  f"{config.deltas} deltas {config.token_ms:g} ms apart, {config.rounds} rounds each, "
                  "alternating app and streaming floor",
                  highlight=False)
    try:
        with _stop_signals():
            results = benchmark.run_stream_bench(config, report=lambda line: console.print(
                line, highlight=False, markup=False, soft_wrap=True))
    except ServiceError as error:
        raise fail(f"could not start a server: {error}") from None
    except Stopped as stop:
        raise stop.exit() from None
    for table in benchmark.stream_tables(results):
        console.print(table)
    if json_out:
        benchmark.write_json(results, json_out)
        console.print(f"figures written to {json_out}", highlight=False)


@app.command()
def screenshots(
    out: Annotated[Path, typer.Option(help="Directory for the PNG files.")] = Path("docs/img"),
    work: Annotated[Path, typer.Option(help="Where to render the examples first.")] = Path("build/screenshots"),
) -> None:
    """Render every example brand and save a screenshot of a short conversation as <slug>.png."""
    from .browser import BrowserMissing
    from .processes import ServiceError
    from .screenshots import screenshot

    for brand_file in sorted(examples_dir().glob("*.yml")):
        brand = checked_brand(brand_file)
        project = work / brand_file.stem
        _render_fresh(brand, brand_file, project)
        slug = brand.resolved["brand_slug"]
        try:
            with _stop_signals():
                saved = screenshot(project, out / f"{slug}.png")
        except (BrowserMissing, ServiceError) as error:
            raise fail(str(error)) from None
        except Stopped as stop:
            raise stop.exit() from None
        except ImportError:
            raise fail("screenshots need Playwright: pip install 'brandbot[dev]'") from None
        console.print(f"{brand_file.stem}: {saved}", markup=False, highlight=False)


@app.command()
def embed(
    project: Annotated[Path, typer.Argument(help="A rendered bot project.")],
    url: Annotated[str, typer.Option(help="The bot's public address, where the site's pages will load it from.")] = (
        "http://localhost:8000"),
) -> None:
    """Print the one-line snippet and the checklist that put the chat on the brand's website."""
    from .embed_guide import embed_guide
    from .rendered_project import ProjectError

    try:
        console.print(embed_guide(project, url), markup=False, highlight=False, soft_wrap=True)
    except ProjectError as error:
        raise fail(str(error)) from None


@app.command()
def version() -> None:
    """Print brandbot's version."""
    console.print(__version__)


def main() -> None:
    """Entry point of the console script."""
    app()
