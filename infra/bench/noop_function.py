"""The status webhook's baseline: a function that does nothing, served exactly as the real ones are."""

from __future__ import annotations

import functions_framework
from flask import Request


@functions_framework.http
def noop(request: Request) -> str:
    return "ok"
