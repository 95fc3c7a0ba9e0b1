"""`make screenshots`: a real page of a running brand, in the brand's colour, saved as a PNG.

Its own module: `screenshot` starts its own Playwright, which cannot run beside another module's."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from PIL import Image

from brandbot.screenshots import screenshot

from .helpers import REPO

RETAIL = REPO / "examples/retail.yml"
RETAIL_PRIMARY = (0xB4, 0x53, 0x09)  # examples/retail.yml's primary_color


def test_a_screenshot_shows_the_brand_in_a_conversation(rendered: Callable[[Path], Path], tmp_path: Path) -> None:
    saved = screenshot(rendered(RETAIL), tmp_path / "retail.png", width=640, height=480)  # no browser: fails
    with Image.open(saved) as image:
        assert image.format == "PNG" and image.size == (640, 480)
        colours = image.convert("RGB").getcolors(maxcolors=640 * 480)
    assert colours is not None and len(colours) > 100, "the page looks blank"
    brand_pixels = sum(count for count, rgb in colours
                       if all(abs(channel - wanted) <= 8 for channel, wanted in zip(rgb, RETAIL_PRIMARY, strict=True)))
    assert brand_pixels > 50, "the brand's primary colour is not on the page"  # the avatar alone is ~180
