"""functions/main.py as functions-framework serves it, typed (its create_app has no annotations): every
test that reaches an entry point through the framework builds its app here."""

from __future__ import annotations

import flask
import functions_framework
from flask.testing import FlaskClient

from tests.conftest import ROOT

MAIN = str(ROOT / "functions" / "main.py")


def function_app(target: str, signature_type: str = "http") -> flask.Flask:
    """The app functions-framework serves `target` (a function of functions/main.py) with; `signature_type`
    is "http" or "cloudevent"."""
    app = functions_framework.create_app(  # type: ignore[no-untyped-call]
        target=target, source=MAIN, signature_type=signature_type
    )
    assert isinstance(app, flask.Flask)
    return app


def function_client(target: str, signature_type: str = "http") -> FlaskClient:
    return function_app(target, signature_type).test_client()
