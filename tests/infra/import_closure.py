"""What functions/main.py needs at run time, found by following its imports through the source (AST).

Every import counts, including the lazy ones inside functions (the Cloud SQL connector, the Tasks and
Pub/Sub clients are imported on first use): a module missing from the bundle would fail only then,
in production, on the first request that needs it.
"""

from __future__ import annotations

import ast
import functools
import importlib.util
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.infra.terraform_config import ROOT

APP_PACKAGE = "shared"


def app_files_imported_by(entry: Path) -> set[Path]:
    """Every file of the app package that `entry` imports, directly or through other app files."""
    seen: set[Path] = set()
    pending = [entry]
    while pending:
        path = pending.pop()
        for module in _imported_modules(path):
            for file in _app_files_for(module):
                if file not in seen:
                    seen.add(file)
                    pending.append(file)
    return seen


def third_party_modules(files: set[Path]) -> set[str]:
    """The modules outside the stdlib and the app that the given files import.

    `from google.cloud import tasks_v2` names a namespace package that no distribution owns, so there
    the imported names (`google.cloud.tasks_v2`) are the modules to look for.
    """
    modules: set[str] = set()
    for path in files:
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                modules |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                if _is_namespace_package(node.module):
                    modules |= {f"{node.module}.{alias.name}" for alias in node.names}
                else:
                    modules.add(node.module)
    return {m for m in modules if m.split(".")[0] not in sys.stdlib_module_names | {APP_PACKAGE}}


def _is_namespace_package(module: str) -> bool:
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return False
    return spec is not None and spec.origin in (None, "namespace")


def distribution_of(module: str) -> str | None:
    """The installed distribution whose files hold `module`, or None if it cannot be imported."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        return None
    if spec is None or spec.origin is None:
        return None
    origin = Path(spec.origin)
    owners = _distribution_by_file()
    relative = (
        origin.relative_to(entry).as_posix() for entry in map(Path, sys.path) if origin.is_relative_to(entry)
    )
    return next((owners[path] for path in relative if path in owners), None)


@functools.cache
def _distribution_by_file() -> dict[str, str]:
    """Installed file (relative to its site-packages) => canonical distribution name."""
    owners: dict[str, str] = {}
    for dist in metadata.distributions():
        name = canonicalize_name(dist.metadata["Name"])
        owners.update((file.as_posix(), name) for file in dist.files or [])
    return owners


def distributions_installed_by(requirements: Path) -> set[str]:
    """Canonical names of every distribution pip installs for `requirements`, dependencies included."""
    environment = {key: str(value) for key, value in default_environment().items()}
    pending = [Requirement(line).name for line in _requirement_lines(requirements)]
    found: set[str] = set()
    while pending:
        name = canonicalize_name(pending.pop())
        if name in found:
            continue
        found.add(name)
        for spec in metadata.requires(name) or []:
            requirement = Requirement(spec)
            # Only what a plain install brings in: no extras, nothing for another platform.
            if requirement.marker is None or requirement.marker.evaluate({**environment, "extra": ""}):
                pending.append(requirement.name)
    return found


def _requirement_lines(requirements: Path) -> Iterator[str]:
    for raw in requirements.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            yield line


def _imported_modules(path: Path) -> Iterator[str]:
    """Modules imported by `path`, and `base.name` for `from base import name` (maybe a submodule)."""
    package = _package_of(path)
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(package, node.level, node.module)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names if alias.name != "*")


def _package_of(path: Path) -> list[str]:
    """The package a relative import in `path` starts from (for an __init__.py, its own package)."""
    try:
        return list(path.relative_to(ROOT).parent.parts)
    except ValueError:
        return []


def _resolve_relative(package: list[str], level: int, module: str | None) -> str:
    if level == 0:
        return module or ""
    base = package[: len(package) - (level - 1)]
    return ".".join([*base, *([module] if module else [])])


def _app_files_for(module: str) -> Iterator[Path]:
    """The files executed by importing `module`: each package's __init__ on the way, then the module."""
    parts = module.split(".")
    if parts[0] != APP_PACKAGE:
        return
    for depth in range(1, len(parts) + 1):
        stem = ROOT.joinpath(*parts[:depth])
        for candidate in (stem / "__init__.py", stem.with_suffix(".py")):
            if candidate.is_file():
                yield candidate
