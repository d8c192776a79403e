"""The HTML error pages Google's front end answers with itself, before (or instead of) the container.

Google documents the status codes (Cloud Run troubleshooting, https://cloud.google.com/run/docs/troubleshooting:
"HTTP 401: The request was not authorized to invoke this service", "HTTP 403: Forbidden: Your client does
not have permission to get URL from this server", a 404 "doesn't reach the container" when ingress refuses,
"HTTP 504 The request has been terminated because it has reached the maximum request timeout") but not the
bodies. These are the bodies as seen in the wild (the 403 page is quoted verbatim in many public issues; the
401 and 413 headings too): text/html, a `<title>CODE Reason</title>` and an `<h1>Error: Reason</h1>`.
What matters to a caller is that the answer is Google's HTML, not the function's own JSON or text.
"""

from __future__ import annotations

from dataclasses import dataclass
from html import escape

_TEMPLATE = """<html><head>
<meta http-equiv="content-type" content="text/html;charset=utf-8">
<title>{code} {reason}</title>
</head>
<body text=#000000 bgcolor=#ffffff>
<h1>Error: {reason}</h1>
<h2>{detail}</h2>
<h2></h2>
</body></html>
"""

_DETAILS = {
    401: "Your client does not have permission to the requested URL <code>{path}</code>.",
    403: "Your client does not have permission to get URL <code>{path}</code> from this server.",
    404: "The requested URL <code>{path}</code> was not found on this server.",
    413: "Your client issued a request that was too large.",
    431: "Your client issued a request whose headers were too large.",
    400: "Your client has issued a malformed or illegal request.",
    502: "The server encountered a temporary error and could not complete your request.",
    503: "The service you requested is not available yet. Please try again in 30 seconds.",
    504: "The request has been terminated because it has reached the maximum request timeout.",
}
_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    413: "Request Entity Too Large",
    431: "Request Header Fields Too Large",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@dataclass(frozen=True)
class Page:
    status: int
    reason: str
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def error_page(status: int, path: str) -> Page:
    reason = _REASONS[status]
    detail = _DETAILS[status].format(path=escape(path.split("?", 1)[0]))
    body = _TEMPLATE.format(code=status, reason=reason, detail=detail).encode()
    headers: tuple[tuple[str, str], ...] = ()
    if status == 401:
        # As Cloud Run answers a token it could not verify.
        headers = (
            (
                "WWW-Authenticate",
                'Bearer error="invalid_token" error_description="The access token could not be verified"',
            ),
        )
    return Page(status, reason, body, headers)


def reason_phrase(status: int) -> str:
    from http import HTTPStatus

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
