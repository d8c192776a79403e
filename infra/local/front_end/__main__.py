"""`python -m infra.local.front_end CONFIG.json`: serve the front end until SIGTERM or SIGINT.

CONFIG holds {"tls_dir": ..., "certs_url": ..., "routes": [Route fields ...]}; the stack writes it
(infra/local/stack.py), choosing every port beforehand, so the functions' public URLs are known before
anything starts.
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from infra.local.front_end import FrontEnd, Route
from infra.local.local_ca import LocalCa


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    config = json.loads(Path(args[0]).read_text())
    routes = [
        Route(**{**r, "invokers": tuple(r["invokers"]), "audiences": tuple(r["audiences"])})
        for r in config["routes"]
    ]
    front_end = FrontEnd(routes, LocalCa(Path(config["tls_dir"])), config["certs_url"]).start()
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    for route in routes:
        print(
            f"{route.name}={front_end.url(route.name)} -> http://127.0.0.1:{route.upstream_port}", flush=True
        )
    stopping.wait()
    front_end.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
