"""The event dispatcher: delivers webhook deliveries from the outbox, off the request path.

A delivery is claimed like a tier (engine/scheduler.py): under a row lock (PostgreSQL: FOR
UPDATE SKIP LOCKED; SQLite: the write lock of BEGIN IMMEDIATE) it moves to PROCESSING with a
lease longer than the channel's timeout and the next fence token. The POST happens outside
any transaction; its outcome is written only if the row still carries that token, so of two
dispatchers one attempt is made at a time and one outcome recorded. A dispatcher that dies
mid-POST leaves a lease that expires (or, on the same host with its PID gone, is taken at
once): the delivery is made again. Delivery is therefore at least once; receivers dedupe on
the event id (`X-Mixpeek-Event-Id`).

A failed attempt waits `base * 2^(attempt-1)` seconds (capped, with jitter) before the next;
after `events_max_attempts` the delivery is given up (FAILED). Each webhook keeps its
`delivery_health`; after `events_pause_after_failures` failed attempts in a row it is paused.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from strataflow.clock import isoformat, utcnow
from strataflow.config import Settings
from strataflow.engine.leases import owner_is_dead, process_owner
from strataflow.engine.loops import PollingLoop
from strataflow.outbound import FetchFailed, OutboundClient
from strataflow.services.batches.notify import notify_finished_batches
from strataflow.services.events import templates
from strataflow.services.events.outbox import envelope, on_commit
from strataflow.services.events.secrets import SecretBox
from strataflow.services.events.signing import HEADER, signature
from strataflow.services.events.webhooks import SEALED
from strataflow.statuses import Status
from strataflow.store.db import Database
from strataflow.store.tables import DeliveryAttempt, OutboxEvent, Webhook, WebhookDelivery
from strataflow.transitions import claim, released, transition

log = logging.getLogger("strataflow.events")

S = Status
LEASE_MARGIN_S = 30.0  # beyond the channel's timeout: the POST ends by its deadline, well inside the lease
DEAD_OWNER_SWEEP_S = 10.0
RECORD_EVERY_S = 1.0  # outcomes of a group are written at least this often (a crash re-sends at most these)


@dataclass(frozen=True)
class Claimed:
    delivery_id: str
    token: int
    attempt: int
    webhook_id: str
    config: dict[str, Any]
    event: dict[str, Any]
    lease_until: datetime | None = None


@dataclass(frozen=True)
class Outcome:
    ok: bool
    status_code: int | None
    error: str | None
    duration_ms: int
    final: bool = False  # no retry can change it (the template cannot render this event)


class EventDispatcher(PollingLoop):
    def __init__(
        self,
        db: Database,
        outbound: OutboundClient,
        box: SecretBox,
        settings: Settings,
        owner: str | None = None,
    ) -> None:
        super().__init__("strataflow-events", settings.events_dispatch_workers, settings.events_poll_interval_s)
        self.db, self.outbound, self.box, self.settings = db, outbound, box, settings
        self.owner = owner or process_owner()
        self._last_sweep = 0.0
        self._unsubscribe = on_commit(self.notify)

    def close(self) -> None:
        """Stop, and stop being woken by commits in this process."""
        self.stop()
        self._unsubscribe()

    # -- the loop ------------------------------------------------------------------------------
    def run_pending(self) -> int:
        """Deliver everything due now; returns how many attempts were made (tests call this).

        Deliveries are claimed in groups (one transaction for up to `events_claim_batch`), made one
        after another, and their outcomes written together (one transaction per group, or sooner
        once RECORD_EVERY_S has passed, so a crash re-sends little)."""
        if time.monotonic() - self._last_sweep > DEAD_OWNER_SWEEP_S:
            self._last_sweep = time.monotonic()
            self.hand_back_dead()
        # Batches submitted with a webhook_url share this loop and its outbound client.
        made = notify_finished_batches(self.db, self.outbound)
        while not self.stopping:
            group = self.claim_many(self.settings.events_claim_batch)
            if not group:
                break
            done: list[tuple[Claimed, Outcome]] = []
            skipped: list[Claimed] = []
            since = time.monotonic()
            for claimed in group:
                timeout = float(claimed.config.get("timeout") or 10.0)
                late = claimed.lease_until is not None and utcnow() + timedelta(seconds=timeout) > claimed.lease_until
                if self.stopping or late:
                    skipped.append(claimed)  # not attempted: handed back below, due at once
                    continue
                done.append((claimed, self.attempt(claimed)))
                made += 1
                if time.monotonic() - since > RECORD_EVERY_S:
                    self.record_many(done)
                    done, since = [], time.monotonic()
            self.record_many(done)
            self.hand_back(skipped)
        return made

    # -- claiming ------------------------------------------------------------------------------
    def claim(self) -> Claimed | None:
        """One delivery (tests use it); the loop claims groups (`claim_many`)."""
        group = self.claim_many(1)
        return group[0] if group else None

    def claim_many(self, limit: int) -> list[Claimed]:
        """Up to `limit` due deliveries, claimed in one transaction. Each gets a lease long enough
        for the ones before it in the group and itself to end by their deadlines (they are made one
        after another), so no claim runs out while it waits its turn."""
        now = utcnow()
        runnable = or_(
            and_(WebhookDelivery.status == S.PENDING, WebhookDelivery.next_attempt_at <= now),
            and_(WebhookDelivery.status == S.PROCESSING, WebhookDelivery.lease_expires_at < now),
        )
        with self.db.read_session() as session:  # a look first: an idle poll never takes the write lock
            due = session.scalar(
                select(WebhookDelivery.delivery_id)
                .join(Webhook, Webhook.webhook_id == WebhookDelivery.webhook_id)
                .where(runnable, Webhook.is_active.is_(True))
                .limit(1)
            )
        if due is None:
            return []
        with self.db.transaction() as session:
            query = (
                select(WebhookDelivery)
                .join(Webhook, Webhook.webhook_id == WebhookDelivery.webhook_id)
                .where(runnable, Webhook.is_active.is_(True))
                .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.event_seq)
                .limit(limit)
            )
            if not self.db.is_sqlite:
                query = query.with_for_update(of=WebhookDelivery, skip_locked=True)
            rows = list(session.scalars(query))
            if not rows:
                return []
            hooks = {
                h.webhook_id: h
                for h in session.scalars(select(Webhook).where(Webhook.webhook_id.in_({r.webhook_id for r in rows})))
            }
            events = {
                e.seq: e
                for e in session.scalars(select(OutboxEvent).where(OutboxEvent.seq.in_({r.event_seq for r in rows})))
            }
            claimed: list[Claimed] = []
            waited = 0.0
            for row in rows:
                if row.status == S.PROCESSING:
                    transition(session, row, S.PENDING, f"lease of {row.lease_owner} expired")
                taken = self._take(session, row, hooks.get(row.webhook_id), events.get(row.event_seq), waited)
                if taken is not None:
                    waited += float(taken.config.get("timeout") or 10.0)
                    claimed.append(taken)
            return claimed

    def _take(
        self, session: Session, row: WebhookDelivery, hook: Webhook | None, event: OutboxEvent | None, waited: float
    ) -> Claimed | None:
        channels = hook.channels if hook is not None else []
        if hook is None or event is None or row.channel_index >= len(channels):
            transition(session, row, S.CANCELED, "its webhook channel is gone")
            return None
        config = channels[row.channel_index]["configs"]
        lease = utcnow() + timedelta(seconds=waited + float(config.get("timeout") or 10.0) + LEASE_MARGIN_S)
        claim(session, row, S.PROCESSING, self.owner, lease, f"claimed by {self.owner}")
        return Claimed(
            row.delivery_id, row.fence_token, row.attempts, row.webhook_id, dict(config), envelope(event), lease
        )

    def hand_back(self, claims: list[Claimed]) -> int:
        """Claims not attempted (the loop is stopping): due again now, the attempt not counted."""
        if not claims:
            return 0
        back = 0
        with self.db.transaction() as session:
            for claimed, row in self._still_ours(session, claims):
                transition(
                    session, row, S.PENDING, "handed back unattempted", attempts=claimed.attempt - 1, **released()
                )
                row.next_attempt_at = utcnow()
                back += 1
        return back

    def _still_ours(self, session: Session, claims: list[Claimed]) -> list[tuple[Claimed, WebhookDelivery]]:
        """The claims whose rows still carry their fence token (locked on PostgreSQL), in id order."""
        query = (
            select(WebhookDelivery)
            .where(WebhookDelivery.delivery_id.in_([c.delivery_id for c in claims]))
            .order_by(WebhookDelivery.delivery_id)
        )
        if not self.db.is_sqlite:
            query = query.with_for_update()
        rows = {r.delivery_id: r for r in session.scalars(query)}
        ours = []
        for claimed in claims:
            row = rows.get(claimed.delivery_id)
            if row is None or row.fence_token != claimed.token or row.status != S.PROCESSING:
                log.warning("delivery claim lost", extra={"delivery_id": claimed.delivery_id})
                continue
            ours.append((claimed, row))
        return ours

    def hand_back_dead(self) -> int:
        """Deliveries leased to a process of this host that no longer exists: due again now."""
        processing = (WebhookDelivery.status == S.PROCESSING, WebhookDelivery.lease_owner.is_not(None))
        with self.db.read_session() as session:
            owners = set(session.scalars(select(WebhookDelivery.lease_owner).where(*processing).distinct()))
        gone = sorted(o for o in owners if o is not None and owner_is_dead(o))
        if not gone:
            return 0
        with self.db.transaction() as session:
            rows = session.scalars(select(WebhookDelivery).where(*processing, WebhookDelivery.lease_owner.in_(gone)))
            dead = list(rows)
            for row in dead:
                transition(session, row, S.PENDING, f"{row.lease_owner} died", **released())
                row.next_attempt_at = utcnow()
            return len(dead)

    # -- one attempt ---------------------------------------------------------------------------
    def attempt(self, claimed: Claimed) -> Outcome:
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        config = claimed.config
        try:
            payload = (
                templates.render(config["payload_template"], claimed.event)
                if config.get("payload_template")
                else claimed.event
            )
        except templates.TemplateFailed as exc:
            return Outcome(False, None, f"payload template: {exc}", took(), final=True)
        body = json.dumps(payload, separators=(",", ":"), default=str).encode()
        headers = {
            **(config.get("headers") or {}),
            "Content-Type": "application/json",
            "X-Mixpeek-Event": claimed.event["event_type"],
            "X-Mixpeek-Event-Id": claimed.event["event_id"],
            "X-Mixpeek-Delivery-Id": claimed.delivery_id,
            "X-Mixpeek-Delivery-Attempt": str(claimed.attempt),
        }
        if config.get(SEALED):
            try:
                secret = self.box.open(config[SEALED])
            except ValueError as exc:
                return Outcome(False, None, str(exc), took())
            headers[HEADER] = signature(secret, int(time.time()), body)
        try:
            answer = self.outbound.post(
                config["url"], body, headers, deadline_s=float(config.get("timeout") or 10.0), keep_alive=True
            )
        except FetchFailed as exc:
            return Outcome(False, None, f"no answer: {exc.reason}", took())
        if answer.ok:
            return Outcome(True, answer.status, None, took())
        excerpt = answer.body[:200].decode("utf-8", "replace")
        return Outcome(False, answer.status, f"answered HTTP {answer.status}: {excerpt}".rstrip(": "), took())

    # -- the outcome ---------------------------------------------------------------------------
    def record(self, claimed: Claimed, outcome: Outcome) -> bool:
        """Write one attempt's outcome, if the claim is still ours; False when it was taken over."""
        return self.record_many([(claimed, outcome)]) == [True]

    def record_many(self, outcomes: list[tuple[Claimed, Outcome]]) -> list[bool]:
        """Write the attempts and their consequences in one transaction, each only if its claim is
        still ours (its row carries the token it was claimed with); a True per outcome written."""
        if not outcomes:
            return []
        written: set[str] = set()
        with self.db.transaction() as session:
            ours = self._still_ours(session, [c for c, _ in outcomes])
            results = {c.delivery_id: o for c, o in outcomes}
            health: dict[str, list[Outcome]] = {}
            for claimed, row in ours:
                outcome = results[claimed.delivery_id]
                session.add(
                    DeliveryAttempt(
                        delivery_id=row.delivery_id,
                        webhook_id=row.webhook_id,
                        attempt=claimed.attempt,
                        fence_token=claimed.token,
                        ok=outcome.ok,
                        status_code=outcome.status_code,
                        error=outcome.error,
                        duration_ms=outcome.duration_ms,
                    )
                )
                row.last_status_code, row.last_error = outcome.status_code, outcome.error
                if outcome.ok:
                    transition(session, row, S.COMPLETED, "delivered", completed_at=utcnow(), **released())
                elif outcome.final or claimed.attempt >= self.settings.events_max_attempts:
                    transition(
                        session, row, S.FAILED, f"given up: {outcome.error}", completed_at=utcnow(), **released()
                    )
                else:
                    transition(session, row, S.PENDING, f"attempt {claimed.attempt} failed", **released())
                    row.next_attempt_at = utcnow() + timedelta(seconds=self.backoff(claimed.attempt))
                health.setdefault(row.webhook_id, []).append(outcome)
                written.add(claimed.delivery_id)
            for webhook_id in sorted(health):  # one lock order for every dispatcher
                self._health(session, webhook_id, health[webhook_id])
        for claimed, outcome in outcomes:
            log.info(
                "webhook delivery attempt",
                extra={
                    "delivery_id": claimed.delivery_id,
                    "webhook_id": claimed.webhook_id,
                    "attempt": claimed.attempt,
                    "ok": outcome.ok,
                    "status_code": outcome.status_code,
                    "recorded": claimed.delivery_id in written,
                },
            )
        return [c.delivery_id in written for c, _ in outcomes]

    def backoff(self, attempt: int) -> float:
        """Exponential, capped, with jitter (half fixed, half random) so retries of many deliveries spread out."""
        delay = min(self.settings.events_retry_max_s, self.settings.events_retry_base_s * 2 ** (attempt - 1))
        return float(delay / 2 + random.uniform(0, delay / 2))

    def _health(self, session: Session, webhook_id: str, outcomes: list[Outcome]) -> None:
        """Apply a webhook's outcomes, in the order they happened, to its delivery health."""
        query = select(Webhook).where(Webhook.webhook_id == webhook_id)
        if not self.db.is_sqlite:
            query = query.with_for_update()
        hook = session.scalar(query)
        if hook is None:
            return
        health = dict(hook.delivery_health or {})
        for outcome in outcomes:
            if outcome.ok:
                health = {}
                continue
            now = isoformat(utcnow())
            failures = int(health.get("consecutive_failures") or 0) + 1
            health.update(
                consecutive_failures=failures,
                first_failure_at=health.get("first_failure_at") or now,
                last_failure_at=now,
                last_failure_cause=outcome.error,
            )
            limit = self.settings.events_pause_after_failures
            if limit and failures >= limit and hook.is_active:
                hook.is_active = False
                health.update(paused_at=now, paused_reason=f"{failures} failed delivery attempts in a row")
                log.warning("webhook paused", extra={"webhook_id": webhook_id, "failures": failures})
        if health != dict(hook.delivery_health or {}):
            hook.delivery_health = health or None
