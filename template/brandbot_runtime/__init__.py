"""Runtime of a brandbot customer-service bot.

This package is copied verbatim into every generated project: it holds no brand values.
Everything brand-specific is read from the brand data (`brand.toml`); everything
deployment-specific from the environment (see `settings.py`).

The names below are what tools outside the bot (brandbot's smoke test, benchmark and reference
middleware) may use: the brand model and its loaders, how a category id reads as words, and how a
text is shown in the chat. Importing the package imports none of Chainlit (which would write its
files into the working directory); `chat` does, and only the app imports it.
"""

from .brand import Brand, BrandDataError, Category, Starter, Texts, load_brand, read_brand_data, words_of
from .display import as_sent, plain

__all__ = [
    "Brand",
    "BrandDataError",
    "Category",
    "Starter",
    "Texts",
    "as_sent",
    "load_brand",
    "plain",
    "read_brand_data",
    "words_of",
]
