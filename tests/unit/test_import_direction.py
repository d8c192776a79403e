"""The layers of shared/ point one way (docs/architecture.md, "Shape"), checked on the source itself: an
AST walk over every module's imports, and over every call that opens a connection or a session.

- domain/ is pure: neither SQLAlchemy nor shared.db;
- services/ know nothing of HTTP: neither Flask/Werkzeug nor the transports, the entry points, the API or the
  dashboard;
- dashboard/ is an adapter beside the API, not on top of it: it never imports shared.api.routes;
- services/ are handed their dependencies: they never import shared.bootstrap, which builds them;
- only shared/db/ opens connections or sessions (the unit of work owns every transaction);
- only shared/bootstrap.py builds the process's dependencies: the engine (made in shared/db/) and the
  system clock.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT / "shared"


@dataclass(frozen=True)
class Rule:
    package: str  # a package under shared/, e.g. "domain"
    forbidden: tuple[str, ...]  # module prefixes it must not import


RULES = (
    Rule("domain", ("sqlalchemy", "shared.db")),
    Rule(
        "services",
        (
            "flask",
            "werkzeug",
            "shared.transport",
            "shared.entrypoints",
            "shared.api",
            "shared.dashboard",
            "shared.bootstrap",
        ),
    ),
    Rule("dashboard", ("shared.api.routes",)),
)


def _module_name(path: Path, base: Path) -> str:
    parts = path.relative_to(base).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, base: Path = ROOT) -> list[tuple[int, str]]:
    """Every module `path` imports (absolute names; relative imports resolved against `base`, the
    directory holding the top package), with its line."""
    tree = ast.parse(path.read_text(), str(path))
    module = _module_name(path, base)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            source = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                source = ".".join([*anchor, source] if source else anchor)
            # `from shared.api import routes` imports shared.api.routes: name each imported name too.
            found.append((node.lineno, source))
            found.extend((node.lineno, f"{source}.{alias.name}") for alias in node.names)
    return found


def _matches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def violations(rule: Rule, root: Path = SHARED) -> list[str]:
    return [
        f"{path.relative_to(root.parent)}:{line} imports {name}"
        for path in sorted((root / rule.package).rglob("*.py"))
        for line, name in imports_of(path, root.parent)
        if any(_matches(name, prefix) for prefix in rule.forbidden)
    ]


@pytest.mark.parametrize("rule", RULES, ids=lambda rule: rule.package)
def test_each_layer_imports_only_what_it_may(rule: Rule) -> None:
    assert violations(rule) == []


# Calls that open a connection or a session, or touch pg8000's private transaction flag.
_RAW_CALLS = {"connect", "begin", "Session", "sessionmaker"}
_RAW_ATTRIBUTES = {"_in_transaction"}


def _called(node: ast.Call) -> str:
    """The name a call ends in: `create_engine` for create_engine(...) and sqlalchemy.create_engine(...)."""
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def raw_database_access(path: Path, base: Path = ROOT) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = _called(node)
            if name in _RAW_CALLS:
                found.append(f"{path.relative_to(base)}:{node.lineno} calls {name}()")
        if isinstance(node, ast.Attribute) and node.attr in _RAW_ATTRIBUTES:
            found.append(f"{path.relative_to(base)}:{node.lineno} uses {node.attr}")
    return found


# Calls by those names that open something other than a database connection, by file.
_NOT_THE_DATABASE = {
    "shared/adapters/wire_gate.py": {"connect"},  # urllib3's HTTP connection opening its socket
}


def test_only_the_database_package_opens_connections_and_sessions() -> None:
    outside = [
        path
        for path in [*SHARED.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
        if SHARED / "db" not in path.parents
    ]
    hits = [hit for path in outside for hit in raw_database_access(path)]
    assert [
        hit
        for hit in hits
        if not any(
            hit.startswith(f"{file}:") and hit.endswith(tuple(f" calls {name}()" for name in names))
            for file, names in _NOT_THE_DATABASE.items()
        )
    ] == []


# What builds one of the process's dependencies, and where under shared/ it may be called: a file, or a
# package ending in "/". Everywhere else takes them from the runtime (shared.bootstrap.runtime()).
_BUILDERS = {
    "create_engine": ("bootstrap.py", "db/"),
    "make_engine": ("bootstrap.py", "db/"),
    "SystemClock": ("bootstrap.py",),
}


def _may_build(path: Path, root: Path, name: str) -> bool:
    if root not in path.parents:
        return False
    where = path.relative_to(root).as_posix()
    return any(
        where.startswith(place) if place.endswith("/") else where == place for place in _BUILDERS[name]
    )


def built_outside_bootstrap(paths: list[Path], root: Path = SHARED) -> list[str]:
    """Each call in `paths` that builds a dependency where `root` (shared/) does not allow it."""
    return [
        f"{path.relative_to(root.parent)}:{node.lineno} calls {_called(node)}()"
        for path in sorted(paths)
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(node, ast.Call)
        and _called(node) in _BUILDERS
        and not _may_build(path, root, _called(node))
    ]


def test_only_the_bootstrap_builds_the_engine_and_the_clock() -> None:
    paths = [*SHARED.rglob("*.py"), *(ROOT / "functions").rglob("*.py")]
    assert built_outside_bootstrap(paths) == []


# --- the checks themselves: each must catch what it is for ---


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, source in files.items():
        path = tmp_path / "shared" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    return tmp_path / "shared"


def test_the_walk_finds_absolute_relative_and_from_imports(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "dashboard/__init__.py": "",
            "dashboard/views.py": "from ..api import routes\n",
            "services/__init__.py": "",
            "services/a.py": "import flask\n",
            "services/b.py": "from werkzeug.exceptions import Forbidden\n",
            "services/c.py": "from shared.api.errors import ApiError\n",
            "services/ok.py": "from shared.db.unit_of_work import UnitOfWork\nimport flaskish\n",
            "domain/__init__.py": "",
            "domain/x.py": "from sqlalchemy import select\n",
            "domain/y.py": "from . import enums\nfrom ..db import models\n",
        },
    )
    found = {rule.package: violations(rule, root) for rule in RULES}
    assert found["dashboard"] == ["shared/dashboard/views.py:1 imports shared.api.routes"]
    assert found["services"] == [
        "shared/services/a.py:1 imports flask",
        "shared/services/b.py:1 imports werkzeug.exceptions",
        "shared/services/b.py:1 imports werkzeug.exceptions.Forbidden",
        "shared/services/c.py:1 imports shared.api.errors",
        "shared/services/c.py:1 imports shared.api.errors.ApiError",
    ]
    assert [v.split(" imports ")[1] for v in found["domain"]] == [
        "sqlalchemy",
        "sqlalchemy.select",
        "shared.db",
        "shared.db.models",
    ]


def test_the_raw_access_check_catches_each_way_around_the_unit_of_work(tmp_path: Path) -> None:
    path = tmp_path / "m.py"
    path.write_text(
        "with engine.connect() as conn:\n"
        "    with conn.begin():\n"
        "        pass\n"
        "s = Session(engine)\n"
        "f = sessionmaker(bind=engine)\n"
        "driver._in_transaction\n"
        "uow.prepared('SELECT 1', {})\n"
    )
    assert sorted(raw_database_access(path, tmp_path)) == [
        "m.py:1 calls connect()",
        "m.py:2 calls begin()",
        "m.py:4 calls Session()",
        "m.py:5 calls sessionmaker()",
        "m.py:6 uses _in_transaction",
    ]


def test_the_builder_check_catches_an_engine_or_clock_built_outside_the_bootstrap(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "bootstrap.py": "engine = make_engine(settings)\nclock = SystemClock()\n",
            "db/engine.py": "import sqlalchemy\nengine = sqlalchemy.create_engine(url)\nclock = SystemClock()\n",
            "api/registry.py": "from shared.db.engine import make_engine\nengine = make_engine(settings)\n",
            "entrypoints/hooks.py": "import shared.clock\nclock = shared.clock.SystemClock()\n",
            "dashboard/web.py": "from sqlalchemy import create_engine\ne = create_engine(u)\n",
            "services/ok.py": "from shared.clock import Clock, SystemClock\nnow = clock.now()\n",
        },
    )
    (tmp_path / "main.py").write_text("from shared.clock import SystemClock\nclock = SystemClock()\n")

    found = built_outside_bootstrap([*root.rglob("*.py"), tmp_path / "main.py"], root)

    assert found == [
        "main.py:2 calls SystemClock()",
        "shared/api/registry.py:2 calls make_engine()",
        "shared/dashboard/web.py:2 calls create_engine()",
        "shared/db/engine.py:3 calls SystemClock()",
        "shared/entrypoints/hooks.py:2 calls SystemClock()",
    ]
