"""The brand: persona, welcome text, categories and every user-facing text, read from the brand data.

The brand data, brand.toml, is rendered once by copier from the brand's answers (where the rules for
each value are checked); this model gives the values types and refuses a hand-edited file that lost a key.
"""

from __future__ import annotations

import re
import tomllib
from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .project_paths import brand_data_file

_WORD_SEPARATORS = re.compile(r"[_\-.\s]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_MAX_DERIVED_LABEL = 60


class BrandDataError(RuntimeError):
    """The brand data (brand.toml) is missing or does not hold what the runtime needs."""


class Texts(BaseModel):
    """Every text the bot shows on its own behalf (the middleware's answers aside)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    thinking: str
    specialist_transition: str
    error_configuration: str
    error_service_unavailable: str
    error_timeout: str
    error_connection: str
    error_unexpected_answer: str
    error_rejected: str
    error_unavailable: str
    error_rate_limited: str
    error_rate_limited_retry: str
    error_internal: str
    error_message_too_long: str
    error_too_many_messages: str
    error_busy: str
    retry: str
    open_chat: str  # the website widget's button (public/embed.js)
    answer_cut_off: str  # after the part of a streamed answer that came before the stream broke

    def specialist(self, label: str) -> str:
        """The transition status for a specialist; `{label}` is its only placeholder."""
        return self.render("specialist_transition", {"label": label})

    def render(self, text_id: str, values: dict[str, str]) -> str:
        """A text with its `{name}` placeholders filled; any other brace stays as written."""
        text: str = getattr(self, text_id)
        for name, value in values.items():
            text = text.replace("{" + name + "}", value)
        return text


class Starter(BaseModel):
    """A suggested question: a button under the welcome message that sends `message`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str = Field(min_length=1)
    message: str = Field(min_length=1)


class Category(BaseModel):
    """A specialist category; without a label, one is derived from its id."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    label: str | None = None


class Brand(BaseModel):
    """Everything brand-specific the runtime reads; settings.py reads the overridable defaults."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    brand_name: str = Field(min_length=1)
    brand_slug: str = Field(min_length=1)
    bot_name: str = Field(min_length=1)
    bot_role: str = Field(min_length=1)
    welcome_message: str = Field(min_length=1)
    language: str = Field(min_length=2)
    starters: tuple[Starter, ...]
    auth_header: str = Field(pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    categories: dict[str, Category]
    general_categories: tuple[str, ...]  # in the order the brand lists them
    texts: Texts

    def specialist_label(self, category: str | None) -> str | None:
        """The label to announce for `category`, or None when it is answered directly.

        No category, an empty one or a general one is answered directly; a known specialist
        category uses its label; any other id is announced with its id split into words.
        """
        if not category or category in self.general_categories:
            return None
        known = self.categories.get(category)
        if known is not None and known.label:
            return known.label
        return words_of(category)


def words_of(category_id: str, max_length: int | None = _MAX_DERIVED_LABEL) -> str:
    """`OrderTracking` -> `Order Tracking`, `VIPSupport` -> `VIP Support`, `late_refund` -> `late refund`.

    A label longer than `max_length` is cut with an ellipsis (it is shown in a status line); None
    keeps every word (for matching words, not showing them).
    """
    spaced = _CAMEL_BOUNDARY.sub(" ", _WORD_SEPARATORS.sub(" ", category_id)).strip()
    label = spaced or category_id
    if max_length is not None and len(label) > max_length:
        label = label[: max_length - 1].rstrip() + "…"
    return label


def read_brand_data(path: Path) -> Brand:
    """Parse and check one brand data file, naming the file and the field on any problem."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise BrandDataError(f"brand data {path} not found") from error
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BrandDataError(f"brand data {path} is not valid TOML: {error}") from error
    try:
        return Brand.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in item['loc'])}: {item['msg']}" for item in error.errors()
        )
        raise BrandDataError(f"brand data {path}: {problems}") from error


@lru_cache(maxsize=1)
def load_brand() -> Brand:
    """The project's brand, read once per process."""
    return read_brand_data(brand_data_file())
