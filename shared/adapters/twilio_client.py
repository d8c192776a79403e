"""The one place a `twilio.rest.Client` is built.

Production leaves `api_url` unset and talks to https://api.twilio.com; locally the same code reaches the
Twilio emulator because `TWILIO_API_URL` says so. There is no other code path for tests.
"""

from __future__ import annotations

import os

from requests import Session
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from shared.adapters.wire_gate import GatedAdapter

DEFAULT_API_URL = "https://api.twilio.com"


def make_twilio_client(
    account_sid: str, auth_token: str, api_url: str | None, timeout: float = 10.0
) -> Client:
    """A client whose Messages API calls go to `api_url` (e.g. "http://127.0.0.1:8089") when set.

    The HTTP client keeps one pooled session and never retries on its own: a POST that timed out
    may already have reached Twilio, and only the caller can decide what that means. requests
    raises `ConnectTimeout`/`ConnectionError` when nothing was sent and `ReadTimeout` when it may
    have been, which is the distinction the sender needs.
    """
    http_client = TwilioHttpClient(pool_connections=True, timeout=timeout)
    assert http_client.session is not None  # pool_connections=True keeps one
    _read_environment_once(http_client.session, api_url or DEFAULT_API_URL)
    # The same pools the SDK mounts (its https pool size; requests' default for http), whose connections
    # run a send's last check right before its bytes leave (wire_gate.py).
    http_client.session.mount("https://", GatedAdapter(pool_maxsize=min(32, (os.cpu_count() or 1) + 4)))
    http_client.session.mount("http://", GatedAdapter())
    client = Client(account_sid, auth_token, http_client=http_client)
    if api_url:
        # The Messages API lives on the `api` domain; its base URL is a plain attribute the SDK
        # joins with every resource path, so replacing it redirects exactly that domain.
        client.api.base_url = api_url.rstrip("/")
        # TWILIO_EDGE / TWILIO_REGION in the environment would rewrite the host into
        # api.<edge>.<region>.twilio.com, which is meaningless for an explicit URL.
        client.edge = None
        client.region = None
    return client


def _read_environment_once(session: Session, url: str) -> None:
    """requests looks up proxies (and the CA bundle) in the environment on every request: a sixth of each
    send's SDK time. The environment of a running instance does not change, so read it once, for the URL
    the client calls, and let the session use what it found."""
    found = session.merge_environment_settings(url, {}, None, None, None)
    session.proxies.update(found["proxies"])
    session.verify = found["verify"]
    session.trust_env = False
