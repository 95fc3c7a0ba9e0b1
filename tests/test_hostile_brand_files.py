"""Hostile brand files (issue 9, items 6-8): scripts in SVGs, CSS that loads from elsewhere, PNGs
that are not, symlinks out of the brand's folder, FIFOs, YAML alias bombs and oversize input.

Each is refused by `brandbot validate` and by `brandbot new` (which then writes nothing), in one
line naming the question, the file and the rule, and quickly: every command runs under a
timeout far below what the same file cost before. The YAML bounds copier's validators can hold
are checked in plain `copier copy` too.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import traceback
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from brandbot.brand_file import MAX_BRAND_FILE_BYTES, MAX_NODES
from brandbot.cli import app

from .helpers import DATA, REPO, brandbot

SVG_NS = 'xmlns="http://www.w3.org/2000/svg"'


@dataclass(frozen=True)
class Hostile:
    """A hostile brand: how to lay it out in a folder, and the refusal expected (question, rule)."""

    name: str
    question: str
    rule: str
    build: Callable[[Path], Path]  # writes the brand into a folder; returns the brand file
    asset: str | None = None  # the brand's file the refusal names, relative to the brand file
    #: Cases that hung or took 7 to 30 s before run in a subprocess under this timeout; the others
    #: run `brandbot new` in this process (saving a second of start-up each).
    seconds: float | None = None


def brand_with(question: str, asset: str, content: bytes | str) -> Callable[[Path], Path]:
    """A brand whose `question` names `asset`, a file holding `content`."""

    def build(folder: Path) -> Path:
        path = folder / asset
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)
        return brand_file(folder, f"{question}: {asset}\n")

    return build


def brand_file(folder: Path, extra: str) -> Path:
    path = folder / "brand.yml"
    path.write_text(f"brand_name: Hostile\n{extra}", encoding="utf-8")
    return path


def svg(name: str, body: str, rule: str, question: str = "logo") -> Hostile:
    return Hostile(f"svg-{name}", question, rule, brand_with(question, "assets/logo.svg", body), "assets/logo.svg")


def css(name: str, body: str, rule: str) -> Hostile:
    return Hostile(f"css-{name}", "custom_css", rule, brand_with("custom_css", "assets/site.css", body),
                   "assets/site.css")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png(width: int, height: int) -> bytes:
    """A 1-bit greyscale PNG of zeros, built by hand (a 20000 x 20000 one is a few kB)."""
    rows = zlib.compress((b"\0" * (1 + (width + 7) // 8)) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", header) + png_chunk(b"IDAT", rows) + png_chunk(b"IEND", b"")


def real_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "#B45309").save(buffer, format="PNG")
    return buffer.getvalue()


def symlink_out(folder: Path) -> Path:
    """custom_css: assets/evil.css, a symlink to a file outside the brand's folder (/etc/passwd in the report)."""
    (folder / "assets").mkdir()
    (folder / "assets/evil.css").symlink_to("/etc/passwd")
    return brand_file(folder, "custom_css: assets/evil.css\n")


def symlinked_folder(folder: Path) -> Path:
    """assets/ itself a symlink to a folder elsewhere, holding a harmless-looking CSS file."""
    elsewhere = folder.parent / f"{folder.name}-elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.css").write_text("/* api_key = hunter2 */\n", encoding="utf-8")
    (folder / "assets").symlink_to(elsewhere, target_is_directory=True)
    return brand_file(folder, "custom_css: assets/secret.css\n")


def fifo_asset(folder: Path) -> Path:
    (folder / "assets").mkdir()
    os.mkfifo(folder / "assets/pipe.css")
    return brand_file(folder, "custom_css: assets/pipe.css\n")


def directory_asset(folder: Path) -> Path:
    (folder / "assets/icon.svg").mkdir(parents=True)
    return brand_file(folder, "favicon: assets/icon.svg\n")


def fifo_brand(folder: Path) -> Path:
    os.mkfifo(folder / "brand.yml")
    return folder / "brand.yml"


def raw_brand(text: str) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / "brand.yml").write_text(text, encoding="utf-8")
        return folder / "brand.yml"

    return build


def copied(source: Path) -> Callable[[Path], Path]:
    def build(folder: Path) -> Path:
        (folder / "brand.yml").write_bytes(source.read_bytes())
        return folder / "brand.yml"

    return build


