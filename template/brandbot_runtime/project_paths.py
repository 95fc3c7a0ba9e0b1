"""Where the project's files are, independent of the directory `chainlit run` starts in."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def brand_file() -> Path:
    """The brand data file: `BRAND_FILE` when set (tests, several brands in one image), else ./brand.toml."""
    return Path(os.environ.get("BRAND_FILE") or PROJECT_DIR / "brand.toml")


def dotenv_file() -> Path:
    """The optional `.env` file next to `app.py`."""
    return PROJECT_DIR / ".env"
