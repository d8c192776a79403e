"""`python -m infra.local.cloud_tasks_emulator`: run the emulator until SIGTERM or SIGINT.

It prints `KEY=VALUE` lines (the gRPC address for CLOUD_TASKS_EMULATOR_HOST and the OIDC URLs) once it
is listening, so a stack runner can read them instead of guessing ports.
"""

import argparse
import signal
import threading
from datetime import timedelta
from pathlib import Path
from types import FrameType

from infra.local.cloud_tasks_emulator import CloudTasksEmulator, Retention, TaskLimits
from infra.local.local_ca import LocalCa


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m infra.local.cloud_tasks_emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="gRPC port; 0 picks a free one")
    parser.add_argument(
        "--oidc-port", type=int, default=0, help="OIDC discovery/JWKS port; 0 picks a free one"
    )
    parser.add_argument(
        "--task-name-retention", type=float, default=Retention.task_name_seconds, metavar="SECONDS"
    )
    parser.add_argument(
        "--queue-name-retention", type=float, default=Retention.queue_name_seconds, metavar="SECONDS"
    )
    parser.add_argument(
        "--min-dispatch-deadline",
        type=float,
        default=TaskLimits.min_dispatch_deadline.total_seconds(),
        metavar="SECONDS",
    )
    parser.add_argument(
        "--tls-dir",
        type=Path,
        help="the local CA's directory (infra/local/local_ca.py): dispatches present its Google-internal "
        "client certificate, as Cloud Tasks' requests count as internal traffic at Google's front end",
    )
    args = parser.parse_args(argv)

    emulator = CloudTasksEmulator(
        args.host,
        args.port,
        args.oidc_port,
        retention=Retention(args.task_name_retention, args.queue_name_retention),
        task_limits=TaskLimits(timedelta(seconds=args.min_dispatch_deadline)),
        ssl_context=LocalCa(args.tls_dir).internal_client_context() if args.tls_dir else None,
    ).start()
    stopping = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    print(f"CLOUD_TASKS_EMULATOR_HOST={emulator.address}", flush=True)
    print(f"CLOUD_TASKS_OIDC_ISSUER={emulator.oidc_issuer}", flush=True)
    print(f"CLOUD_TASKS_OIDC_CERTS_URL={emulator.certs_url}", flush=True)
    print(f"CLOUD_TASKS_OIDC_JWKS_URL={emulator.jwks_url}", flush=True)
    stopping.wait()
    emulator.stop()


if __name__ == "__main__":
    main()
