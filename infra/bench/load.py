"""HTTP load against one server: wrk for the real figures, a small Python generator for the smoke run.

Both replay a fixed list of prepared requests (distinct signed callbacks, say), cycling through it, and
report throughput, the 99th-percentile latency and how many answers were not 2xx. wrk gets the list
through a data file its Lua script reads at start, so every wrk thread formats its requests once and
then only picks the next one; thread t takes requests t, t+T, t+2T..., so no two threads send the same
request until the list wraps.
"""

from __future__ import annotations

import http.client
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

RESULT_MARKER = "WRK_RESULT "
WRK_SCRIPT = """
local path = "%(data)s"
local nthreads = %(threads)d
local next_offset = 0
local requests, counter, offset = {}, 0, 0

function setup(thread)
  thread:set("offset", next_offset)
  next_offset = next_offset + 1
end

function init(args)
  for line in io.lines(path) do
    local target, signature, body = line:match("^([^\\t]*)\\t([^\\t]*)\\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", target, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = signature,
    }, body)
  end
end

function request()
  local index = (offset + counter * nthreads) %% #requests + 1
  counter = counter + 1
  return requests[index]
end

function done(summary, latency, requests_)
  local e = summary.errors
  io.write(string.format('%(marker)s{"requests": %%d, "duration_us": %%d, "p99_us": %%d, ' ..
    '"non_2xx": %%d, "socket_errors": %%d}\\n', summary.requests, summary.duration,
    latency:percentile(99), e.status, e.connect + e.read + e.write + e.timeout))
end
"""


@dataclass(frozen=True)
class PreparedRequest:
    """A form POST: path with query, its X-Twilio-Signature, and the encoded body."""

    target: str
    signature: str
    body: str


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    p99_ms: float
    non_2xx: int
    socket_errors: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    base_url: str, requests: Sequence[PreparedRequest], seconds: float, connections: int, threads: int
) -> LoadResult:
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        data, script = Path(tmp) / "requests.tsv", Path(tmp) / "requests.lua"
        data.write_text("".join(f"{r.target}\t{r.signature}\t{r.body}\n" for r in requests))
        script.write_text(WRK_SCRIPT % {"data": data, "threads": threads, "marker": RESULT_MARKER})
        argv = [_wrk(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "-s", str(script), base_url]
        done = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=seconds + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith(RESULT_MARKER)), None)
    if line is None:
        raise RuntimeError(f"wrk printed no result:\n{done.stdout}\n{done.stderr}")
    raw = json.loads(line.removeprefix(RESULT_MARKER))
    return LoadResult(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p99_ms=raw["p99_us"] / 1e3,
        non_2xx=raw["non_2xx"],
        socket_errors=raw["socket_errors"],
    )


def _wrk() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise RuntimeError("wrk not found: `apt-get install -y wrk` (make bench installs it)")
    return found


def run_python(
    base_url: str, requests: Sequence[PreparedRequest], total: int, connections: int
) -> LoadResult:
    """`total` requests over `connections` keep-alive connections, one thread each."""
    origin = urlsplit(base_url)
    lock = threading.Lock()
    issued = iter(range(total))
    latencies: list[float] = []
    failures = [0]

    def worker() -> None:
        # https: through the front end, trusting the CA that SSL_CERT_FILE names (the default context).
        factory = http.client.HTTPSConnection if origin.scheme == "https" else http.client.HTTPConnection
        conn = factory(origin.hostname or "127.0.0.1", origin.port, timeout=30)
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        while True:
            with lock:
                index = next(issued, None)
            if index is None:
                break
            prepared = requests[index % len(requests)]
            start = time.perf_counter()
            conn.request(
                "POST", prepared.target, prepared.body, headers | {"X-Twilio-Signature": prepared.signature}
            )
            response = conn.getresponse()
            response.read()
            with lock:
                latencies.append(time.perf_counter() - start)
                failures[0] += not 200 <= response.status < 300
        conn.close()

    workers = [threading.Thread(target=worker) for _ in range(connections)]
    start = time.perf_counter()
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    elapsed = time.perf_counter() - start
    latencies.sort()
    p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
    return LoadResult(total, elapsed, p99 * 1e3, failures[0], 0)
