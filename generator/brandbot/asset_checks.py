"""What a brand's logo, favicon and CSS may hold: the rules that keep them plain pictures and styles.

The bot serves these files from its own origin, so an SVG that runs a script there could read
everything the page can. Checking for the text `<script` is not enough (event attributes,
`<svg:script>`, foreignObject, javascript: links, external references all slip by), so an SVG is
parsed by a real XML parser (defusedxml: no DTDs, no entities) and held to an allowlist of
drawing elements and attributes; a PNG is decoded for real by Pillow; CSS may load nothing
from another site. Each function returns the rule broken, as a sentence, or None.
"""

from __future__ import annotations

import io
import re
import struct
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser
from PIL import Image

#: A logo's largest picture: 2048 x 2048 pixels (16 MB once decoded as RGBA).
MAX_PIXELS = 2048 * 2048

SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
XML = "{http://www.w3.org/XML/1998/namespace}"

#: Drawing elements: no script, foreignObject, a, animate/set (they can rewrite an href), iframe, feImage.
SVG_ELEMENTS = frozenset("""
    svg g defs symbol use title desc style path rect circle ellipse line polyline polygon marker
    text tspan textPath linearGradient radialGradient stop clipPath mask pattern image filter
    feBlend feColorMatrix feComponentTransfer feFuncR feFuncG feFuncB feFuncA feComposite feFlood
    feGaussianBlur feMerge feMergeNode feMorphology feOffset feDropShadow
""".split())

#: Geometry, presentation and accessibility attributes; no event handlers (on*), no external loads.
SVG_ATTRIBUTES = frozenset("""
    id class style lang tabindex role focusable aria-label aria-labelledby aria-describedby aria-hidden
    version baseProfile viewBox preserveAspectRatio width height x y x1 y1 x2 y2 cx cy r rx ry fx fy fr
    d points pathLength transform dx dy rotate textLength lengthAdjust
    fill fill-opacity fill-rule stroke stroke-width stroke-linecap stroke-linejoin stroke-miterlimit
    stroke-dasharray stroke-dashoffset stroke-opacity opacity color display visibility overflow
    clip-path clip-rule mask filter marker-start marker-mid marker-end vector-effect paint-order
    shape-rendering text-rendering image-rendering color-interpolation color-interpolation-filters
    mix-blend-mode isolation font-family font-size font-weight font-style font-variant font-stretch
    text-anchor dominant-baseline alignment-baseline baseline-shift letter-spacing word-spacing
    text-decoration writing-mode direction unicode-bidi
    offset stop-color stop-opacity gradientUnits gradientTransform spreadMethod
    patternUnits patternContentUnits patternTransform clipPathUnits maskUnits maskContentUnits
    markerUnits markerWidth markerHeight refX refY orient
    filterUnits primitiveUnits in in2 result stdDeviation mode operator k1 k2 k3 k4 values type
    tableValues slope intercept amplitude exponent radius flood-color flood-opacity
    lighting-color edgeMode media href enable-background
""".split()) | {XLINK + "href", XLINK + "title", XML + "space", XML + "lang"}

_DATA_ATTRIBUTE = re.compile(r"data-[a-z0-9_.-]+")  # drawing programs' notes, e.g. data-name="Layer 1"
_FRAGMENT = re.compile(r"#[A-Za-z_][\w.:-]*")
_EMBEDDED_IMAGE = re.compile(r"data:image/(png|jpeg);base64,[A-Za-z0-9+/=\s]*", re.IGNORECASE)
_CSS_DATA = re.compile(r"data:(image/(png|jpeg|gif|webp|avif|svg\+xml)|font/[a-z0-9-]+"
                       r"|application/(x-)?(font-woff2?|font-ttf|font-opentype|font-sfnt|vnd\.ms-fontobject))[;,]")
_SAME_FOLDER = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*")
_XML_ENCODING = re.compile(r"<\?xml[^>]*\bencoding\s*=\s*[\"']([^\"']*)[\"']")


def png_problem(data: bytes) -> str | None:
    """Why `data` is not a PNG image Pillow can decode within MAX_PIXELS, or None."""
    try:
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            width, height = image.size  # read from the header, before any pixel is decoded
            if width * height > MAX_PIXELS:
                return f"is {width} x {height} pixels; a logo may have at most {MAX_PIXELS} (e.g. 2048 x 2048)"
            image.verify()
        with Image.open(io.BytesIO(data), formats=["PNG"]) as image:
            image.load()
    except Image.DecompressionBombError:
        return f"has more pixels than Pillow decodes (a decompression bomb); a logo may have at most {MAX_PIXELS}"
    except Image.UnidentifiedImageError:
        return "is not a PNG image (no PNG header Pillow can read)"
    except (OSError, SyntaxError, ValueError, EOFError, struct.error) as error:
        return f"is not a valid PNG image ({error or type(error).__name__})"
    return None


def svg_problem(data: bytes) -> str | None:
    """Why `data` is not a plain SVG picture (the allowlist above), or None."""
    declared = _XML_ENCODING.search(data[:200].decode("utf-8", "replace"))
    if declared and declared.group(1).lower().replace("_", "-") not in {"utf-8", "utf8"}:
        return f"declares the encoding {declared.group(1)!r}; an SVG logo must be UTF-8"
    target = _Builder()
    parser = DefusedXMLParser(target=target, forbid_dtd=True)
    try:
        parser.feed(data)
        root = parser.close()
    except DefusedXmlException as error:
        return f"is refused by the XML parser: {type(error).__name__} (no <!DOCTYPE>, entities or external references)"
    except ElementTree.ParseError as error:
        return f"is not well-formed XML ({error})"
    if target.instructions:
        return f"holds the processing instruction <?{target.instructions[0]}?>; an SVG logo may hold none"
    if root.tag != SVG + "svg":
        return 'is not an SVG image: its root must be <svg xmlns="http://www.w3.org/2000/svg">'
    for element in root.iter():
        problem = _element_problem(element)
        if problem:
            return problem
    return None


