"""Screenshots of each example brand in a short conversation, for the README's gallery."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .browser import chromium, send
from .processes import start_bot
from .rendered_project import project_brand


def screenshot(project: Path, destination: Path, *, width: int = 900, height: int = 720) -> Path:
    """Run the project, click its first starter (or ask a question), and save the page as PNG."""
    from playwright.sync_api import expect

    brand = project_brand(project)
    bot = start_bot(project, log_dir=Path(tempfile.mkdtemp(prefix="brandbot-shot-")),
                    app_env={"TRANSITION_DELAY_SECONDS": "0"})
    try:
        with chromium() as browser:
            page = browser.new_page(viewport={"width": width, "height": height}, device_scale_factor=1)
            page.goto(bot.app.base_url)
            answers = page.locator('[data-step-type="assistant_message"]')
            expect(answers.first).to_be_visible(timeout=20_000)
            if brand.starters:
                page.get_by_role("button", name=brand.starters[0].label, exact=True).click()
            else:
                category = next(iter(brand.categories), "General")
                send(page, f"simulate category {category}: I have a question")
            expect(answers).to_have_count(2, timeout=20_000)
            expect(answers.last).not_to_have_text(brand.texts.thinking, timeout=20_000)
            page.wait_for_timeout(600)  # let the last message finish its fade-in
            page.evaluate("() => document.querySelectorAll('*').forEach(node => { node.scrollTop = 0; })")
            page.wait_for_timeout(200)
            destination.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(destination))
    finally:
        bot.stop()
    return destination
