"""The demo brand's fake website: two pages on their own loopback port, each with the one-line widget
tag, so `brandbot demo` shows the chat where customers meet it, on the brand's site.

A plain HTTP server in a daemon thread of the demo process: it ends with the demo, whatever ends it.
"""

from __future__ import annotations

import html
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PAGES = {
    "/": ("Welcome", "New arrivals are in. Browse the collection, or ask us anything with the chat button "
          "in the corner.", "/help", "Help and returns"),
    "/help": ("Help and returns", "Returns are free within 30 days. The chat in the corner knows your order: "
              "ask it, and it keeps your conversation as you move from page to page.", "/", "Home"),
}


def page(brand_name: str, colour: str, bot_url: str, path: str) -> bytes:
    """One page of the fake site: the brand's name and colour, some text, and the widget tag."""
    title, text, link, link_text = PAGES[path]
    name = html.escape(brand_name)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{name}: {html.escape(title)}</title>
<style>body{{margin:0;font:16px/1.5 system-ui,sans-serif;color:#1f2328}}
header{{background:{colour};color:#fff;padding:1rem 2rem}}main{{padding:2rem;max-width:40rem}}
a{{color:#1f2328}}</style></head>
<body><header><strong>{name}</strong></header>
<main><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p><p><a href="{link}">{html.escape(link_text)}</a></p></main>
<script src="{html.escape(bot_url)}/public/embed.js" defer></script>
</body></html>""".encode()


class DemoSite(ThreadingHTTPServer):
    """The site's server; `stop()` ends it."""

    daemon_threads = True

    def __init__(self, port: int, *, brand_name: str, colour: str, bot_url: str) -> None:
        super().__init__(("127.0.0.1", port), _Pages)
        self.pages = {path: page(brand_name, colour, bot_url, path) for path in PAGES}
        self.url = f"http://localhost:{self.server_address[1]}"
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _Pages(BaseHTTPRequestHandler):
    server: DemoSite

    def do_GET(self) -> None:
        body = self.server.pages.get(self.path.split("?")[0])
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8" if body else "text/plain")
        body = body or b"not here"
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        del args