class _Builder(ElementTree.TreeBuilder):
    """A TreeBuilder that notes processing instructions, even those outside the root element
    (an `<?xml-stylesheet href=...?>` before <svg> loads a stylesheet when the file is opened)."""

    def __init__(self) -> None:
        super().__init__()
        self.instructions: list[str] = []

    def pi(self, target: str, text: str | None = None) -> ElementTree.Element:
        self.instructions.append(target)
        return super().pi(target, text)


def _element_problem(element: ElementTree.Element) -> str | None:
    tag = element.tag
    name = tag[len(SVG):] if isinstance(tag, str) and tag.startswith(SVG) else None
    if name not in SVG_ELEMENTS:
        return (f"holds the element <{_plain(tag)}>, which an SVG logo may not: "
                "only drawing elements (no script, foreignObject, links or animation)")
    for attribute, value in element.attrib.items():
        if attribute not in SVG_ATTRIBUTES and not _DATA_ATTRIBUTE.fullmatch(attribute):
            hint = " (event handlers run scripts)" if attribute.lower().startswith("on") else ""
            return f"<{name}> has the attribute {_plain(attribute)!r}, which an SVG logo may not{hint}"
        if attribute in {"href", XLINK + "href"} and not _svg_href_allowed(name, value):
            return (f"<{name}> links to {value[:80]!r}; an SVG logo may link only to its own #fragments "
                    "(and an <image> may embed data:image/png or jpeg)")
        problem = css_problem(value, _svg_url_allowed) if attribute == "style" or "(" in value else None
        if problem:
            return f"<{name}> attribute {_plain(attribute)!r}: {problem}"
    if name == "style":
        problem = css_problem(element.text or "", _svg_url_allowed)
        if problem:
            return f"<style>: {problem}"
    return None


def _plain(name: object) -> str:
    """An element or attribute name as written, with the usual prefixes instead of {namespace}."""
    text = getattr(name, "__name__", str(name))  # a processing instruction's tag is a function
    for namespace, prefix in ((SVG, ""), (XLINK, "xlink:"), (XML, "xml:")):
        text = text.replace(namespace, prefix)
    return text


def _svg_href_allowed(element: str, value: str) -> bool:
    value = value.strip()
    return bool(_FRAGMENT.fullmatch(value) or (element == "image" and _EMBEDDED_IMAGE.fullmatch(value)))


def _svg_url_allowed(url: str) -> bool:
    """#fragments and data:image/png or jpeg only"""
    return bool(_FRAGMENT.fullmatch(url) or re.match(r"data:image/(png|jpeg)[;,]", url))


def _css_url_allowed(url: str) -> bool:
    """data: fonts and images, #fragments and files beside it only"""
    return bool(_FRAGMENT.fullmatch(url) or _CSS_DATA.match(url) or _SAME_FOLDER.fullmatch(url))


# CSS: comments dropped and escapes decoded first, so `@\69mport` or `u/**/rl(` read as what they are.
_COMMENT = re.compile(r"/\*.*?(\*/|\Z)", re.DOTALL)
_ESCAPE = re.compile(r"\\(?:([0-9a-fA-F]{1,6})[ \t\r\n\f]?|\r\n|\n|(.))", re.DOTALL)
_FORBIDDEN = (
    (re.compile(r"@import"), "@import is not allowed (it loads another stylesheet)"),
    (re.compile(r"expression\s*\("), "expression() is not allowed (it runs script in old browsers)"),
    (re.compile(r"(java|vb)script\s*:"), "javascript: URLs are not allowed"),
    (re.compile(r"behavior\s*:"), "behavior: is not allowed (it runs script in old browsers)"),
    (re.compile(r"-moz-binding"), "-moz-binding is not allowed (it runs script in old browsers)"),
)
_URL = re.compile(r"url\s*\(\s*(?:\"([^\"]*)\"|'([^']*)'|([^)\s]*))")
_URL_FUNCTIONS = re.compile(r"(?<![\w-])(-webkit-image-set|image-set|-webkit-cross-fade|cross-fade|image|src)"
                            r"\s*\(([^;{}]*)")
_STRING = re.compile(r"\"([^\"]*)\"|'([^']*)'")


def css_problem(text: str, url_allowed: Callable[[str], bool] = _css_url_allowed) -> str | None:
    """Why a stylesheet could run script or load something from elsewhere, or None."""
    css = _ESCAPE.sub(_unescape, _COMMENT.sub(" ", text)).lower()
    for pattern, rule in _FORBIDDEN:
        if pattern.search(css):
            return rule
    urls = [next(filter(None, match.groups()), "") for match in _URL.finditer(css)]
    for match in _URL_FUNCTIONS.finditer(css):  # their arguments, to the end of the declaration
        urls += [next(filter(None, string.groups()), "") for string in _STRING.finditer(match.group(2))]
    for url in urls:
        if url.strip() and not url_allowed(url.strip()):
            return f"url({url.strip()[:80]}) is not allowed: it would load from elsewhere ({url_allowed.__doc__})"
    return None


def _unescape(match: re.Match[str]) -> str:
    if match.group(1):
        code = int(match.group(1), 16)
        return chr(code) if 0 < code <= 0x10FFFF and not 0xD800 <= code <= 0xDFFF else "\ufffd"
    return match.group(2) or ""

