"""Origins: the one place the bot reads a list of web origins from its settings.

Two settings hold origins. IMAGE_HOSTS (the brand's `image_hosts`) lists where answers' images may
load from; it follows the copier question's rule exactly (validators.jinja holds the same
expression), https only but on loopback. ALLOWED_ORIGINS lists other web pages that may use the
bot; its entries are normalized the way browsers write an Origin header, so the request guard can
compare them with one. Both accept a list (brand.toml) or a comma-separated string (the
environment), and an error names the entry's position, never its value: settings errors never
show one. Only the standard library is imported: settings.py reads this module.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

#: An origin a brand may list in image_hosts: https://host[:port]; http only on loopback (tests, local
#: development). No path, query, user or wildcard. validators.jinja holds the same expression.
ORIGIN = re.compile(
    r"^(?:https://(?:(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"|\[[0-9a-f:.]+\])|http://(?:127\.0\.0\.1|localhost|\[::1\]))"
    r"(?::(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3}))?\Z",
    re.IGNORECASE,
)
ORIGIN_RULE = ("must be an origin https://host[:port] without path, query or wildcard "
               "(http only for 127.0.0.1, localhost or [::1])")

DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\]")


def parse_image_hosts(value: object) -> tuple[str, ...]:
    """IMAGE_HOSTS / image_hosts: origins in a list or a comma-separated string, lower-cased.

    Raises ValueError naming the first offending entry's index and the rule it breaks.
    """
    items = _entries(value)
    if items is None:
        raise ValueError("must be a list of origins such as https://cdn.example.com")
    for index, item in enumerate(items):
        if not isinstance(item, str) or not ORIGIN.fullmatch(item):
            raise ValueError(f"image_hosts[{index}]: {ORIGIN_RULE}")  # no value: settings errors never show one
    return tuple(str(item).lower() for item in items)


def normalize_origin(text: str) -> str:
    """`scheme://host[:port]` as a browser writes it in an Origin header (lower case, no default
    port, no trailing slash); ValueError for anything else: a path, credentials, a wildcard."""
    parts = urlsplit(text.strip())
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the port is not a number from 0 to 65535") from None
    host = (parts.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    if (parts.scheme.lower() not in DEFAULT_PORTS or not _HOST.fullmatch(host) or parts.username is not None
            or parts.password is not None or parts.path not in ("", "/") or parts.query or parts.fragment):
        raise ValueError("must be an origin like https://shop.example or http://127.0.0.1:8000 "
                         "(http or https, a host, an optional port, nothing after it)")
    scheme = parts.scheme.lower()
    return f"{scheme}://{host}" + (f":{port}" if port is not None and port != DEFAULT_PORTS[scheme] else "")


def parse_allowed_origins(value: object) -> tuple[str, ...]:
    """ALLOWED_ORIGINS: a comma-separated string (the environment's form) or a list, normalized.

    Raises ValueError naming the offending entry's position, never its value (settings errors
    never show one).
    """
    items = _entries(value)
    if items is None:
        items = [value]
    origins = []
    for index, item in enumerate(items):
        try:
            origins.append(normalize_origin(item) if isinstance(item, str) else normalize_origin(""))
        except ValueError as error:
            raise ValueError(f"entry {index + 1}: {error}") from None
    return tuple(origins)


def _entries(value: object) -> list[object] | None:
    """A list's items, or a comma-separated string's non-blank parts (stripped); None for anything else."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        return list(value)
    return None
