"""The table every chaos run ends with."""

from __future__ import annotations

from collections.abc import Sequence

from infra.chaos.world import Verdict

COLUMNS = (
    "fault",
    "recipients",
    "sent",
    "duplicates",
    "drops",
    "stuck",
    "accepted after STOP/pause/cancel ack",
    "pool: two senders or a wrong state",
    "settled after (s)",
    "note",
)


def table(verdicts: Sequence[Verdict]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for v in verdicts:
        settled = "never" if v.recovered_seconds is None else f"{v.recovered_seconds:.0f}"
        cells = (
            v.fault,
            v.recipients,
            v.sent,
            v.duplicates,
            v.drops,
            v.stuck,
            v.violations,
            v.pool_broken,
            settled,
            v.note,
        )
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines) + "\n"
