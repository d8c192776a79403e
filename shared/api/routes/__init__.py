"""Route modules, one per resource; importing one registers its routes."""

from __future__ import annotations


def register_all() -> None:
    from shared.api.routes import (  # noqa: F401
        campaigns,
        messages,
        meta,
        reports,
        segments,
        templates,
        user_import,
        users,
    )

    # Aliases name routes registered above, so they come last.
    from shared.api.routes import aliases  # noqa: F401
