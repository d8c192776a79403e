"""Folding message_tallies: the scheduler's tick sums each campaign's appended deltas into one row per group
(docs/architecture.md, "Analytics at a million messages"). Folding changes no count; it keeps the rows a
report sums to about one per group plus the last minute's writes."""

from __future__ import annotations

import logging

from shared.db.queries import message_tallies as tallies
from shared.db.unit_of_work import UnitOfWork

log = logging.getLogger(__name__)


def fold_tallies(uow: UnitOfWork) -> int:
    """Fold every campaign with deltas not yet folded, then vacuum the tallies; returns how many delta rows
    were folded."""
    with uow:
        campaigns, folded, kept = tallies.fold(uow.session)
        uow.commit()
    if folded:
        log.info(
            "message tallies folded", extra={"campaigns": campaigns, "rows_folded": folded, "rows_kept": kept}
        )
        tallies.vacuum(uow.engine)
    return folded
