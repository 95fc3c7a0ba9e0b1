"""Branding in the rendered files: colours (with WCAG contrast), logos, language and translations."""

from __future__ import annotations

import colorsys
import importlib.util
import io
import json
import re
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from PIL import Image

from brandbot.validation import validate_answers

from .helpers import EXAMPLES, REPO, brandbot, copier_render, example_id

# Found, not imported: importing chainlit writes its config into the working directory.
CHAINLIT_DIR = Path(importlib.util.find_spec("chainlit").origin).parent  # type: ignore[union-attr, arg-type]
DARK_BACKGROUND = (0x21, 0x21, 0x21)  # Chainlit 2.12's dark --background, 0 0% 13%


def luminance(rgb: tuple[float, float, float]) -> float:
    """WCAG 2 relative luminance of 0-255 channels."""
    def linear(channel: float) -> float:
        c = channel / 255
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    r, g, b = rgb
    return 0.2126 * linear(r) + 0.7152 * linear(g) + 0.0722 * linear(b)


def contrast(first: tuple[float, float, float], second: tuple[float, float, float]) -> float:
    high, low = sorted((luminance(first), luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def hex_rgb(color: str) -> tuple[int, int, int]:
    return int(color[1:3], 16), int(color[3:5], 16), int(color[5:7], 16)


def hsl_rgb(triplet: str) -> tuple[float, float, float]:
    hue, saturation, lightness = (float(part.rstrip("%")) for part in triplet.split())
    r, g, b = colorsys.hls_to_rgb(hue / 360, lightness / 100, saturation / 100)
    return r * 255, g * 255, b * 255


@pytest.mark.parametrize(("color", "accepted"), [
    ("#767676", True), ("#777777", False), ("#1D4ED8", True), ("#B45309", True), ("#FACC15", False),
    ("#000000", True), ("#FFFFFF", False), ("#0F766E", True), ("#E11D48", True), ("#22C55E", False),
])
def test_the_contrast_rule_matches_wcag(color: str, accepted: bool) -> None:
    assert (contrast(hex_rgb(color), (255, 255, 255)) >= 4.5) is accepted
    problems = validate_answers({"brand_name": "Acme", "primary_color": color})
    assert (problems == []) is accepted, problems
    if not accepted:
        assert problems[0].question == "primary_color" and "WCAG AA" in problems[0].message


@pytest.mark.parametrize("brand_file", EXAMPLES, ids=example_id)
def test_theme_colours_keep_their_hue_and_their_contrast(rendered: Callable[[Path], Path], brand_file: Path) -> None:
    project = rendered(brand_file)
    theme = json.loads((project / "public/theme.json").read_text(encoding="utf-8"))["variables"]
    color = yaml.safe_load((project / ".copier-answers.yml").read_text(encoding="utf-8"))["primary_color"]
    light = hsl_rgb(theme["light"]["--primary"])
    assert all(abs(a - b) < 1.5 for a, b in zip(light, hex_rgb(color), strict=True)), (light, color)
    assert contrast(light, (255, 255, 255)) >= 4.45
    dark = hsl_rgb(theme["dark"]["--primary"])
    assert contrast(dark, DARK_BACKGROUND) >= 4.5
    assert contrast(dark, (23, 23, 23)) >= 4.5  # the dark theme's text on a primary button
    assert theme["light"]["--primary-foreground"] == "0 0% 100%"


@pytest.mark.parametrize(("language", "thinking"), [
    ("en-US", "Thinking..."), ("es", "Pensando..."), ("fr-FR", "Réflexion en cours..."),
    ("de-DE", "Einen Moment..."), ("ja", "Thinking..."),
])
def test_built_in_texts_follow_the_language(tmp_path: Path, language: str, thinking: str) -> None:
    project = copier_render(tmp_path, {"brand_name": "Acme", "language": language})
    brand = tomllib.loads((project / "brand.toml").read_text(encoding="utf-8"))
    config = tomllib.loads((project / ".chainlit/config.toml").read_text(encoding="utf-8"))
    assert brand["texts"]["thinking"] == thinking
    assert brand["language"] == config["UI"]["language"] == language
    assert f'data-language="{language}"' in config["UI"]["custom_js_attributes"]
    assert (project / f"chainlit_{language}.md").is_file()


def test_a_text_override_wins_over_the_language(rendered: Callable[[Path], Path]) -> None:
    brand = tomllib.loads((rendered(REPO / "examples/bank-es.yml") / "brand.toml").read_text(encoding="utf-8"))
    assert brand["texts"]["thinking"] == "Un momento, lo estoy consultando..."
    assert brand["texts"]["error_timeout"].startswith("Tiempo de espera agotado")


def test_every_chainlit_translation_ships_unchanged() -> None:
    shipped = REPO / "template/.chainlit/translations"
    installed = CHAINLIT_DIR / "translations"
    names = sorted(path.name for path in installed.glob("*.json"))
    assert sorted(path.name for path in shipped.glob("*.json")) == names
    for name in names:
        assert json.loads((shipped / name).read_text(encoding="utf-8")) == json.loads(
            (installed / name).read_text(encoding="utf-8")), name


def test_without_a_logo_the_monogram_is_used(tmp_path: Path) -> None:
    project = copier_render(tmp_path, {"brand_name": "Émile & Co <b>", "primary_color": "#0F766E"})
    svg = (project / "public/logo_light.svg").read_text(encoding="utf-8")
    assert 'fill="#0F766E"' in svg and ">É</text>" in svg and 'aria-label="Émile &amp; Co &lt;b&gt;"' in svg
    assert (project / "public/favicon.svg").read_text(encoding="utf-8") == svg
    assert not (project / "public/monogram.svg").exists()


def test_copier_alone_leaves_the_logo_to_brandbot(tmp_path: Path) -> None:
    project = copier_render(tmp_path, {"brand_name": "Acme", "logo": "assets/acme.png", "favicon": "assets/acme.png"})
    public = sorted(path.name for path in (project / "public").iterdir())
    assert public == ["brandbot.js", "embed.js", "theme.json", "widget.css", "widget.json"]


def write(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def a_png(size: tuple[int, int] = (4, 4)) -> bytes:
    """A real PNG image (brandbot decodes logos, so a signature alone is refused)."""
    out = io.BytesIO()
    Image.new("RGB", size, (15, 118, 110)).save(out, format="PNG")
    return out.getvalue()


def test_brandbot_new_copies_the_brands_own_files(tmp_path: Path) -> None:
    png = a_png()
    write(tmp_path / "brand/assets/logo.png", png)
    write(tmp_path / "brand/assets/icon.svg", b'<svg xmlns="http://www.w3.org/2000/svg"/>')
    write(tmp_path / "brand/assets/site.css", b"body { color: black; }")
    brand_file = tmp_path / "brand/acme.yml"
    brand_file.write_text("brand_name: Acme\nlogo: assets/logo.png\nfavicon: assets/icon.svg\n"
                          "custom_css: assets/site.css\n", encoding="utf-8")
    result = brandbot("new", str(brand_file), str(tmp_path / "bot"))
    assert result.returncode == 0, result.stderr
    public = tmp_path / "bot/public"
    assert (public / "logo_light.png").read_bytes() == (public / "logo_dark.png").read_bytes() == png
    assert (public / "favicon.svg").read_bytes().startswith(b"<svg")
    assert not (public / "logo_light.svg").exists()
    assert (public / "custom.css").read_text(encoding="utf-8") == "body { color: black; }"
    config = tomllib.loads((tmp_path / "bot/.chainlit/config.toml").read_text(encoding="utf-8"))
    assert config["UI"]["custom_css"] == "/public/custom.css"


@pytest.mark.parametrize(("name", "data", "problem"), [
    ("logo.png", None, "not found"),
    ("logo.png", b"GIF89a not really", "is not a PNG image"),
    ("logo.svg", b"<html>nope</html>", "is not an SVG image"),
    ("logo.svg", b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "the element <script>"),
    ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 32, "is not a PNG image"),
    ("logo.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 1_000_001, "at most 1000000 are allowed"),
])
def test_a_bad_logo_is_a_clear_error(tmp_path: Path, name: str, data: bytes | None, problem: str) -> None:
    if data is not None:
        write(tmp_path / name, data)
    brand_file = tmp_path / "acme.yml"
    brand_file.write_text(f"brand_name: Acme\nlogo: {name}\n", encoding="utf-8")
    for command in (["validate", str(brand_file)], ["new", str(brand_file), str(tmp_path / "bot")]):
        result = brandbot(*command)
        assert result.returncode == 1
        assert f"{brand_file}: logo: " in result.stderr and problem in result.stderr
        assert "Traceback" not in result.stderr
    assert not (tmp_path / "bot").exists()


def test_the_language_rule_lists_exactly_the_shipped_translations() -> None:
    source = (REPO / "validators.jinja").read_text(encoding="utf-8")
    listed = re.search(r"set LANGUAGES = \[(.*?)\]", source, re.DOTALL)
    assert listed is not None
    languages = sorted(re.findall(r"'([^']+)'", listed.group(1)))
    shipped = sorted(path.stem for path in (REPO / "template/.chainlit/translations").glob("*.json"))
    assert languages == shipped
