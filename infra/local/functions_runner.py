"""One functions-framework server per entry point in functions/main.py, as Cloud Functions deploys them.

Entry points are found by reading the decorators in main.py (without importing it, so the runner does
not need the application's dependencies loaded), which means a new function joins the local stack with
no change here.
"""

from __future__ import annotations

import ast
import sys
from dataclasses import dataclass
from pathlib import Path

SIGNATURES = {"http": "http", "cloud_event": "cloudevent"}
# gunicorn threads per process = each function's concurrency in infra/terraform/variables.tf, so a
# function meets the same parallelism locally; a function not listed gets Cloud Functions' default, 1.
THREADS = {
    "inbound_webhook": 4,
    "status_webhook": 6,
    "api": 4,
    "trigger_campaign": 1,
    "fanout_recipients": 2,
    "send_message": 12,
}


@dataclass(frozen=True)
class EntryPoint:
    name: str
    signature_type: str  # functions-framework's --signature-type


def discover(main_py: Path) -> list[EntryPoint]:
    tree = ast.parse(main_py.read_text(), filename=str(main_py))
    found = []
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if (
                isinstance(decorator, ast.Attribute)
                and isinstance(decorator.value, ast.Name)
                and decorator.value.id == "functions_framework"
                and decorator.attr in SIGNATURES
            ):
                found.append(EntryPoint(node.name, SIGNATURES[decorator.attr]))
    if not found:
        raise SystemExit(f"no functions_framework entry points found in {main_py}")
    return found


def command(main_py: Path, entry: EntryPoint, port: int) -> list[str]:
    # The framework's default host is 0.0.0.0: always bind loopback.
    return [
        sys.executable,
        "-m",
        "functions_framework",
        "--source",
        str(main_py),
        "--target",
        entry.name,
        "--signature-type",
        entry.signature_type,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]


def marker(entry: EntryPoint, port: int) -> str:
    return f"--target {entry.name} --signature-type {entry.signature_type} --host 127.0.0.1 --port {port}"


def process_env(name: str, runtime_dir: Path) -> dict[str, str]:
    """What each function process needs beyond the stack's settings.

    gunicorn opens a control socket in $XDG_RUNTIME_DIR, else in ~/.gunicorn/ shared by every gunicorn of
    the user, where six servers starting at once race to create it and then replace each other's socket.
    """
    runtime_dir.mkdir(parents=True, exist_ok=True)
    # One worker process, as one Cloud Functions instance runs.
    return {"THREADS": str(THREADS.get(name, 1)), "WORKERS": "1", "XDG_RUNTIME_DIR": str(runtime_dir)}
