"""The locks that make a STOP, a pause and a cancel final the moment they are acknowledged.

A send holds *shared* advisory locks on its campaign and its recipient from the moment it checks consent
and the campaign's state, through its Twilio call, until Twilio's answer is recorded. A consent change
takes the recipient's lock *exclusively*, and a pause or cancel the campaign's, inside the transaction
that commits the change, before the commit (and so before its caller answers). So:

- a send that checked before the change finishes its Twilio call before the change commits: the STOP's
  or the pause's acknowledgement comes after it, never before an acceptance it did not stop;
- a send that checks after waits for the change and then reads it (READ COMMITTED), and sends nothing.

A STOP waits at most one in-flight Twilio call per campaign sending to that user (the call's timeout
bounds it). The send's locks are session-level (they outlive the claim's commit, which must come before
the call) on the one pooled connection the send keeps checked out; the end of the send frees them, and a connection
whose release did not happen is invalidated, so a lock can never outlive its send (docs/architecture.md,
"STOP is final at its acknowledgement").

Keys: two int4 keys per lock, class 1 = a user (hashtext of the phone: two users sharing a hash only
wait for each other a little), class 2 = a campaign (its id).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text
from sqlalchemy.orm import Session

from shared.db.unit_of_work import UnitOfWork

# Campaign before user, in every holder: shared locks never wait on each other, and each exclusive
# holder takes one key only, so no two lockers can wait in a cycle.
_HOLD = (
    "SELECT pg_advisory_lock_shared(2, CAST(:campaign AS int)), pg_advisory_lock_shared(1, hashtext(:phone))"
)
_RELEASE = "SELECT pg_advisory_unlock_shared(2, CAST(:campaign AS int)), pg_advisory_unlock_shared(1, hashtext(:phone))"


def _campaign_key(campaign_id: int) -> int:
    # An int4 key; ids beyond 2^31 (never reached here) would share keys, which only makes locks wider.
    return campaign_id % 2_147_483_647


def _locks(campaign_id: int, phone: str) -> dict[str, object]:
    return {"campaign": _campaign_key(campaign_id), "phone": phone}


def wait_out_sends_to_user(session: Session, phone: str) -> None:
    """Inside a consent change's transaction: wait for every send holding this user, and keep new ones
    out until the change commits."""
    session.execute(text("SELECT pg_advisory_xact_lock(1, hashtext(:phone))"), {"phone": phone})


def wait_out_sends_of_campaign(session: Session, campaign_id: int) -> None:
    """Inside a pause's or cancel's transaction: wait for the campaign's sends in flight, and keep new
    ones out until it commits."""
    session.execute(
        text("SELECT pg_advisory_xact_lock(2, CAST(:c AS int))"), {"c": _campaign_key(campaign_id)}
    )


@contextmanager
def holding_for_send(uow: UnitOfWork, campaign_id: int, phone: str) -> Iterator[None]:
    """The send's locks for the duration of the block, on the connection `uow` is pinned to for it. If the
    block fails, or the release does, that connection is discarded (closed, not pooled): its session ends,
    and the locks with it, so a STOP can never wait on a send that is over."""
    with uow.pinned():
        uow.prepared(_HOLD, _locks(campaign_id, phone))
        yield
        uow.prepared(_RELEASE, _locks(campaign_id, phone))


_HOLD_USER = "SELECT pg_advisory_lock_shared(1, hashtext(:phone))"
_RELEASE_USER = "SELECT pg_advisory_unlock_shared(1, hashtext(:phone))"


@contextmanager
def holding_user_for_send(uow: UnitOfWork, phone: str) -> Iterator[None]:
    """`holding_for_send` for a send outside any campaign (a template's test send): the recipient's shared
    lock alone, with the same guarantee against a STOP and the same release on failure."""
    with uow.pinned():
        uow.prepared(_HOLD_USER, {"phone": phone})
        yield
        uow.prepared(_RELEASE_USER, {"phone": phone})
