"""The floors below the entry points (services, adapters, db, domain, outcomes) load without a web framework:
Flask and werkzeug belong to shared/entrypoints, shared/api, shared/dashboard and shared/transport.py alone
(docs/architecture.md, "Shape")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BELOW_THE_ENTRY_POINTS = ("services", "adapters", "db", "domain")
WEB_FRAMEWORKS = ("flask", "werkzeug")


def test_services_and_the_floors_below_them_import_no_web_framework() -> None:
    # A fresh interpreter: this one has long since imported Flask for other tests.
    script = f"""
import importlib, pkgutil, sys
import shared.outcome
for floor in {BELOW_THE_ENTRY_POINTS!r}:
    package = importlib.import_module("shared." + floor)
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        importlib.import_module(module.name)
print(sorted({{name.split(".")[0] for name in sys.modules}} & set({WEB_FRAMEWORKS!r})))
"""
    loaded = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert loaded.stdout.strip() == "[]", loaded.stdout + loaded.stderr
