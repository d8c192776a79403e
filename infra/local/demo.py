"""`make demo`: the product end to end on a running `make dev` stack, through the operator API only.

It imports a generated sample of users (with some invalid rows, and some users who already said STOP and
whom the file tries to opt in again), creates a template, a segment and a campaign, triggers it, shows a
progress bar from the campaign summary until the campaign completes, and prints the summary.

    python -m infra.local.demo [--users 300] [--timeout 300] [--state-dir .local]
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import requests

from infra.local.stack_env import read_env_file

CITIES = ("Lima", "Lima", "Quito", "Bogota")
# Still waiting for their send; everything else has been sent, or decided against (the pipeline's own
# definition of a campaign's completion).
WAITING = ("QUEUED", "SENDING")
# Delivery callbacks keep arriving after the last send: give them this long to settle before the summary.
SETTLE_SECONDS = 10.0
BAR_WIDTH = 40


class Api:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {token}"

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.session.request(method, f"{self.base_url}{path}", timeout=60, **kwargs)
        if response.status_code >= 400:
            raise SystemExit(f"{method} {path} -> {response.status_code}: {response.text}")
        return response.json() if response.content else None


def sample_csv(count: int, stop_phones: list[str], rng: random.Random) -> bytes:
    """Users in the formats operators really send, every one claiming OPT_IN, plus a few broken rows."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["phone", "first_name", "city", "consent_state"])
    for n in range(count):
        digits = f"415{2000000 + n:07d}"
        written = rng.choice([f"+1{digits}", f"({digits[:3]}) {digits[3:6]}-{digits[6:]}", f"001{digits}"])
        writer.writerow([written, f"User{n}", rng.choice(CITIES), "OPT_IN"])
    for phone in stop_phones:
        writer.writerow([phone, "Said Stop", "Lima", "OPT_IN"])
    for bad in ("12345", "not-a-phone", "+99 123"):
        writer.writerow([bad, "Broken", "Lima", "OPT_IN"])
    return out.getvalue().encode()


def progress_line(summary: dict[str, Any], recipients: int, started: float) -> str:
    # The ledger grows as pages fan out: measure against the audience frozen at trigger.
    total = max(recipients, summary["messages"], 1)
    done = summary["messages"] - sum(summary["counts"].get(status, 0) for status in WAITING)
    filled = int(BAR_WIDTH * done / total)
    rate = summary["send_rate_per_second"]
    return (
        f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {done}/{total}"
        f"  {summary['status']:<9} {time.monotonic() - started:5.1f}s"
        f"  {'' if rate is None else f'{rate:.1f} msg/s'}"
    )


def run(api: Api, users: int, timeout: float) -> int:
    rng = random.Random(7)
    tag = time.strftime("%Y%m%d-%H%M%S")
    stop_phones = [f"+1415399{n:04d}" for n in range(5)]
    for phone in stop_phones:
        api.call("POST", "/v1/users", json={"phone": phone})
        api.call("PUT", f"/v1/users/{phone}/consent", json={"consent_state": "STOP", "reason": "demo"})

    body = sample_csv(users, stop_phones, rng)
    report = api.call("POST", "/v1/users/import", data=body, headers={"Content-Type": "text/csv"})
    print(f"import: {json.dumps({k: v for k, v in report.items() if k != 'rejected_rows'})}")
    for rejected in report["rejected_rows"]:
        print(f"  rejected row {rejected['row']}: {rejected['value']!r}: {rejected['reason']}")
    still_stop = [api.call("GET", f"/v1/users/{p}")["consent_state"] for p in stop_phones]
    print(f"STOP users re-imported with OPT_IN are still: {sorted(set(still_stop))}")

    # Demo users never wrote to us, so they are outside the 24-hour window: WhatsApp (and the emulator)
    # then needs an approved Content template, filled from the same variables.
    template = api.call(
        "POST",
        "/v1/templates",
        json={
            "name": f"demo-{tag}",
            "content": "Hi {first_name|there}, news from {city}!",
            "content_sid": "HX" + "de30" * 8,
            "content_variables": {"1": "first_name|there", "2": "city"},
        },
    )
    segment = api.call(
        "POST",
        "/v1/segments",
        json={
            "name": f"demo-lima-{tag}",
            "definition": {"attribute": "city", "operator": "equals", "value": "Lima"},
        },
    )
    preview = api.call(
        "POST", "/v1/segments/preview", json={"definition": segment["definition"], "sample_size": 3}
    )
    print(f"segment {segment['name']}: audience {preview['audience_size']}, e.g. {preview['sample']}")
    campaign = api.call(
        "POST",
        "/v1/campaigns",
        json={
            "name": f"demo-{tag}",
            "template_id": template["id"],
            "segment_id": segment["id"],
            "rate_limit_per_second": 50,
            # The demo sends now, at any hour: no quiet hours rather than DEFAULT_QUIET_HOURS.
            "quiet_hours_start": None,
            "quiet_hours_end": None,
        },
    )
    triggered = api.call("POST", f"/v1/campaigns/{campaign['id']}/trigger")
    print(f"campaign {campaign['id']} triggered: {triggered['recipients']} recipients")

    started = time.monotonic()
    summary = api.call("GET", f"/v1/campaigns/{campaign['id']}/summary")
    while summary["status"] not in ("COMPLETED", "CANCELLED"):
        if time.monotonic() - started > timeout:
            print(
                f"\ncampaign {campaign['id']} did not complete within {timeout:.0f}s (still {summary['status']});"
            )
            print("is the whole stack running (`make dev`)? The summary so far:")
            print(json.dumps(summary, indent=2))
            return 1
        sys.stdout.write(progress_line(summary, triggered["recipients"], started))
        sys.stdout.flush()
        time.sleep(0.5)
        summary = api.call("GET", f"/v1/campaigns/{campaign['id']}/summary")
    print(progress_line(summary, triggered["recipients"], started))
    print(json.dumps(summary, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--users", type=int, default=300)
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for completion")
    parser.add_argument("--state-dir", type=Path, default=Path(".local"))
    args = parser.parse_args(argv)
    env_file = args.state_dir / "stack.env"
    if not env_file.exists():
        print(f"{env_file} not found: start the local stack first with `make dev` (in another terminal)")
        return 2
    env = read_env_file(env_file)
    return run(Api(env["API_URL"], env["API_TOKEN"]), args.users, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
