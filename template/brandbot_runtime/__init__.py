"""Runtime of a brandbot customer-service bot.

This package is copied verbatim into every generated project: it holds no brand values.
Everything brand-specific is read from `brand.toml`; everything deployment-specific from the
environment (see `settings.py`).
"""
