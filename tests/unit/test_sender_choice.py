from collections import Counter
from datetime import UTC, datetime, timedelta

from shared.domain.sender_choice import PoolSender, choose_sender

T0 = datetime(2026, 12, 1, tzinfo=UTC)
A, B, C, D = (PoolSender(f"whatsapp:+1415555010{i}", 20) for i in range(4))


def phones(n: int) -> list[str]:
    return [f"+1555{i:07d}" for i in range(n)]


def test_no_active_sender_gives_none() -> None:
    assert choose_sender("+15550000001", []) is None


def test_the_sender_the_user_last_wrote_to_wins_over_the_last_outbound_and_the_hash() -> None:
    wrote_to_b = PoolSender(B.address, 20, last_inbound_at=T0)
    messaged_by_c = PoolSender(C.address, 20, last_outbound_at=T0 + timedelta(hours=1))
    for phone in phones(50):
        assert choose_sender(phone, [A, wrote_to_b, messaged_by_c, D]) == wrote_to_b


def test_the_latest_inbound_wins_among_several() -> None:
    older = PoolSender(A.address, 20, last_inbound_at=T0)
    newer = PoolSender(D.address, 20, last_inbound_at=T0 + timedelta(minutes=1))
    assert choose_sender("+15550000001", [older, newer]) == newer


def test_without_inbound_the_sender_that_last_messaged_them_wins() -> None:
    messaged_by_c = PoolSender(C.address, 20, last_outbound_at=T0)
    for phone in phones(50):
        assert choose_sender(phone, [A, B, messaged_by_c, D]) == messaged_by_c


def test_the_hash_is_stable_and_spreads_users_over_the_pool() -> None:
    pool = [A, B, C, D]
    chosen = {phone: choose_sender(phone, pool) for phone in phones(4000)}
    assert chosen == {phone: choose_sender(phone, list(reversed(pool))) for phone in phones(4000)}
    counts = Counter(s.address for s in chosen.values() if s is not None)
    assert len(counts) == 4
    assert min(counts.values()) > 4000 / 4 * 0.85


def test_pausing_a_sender_moves_only_its_users() -> None:
    pool = [A, B, C, D]
    before = {phone: choose_sender(phone, pool) for phone in phones(2000)}
    after = {phone: choose_sender(phone, [A, C, D]) for phone in phones(2000)}
    moved = {phone for phone in before if before[phone] != after[phone]}
    assert moved == {phone for phone, sender in before.items() if sender == B}
    assert all(after[phone] != B for phone in moved)
