"""How long rendering takes: each example brand in-process, and one `copier copy` from the command line."""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..brand_file import load_answers
from ..render import render_brand
from ..template_paths import template_root
from .report import GenerationTimes, RenderTimes


def generation_times(examples: list[Path]) -> GenerationTimes:
    """Three in-process renders per example brand (the first is cold), then one CLI run of the first brand."""
    with tempfile.TemporaryDirectory(prefix="brandbot-render-", ignore_cleanup_errors=True) as scratch:
        work = Path(scratch)
        per_brand = {brand_file.stem: _render_times(brand_file, work) for brand_file in examples}
        return GenerationTimes(in_process=per_brand, copier_cli_ms=_copier_cli_ms(examples[0], work / "cli"))


def _render_times(brand_file: Path, work: Path) -> RenderTimes:
    times = []
    for attempt in range(3):
        started = time.perf_counter()
        render_brand(load_answers(brand_file), work / f"{brand_file.stem}-{attempt}", base_dir=brand_file.parent)
        times.append(time.perf_counter() - started)
    return RenderTimes(first_ms=round(times[0] * 1000), best_ms=round(min(times) * 1000))


def _copier_cli_ms(brand_file: Path, destination: Path) -> int:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "copier", "copy", "--quiet", "--defaults", "--vcs-ref", "HEAD",
                    "--data-file", str(brand_file), str(template_root()), str(destination)], check=True,
                   capture_output=True)
    return round((time.perf_counter() - started) * 1000)
