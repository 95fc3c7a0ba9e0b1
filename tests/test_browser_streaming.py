"""A streamed markdown answer in a real browser (Debian's Chromium via Playwright): while it grows, the page
never shows markdown that the rest of the answer would turn into something else.

The retail bot under `chainlit run` and the reference middleware streaming slowly (SSE, 60 ms between 40
deltas) as separate processes; "simulate stream code" answers STREAMED_MARKDOWN, a paragraph, a python
code block and a table, cut across deltas. A sampler in the page reads the answer's rendered DOM every
50 ms while it streams: no fence or row of dashes shows as text, no table shows and then goes, the code
block once shown stays, and at the end there is exactly the code block and the table that were sent.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from brandbot.browser import send
from brandbot.processes import Service, free_port, start_app
from brandbot.reference_middleware import STREAMED_MARKDOWN

from .helpers import EXAMPLES, start_reference_middleware

RETAIL = next(path for path in EXAMPLES if path.stem == "retail")
ANSWERS = '[data-step-type="assistant_message"]'
CURSOR = "\u200b"  # what Chainlit adds to the end of a message while it streams

# What STREAMED_MARKDOWN holds: its paragraph, the lines of its code block and the cells of its table's rows.
_LINES = STREAMED_MARKDOWN.splitlines()
PARAGRAPH = _LINES[0]
CODE_LINES = _LINES[_LINES.index("```python") + 1:_LINES.index("```", _LINES.index("```python"))]
ROWS = [[cell.strip() for cell in line.strip("|").split("|")] for line in _LINES
        if line.startswith("|") and "---" not in line]

# Reads the last answer's rendered DOM every 50 ms into window.__samples, until window.__stopSampling().
SAMPLER = """([selector, interval]) => {
  const samples = [];
  const sample = () => {
    const answers = document.querySelectorAll(selector);
    const content = answers.length ? answers[answers.length - 1].querySelector('.message-content') : null;
    if (!content) { samples.push({answers: answers.length, text: null}); return; }
    samples.push({
      answers: answers.length,
      text: content.innerText,
      pres: content.querySelectorAll('pre').length,
      code: [...content.querySelectorAll('pre code')].map(code => code.innerText),
      tables: content.querySelectorAll('table').length,
      rows: [...content.querySelectorAll('tr')].map(row => [...row.querySelectorAll('th, td')].map(
        cell => cell.innerText.trim())),
    });
  };
  const timer = setInterval(sample, interval);
  window.__samples = samples;
  window.__stopSampling = () => { clearInterval(timer); sample(); return samples; };
}"""


def table_rows(sample: dict[str, Any]) -> list[list[str]]:
    """The cells of a sampled table's rows, without the empty row Chainlit's blinking cursor (a "\u200b" it adds
    to a streaming message's markdown) makes when the text shown so far ends with a row."""
    rows: list[list[str]] = sample["rows"]
    return rows[:-1] if len(rows) > 1 and not any(rows[-1]) else rows


@pytest.fixture(scope="module")
def slow_streaming_bot(rendered: Callable[[Path], Path], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    project = rendered(RETAIL)
    log_dir = tmp_path_factory.mktemp("browser-streaming-logs")
    secret = "stream-" + secrets.token_urlsafe(18)
    port = free_port()
    middleware = start_reference_middleware(project, port=port, secret=secret, log_dir=log_dir, stream="sse",
                                            token_ms=60, deltas=40)
    try:
        app = start_app(project, port=free_port(), middleware_url=f"http://127.0.0.1:{port}/chat", secret=secret,
                        log_dir=log_dir, extra_env={"REQUEST_TIMEOUT_SECONDS": "5"})
    except BaseException:
        middleware.stop()
        raise
    yield app
    assert app.stop() == 0, "chainlit did not stop cleanly on SIGINT"
    middleware.stop()


@pytest.fixture
def page(browser: Any, slow_streaming_bot: Service) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1100, "height": 900}, locale="en-US")
    page = context.new_page()
    page.goto(slow_streaming_bot.base_url)
    expect(page.locator(ANSWERS).first).to_be_visible(timeout=20_000)
    yield page
    context.close()


def test_a_streamed_code_block_and_table_never_show_raw_markdown(page: Page) -> None:
    answers = page.locator(ANSWERS)
    welcomed = answers.count()
    page.evaluate(SAMPLER, [ANSWERS, 50])
    send(page, "simulate stream code")
    content = answers.nth(welcomed).locator(".message-content").first
    expect(content.locator("tr")).to_have_count(len(ROWS), timeout=20_000)  # the last row arrived
    expect(page.locator("#stop-button")).to_have_count(0, timeout=10_000)  # and the answer is over
    page.wait_for_timeout(200)
    samples: list[dict[str, Any]] = page.evaluate("() => window.__stopSampling()")

    mine = [sample for sample in samples if sample["answers"] == welcomed + 1 and sample["text"] is not None]
    answering = [sample for sample in mine if sample["text"].strip() != "Thinking..."]
    assert len(answering) >= 20, f"only {len(answering)} samples of the answer"
    distinct = {sample["text"] for sample in answering}
    assert len(distinct) >= 10, f"the answer showed only {len(distinct)} different states: it did not grow"

    final_code = "\n".join(CODE_LINES)
    code_seen = table_seen = False
    for number, sample in enumerate(answering):
        text = sample["text"].replace(CURSOR, "")
        where = f"sample {number}: {text!r}"
        assert "```" not in text, where
        assert "---" not in text, where  # the table's row of dashes never shows as text
        assert not any(line.lstrip().startswith("|") for line in text.splitlines()), where  # nor a row as text
        assert PARAGRAPH.startswith(text.splitlines()[0].rstrip()), where
        assert sample["pres"] <= 1 and sample["tables"] <= 1, where
        if code_seen:
            assert sample["pres"] == 1, f"the code block went away: {where}"
        if table_seen:
            assert sample["tables"] == 1, f"the table went away: {where}"
        code_seen = code_seen or sample["pres"] == 1
        table_seen = table_seen or sample["tables"] == 1
        for code in sample["code"]:
            assert final_code.startswith(code.replace(CURSOR, "").rstrip()), where
        if sample["tables"]:
            rows = table_rows(sample)
            assert rows and rows == ROWS[:len(rows)], f"{where}: {sample['rows']}"  # only complete rows

    # it was seen growing: the code block before the table, and the table before its last row
    assert any(sample["pres"] == 1 and sample["tables"] == 0 for sample in answering)
    assert any(0 < len(table_rows(sample)) < len(ROWS) for sample in answering)

    final = answering[-1]
    assert CURSOR not in final["text"]
    assert final["text"].splitlines()[0] == PARAGRAPH
    assert final["pres"] == 1 and [code.rstrip("\n") for code in final["code"]] == [final_code]
    assert final["tables"] == 1 and final["rows"] == ROWS
    assert content.locator("pre code").inner_text().rstrip("\n").splitlines() == CODE_LINES
