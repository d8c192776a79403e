"""What an operator may do to a user's consent (docs/architecture.md, "Operator consent changes").

Every operator change names a reason (kept in the audit trail). Lowering consent (OPT_IN → OPT_OUT → STOP)
needs nothing more. Raising it from STOP (the user, or Twilio on their behalf, opted out) needs evidence
of the user's new consent as well, written into the audit trail beside the reason: without it the change
is refused, so an operator cannot quietly undo a STOP. OPT_OUT → OPT_IN with a reason is the everyday
case (a form signed in a store).
"""

from __future__ import annotations

import hashlib

from shared.domain.enums import ConsentState
from shared.domain.errors import Conflict

# Most restrictive first: an import may only move down this order (shared.db.queries.users, _RANK).
RANK = {ConsentState.STOP: 0, ConsentState.OPT_OUT: 1, ConsentState.OPT_IN: 2}


class ConsentRefused(Conflict):
    code = "consent_refused"


def check_operator_change(current: ConsentState, new: ConsentState, *, evidence: str | None) -> None:
    """Raise `ConsentRefused` (naming the `evidence` field) for a raise out of STOP without evidence."""
    if current is ConsentState.STOP and RANK[new] > RANK[current] and not evidence:
        raise ConsentRefused(
            f"the user is in STOP (they, or Twilio on their behalf, opted out): only their own START "
            f"moves them to {new.value}, or an operator change that records evidence of their new consent "
            f"(for example the reference of a form they signed) in 'evidence'",
            field="evidence",
            current=current.value,
            requested=new.value,
        )


def operator_id(token: str) -> str:
    """Who did it, for the audit trail: a short hash of the API token used (directly, or to sign in to the
    dashboard), never the token. The same token gives the same id in the API and the dashboard."""
    return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:12]
