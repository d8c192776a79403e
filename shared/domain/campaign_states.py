"""Every campaign transition, in one table (docs/architecture.md, "Campaign states").

    DRAFT -> READY -> RUNNING -> COMPLETED
    PAUSED from READY or RUNNING, and back to where it came from (campaigns.paused_from)
    CANCELLED from any state that is not final

The lifecycle service applies a transition as one compare-and-set UPDATE whose WHERE clause lists
`sources(target)`, so two callers racing (two triggers, a pause and a cancel) cannot both win.
"""

from __future__ import annotations

from shared.domain.enums import CampaignStatus as C

ALLOWED: dict[C, frozenset[C]] = {
    C.DRAFT: frozenset({C.READY, C.CANCELLED}),
    # Back to DRAFT so an operator can edit a scheduled campaign before it starts.
    C.READY: frozenset({C.DRAFT, C.RUNNING, C.PAUSED, C.CANCELLED}),
    C.RUNNING: frozenset({C.PAUSED, C.COMPLETED, C.CANCELLED}),
    C.PAUSED: frozenset({C.READY, C.RUNNING, C.CANCELLED}),
    C.COMPLETED: frozenset(),
    C.CANCELLED: frozenset(),
}

FINAL = frozenset(state for state, targets in ALLOWED.items() if not targets)


def can_transition(current: C, target: C) -> bool:
    return target in ALLOWED[current]


def sources(target: C) -> frozenset[C]:
    """The states `target` may be reached from: the WHERE clause of the compare-and-set."""
    return frozenset(state for state, targets in ALLOWED.items() if target in targets)
