"""Fixtures: rendered brands, a browser, a scratch copy of the template and a live bot.

Plain helpers (paths, git, rendering, the CLI, LiveBot) are in helpers.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from brandbot.brand_file import load_answers
from brandbot.browser import BrowserMissing, chromium
from brandbot.postgres_cluster import PostgresCluster, PostgresMissing
from brandbot.processes import start_bot
from brandbot.render import render_brand

from .helpers import FIGURES, BotRun, LiveBot, checkout_template, project_files


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for this module (Playwright's sync API holds an event loop while it runs, which
    must be gone before other modules use asyncio). A missing browser fails, in CI or not: a skip
    would pass a run that never tested the browser (`make test` installs Chromium)."""
    try:
        with chromium() as launched:
            yield launched
    except BrowserMissing as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    """A throw-away PostgreSQL cluster for this module (brandbot.postgres_cluster); a test that wants
    a database of its own calls `postgres.create_database(name)`. A missing PostgreSQL fails, in CI or not,
    as a missing browser does (`make test` installs Debian's postgresql)."""
    try:
        cluster = PostgresCluster()
    except PostgresMissing as error:
        pytest.fail(str(error), pytrace=False)
    try:
        yield cluster
    finally:
        cluster.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the figures the reliability tests measured, for docs/reliability.md."""
    for name, rows in FIGURES.items():
        terminalreporter.write_line(f"{name}: {sum(count for count, _ in rows)} in all")
        for count, detail in rows:
            terminalreporter.write_line(f"    {count:>5}  {detail}")


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Path], Path]:
    """Render a brand file once per test session; returns the project directory."""
    cache: dict[Path, Path] = {}

    def render(brand_file: Path) -> Path:
        if brand_file not in cache:
            destination = tmp_path_factory.mktemp(brand_file.stem) / "project"
            cache[brand_file] = render_brand(load_answers(brand_file), destination, base_dir=brand_file.parent)
        return cache[brand_file]

    return render


@pytest.fixture
def scratch_template(tmp_path: Path) -> Callable[[], Path]:
    """A copy of this template outside git, for tests that change it."""

    def make() -> Path:
        copy = tmp_path / "template-copy"
        copy.mkdir()
        return checkout_template(copy)

    return make


@pytest.fixture(scope="module")
def bot(request: pytest.FixtureRequest, rendered: Callable[[Path], Path],
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveBot]:
    """A brand's bot running for real: the module parametrizes it with brand files
    (`pytestmark = pytest.mark.parametrize("bot", BRANDS, indirect=True, ids=example_id, scope="module")`)
    and sets how it runs in `BOT_RUN` (a BotRun). On the way out the app must stop cleanly and
    leave the project's files as they were: the project ships every file Chainlit would otherwise
    write (config, translations, readme)."""
    project = rendered(request.param)
    run: BotRun = getattr(request.module, "BOT_RUN", BotRun())
    before = project_files(project)
    running = start_bot(project, log_dir=tmp_path_factory.mktemp("bot-logs"), latency_ms=run.latency_ms,
                        app_env=run.app_env)
    yield LiveBot(running)
    assert running.stop() == 0, "chainlit did not stop cleanly on SIGINT"
    assert project_files(project) == before, "chainlit run changed the project's files"
