"""What every figure gets: the running stack's settings and ports, and whether this is the smoke run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import requests

from infra.bench.procfs import listening_pids


@dataclass(frozen=True)
class BenchContext:
    env: Mapping[str, str]  # the stack's settings, as in .local/stack.env
    function_ports: Mapping[str, int]  # each function's own server
    smoke: bool
    # Every request reaches a function through the front-end emulator, as it would Google's front end.
    front_end_port: int = 0

    @property
    def database_url(self) -> str:
        return self.env["DATABASE_URL"]

    def api(self, method: str, path: str, *, timeout: float = 600, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.env['API_TOKEN']}", **kwargs.pop("headers", {})}
        return requests.request(
            method, self.env["API_URL"] + path, headers=headers, timeout=timeout, **kwargs
        )

    def server_pids(self, function: str) -> list[int]:
        """The processes serving one function (gunicorn's master and worker)."""
        pids = listening_pids(self.function_ports[function])
        if not pids:
            raise RuntimeError(f"nothing listens on {function}'s port {self.function_ports[function]}")
        return pids
