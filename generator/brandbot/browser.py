"""Driving a bot in a real browser: Debian's Chromium under Playwright.

Playwright cannot download its own browser on these machines, so it launches the system
Chromium with flags that keep it off the (closed) network.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]


class BrowserMissing(RuntimeError):
    """No Chromium to drive; the message says how to install it."""


def chromium_path() -> Path:
    """The system Chromium (CHROMIUM_PATH overrides), or BrowserMissing.

    A CHROMIUM_PATH that names no executable is an error, not a hint: falling back to another
    browser (or to none) would hide the mistake.
    """
    chosen = os.environ.get("CHROMIUM_PATH")
    if chosen:
        if Path(chosen).is_file() and os.access(chosen, os.X_OK):
            return Path(chosen)
        raise BrowserMissing(f"CHROMIUM_PATH={chosen} is not an executable file")
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    raise BrowserMissing("Chromium not found: run `sudo apt-get install -y chromium` (`make test` does it when run "
                         "as root), or set CHROMIUM_PATH to a Chrome or Chromium")


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium browser, closed on exit."""
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def send(page: Any, text: str) -> None:
    """Type a message into Chainlit's composer and press Enter, as a customer would."""
    composer = page.locator("#chat-input")
    composer.click()
    page.keyboard.type(text)
    page.keyboard.press("Enter")
