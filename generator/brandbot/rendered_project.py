"""A rendered project, read through its own runtime code.

The generated runtime is the one definition of how a brand file is read and how a category
becomes a label; tools that check a project load that code from the project itself instead of
restating it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from .paths import project_template


class ProjectError(Exception):
    """The directory is not a rendered brandbot project, or its brand file is broken."""


def runtime_module(project: Path, name: str) -> ModuleType:
    """Import `brandbot_runtime.<name>` from the project's own files, isolated from other projects."""
    package_dir = project.resolve() / "brandbot_runtime"
    if not (package_dir / "__init__.py").is_file():
        raise ProjectError(f"{project}: not a rendered brandbot project (brandbot_runtime/ missing)")
    package = "brandbot_runtime_" + hashlib.sha1(str(package_dir).encode()).hexdigest()[:12]
    if package not in sys.modules:
        spec = importlib.util.spec_from_file_location(package, package_dir / "__init__.py",
                                                      submodule_search_locations=[str(package_dir)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[package] = module
        spec.loader.exec_module(module)
    return importlib.import_module(f"{package}.{name}")


def category_label(category_id: str, label: str | None = None) -> str:
    """The label a bot announces for a specialist category: its own, or the runtime's rule for the id."""
    if label:
        return label
    return runtime_module(project_template(), "brand").words_of(category_id)


def load_brand(project: Path) -> Any:
    """The project's brand.toml as its runtime reads it (a `Brand`), or ProjectError."""
    if not (project / "app.py").is_file():
        raise ProjectError(f"{project}: not a rendered brandbot project (app.py missing)")
    brand_module = runtime_module(project, "brand")
    try:
        return brand_module.read_brand(project / "brand.toml")
    except brand_module.BrandFileError as error:
        raise ProjectError(str(error)) from None
