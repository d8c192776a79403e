"""The one way a figure says it cannot be measured yet (a feature it needs is missing), as opposed to
the harness failing, which is an error like any other."""

from __future__ import annotations


class NotMeasurable(Exception):
    """Raised by a figure whose feature is not there; the report says why instead of showing a number."""
