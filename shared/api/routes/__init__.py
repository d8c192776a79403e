"""Route modules, one per resource; importing one registers its routes."""

from __future__ import annotations


def register_all() -> None:
    from shared.api.routes import (  # noqa: F401
        aliases,
        campaigns,
        messages,
        meta,
        reports,
        segments,
        senders,
        templates,
        user_import,
        users,
    )
