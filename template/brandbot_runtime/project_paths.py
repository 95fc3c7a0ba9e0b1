"""Where the running project's own files are, independent of the directory `chainlit run` starts in."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent


def brand_data_file() -> Path:
    """The brand data (brand.toml): `BRAND_DATA_FILE` when set (tests, several brands in one image), else
    the project's. `BRAND_FILE`, its name before 0.5.0, is still read when BRAND_DATA_FILE is not set."""
    return Path(os.environ.get("BRAND_DATA_FILE") or os.environ.get("BRAND_FILE") or PROJECT_DIR / "brand.toml")


def dotenv_file() -> Path:
    """The optional `.env` file next to `app.py`."""
    return PROJECT_DIR / ".env"
