"""Twilio's REST error shape: the SDK turns it into `TwilioRestException(status, code)`.

The body must not carry `type`/`title` keys, or twilio>=9.9 parses it as an RFC 9457 problem instead.
"""

from __future__ import annotations

from dataclasses import dataclass

from werkzeug.wrappers import Response

from .http_json import json_response

# The codes Twilio returns for the cases the emulator models, with Twilio's own wording.
AUTHENTICATE = (401, 20003, "Authenticate")
NOT_FOUND = (404, 20404, "The requested resource {path} was not found")
METHOD_NOT_ALLOWED = (405, 20004, "Method not allowed")
TOO_MANY_REQUESTS = (429, 20429, "Too Many Requests")
INTERNAL = (500, 20500, "Internal Server Error")
FROM_REQUIRED = (400, 21603, "A 'From' phone number is required.")
TO_REQUIRED = (400, 21604, "A 'To' phone number is required.")
INVALID_STATUS_CALLBACK = (400, 21609, "The StatusCallback URL {url} is not a valid URL.")
INVALID_TO = (400, 21211, "The 'To' number {to} is not a valid phone number.")
INVALID_FROM = (400, 21212, "The 'From' number {from_} is not a valid phone number or shortcode.")
BODY_TOO_LONG = (400, 21617, "The concatenated message body exceeds the 1600 character limit.")
BODY_REQUIRED = (400, 21619, "A text message body or media url must be specified.")
INVALID_CONTENT_SID = (400, 21655, "The ContentSid is Invalid.")
INVALID_CONTENT_VARIABLES = (400, 21656, "The ContentVariables Parameter is invalid.")
CHANNEL_MISMATCH = (400, 21910, "Invalid From and To pair. From and To should be of the same channel.")


# Not frozen: contextlib and pytest assign __traceback__ on the exceptions they re-raise.
@dataclass(eq=False)
class TwilioError(Exception):
    status: int
    code: int
    message: str

    @classmethod
    def of(cls, kind: tuple[int, int, str], **details: str) -> TwilioError:
        status, code, template = kind
        return cls(status, code, template.format(**details))

    def response(self) -> Response:
        body = {
            "code": self.code,
            "message": self.message,
            "more_info": f"https://www.twilio.com/docs/errors/{self.code}",
            "status": self.status,
        }
        return json_response(body, status=self.status)
