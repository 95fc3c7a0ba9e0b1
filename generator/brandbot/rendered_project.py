"""A rendered project, read through its own runtime: the one door from the generator to the runtime.

The generated runtime is the one definition of how brand data (brand.toml) is read, how a category
id reads as words and how a text is shown in the chat; tools that check a project (smoke, bench,
screenshots, the reference middleware, the tests) load that code from the project itself, through
the functions below, instead of restating it. Only the runtime package's public names are used,
and importing them imports none of Chainlit.
"""

from __future__ import annotations

import hashlib
import importlib.util
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .template_paths import project_template
from .validation import jinja_environment, resolved_answers

if TYPE_CHECKING:  # the runtime's own types; at run time they come from the project's copy
    from brandbot_runtime import Brand


class ProjectError(Exception):
    """The directory is not a rendered brandbot project, or its brand data is broken."""


@dataclass(frozen=True)
class Display:
    """How the project's chat shows a text (the runtime's display functions)."""

    plain: Callable[[str], str]  # a text that is not markdown (labels, the bot's own texts)
    as_sent: Callable[[str], str]  # markdown (the welcome, the middleware's answers)


def project_brand(project: Path) -> Brand:
    """The project's brand data as its own runtime reads it, or ProjectError."""
    if not (project / "app.py").is_file():
        raise ProjectError(f"{project}: not a rendered brandbot project (app.py missing)")
    return _read_brand_data(_runtime(project), project / "brand.toml")


def brand_data(path: Path) -> Brand:
    """A brand.toml read by the runtime of the project it lies in (the template's if none), or ProjectError."""
    return _read_brand_data(_runtime(path.parent if _is_runtime_home(path.parent) else project_template()), path)


def brand_data_for(answers: dict[str, Any]) -> Brand:
    """The brand data a project rendered from these (valid) answers holds, without rendering the project.

    brand.toml's template is rendered with copier's Jinja setup and the answers resolved as copier
    resolves them, then read by the template's runtime.
    """
    template = jinja_environment().get_template("template/brand.toml.jinja")
    data = tomllib.loads(template.render(resolved_answers(answers)))
    return _runtime(project_template()).Brand.model_validate(data)


def project_display(project: Path) -> Display:
    """The project's display functions."""
    runtime = _runtime(project)
    return Display(plain=runtime.plain, as_sent=runtime.as_sent)


def words_of(category_id: str, *, whole: bool = False) -> str:
    """A category id as the bot announces it without a label (`OrderTracking` -> `Order Tracking`);
    `whole` keeps every word, where the announcement would cut a long one."""
    runtime = _runtime(project_template())
    text: str = runtime.words_of(category_id, None) if whole else runtime.words_of(category_id)
    return text


def category_label(category_id: str, label: str | None = None) -> str:
    """The label a bot announces for a specialist category: its own, or its id in words."""
    return label or words_of(category_id)


def _read_brand_data(runtime: ModuleType, path: Path) -> Brand:
    try:
        brand: Brand = runtime.read_brand_data(path)
    except runtime.BrandDataError as error:
        raise ProjectError(str(error)) from None
    return brand


def _is_runtime_home(directory: Path) -> bool:
    return (directory / "brandbot_runtime" / "__init__.py").is_file()


@cache
def _runtime(project: Path) -> ModuleType:
    """The project's `brandbot_runtime` package, imported from its own files under a name of its own,
    so that projects of different releases (and the template) never share a module."""
    package_dir = project.resolve() / "brandbot_runtime"
    if not _is_runtime_home(project.resolve()):
        raise ProjectError(f"{project}: not a rendered brandbot project (brandbot_runtime/ missing)")
    name = "brandbot_runtime_" + hashlib.sha1(str(package_dir).encode()).hexdigest()[:12]
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, package_dir / "__init__.py",
                                                      submodule_search_locations=[str(package_dir)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