def many_flow_categories(folder: Path) -> Path:
    """Just under the size limit, as many tiny categories as fit: 84,000 values to parse."""
    entries, size, parts = 0, 0, []
    while size < MAX_BRAND_FILE_BYTES - 1_000:
        parts.append(f"C{entries}: {{}}")
        size += len(parts[-1]) + 2
        entries += 1
    return raw_brand("brand_name: Many\ncategories: {" + ", ".join(parts) + "}\n")(folder)


def deep(folder: Path) -> Path:
    return raw_brand("brand_name: Deep\ncategories: " + "[" * 50_000 + "]" * 50_000 + "\n")(folder)


STRING_BOMB = (DATA / "alias-bomb.yml").read_text(encoding="utf-8").split("general_categories")[0]

ASSET_CASES = [
    svg("onload", f'<svg {SVG_NS} onload="fetch(\'/project/settings\')"/>', "attribute 'onload'"),
    svg("prefixed-script", '<svg:svg xmlns:svg="http://www.w3.org/2000/svg"><svg:script>alert(1)</svg:script>'
        "</svg:svg>", "element <script>"),
    svg("foreign-object", f'<svg {SVG_NS}><foreignObject><iframe xmlns="http://www.w3.org/1999/xhtml" '
        'src="javascript:alert(1)"/></foreignObject></svg>', "element <foreignObject>"),
    svg("javascript-link", f'<svg {SVG_NS}><a href="javascript:alert(1)"><rect width="9" height="9"/></a></svg>',
        "element <a>"),
    svg("javascript-use", f'<svg {SVG_NS}><use href="javascript:alert(1)"/></svg>', "links to 'javascript:"),
    svg("external-image", f'<svg {SVG_NS}><image href="https://evil.example/p.gif?leak=1"/></svg>',
        "links to 'https://evil.example", question="favicon"),
    svg("xlink-href", f'<svg {SVG_NS} xmlns:xlink="http://www.w3.org/1999/xlink">'
        '<use xlink:href="https://evil.example/s.svg#a"/></svg>', "links to 'https://evil.example"),
    svg("style-url", f'<svg {SVG_NS}><rect width="9" height="9" style="fill: url(https://evil.example/x)"/></svg>',
        "url(https://evil.example/x) is not allowed"),
    svg("fill-url", f'<svg {SVG_NS}><rect width="9" height="9" fill="url(http://evil.example/x#g)"/></svg>',
        "url(http://evil.example/x#g) is not allowed"),
    svg("style-import", f"<svg {SVG_NS}><style>@import url(https://evil.example/x.css);</style></svg>",
        "@import is not allowed"),
    svg("entity", f'<!DOCTYPE svg [<!ENTITY e "x">]><svg {SVG_NS}><title>&e;</title></svg>', "DTDForbidden"),
    svg("stylesheet-instruction", f'<?xml-stylesheet href="https://evil.example/x.css"?><svg {SVG_NS}/>',
        "processing instruction <?xml-stylesheet?>"),
    svg("animation-set", f'<svg {SVG_NS}><set attributeName="href" to="javascript:alert(1)"/></svg>',
        "element <set>"),
    Hostile("png-not-a-png", "logo", "is not a PNG image",
            brand_with("logo", "logo.png", b"\x89PNG\r\n\x1a\n<svg onload=alert(1)>"), "logo.png"),
    Hostile("png-truncated", "logo", "is not a valid PNG image",
            brand_with("logo", "logo.png", real_png()[:-30]), "logo.png"),
    Hostile("png-too-many-pixels", "favicon", "is 5000 x 5000 pixels; a logo may have at most",
            brand_with("favicon", "icon.png", png(5_000, 5_000)), "icon.png"),
    Hostile("png-decompression-bomb", "favicon", "a decompression bomb",
            brand_with("favicon", "icon.png", png(20_000, 20_000)), "icon.png"),
    css("import", "@import 'https://evil.example/x.css';", "@import is not allowed"),
    css("escaped-import", "@\\69mport 'x.css';", "@import is not allowed"),
    css("external-url", "body { background: url(https://evil.example/p.gif?leak=1) }",
        "url(https://evil.example/p.gif?leak=1) is not allowed"),
    css("protocol-relative-url", "body { background: url('//evil.example/p.gif') }",
        "url(//evil.example/p.gif) is not allowed"),
    css("escaped-url", "body { background: u\\72l(https://evil.example/p.gif) }", "is not allowed"),
    css("font-face", "@font-face { font-family: x; src: url(https://evil.example/f.woff2) }", "is not allowed"),
    css("image-set", "body { background-image: image-set('https://evil.example/a.png' 1x) }", "is not allowed"),
    css("expression", "p { width: expression(alert(1)) }", "expression() is not allowed"),
    css("javascript", "p { background: url(javascript:alert(1)) }", "javascript: URLs are not allowed"),
    css("behavior", "p { behavior: url(x.htc) }", "behavior: is not allowed"),
    css("moz-binding", "p { -moz-binding: url(x.xml#b) }", "-moz-binding is not allowed"),
    Hostile("symlink-to-etc-passwd", "custom_css", "leads outside the brand file's folder", symlink_out,
            "assets/evil.css"),
    Hostile("symlinked-folder", "custom_css", "leads outside the brand file's folder", symlinked_folder,
            "assets/secret.css"),
    Hostile("fifo-asset", "custom_css", "is not a regular file", fifo_asset, "assets/pipe.css", seconds=15),
    Hostile("directory-asset", "favicon", "is not a regular file", directory_asset, "assets/icon.svg"),
]

