"""Status webhook: signed Twilio status callbacks that update the message, against a no-op function
served the same way (functions-framework's gunicorn, the stack's WORKERS and THREADS), same run, same load.

Every callback is distinct and real: messages are seeded as Twilio-accepted, and each request carries one
message's `sent`, `delivered` or `read` with a valid X-Twilio-Signature over the configured public
STATUS_WEBHOOK_URL plus the message id in the query, as the StatusCallback we give Twilio reads. Each run
gets its own messages, so no request is a repeat. The no-op receives the very same requests. Runs of the
two alternate, so drift on the machine hits both alike. Load: wrk, one thread, one connection per server
thread; the smoke run uses a small Python load generator instead, so `make test` does not need wrk.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import requests
from pg8000.native import Connection
from twilio.request_validator import RequestValidator

from infra.bench.context import BenchContext
from infra.bench.cpu import CpuSample, per_unit_ms, port_of, sample, servers
from infra.bench.datasets import phone, seed_users
from infra.bench.db import connect
from infra.bench.errors import NotMeasurable
from infra.bench.function_server import behind_front_end, function_server
from infra.bench.load import LoadResult, PreparedRequest, run_python, run_wrk
from infra.bench.measurement import Measurement, median
from infra.local.functions_runner import THREADS
from infra.local.stack_env import EMULATOR_SENDER
from shared.adapters.twilio_forms import status_callback_url

FIGURE = "status webhook"
UNIT = "req/s"
TARGET = "≥ 0.5 x a no-op function on the same server and load, p99 < 25 ms"
MAX_P99_MS = 25
MIN_NOOP_RATIO = 0.5
CALLBACK_STATUSES = ("sent", "delivered", "read")
FUNCTION = "status_webhook"
SERVER_THREADS = THREADS[FUNCTION]
# The server `--profile` samples while the figure runs.
PROFILED: str | None = FUNCTION
NOOP = "no-op"
FRONT_END = "front end"
NOOP_SOURCE = Path(__file__).resolve().parents[1] / "noop_function.py"


@dataclass(frozen=True)
class Size:
    messages_per_run: int  # x3 distinct callbacks: enough that a run never wraps around
    runs: int
    seconds: float  # wrk's duration per run
    smoke_requests: int  # for the Python load generator, when wrk is not used


FULL = Size(messages_per_run=12_000, runs=3, seconds=10, smoke_requests=0)
SMOKE = Size(messages_per_run=100, runs=1, seconds=0, smoke_requests=300)


def run(ctx: BenchContext, size: Size) -> Measurement:
    env = ctx.env
    public_url = env["STATUS_WEBHOOK_URL"]
    batches = [
        _signed_callbacks(ctx, first=r * size.messages_per_run, count=size.messages_per_run)
        for r in range(size.runs)
    ]
    # The probe's callback is not sent again: every loaded request stays distinct.
    _probe(public_url, batches[0][0])
    batches[0] = batches[0][1:]
    webhook: list[LoadResult] = []
    noop: list[LoadResult] = []
    with (
        function_server(NOOP_SOURCE, "noop", served_like=FUNCTION) as direct_noop_url,
        behind_front_end(direct_noop_url, ctx.env) as noop_url,
    ):
        # Both behind a front end of the same kind, as both would be deployed: TLS and the proxy hop cost
        # the same on either side of the ratio.
        webhook_processes = servers(
            {
                FUNCTION: ctx.function_ports[FUNCTION],
                FRONT_END: ctx.front_end_port,
                "PostgreSQL": port_of(ctx.database_url),
            }
        )
        noop_processes = servers({NOOP: port_of(direct_noop_url), FRONT_END: port_of(noop_url)})
        webhook_cpu: list[tuple[CpuSample, CpuSample]] = []
        noop_cpu: list[tuple[CpuSample, CpuSample]] = []
        for batch in batches:
            before = sample(noop_processes)
            noop.append(_load(ctx, size, noop_url, _retarget(batch, urlsplit(noop_url).path)))
            noop_cpu.append((before, sample(noop_processes)))
            before = sample(webhook_processes)
            webhook.append(_load(ctx, size, public_url, batch))
            webhook_cpu.append((before, sample(webhook_processes)))
    refused = sum(r.non_2xx + r.socket_errors for r in webhook)
    if refused:
        raise RuntimeError(
            f"{refused} webhook requests were not answered 2xx: the figure would not be of the real path"
        )
    value, baseline = median([r.per_second for r in webhook]), median([r.per_second for r in noop])
    p99 = median([r.p99_ms for r in webhook])
    wrapped = any(r.requests > 3 * size.messages_per_run for r in webhook)
    webhook_ms = per_unit_ms(*webhook_cpu[-1], webhook[-1].requests)
    noop_ms = per_unit_ms(*noop_cpu[-1], noop[-1].requests)
    return Measurement(
        figure=FIGURE,
        unit=UNIT,
        target=TARGET,
        value=value,
        baseline=baseline,
        baseline_label="no-op function, same server and load",
        met=p99 < MAX_P99_MS and value >= MIN_NOOP_RATIO * baseline,
        runs=size.runs,
        details={
            "p99 latency (ms)": p99,
            "no-op p99 latency (ms)": median([r.p99_ms for r in noop]),
            "receipts written": _receipts(ctx.database_url),
            "load": "Python generator (smoke)"
            if ctx.smoke
            else f"wrk -t1 -c{SERVER_THREADS}, {size.seconds:g} s per run",
            "server": f"functions-framework gunicorn, WORKERS=1, THREADS={SERVER_THREADS}",
            "CPU per webhook request by process, last run (ms)": webhook_ms,
            "no-op server's CPU per request, last run (ms)": noop_ms.get(NOOP, 0.0),
            "no-op's front end, CPU per request, last run (ms)": noop_ms.get(FRONT_END, 0.0),
            "one worker process, one core at most (the GIL): its ceiling at that cost (req/s)": round(
                1000 / webhook_ms[FUNCTION]
            ),
        },
        notes=(
            "every request is a distinct signed callback that inserts a receipt and moves a message forward"
            + (
                " (a run wrapped around its list: repeated callbacks are deduplicated, which is cheaper)"
                if wrapped
                else ""
            ),
        ),
    )


def _probe(public_url: str, callback: PreparedRequest) -> None:
    """One callback before the load: a missing webhook is "not measured", a refused one is an error."""
    origin = urlsplit(public_url)
    response = requests.post(
        f"{origin.scheme}://{origin.netloc}{callback.target}",
        data=callback.body,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": callback.signature,
        },
        timeout=30,
    )
    if response.status_code in (404, 501):
        raise NotMeasurable(f"the status webhook answered {response.status_code}: not built yet")
    if not response.ok:
        raise RuntimeError(f"a signed callback was answered {response.status_code}: {response.text[:200]}")


def _load(ctx: BenchContext, size: Size, url: str, batch: Sequence[PreparedRequest]) -> LoadResult:
    if ctx.smoke:
        return run_python(url, batch, total=size.smoke_requests, connections=4)
    return run_wrk(url, batch, seconds=size.seconds, connections=SERVER_THREADS, threads=1)


def _signed_callbacks(ctx: BenchContext, first: int, count: int) -> list[PreparedRequest]:
    """Seed `count` accepted messages and sign sent, delivered and read callbacks for each."""
    env = ctx.env
    seed_users(ctx.database_url, first, count)
    messages = _seed_accepted_messages(ctx.database_url, first, count)
    validator = RequestValidator(env["TWILIO_AUTH_TOKEN"])
    prepared = []
    for status in CALLBACK_STATUSES:
        for message_id, sid, recipient in messages:
            url = status_callback_url(env["STATUS_WEBHOOK_URL"], message_id)
            params = {
                "AccountSid": env["TWILIO_ACCOUNT_SID"],
                "ApiVersion": "2010-04-01",
                "MessageSid": sid,
                "SmsSid": sid,
                "MessageStatus": status,
                "SmsStatus": status,
                "To": f"whatsapp:{recipient}",
                "From": env.get("TWILIO_FROM", EMULATOR_SENDER),
                "ChannelPrefix": "whatsapp",
                "ChannelToAddress": recipient,
            }
            parts = urlsplit(url)
            prepared.append(
                PreparedRequest(
                    f"{parts.path or '/'}?{parts.query}",
                    validator.compute_signature(url, params),
                    urlencode(params),
                )
            )
    return prepared


def _retarget(batch: Sequence[PreparedRequest], path: str) -> list[PreparedRequest]:
    return [PreparedRequest(f"{path or '/'}?{urlsplit(r.target).query}", r.signature, r.body) for r in batch]


def _seed_accepted_messages(database_url: str, first: int, count: int) -> list[tuple[int, str, str]]:
    """Messages Twilio has accepted (we hold the SID), for users first..first+count-1."""
    conn = connect(database_url)
    try:
        campaign = _campaign(conn, f"status webhook {first}")
        rows = io.StringIO()
        writer = csv.writer(rows)
        for index in range(first, first + count):
            writer.writerow([campaign, phone(index), "hello", "ACCEPTED", f"SM{index:032x}", 1])
        rows.seek(0)
        conn.run(
            "COPY messages (campaign_id, recipient_phone, body, status, provider_sid, attempts) FROM STDIN WITH (FORMAT csv)",
            stream=rows,
        )
        found = conn.run(
            "SELECT id, provider_sid, recipient_phone FROM messages WHERE campaign_id = :c ORDER BY id",
            c=campaign,
        )
        return [(int(r[0]), str(r[1]), str(r[2])) for r in found]
    finally:
        conn.close()


def _campaign(conn: Connection, name: str) -> int:
    run = conn.run
    template = run("INSERT INTO templates (name, content) VALUES (:n, 'hello') RETURNING id", n=name)[0][0]
    segment = run(
        "INSERT INTO segments (name, definition) VALUES (:n, CAST(:d AS jsonb)) RETURNING id",
        n=name,
        d='{"operator": "AND", "conditions": []}',
    )[0][0]
    return int(
        run(
            "INSERT INTO campaigns (name, template_id, segment_id, status) VALUES (:n, :t, :s, 'RUNNING') RETURNING id",
            n=name,
            t=template,
            s=segment,
        )[0][0]
    )


def _receipts(database_url: str) -> int:
    conn = connect(database_url)
    try:
        return int(conn.run("SELECT count(*) FROM delivery_receipts")[0][0])
    finally:
        conn.close()
