"""`brandbot embed DIR`: what a brand's web team needs to put the bot on their site.

The snippet, then a checklist built from the project's own brand.toml: which origins the bot lets
in, the cookie setting a site on another domain needs, the Content-Security-Policy lines the site
needs, and how its server signs a customer token (Python and JavaScript).
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from urllib.parse import urlsplit

from .rendered_project import ProjectError


def embed_guide(project: Path, bot_url: str) -> str:
    """The guide for a rendered project served at `bot_url` (its public https address)."""
    data_file = project / "brand.toml"
    if not (project / "app.py").is_file() or not data_file.is_file():
        raise ProjectError(f"{project}: not a rendered brandbot project (app.py or brand.toml missing)")
    data = tomllib.loads(data_file.read_text(encoding="utf-8"))
    bot = bot_url.rstrip("/")
    parts = urlsplit(bot)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProjectError(f"--url must be the bot's address, such as https://chat.example.com (got {bot_url!r})")
    socket = ("wss" if parts.scheme == "https" else "ws") + bot[len(parts.scheme):]
    origins = data.get("allowed_origins") or []
    audience = data.get("customer_token_audience", data.get("brand_slug", ""))
    listed = "\n".join(f"     - {origin}" for origin in origins) or (
        "     (none yet: answer the website_origins question, or set ALLOWED_ORIGINS)")
    return f"""\
Put the {data.get("brand_name", "brand")} chat on your website
{"=" * 40}

1. Add this line to every page that should offer the chat (before </body>):

   <script src="{bot}/public/embed.js" defer></script>

   Options, as attributes on that tag:
     data-open="true"           open the chat when the page loads
     data-position="left"       the button in the bottom-left corner (default: right)
     data-theme="dark"          light or dark (default: the brand's default theme)
     data-customer-token="..."  a customer token your server signed (step 4)

2. The pages' origins must be allowed. Now allowed (brand.toml allowed_origins):
{listed}
   A deployment overrides them with ALLOWED_ORIGINS=https://www.example.com,https://shop.example.com.
   Any other site's pages get no chat: their sign-in and socket are refused (403).

3. Cookies. The widget signs the browser in to the bot with a cookie. Serve the bot on a subdomain of
   your site (chat.example.com for www.example.com): the cookie is then first-party and every browser
   keeps it. On another domain, set CHAINLIT_COOKIE_SAMESITE=none on the bot (HTTPS only); browsers
   that block third-party cookies (Safari; Firefox and Chrome when the visitor asks) then refuse it,
   and the widget shows a button that opens the chat in a tab of its own instead.

4. Verified customers (optional). Give the bot CUSTOMER_TOKEN_SECRET (32+ characters, shared with your
   server only); your server signs a token per page view for the signed-in customer:

   Python (PyJWT):
     import time, jwt
     now = int(time.time())
     token = jwt.encode({{"sub": customer_id, "aud": "{audience}", "iat": now, "exp": now + 300,
                         "tier": "gold"}}, CUSTOMER_TOKEN_SECRET, algorithm="HS256")

   JavaScript (Node, jsonwebtoken):
     const token = jwt.sign({{ sub: customerId, tier: "gold" }}, CUSTOMER_TOKEN_SECRET,
                            {{ algorithm: "HS256", audience: "{audience}", expiresIn: 300 }});

   and puts it in the tag: data-customer-token="<token>". The middleware then receives
   customer: {{"id": customer_id, "verified": true, "claims": {{"tier": "gold"}}}}. Without a valid token
   (expired, forged, another audience) the customer chats anonymously.

5. Your site's Content-Security-Policy, if it has one, must let the widget in:
   script-src {bot}
   connect-src {bot} {socket}
   img-src {bot} data: blob:
   style-src 'unsafe-inline' {bot}
   font-src {bot}

The widget loads only from {bot}: no other host is contacted.
"""