YAML_CASES = [
    Hostile("alias-bomb", "x1", "YAML aliases (*name) are not allowed", copied(DATA / "alias-bomb.yml"),
            seconds=8),
    Hostile("alias-bomb-in-a-string-answer", "categories", "YAML aliases (*name) are not allowed",
            raw_brand("brand_name: Bomb\ncategories: |\n" + "".join(f"  {line}\n" for line in
                                                                  STRING_BOMB.splitlines()[1:])), seconds=8),
    Hostile("too-many-values", "categories", f"at most {MAX_NODES} YAML keys and values", many_flow_categories,
            seconds=6),
    Hostile("oversize-file", "brand file", f"a brand file is at most {MAX_BRAND_FILE_BYTES} bytes",
            raw_brand("brand_name: " + "A" * 2_000_000 + "\n"), seconds=6),
    Hostile("deep-nesting", "categories", "nested more than", deep, seconds=8),
    Hostile("fifo-brand-file", "brand file", "is not a regular file", fifo_brand, seconds=8),
    Hostile("huge-integer", "brand file", "invalid YAML value",
            raw_brand("brand_name: Big\nrequest_timeout_seconds: " + "9" * 5000 + "\n")),
]

#: Bounds that copier.yml's validators hold, so plain `copier copy` refuses them too.
COPIER_CASES = [
    Hostile("categories-201", "categories", "at most 200 categories (got 201)",
            raw_brand("brand_name: Many\ncategories:\n" + "".join(f"  C{n}: {{label: C{n}}}\n" for n in range(201)))),
    Hostile("general-categories-1000", "general_categories", "at most 200 categories (got 1000)",
            raw_brand("brand_name: Many\ngeneral_categories: [" + ", ".join(f"G{n}" for n in range(1000)) + "]\n")),
    Hostile("texts-1000", "texts", "texts, one per text id (got 1000)",
            raw_brand("brand_name: Many\ntexts:\n" + "".join(f"  t{n}: x\n" for n in range(1000)))),
]

CASES = ASSET_CASES + YAML_CASES + COPIER_CASES


def expected_line(case: Hostile, path: Path) -> str:
    """The start of the refusal: `file: question: [asset: ]rule`; file-level ones name the file only."""
    if case.question == "brand file":
        return f"{path}: "
    return f"{path}: {case.question}: " + (f"{path.parent / case.asset}: " if case.asset else "")


