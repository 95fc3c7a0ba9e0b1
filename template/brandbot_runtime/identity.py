"""Who is chatting: a signed visitor identity for every browser, a verified customer when the brand says so.

Chainlit resumes a conversation, and lists past ones, only for a signed-in user, and keeps that user
in its own signed `access_token` cookie. With a header-auth callback it signs in, on a page load
without that cookie, whoever the callback names. brandbot's callback (`user_for`) names:

- a **verified customer** (`customer:<id>`) when the request carries a customer token, an HS256 JWT
  the brand's own site signed with CUSTOMER_TOKEN_SECRET for CUSTOMER_TOKEN_AUDIENCE, short-lived;
- otherwise the browser's **visitor** (`visitor:<random>`), read from the long-lived signed cookie
  that identity_cookies.py gives every browser, so a visitor keeps their conversations without a
  login form, however often Chainlit's own cookie expires.

A refused token (expired, forged, for another audience) is logged with its reason and the customer
chats as their visitor identity: never as the id the token claimed. Only a verified customer's id
and claims ever reach the middleware (`customer_of`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import jwt

from .settings import ConfigurationError, Settings, current_settings

log = logging.getLogger("brandbot.identity")

VISITOR_COOKIE = "brandbot_visitor"
CUSTOMER_COOKIE = "brandbot_customer"
CUSTOMER_HEADER = "x-customer-token"  # for a reverse proxy or the widget that has the token at hand
CUSTOMER_QUERY = "customer_token"  # a link from the brand's site: identity_cookies.py moves it to a cookie
VISITOR_PREFIX = "visitor:"
CUSTOMER_PREFIX = "customer:"
MAX_TOKEN_BYTES = 8192
MAX_CLAIMS = 20
MAX_CLAIMS_BYTES = 4096
CLOCK_LEEWAY_SECONDS = 30
# Claims about the token itself, not the customer: checked, never forwarded.
_REGISTERED_CLAIMS = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti"})
_AUTH_SECRET_ENV = "CHAINLIT_AUTH_SECRET"


@dataclass(frozen=True, slots=True)
class Customer:
    """What the middleware is told about who writes: `id` and `claims` only when verified."""

    id: str | None = None
    verified: bool = False
    claims: dict[str, Any] = field(default_factory=dict)

    def as_contract(self) -> dict[str, Any]:
        """The request's `customer` object (the middleware contract's Customer)."""
        return {"id": self.id, "verified": self.verified, "claims": dict(self.claims)}


ANONYMOUS = Customer()


class CustomerTokenRefused(ValueError):
    """A customer token that does not prove who the customer is; the message says why, never the token."""


# --- the secret Chainlit signs its cookie with ------------------------------------------------------

def install_auth_secret(settings: Settings | ConfigurationError | None = None) -> None:
    """Make sure Chainlit has CHAINLIT_AUTH_SECRET before it checks for one (after app.py is imported).

    An operator may set it; otherwise it is derived from BACKEND_API_SECRET, which every replica of a
    deployment shares, so Chainlit's cookies and the visitor cookie verify on all of them. With no
    usable settings the bot only shows its configuration error, and a random secret will do.
    """
    if os.environ.get(_AUTH_SECRET_ENV):
        return
    settings = current_settings() if settings is None else settings
    if isinstance(settings, ConfigurationError):
        os.environ[_AUTH_SECRET_ENV] = secrets.token_urlsafe(48)
        return
    backend = settings.backend_api_secret.get_secret_value().encode()
    os.environ[_AUTH_SECRET_ENV] = hmac.new(backend, b"brandbot/chainlit-auth/v1", hashlib.sha256).hexdigest()


def _signing_key(purpose: bytes) -> bytes:
    secret = os.environ.get(_AUTH_SECRET_ENV)
    if not secret:
        install_auth_secret()
        secret = os.environ[_AUTH_SECRET_ENV]
    return hmac.new(secret.encode(), b"brandbot/" + purpose, hashlib.sha256).digest()


# --- visitors -----------------------------------------------------------------------------------------

def new_visitor_cookie() -> str:
    """A fresh visitor id with its signature, as the cookie's value."""
    visitor = secrets.token_hex(16)
    return f"{visitor}.{_visitor_signature(visitor)}"


def visitor_from_cookie(value: str | None) -> str | None:
    """The visitor id a cookie value proves, or None for a missing, malformed or forged one."""
    if not value or len(value) > 200 or value.count(".") != 1:
        return None
    visitor, signature = value.split(".")
    if len(visitor) != 32 or not all(c in "0123456789abcdef" for c in visitor):
        return None
    return visitor if hmac.compare_digest(signature, _visitor_signature(visitor)) else None


def _visitor_signature(visitor: str) -> str:
    return hmac.new(_signing_key(b"visitor"), visitor.encode(), hashlib.sha256).hexdigest()[:32]


# --- verified customers -------------------------------------------------------------------------------

