"""python -m infra.local.twilio_emulator --port 8089 --inbound-url http://127.0.0.1:8081/

Prints `TWILIO_API_URL=http://127.0.0.1:<port>` once it is listening (useful with --port 0) and stops
cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import signal
import threading
from pathlib import Path
from types import FrameType

from .emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, TwilioEmulator


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m infra.local.twilio_emulator", description=__doc__)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--account-sid", default=os.environ.get("TWILIO_ACCOUNT_SID", DEFAULT_ACCOUNT_SID))
    parser.add_argument("--auth-token", default=os.environ.get("TWILIO_AUTH_TOKEN", DEFAULT_AUTH_TOKEN))
    parser.add_argument("--inbound-url", help="where POST /_emulator/inbound delivers the signed webhook")
    parser.add_argument("--callback-delay", type=float, default=0.05, help="seconds between status callbacks")
    parser.add_argument("--out-of-order", action="store_true", help="shuffle each message's callbacks")
    parser.add_argument("--duplicate", action="store_true", help="deliver every callback twice")
    parser.add_argument("--seed", type=int, default=0, help="seed for fault rates and shuffles")
    parser.add_argument(
        "--journal", type=Path, help="keep accepted messages in this file, so a restart remembers them"
    )
    return parser.parse_args()


def main() -> None:
    args = _arguments()
    emulator = TwilioEmulator(
        port=args.port,
        account_sid=args.account_sid,
        auth_token=args.auth_token,
        inbound_url=args.inbound_url,
        callback_delay=args.callback_delay,
        out_of_order=args.out_of_order,
        duplicate=args.duplicate,
        seed=args.seed,
        journal=args.journal,
    )
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    emulator.start()
    print(f"TWILIO_API_URL={emulator.base_url}", flush=True)
    stop.wait()
    emulator.stop()


if __name__ == "__main__":
    main()
