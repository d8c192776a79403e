"""The faults `make chaos` injects, each into a campaign running on the local stack, as production meets
them: a process killed with SIGKILL (the stack's supervisor starts it again, as Cloud Run starts a new
instance), PostgreSQL down, Twilio's answers lost or late, callbacks out of order and twice, STOPs timed at
the send instant, pause and cancel mid-send, and a long webhook soak. Each returns its verdict."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from infra.chaos.world import Acks, Verdict, World, retry
from infra.local.postgres import LocalPostgres
from infra.local.stack import LocalStack


@dataclass(frozen=True)
class Size:
    recipients: int
    rate: int
    short_outage: float
    long_outage: float
    soak_seconds: float
    settle_timeout: float


FULL = Size(recipients=1500, rate=80, short_outage=20, long_outage=90, soak_seconds=300, settle_timeout=600)
SHORT = Size(recipients=200, rate=40, short_outage=10, long_outage=20, soak_seconds=0, settle_timeout=240)


@dataclass
class Chaos:
    stack: LocalStack
    pg: LocalPostgres
    world: World
    size: Size

    def campaign(
        self, recipients: int | None = None, rate: int | None = None, sender_pool: str | None = None
    ) -> tuple[int, list[str]]:
        audience = self.world.recipients(recipients or self.size.recipients)
        campaign_id = self.world.campaign(rate or self.size.rate, sender_pool)
        self.world.trigger(campaign_id)
        return campaign_id, audience

    def pool_campaign(self) -> tuple[int, list[str], list[str]]:
        """A campaign at the size's rate over a pool of POOL_SENDERS whose ceilings add up to that rate, so
        each sender's messages are planned at its own ceiling (docs/architecture.md, "Sender pools")."""
        senders = self.world.senders(POOL, POOL_SENDERS, self.size.rate // POOL_SENDERS)
        campaign_id, audience = self.campaign(sender_pool=POOL)
        return campaign_id, audience, senders

    def settle(self, name: str, campaign_id: int, audience: list[str], acks: Acks, note: str = "") -> Verdict:
        recovered = self.world.wait_settled(campaign_id, self.size.settle_timeout)
        return self.world.verdict(name, campaign_id, audience, acks, recovered, note)


Fault = Callable[[Chaos], Verdict]
POOL = "chaos-pool"
POOL_SENDERS = 4
# Twilio's "Rate limit exceeded for Channel", which pauses the sender (shared/domain/twilio_errors.py).
SENDER_RATE_LIMITED = {"http_status": 429, "error_code": 63018}


def kill(process: str, after_fraction: float = 0.25) -> Fault:
    """SIGKILL one of the stack's processes once a part of the campaign is sent."""

    def run(chaos: Chaos) -> Verdict:
        campaign_id, audience = chaos.campaign()
        chaos.world.wait_sent(campaign_id, int(len(audience) * after_fraction))
        os.kill(chaos.stack.pid(process), signal.SIGKILL)
        return chaos.settle(f"kill -9 {process}", campaign_id, audience, Acks())

    return run


def kill_fanout_mid_pages(chaos: Chaos) -> Verdict:
    """fanout_recipients dies while the campaign's pages are still being fanned out."""
    campaign_id, audience = chaos.campaign()
    deadline = time.monotonic() + 60
    while chaos.world.sent_count(campaign_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    os.kill(chaos.stack.pid("fanout_recipients"), signal.SIGKILL)
    return chaos.settle("kill -9 fanout_recipients (mid pages)", campaign_id, audience, Acks())


def postgres_down(seconds: float) -> Fault:
    def run(chaos: Chaos) -> Verdict:
        campaign_id, audience = chaos.campaign()
        chaos.world.wait_sent(campaign_id, len(audience) // 4)
        chaos.pg.stop()
        time.sleep(seconds)
        chaos.pg.start()  # on the same port: every DATABASE_URL handed out still reaches it
        return chaos.settle(f"PostgreSQL down {seconds:.0f} s", campaign_id, audience, Acks())

    return run


def pool_kill_send_message(chaos: Chaos) -> Verdict:
    """send_message killed mid-campaign while it sends from a pool: each recipient still gets one message,
    from one sender."""
    campaign_id, audience, senders = chaos.pool_campaign()
    chaos.world.wait_sent(campaign_id, len(audience) // 4)
    os.kill(chaos.stack.pid("send_message"), signal.SIGKILL)
    verdict = chaos.settle("pool: kill -9 send_message", campaign_id, audience, Acks())
    return _pool_checked(chaos, verdict, audience, senders, paused=set())


def pool_sender_blocked(chaos: Chaos) -> Verdict:
    """One sender of the pool is refused by Twilio (63018) from a quarter of the campaign on, and
    send_message is killed as it happens: the sender is paused, the recipients it had move to the others,
    and every recipient still gets exactly one message."""
    campaign_id, audience, senders = chaos.pool_campaign()
    chaos.world.wait_sent(campaign_id, len(audience) // 4)
    chaos.world.twilio("/_emulator/faults", {"from": senders[-1], **SENDER_RATE_LIMITED})
    time.sleep(0.5)
    os.kill(chaos.stack.pid("send_message"), signal.SIGKILL)
    try:
        verdict = chaos.settle(
            "pool: a sender refused (63018) and send_message killed", campaign_id, audience, Acks()
        )
    finally:
        chaos.world.twilio("/_emulator/faults", {"rate": 0})
    return _pool_checked(chaos, verdict, audience, senders, paused={senders[-1]})


def _pool_checked(
    chaos: Chaos, verdict: Verdict, audience: list[str], senders: list[str], paused: set[str]
) -> Verdict:
    """The pool's own promises beside the verdict's: a recipient hears from one sender only, the refused
    sender ends paused by Twilio and the others active. Each broken one counts in `pool_broken`."""
    to_us = set(audience)
    senders_of: dict[str, set[str]] = {}
    for message in chaos.world.accepted():
        number = message["to"].removeprefix("whatsapp:")
        if number in to_us:
            senders_of.setdefault(number, set()).add(message["from"])
    two_senders = sum(1 for found in senders_of.values() if len(found) > 1)
    states = {
        str(address): (str(state), by)
        for address, state, by in chaos.world.sql(
            "SELECT address, state, paused_by FROM senders WHERE pool = :pool", pool=POOL
        )
    }
    wrong_state = [
        address
        for address in senders
        if states.get(address) != (("paused", "twilio") if address in paused else ("active", None))
    ]
    used = Counter(sender for found in senders_of.values() for sender in found)
    note = (
        f"sent by sender: {[used.get(s, 0) for s in senders]}; recipients reached from two senders: "
        f"{two_senders}; senders in the wrong state: {wrong_state or 'none'}"
    )
    return replace(
        verdict,
        pool_broken=two_senders + len(wrong_state),
        note="; ".join(part for part in (verdict.note, note) if part),
    )


def twilio_fault(name: str, spec: dict[str, object], note: str = "") -> Fault:
    """Twilio misbehaving for part of the sends: the spec as the emulator's /_emulator/faults takes it."""

    def run(chaos: Chaos) -> Verdict:
        chaos.world.twilio("/_emulator/faults", spec)
        campaign_id, audience = chaos.campaign()
        started = time.monotonic()
        try:
            recovered = chaos.world.wait_settled(campaign_id, chaos.size.settle_timeout)
        finally:
            chaos.world.twilio("/_emulator/faults", {"rate": 0})
        took = f"campaign settled in {time.monotonic() - started:.0f} s"
        return chaos.world.verdict(name, campaign_id, audience, Acks(), recovered, f"{note}{took}")

    return run


def callbacks_out_of_order_and_twice(chaos: Chaos) -> Verdict:
    """Every message's callbacks shuffled and each sent twice: the status only moves forward, so once the
    callbacks (and, for any lost, reconciliation) are through, every message ends READ."""
    chaos.world.twilio("/_emulator/config", {"out_of_order": True, "duplicate": True})
    campaign_id, audience = chaos.campaign()
    verdict = chaos.settle("callbacks out of order and twice", campaign_id, audience, Acks())
    started = time.monotonic()

    def unread() -> int:
        ((count,),) = chaos.world.sql(
            "SELECT count(*) FROM messages WHERE campaign_id = :c AND status <> 'READ'", c=campaign_id
        )
        return int(count)

    while unread() and time.monotonic() - started < chaos.size.settle_timeout:
        time.sleep(1)
    left = unread()
    note = f"all READ {time.monotonic() - started:.0f} s after settling" if not left else f"{left} not READ"
    return replace(verdict, stuck=verdict.stuck + left, note=note)


def stop_races(chaos: Chaos) -> Verdict:
    """STOPs sent at the instant each chosen recipient's send is planned: after a STOP's 200, Twilio must
    accept nothing for that user."""
    campaign_id, audience = chaos.campaign()
    racers = audience[len(audience) // 4 :: 5]
    acks = Acks()
    planned = _planned_sends(chaos.world, campaign_id, racers)
    threads = [
        threading.Thread(target=_stop_at, args=(chaos.world, number, at, acks)) for number, at in planned
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return chaos.settle(
        "STOP at the send instant", campaign_id, audience, acks, f"{len(acks.stops)} STOPs raced"
    )


def pause_and_cancel_races(chaos: Chaos) -> Verdict:
    campaign_id, audience = chaos.campaign()
    acks = Acks()
    chaos.world.wait_sent(campaign_id, len(audience) // 5)
    paused = chaos.world.action(campaign_id, "pause")
    time.sleep(3)
    resumed_request = datetime.now(UTC)
    chaos.world.action(campaign_id, "resume")
    acks.pauses.append((paused, resumed_request))
    chaos.world.wait_sent(campaign_id, len(audience) // 2)
    acks.cancelled = chaos.world.action(campaign_id, "cancel")
    return chaos.settle("pause, resume and cancel mid-send", campaign_id, audience, acks)


def webhook_soak(chaos: Chaos) -> Verdict:
    """A long campaign whose every callback comes twice: the status webhook under sustained load."""
    chaos.world.twilio("/_emulator/config", {"duplicate": True})
    recipients = int(chaos.size.rate * chaos.size.soak_seconds)
    campaign_id, audience = chaos.campaign(recipients=recipients)
    return chaos.settle(f"webhook soak {chaos.size.soak_seconds / 60:.0f} min", campaign_id, audience, Acks())


def _planned_sends(world: World, campaign_id: int, numbers: list[str]) -> list[tuple[str, datetime]]:
    deadline = time.monotonic() + 60
    wanted = set(numbers)
    while True:
        rows = world.sql(
            "SELECT recipient_phone, scheduled_at FROM messages WHERE campaign_id = :c AND scheduled_at IS NOT NULL",
            c=campaign_id,
        )
        planned = [(str(p), at) for p, at in rows if p in wanted]
        if len(planned) == len(wanted) or time.monotonic() > deadline:
            return planned
        time.sleep(0.1)


def _stop_at(world: World, number: str, at: datetime, acks: Acks) -> None:
    wait = (at - datetime.now(UTC)).total_seconds()
    if wait > 0:
        time.sleep(wait)
    acks.stops[number] = retry(lambda: world.stop_from(number))


def faults(size: Size, stack: LocalStack) -> dict[str, Fault]:
    every: dict[str, Fault] = {
        "kill-send-message": kill("send_message"),
        "kill-status-webhook": kill("status_webhook"),
        "kill-fanout": kill_fanout_mid_pages,
        "kill-trigger": kill("trigger_campaign"),
        "kill-api": kill("api"),
        "kill-front-end": kill("front-end"),
        "kill-cloud-tasks": kill("cloud-tasks-emulator"),
        "kill-pubsub": kill("pubsub-emulator", after_fraction=0.0),
        "kill-push-relay": kill("pubsub-push-relay", after_fraction=0.0),
        "kill-twilio": kill("twilio-emulator"),
        "postgres-down-short": postgres_down(size.short_outage),
        "postgres-down-long": postgres_down(size.long_outage),
        "lost-answers": twilio_fault(
            "answers lost after Twilio accepted", {"rate": 0.2, "accept": True, "delay": 3}
        ),
        "lost-requests": twilio_fault(
            "answers lost, Twilio never got them", {"rate": 0.2, "http_status": 500, "delay": 3}
        ),
        "slow-answers": twilio_fault("answers 15 s late", {"rate": 0.05, "accept": True, "delay": 15}),
        "callbacks": callbacks_out_of_order_and_twice,
        "stop-races": stop_races,
        "pause-cancel": pause_and_cancel_races,
        "webhook-soak": webhook_soak,
        "pool-kill-send-message": pool_kill_send_message,
        "pool-sender-blocked": pool_sender_blocked,
    }
    if size.soak_seconds <= 0:
        every.pop("webhook-soak")
    return every


SHORT_FAULTS = ("kill-send-message", "postgres-down-short", "stop-races", "pool-sender-blocked")