def verify_customer_token(token: str, settings: Settings) -> Customer:
    """The customer a token proves, or CustomerTokenRefused saying why.

    Required: HS256 with CUSTOMER_TOKEN_SECRET, `aud` CUSTOMER_TOKEN_AUDIENCE, a string `sub` (the
    customer's id), `iat` and `exp` no further apart than CUSTOMER_TOKEN_MAX_LIFETIME_SECONDS (a token
    is for signing in, not a long-lived credential). Other claims travel to the middleware, within
    MAX_CLAIMS and MAX_CLAIMS_BYTES.
    """
    secret = settings.customer_token_secret
    if secret is None:
        raise CustomerTokenRefused("CUSTOMER_TOKEN_SECRET is not set, so no customer token can be verified")
    if len(token.encode("utf-8", "replace")) > MAX_TOKEN_BYTES:
        raise CustomerTokenRefused(f"token over {MAX_TOKEN_BYTES} bytes")
    try:
        claims = jwt.decode(
            token, secret.get_secret_value(), algorithms=["HS256"], audience=settings.customer_token_audience,
            leeway=CLOCK_LEEWAY_SECONDS, options={"require": ["exp", "iat", "sub", "aud"]},
        )
    except jwt.ExpiredSignatureError:
        raise CustomerTokenRefused("token expired") from None
    except jwt.InvalidAudienceError:
        raise CustomerTokenRefused(f"token is not for audience {settings.customer_token_audience!r}") from None
    except jwt.InvalidSignatureError:
        raise CustomerTokenRefused("bad signature (not signed with CUSTOMER_TOKEN_SECRET)") from None
    except jwt.MissingRequiredClaimError as error:
        raise CustomerTokenRefused(f"token has no {error.claim!r} claim") from None
    except jwt.ImmatureSignatureError:
        raise CustomerTokenRefused("token issued in the future or not yet valid") from None
    except jwt.InvalidAlgorithmError:
        raise CustomerTokenRefused("token is not signed with HS256") from None
    except jwt.PyJWTError as error:
        raise CustomerTokenRefused(f"invalid token ({type(error).__name__})") from None
    return _customer(claims, settings.customer_token_max_lifetime_seconds)


def _customer(claims: Mapping[str, Any], max_lifetime: int) -> Customer:
    subject, issued, expires = claims["sub"], claims["iat"], claims["exp"]
    if not isinstance(subject, str) or not 0 < len(subject) <= 200 or not subject.isprintable():
        raise CustomerTokenRefused("token's 'sub' is not a customer id (1-200 printable characters)")
    if not isinstance(issued, int | float) or not isinstance(expires, int | float):
        raise CustomerTokenRefused("token's 'iat' and 'exp' are not times")
    if expires - issued > max_lifetime:
        raise CustomerTokenRefused(f"token lives {expires - issued:.0f} s, over CUSTOMER_TOKEN_MAX_LIFETIME_SECONDS "
                                   f"({max_lifetime})")
    if issued > time.time() + CLOCK_LEEWAY_SECONDS:
        raise CustomerTokenRefused("token issued in the future")
    extra = {name: value for name, value in claims.items() if name not in _REGISTERED_CLAIMS}
    if len(extra) > MAX_CLAIMS or len(json.dumps(extra, ensure_ascii=False).encode()) > MAX_CLAIMS_BYTES:
        raise CustomerTokenRefused(f"token carries more than {MAX_CLAIMS} claims or {MAX_CLAIMS_BYTES} bytes of them")
    return Customer(id=subject, verified=True, claims=extra)


# --- Chainlit's user ------------------------------------------------------------------------------------

def user_for(headers: Mapping[str, str]) -> Any:
    """The chainlit.User Chainlit signs in on this request (its header-auth callback, from app.py)."""
    from chainlit.user import User

    cookies = parse_cookies(headers.get("cookie", ""))
    customer = _verified_customer(headers.get(CUSTOMER_HEADER) or cookies.get(CUSTOMER_COOKIE))
    if customer is not None:
        return User(identifier=CUSTOMER_PREFIX + str(customer.id),
                    metadata={"customer": customer.as_contract()})
    visitor = visitor_from_cookie(cookies.get(VISITOR_COOKIE)) or secrets.token_hex(16)  # no cookie: this page only
    return User(identifier=VISITOR_PREFIX + visitor, metadata={})


def _verified_customer(token: str | None) -> Customer | None:
    if not token:
        return None
    settings = current_settings()
    if isinstance(settings, ConfigurationError):
        return None
    try:
        customer = verify_customer_token(token, settings)
    except CustomerTokenRefused as refusal:
        log.warning("customer token refused: %s; chatting as an anonymous visitor", refusal)
        return None
    log.info("verified customer signed in")
    return customer


def customer_of(user: Any, token: str | None = None) -> Customer:
    """The verified customer behind Chainlit's signed-in user, else ANONYMOUS.

    Only user_for makes `customer:` users, and Chainlit's cookie carrying them is signed, so the
    identifier can be trusted here. The claims come from that cookie's token when there is one (the
    user Chainlit reads back from the database keeps the metadata of the customer's first visit).
    """
    identifier = getattr(user, "identifier", "") or ""
    if not identifier.startswith(CUSTOMER_PREFIX):
        return ANONYMOUS
    metadata = getattr(user, "metadata", None) or {}
    if token:
        try:
            from chainlit.auth import decode_jwt

            signed = decode_jwt(token)
            if signed.identifier == identifier:
                metadata = signed.metadata or {}
        except Exception:  # noqa: BLE001 - an unreadable token only loses the claims, never the verification
            log.debug("customer claims unreadable from the session token")
    recorded = metadata.get("customer") if isinstance(metadata, dict) else None
    claims = recorded.get("claims") if isinstance(recorded, dict) else None
    return Customer(id=identifier.removeprefix(CUSTOMER_PREFIX), verified=True,
                    claims=claims if isinstance(claims, dict) else {})


def parse_cookies(header: str) -> dict[str, str]:
    """Cookie header -> values (the first of a repeated name), tolerant of any junk: another site's
    malformed cookie must not cost a visitor their identity (identity_cookies.py reads with it too)."""
    found: dict[str, str] = {}
    for part in header.split(";"):
        name, sep, value = part.strip().partition("=")
        if sep and name and name not in found:
            found[name] = value.strip().strip('"')
    return found