@pytest.fixture(scope="module")
def hostile_brands(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every hostile brand, each in a folder of its own."""
    root = tmp_path_factory.mktemp("hostile-brands")
    found = {}
    for case in CASES:
        (root / case.name).mkdir()
        found[case.name] = case.build(root / case.name)
    return found


def test_validate_refuses_every_hostile_brand_file_naming_question_file_and_rule(
        hostile_brands: dict[str, Path]) -> None:
    result = brandbot("validate", *(str(hostile_brands[case.name]) for case in CASES), timeout=60)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    for case in CASES:
        start = expected_line(case, hostile_brands[case.name])
        refusals = [line for line in lines if line.startswith(start)]
        assert refusals, f"{case.name}: no line starting {start!r} in\n{result.stderr}"
        assert any(case.rule in line for line in refusals), f"{case.name}: {case.rule!r} not in {refusals}"
    assert ": ok" not in result.stdout


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_new_refuses_a_hostile_brand_file_and_writes_nothing(hostile_brands: dict[str, Path], case: Hostile,
                                                             tmp_path: Path) -> None:
    path = hostile_brands[case.name]
    returncode, stderr = run_new(path, tmp_path / "bot", case.seconds)
    assert returncode == 1
    assert "Traceback" not in stderr
    assert stderr.startswith((expected_line(case, path), f"error: {expected_line(case, path)}")), stderr
    assert case.rule in stderr
    assert not (tmp_path / "bot").exists()


def run_new(brand: Path, destination: Path, seconds: float | None) -> tuple[int, str]:
    """`brandbot new`: its exit status and stderr (a traceback included if it raised)."""
    if seconds is not None:
        result = brandbot("new", str(brand), str(destination), timeout=seconds)
        return result.returncode, result.stderr
    ran = CliRunner().invoke(app, ["new", str(brand), str(destination)], terminal_width=100)
    if ran.exception is not None and not isinstance(ran.exception, SystemExit):
        return 1, "Traceback: " + "".join(traceback.format_exception(ran.exception))
    return ran.exit_code, ran.stderr


@pytest.mark.parametrize("case", [*COPIER_CASES, YAML_CASES[0]], ids=[*(c.name for c in COPIER_CASES), "alias-bomb"])
def test_plain_copier_copy_holds_the_bounds_its_validators_can(hostile_brands: dict[str, Path], case: Hostile,
                                                               tmp_path: Path) -> None:
    """The alias bomb puts 10^8 values in general_categories; copier expands them only if a validator
    prints them, which none does now (before: 14 s and 1.4 GB, refused with 'unhashable type')."""
    result = subprocess.run([sys.executable, "-m", "copier", "copy", "--defaults", "--vcs-ref", "HEAD",
                             "--data-file", str(hostile_brands[case.name]), str(REPO), str(tmp_path / "out")],
                            capture_output=True, text=True, timeout=10 if case.name == "alias-bomb" else 120)
    assert result.returncode != 0
    rule = case.rule if case.name != "alias-bomb" else "general_categories[0]: must be an identifier"
    assert rule in result.stderr
    assert not (tmp_path / "out" / "brand.toml").exists()


def test_a_brand_may_publish_files_inside_its_folder_symlinked_or_not_and_only_the_bytes_checked(
        tmp_path: Path) -> None:
    """What is allowed still is: drawing SVGs with #fragment references and embedded PNGs, CSS with
    data: fonts and files beside it, a real PNG, a symlink that stays inside the folder."""
    shared = tmp_path / "brand/shared"
    shared.mkdir(parents=True)
    (shared / "logo.svg").write_text(
        f'<?xml version="1.0" encoding="UTF-8"?>\n<svg {SVG_NS} xmlns:xlink="http://www.w3.org/1999/xlink" '
        'viewBox="0 0 64 64" role="img" aria-label="Acme" data-name="Layer 1"><defs><linearGradient id="g">'
        '<stop offset="0" stop-color="#1D4ED8"/></linearGradient><style>.a { fill: url(#g) }</style></defs>'
        '<rect class="a" width="64" height="64" rx="8" fill="url(#g)"/><use xlink:href="#g"/>'
        '<image width="8" height="8" href="data:image/png;base64,iVBORw0KGgo="/></svg>', encoding="utf-8")
    (shared / "site.css").write_text("@font-face { font-family: A; src: url(data:font/woff2;base64,AAAA) }\n"
                                     "header { background: url(logo_light.svg) no-repeat }\n", encoding="utf-8")
    (shared / "icon.png").write_bytes(real_png())
    (tmp_path / "brand/assets").mkdir()
    (tmp_path / "brand/assets/logo.svg").symlink_to("../shared/logo.svg")
    (tmp_path / "brand/assets/outside.css").symlink_to("/etc/passwd")
    brand = brand_file(tmp_path / "brand", "logo: assets/logo.svg\nfavicon: shared/icon.png\n"
                                           "custom_css: shared/site.css\n")
    result = brandbot("new", str(brand), str(tmp_path / "bot"), timeout=120)
    assert result.returncode == 0, result.stderr
    public = tmp_path / "bot/public"
    assert (public / "logo_light.svg").read_bytes() == (shared / "logo.svg").read_bytes()
    assert not (public / "logo_light.svg").is_symlink()
    assert (public / "favicon.png").read_bytes() == real_png()
    # The same folder's link to /etc/passwd is refused, by the same command.
    brand.write_text(brand.read_text(encoding="utf-8").replace("shared/site.css", "assets/outside.css"),
                     encoding="utf-8")
    refused = brandbot("new", str(brand), str(tmp_path / "bot2"), timeout=60)
    assert refused.returncode == 1 and "leads outside the brand file's folder" in refused.stderr
    assert "root:" not in refused.stderr + refused.stdout
