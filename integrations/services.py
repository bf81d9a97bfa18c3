"""The receiving pipeline: durable receipt → raw event → normalize → ordered consumers.

Rules (docs/webhooks.md): the receipt and raw events commit before the 2xx; duplicates are
settled by the UNIQUE key, not by a read; processing runs after commit, holds a row lock on the
raw event and writes everything it produces in one transaction, so a failure leaves nothing
half-written and the retry starts clean.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import random
import threading
import time
import traceback
from dataclasses import dataclass
from datetime import timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.db import OperationalError, transaction
from django.db.models import F, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from adminops.services import action_record
from zartsalgo.db import (
    atomic_step,
    build,
    insert_row,
    insert_unless_duplicate,
    insert_with_dependents,
    retried_as_a_whole,
    update_rows,
)
from zartsalgo.events import BusinessEvent
from zartsalgo.flags import flag_clear, flag_set_if_absent
from zartsalgo.tasks import enqueue_on_commit

from .models import Connection, CredentialMissing, NormalizedEvent, RawEvent, SyncError, WebhookEvent
from .providers import get_adapter
from .providers.base import (
    InboundRequest,
    MalformedPayload,
    ParsedEvent,
    SignatureInvalid,
    UnsupportedContentType,
    WebhookError,
    body_sha256,
)

logger = logging.getLogger(__name__)
Outcome = WebhookEvent.Outcome


@dataclass
class ReceiveResult:
    status: int
    body: bytes
    content_type: str
    receipt: WebhookEvent


def _json_error(reason: str) -> bytes:
    import json

    return json.dumps({"error": reason}).encode()


def _reject(
    *,
    provider: str,
    connection: Connection | None,
    request: InboundRequest,
    remote_addr: str | None,
    outcome: str,
    status: int,
    reason: str,
    signature: str = WebhookEvent.Signature.NOT_CHECKED,
) -> ReceiveResult:
    receipt = WebhookEvent.objects.create(
        provider=provider[:32],
        connection=connection,
        content_type=request.content_type[:100],
        body_sha256=body_sha256(request.body),
        body_size=len(request.body),
        remote_addr=remote_addr,
        signature=signature,
        outcome=outcome,
        http_status=status,
        reason=reason[:500],
    )
    if connection is not None and outcome == Outcome.REJECTED_SIGNATURE:
        Connection.objects.filter(pk=connection.pk).update(last_error_at=timezone.now(), last_error=reason[:2000])
    return ReceiveResult(status, _json_error(reason), "application/json", receipt)


def webhook_reject_too_large(
    *, provider: str, token: str, request: InboundRequest, remote_addr: str | None, limit: int
) -> ReceiveResult:
    connection = Connection.objects.filter(webhook_token=token, provider=provider).first()
    return _reject(
        provider=provider,
        connection=connection,
        request=request,
        remote_addr=remote_addr,
        outcome=Outcome.REJECTED_TOO_LARGE,
        status=413,
        reason=f"Body larger than {limit} bytes",
    )


def webhook_receive(
    *, provider: str, token: str, request: InboundRequest, remote_addr: str | None = None
) -> ReceiveResult:
    """Answer one provider delivery. Never raises for bad input: every path leaves a receipt."""
    common = {"provider": provider, "request": request, "remote_addr": remote_addr}
    adapter = get_adapter(provider)
    if adapter is None:
        return _reject(
            connection=None,
            outcome=Outcome.UNKNOWN_PROVIDER,
            status=404,
            reason=f"Unknown provider {provider!r}",
            **common,
        )
    connection = _connection_for(provider=provider, token=token)
    if connection is None:
        return _reject(
            connection=None,
            outcome=Outcome.UNKNOWN_CONNECTION,
            status=404,
            reason="No connection with this token",
            **common,
        )
    if request.content_type not in adapter.content_types:
        return _reject(
            connection=connection,
            outcome=Outcome.REJECTED_CONTENT_TYPE,
            status=415,
            reason=f"Content type {request.content_type or '(none)'} not accepted; "
            f"expected {', '.join(adapter.content_types)}",
            **common,
        )

    signature = WebhookEvent.Signature.VALID
    hold_reason = ""
    try:
        adapter.verify(request, connection)
    except CredentialMissing as exc:
        # We cannot tell authentic from forged. Keep the delivery, hold it, and make the doubt
        # visible on the connection: staff fix the secret and release, nothing is lost.
        signature = WebhookEvent.Signature.UNVERIFIABLE
        hold_reason = f"Credential missing, signature not verifiable: {exc}"
    except SignatureInvalid as exc:
        return _reject(
            connection=connection,
            outcome=exc.outcome,
            status=exc.status,
            reason=exc.reason,
            signature=getattr(exc, "signature", WebhookEvent.Signature.INVALID),
            **common,
        )
    except WebhookError as exc:
        return _reject(connection=connection, outcome=exc.outcome, status=exc.status, reason=exc.reason, **common)

    try:
        parsed = adapter.parse(request, connection)
    except (MalformedPayload, UnsupportedContentType) as exc:
        return _reject(
            connection=connection,
            outcome=exc.outcome,
            status=exc.status,
            reason=exc.reason,
            signature=signature,
            **common,
        )
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        # An adapter that trips over a body it should have rejected still answers 400, never 500.
        logger.exception("adapter %s failed to parse a delivery", provider)
        return _reject(
            connection=connection,
            outcome=Outcome.REJECTED_MALFORMED,
            status=400,
            reason=f"Unreadable payload: {exc.__class__.__name__}: {exc}"[:500],
            signature=signature,
            **common,
        )
    if not parsed:
        return _reject(
            connection=connection,
            outcome=Outcome.REJECTED_MALFORMED,
            status=400,
            reason="No events in delivery",
            signature=signature,
            **common,
        )

    holding = bool(hold_reason) or connection.holds_processing
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        try:
            receipt = _store_delivery(
                connection=connection,
                request=request,
                remote_addr=remote_addr,
                signature=signature,
                parsed=parsed,
                holding=holding,
                hold_reason=hold_reason,
                provider=provider,
            )
            break
        except OperationalError as exc:
            # InnoDB picks a victim when concurrent deliveries of one event collide on the
            # unique key; the loser's whole transaction rolled back, so running it again is safe.
            if exc.args and exc.args[0] in (1205, 1213) and attempt < DEADLOCK_RETRIES:
                time.sleep(random.uniform(0.005, 0.05) * attempt)
                continue
            raise
    _connection_touch(connection, hold_reason=hold_reason)
    body, content_type = adapter.response(accepted=True)
    return ReceiveResult(200, body, content_type, receipt)


DEADLOCK_RETRIES = 5


def _store_delivery(
    *, connection, request, remote_addr, signature, parsed, holding, hold_reason, provider
) -> WebhookEvent:
    """The receipt and its raw events in one transaction: two INSERTs for a one-event delivery.

    The receipt is written as accepted and corrected only when every event was a duplicate, the
    rare case; the common one costs no UPDATE.
    """
    receipt = build(
        WebhookEvent,
        provider=provider,
        connection_id=connection.pk,
        content_type=request.content_type[:100],
        body_sha256=body_sha256(request.body),
        body_size=len(request.body),
        remote_addr=remote_addr,
        signature=signature,
        outcome=Outcome.PAUSED if holding else Outcome.ACCEPTED,
        http_status=200,
        reason=hold_reason or (connection.status_reason if holding else ""),
        events_count=len(parsed),
    )
    raws = _raw_events_build(connection=connection, receipt=receipt, events=parsed, hold=holding)

    # Duplicates are known only once the INSERTs ran: the receipt is corrected in the same
    # transaction (a statement that touches nothing when there were none).
    finish = (
        f"UPDATE {WebhookEvent._meta.db_table} SET duplicates_count = @zartsalgo_duplicates, "  # noqa: S608
        "outcome = IF(@zartsalgo_duplicates = events_count, %s, outcome) "
        "WHERE id = @zartsalgo_parent_id AND @zartsalgo_duplicates > 0",
        [Outcome.DUPLICATE],
    )
    inserted = insert_with_dependents(receipt, raws, link="receipt", finish=finish)
    if inserted is not None:  # committed already, in one round trip
        receipt.duplicates_count = inserted.count(False)
        if not any(inserted):
            receipt.outcome = Outcome.DUPLICATE
        if not holding:
            raw_events_ring_soon()  # a duplicate rings too (see raw_events_store)
        return receipt
    with transaction.atomic():
        insert_row(receipt)
        for raw in raws:
            raw.receipt_id = receipt.pk
        created, duplicates = _raw_events_insert(raws, hold=holding, enqueue=True)
        if duplicates:
            receipt.duplicates_count = duplicates
            if not created:
                receipt.outcome = Outcome.DUPLICATE
            WebhookEvent.objects.filter(pk=receipt.pk).update(
                duplicates_count=receipt.duplicates_count, outcome=receipt.outcome
            )
    return receipt


# Deliveries are verified against their connection's secret and routed by it; looking it up
# is the one query every delivery would otherwise pay. Cached per process for a few seconds:
# a status change made elsewhere reaches deliveries within that window, and processing
# re-reads the connection anyway before it applies anything (holds are checked there).
_CONNECTIONS: dict[tuple[str, str], tuple[float, Connection]] = {}
_TOUCHED: dict[int, float] = {}


def _connection_for(*, provider: str, token: str) -> Connection | None:
    ttl = settings.INTEGRATIONS_CONNECTION_CACHE_SECONDS
    now = time.monotonic()
    cached = _CONNECTIONS.get((provider, token))
    if cached and now - cached[0] < ttl:
        return cached[1]
    connection = Connection.objects.select_related("client").filter(webhook_token=token, provider=provider).first()
    if connection is not None and ttl > 0:
        if len(_CONNECTIONS) > 10_000:  # tokens are few; a flood of made-up ones is never cached
            _CONNECTIONS.clear()
        _CONNECTIONS[(provider, token)] = (now, connection)
    return connection


def connections_forget_cached() -> None:
    """Drop this process's cached connections (after a change made here; tests)."""
    _CONNECTIONS.clear()
    _TOUCHED.clear()


def _connection_touch(connection: Connection, *, hold_reason: str) -> None:
    """Record that the connection is alive. Outside the delivery's transaction on purpose: every
    receipt row holds a shared lock on the connection row (its foreign key), so updating that
    row inside concurrent deliveries deadlocks them. At most one write per few seconds per
    process under load (freshness is judged in minutes), not one per request."""
    now = timezone.now()
    if not hold_reason:
        last = _TOUCHED.get(connection.pk)
        if last is not None and time.monotonic() - last < TOUCH_EVERY_SECONDS:
            return
        _TOUCHED[connection.pk] = time.monotonic()
    updates: dict[str, Any] = {"last_event_at": now, "stale_since": None}
    rows = Connection.objects.filter(pk=connection.pk)
    if hold_reason:
        if connection.status != Connection.Status.UNCERTAIN:
            updates.update(
                status=Connection.Status.UNCERTAIN,
                status_reason=hold_reason[:500],
                last_error_at=now,
                last_error=hold_reason,
            )
        _CONNECTIONS.pop((connection.provider, connection.webhook_token), None)
    else:
        rows = rows.filter(
            Q(last_event_at__isnull=True)
            | Q(last_event_at__lt=now - timedelta(seconds=TOUCH_EVERY_SECONDS))
            | Q(stale_since__isnull=False)
        )
    rows.update(**updates)


TOUCH_EVERY_SECONDS = 5


def raw_events_store(
    *,
    connection: Connection,
    receipt: WebhookEvent | None,
    events: list[ParsedEvent],
    hold: bool = False,
    enqueue: bool = True,
) -> tuple[list[RawEvent], int]:
    """Insert raw events, each unique per (connection, key). Returns (new rows, duplicates).

    Must run inside a transaction. When it commits, the new rows are announced to the workers
    (raw_events_ring), unless the caller processes them itself (enqueue=False, as the CSV import
    does row by row). A duplicate is settled by the UNIQUE key in the INSERT itself.
    """
    raws = _raw_events_build(connection=connection, receipt=receipt, events=events, hold=hold)
    return _raw_events_insert(raws, hold=hold, enqueue=enqueue)


def _raw_events_insert(raws: list[RawEvent], *, hold: bool, enqueue: bool) -> tuple[list[RawEvent], int]:
    created: list[RawEvent] = []
    duplicates = 0
    for raw in raws:
        if insert_unless_duplicate(raw):
            created.append(raw)
        else:
            duplicates += 1
    if enqueue and not hold and (created or duplicates):
        # A duplicate rings too: its INSERT locked the existing row until this commit, and a
        # drain that ran meanwhile skipped that row (SKIP LOCKED). Ringing after the lock is
        # gone means the row is looked at again at once, not by the sweeper a minute later.
        transaction.on_commit(raw_events_ring, robust=True)
    return created, duplicates


def _raw_events_build(*, connection, receipt, events, hold) -> list[RawEvent]:
    status = RawEvent.Status.HELD if hold else RawEvent.Status.RECEIVED
    return [
        build(
            RawEvent,
            connection_id=connection.pk,
            client_id=connection.client_id,
            provider=connection.provider,
            receipt_id=receipt.pk if receipt is not None else None,
            idempotency_key=event.idempotency_key[:255],
            kind=event.kind[:64],
            payload=event.payload,
            summary=event.summary[:300],
            occurred_at=event.occurred_at,
            status=status,
        )
        for event in events
    ]


# --- the doorbell: one queue message per burst, not per event -------------------------------

DRAIN_PENDING_FLAG = "integrations:drain-pending"


def raw_events_ring() -> bool:
    """Tell the workers raw events are waiting; True when a drain task was enqueued.

    A Celery message per event costs the web process a Redis publish per delivery and the
    workers a task per event. Instead a delivery sets a short-lived "drain pending" key
    (SET NX): only the first delivery of a burst enqueues a drain task, later ones see the key
    and know the waiting drain will find their rows. The drain deletes the key before it looks
    for work, so a row committed after that rings again: nothing waits for the sweeper unless
    Redis itself is gone, and then the sweeper is the net (rows are the record, not messages).
    """
    from .tasks import drain_raw_events

    try:
        if not flag_set_if_absent(DRAIN_PENDING_FLAG, ttl_seconds=settings.INTEGRATIONS_DRAIN_PENDING_SECONDS):
            return False
    except Exception:  # the key is a hint: without it, enqueue anyway
        logger.warning("drain-pending key unavailable; enqueueing a drain", exc_info=True)
    try:
        drain_raw_events.apply_async()
    except Exception:
        logger.warning("could not enqueue a drain; the sweeper will pick the rows up", exc_info=True)
        with contextlib.suppress(Exception):
            flag_clear(DRAIN_PENDING_FLAG)
        return False
    return True


class _Doorbell:
    """Ring at most once per window per process, from one long-lived thread.

    A delivery only marks a ring as wanted (a lock and a flag: no Redis round trip, no thread
    started, in the request). The ringer thread rings at once when the last ring is a window
    old (the leading edge of a quiet spell) and otherwise at the window's end, once for every
    delivery that asked meanwhile. The flag is cleared *before* the ring, and every delivery
    asks after its own commit: each committed row is covered by a ring that follows it, so no
    row waits longer than about a window for its drain.
    """

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.wanted = False
        self.window = 0.0
        self.pid = 0  # the thread belongs to the process that started it (gunicorn/Celery fork)

    def ring(self, window: float) -> None:
        with self.cond:
            self.window = window
            if self.wanted and self.pid == os.getpid():
                return  # a ring is already due, and it comes after this row's commit
            self.wanted = True
            if self.pid != os.getpid():
                self.pid = os.getpid()
                threading.Thread(target=self._run, name="raw-events-doorbell", daemon=True).start()
            self.cond.notify()

    def _run(self) -> None:
        last = float("-inf")
        while True:
            with self.cond:
                while not self.wanted:
                    self.cond.wait()
                delay = last + self.window - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            with self.cond:
                self.wanted = False
            last = time.monotonic()
            try:
                raw_events_ring()
            except Exception:  # never let the thread die: the next ring, or the sweeper, covers it
                logger.warning("doorbell ring failed", exc_info=True)

    def flush(self) -> None:
        """At exit: a ring still due is rung now, not lost with the process."""
        with self.cond:
            wanted = self.wanted and self.pid == os.getpid()
            self.wanted = False
        if wanted:
            raw_events_ring()


_DOORBELL = _Doorbell()
atexit.register(_DOORBELL.flush)


def raw_events_ring_soon() -> None:
    """raw_events_ring for the webhook hot path: a Redis round trip per delivery is a real part
    of a delivery's cost, and a burst needs one ring, not one per request. Debounced per process
    for INTEGRATIONS_RING_DEBOUNCE_MS (0 = ring every time, in the request)."""
    window = settings.INTEGRATIONS_RING_DEBOUNCE_MS / 1000
    if window <= 0:
        raw_events_ring()
    else:
        _DOORBELL.ring(window)


def raw_events_drain(*, batch_size: int, max_seconds: float, fan_out: bool = True) -> dict[str, int]:
    """Process waiting raw events, oldest first, a batch per transaction, until none are left
    (or max_seconds passed: then ring so another task carries on, and return).

    fan_out: when a batch came back full there is a backlog; ring so an idle worker joins in.
    Off when tasks run in-process (nobody to join, and ringing would recurse).
    """
    try:
        flag_clear(DRAIN_PENDING_FLAG)
    except Exception:  # Redis gone: deliveries cannot ring either; the sweeper covers both
        logger.warning("could not clear the drain-pending flag", exc_info=True)
    deadline = time.monotonic() + max_seconds
    totals: dict[str, int] = {}
    while True:
        counts = raw_events_process_batch(raw_event_id=None, batch_size=batch_size)
        if not counts:
            return totals
        for status, n in counts.items():
            totals[status] = totals.get(status, 0) + n
        if time.monotonic() > deadline:
            raw_events_ring()
            return totals
        if fan_out and sum(counts.values()) >= batch_size:
            raw_events_ring()


# --- processing -----------------------------------------------------------------------------


def _consumers() -> list:
    return [import_string(path) for path in settings.INTEGRATIONS_EVENT_CONSUMERS]


def retry_delay(attempt: int) -> timedelta | None:
    """Delay before retry number `attempt` (1-based), with ±20% jitter; None = give up."""
    schedule = settings.INTEGRATIONS_RETRY_SCHEDULE
    if attempt > len(schedule):
        return None
    base = schedule[attempt - 1]
    return timedelta(seconds=base * random.uniform(0.8, 1.2))


class _StageError(Exception):
    def __init__(self, stage: str, original: BaseException):
        super().__init__(str(original))
        self.stage = stage
        self.original = original


class _Deferred:
    """Writes that a fast batch makes once at its end instead of once per event."""

    def __init__(self) -> None:
        self.applied: list[NormalizedEvent] = []
        self.done: dict[str, list[int]] = {}


def _apply_normalized(raw: RawEvent, items: list, deferred: _Deferred | None) -> list[NormalizedEvent]:
    stored = []
    consumers = _consumers()
    for item in items:
        event = _normalized_event(raw, item)
        if not insert_unless_duplicate(event):  # a replay, or a retry after a partial apply
            event = NormalizedEvent.objects.get(idempotency_key=event.idempotency_key)
        envelope = _envelope(raw, event, item)
        for consumer in consumers:
            name = f"{consumer.__module__}.{consumer.__name__}"
            if name in event.applied_consumers:
                continue
            try:
                consumer(event=envelope)
            except OperationalError as exc:
                if exc.args and exc.args[0] in (1205, 1213):
                    raise  # InnoDB rolled the whole transaction back: only the batch fallback can retry
                raise _StageError(SyncError.Stage.APPLY, exc) from exc
            except Exception as exc:
                raise _StageError(SyncError.Stage.APPLY, exc) from exc
            event.applied_consumers = [*event.applied_consumers, name]
        event.lead = envelope.lead
        event.applied_at = timezone.now()
        if deferred is not None:
            deferred.applied.append(event)
        else:
            event.save(update_fields=["lead", "applied_consumers", "applied_at"])
        stored.append(event)
    return stored


def raw_event_process(*, raw_event_id: int) -> str:
    """Normalize and apply one raw event. Returns its resulting status (or "locked"/"missing")."""
    with transaction.atomic():
        # SKIP LOCKED: a second worker handed the same id (redelivery, sweeper) moves on.
        # No select_related here: on MariaDB a FOR UPDATE join would lock the connection and
        # client rows too and serialize every worker on them.
        raw = RawEvent.objects.select_for_update(skip_locked=True).filter(pk=raw_event_id).first()
        if raw is None:
            return "locked" if RawEvent.objects.filter(pk=raw_event_id).exists() else "missing"
        if raw.status not in (RawEvent.Status.RECEIVED, RawEvent.Status.FAILED):
            return raw.status
        raw.connection = Connection.objects.select_related("client").get(pk=raw.connection_id)
        return _process_locked(raw, deferred=None)


class _RerunCarefully(Exception):
    """An event failed inside a fast batch: the batch rolls back and runs again, step by step."""


def raw_events_process_batch(*, raw_event_id: int | None, batch_size: int) -> dict[str, int]:
    """Process the given raw event (if any) and other waiting ones, up to batch_size, in one
    transaction.

    One commit per batch instead of per event is most of the cost of a small event on InnoDB
    (the log flush). First the batch runs fast: no savepoint per event, the raw-event and
    normalized-event updates made once at the end. If anything in it fails, the whole batch
    rolls back and runs again carefully: each event in its own savepoint, so a failure is
    recorded and rolled back alone. Same results either way; the fast path is the common one.
    """
    if batch_size == 1:
        return _process_batch(raw_event_id=raw_event_id, batch_size=1, fast=False)
    try:
        return _fast_then_careful(
            what=f"from raw event {raw_event_id}", raw_event_id=raw_event_id, batch_size=batch_size
        )
    except OperationalError as exc:
        # Two batches touching the same leads in opposite orders can deadlock; InnoDB rolled
        # the victim back whole. Do just this task's own event (or the oldest one); the rest go
        # back to the queue through the next drain or the sweeper.
        if not (exc.args and exc.args[0] in (1205, 1213)):
            raise
        logger.info("batch from raw event %s deadlocked; processing it alone", raw_event_id)
        return _process_batch(raw_event_id=raw_event_id, batch_size=1, fast=False)


def _fast_then_careful(*, what: str, **batch) -> dict[str, int]:
    """Run a batch fast (no savepoint per event); if anything fails, the batch was rolled back
    whole, and it runs again carefully, one savepoint per event, where failures are recorded."""
    try:
        with retried_as_a_whole():
            return _process_batch(fast=True, **batch)
    except Exception as exc:  # anything: nothing of the fast attempt remains
        logger.info("fast batch %s failed (%s); re-running it carefully", what, exc)
    if batch.get("results") is not None:
        batch["results"].clear()
    return _process_batch(fast=False, **batch)


def raw_events_process_ids(*, ids: list[int]) -> dict[int, str]:
    """Process exactly these raw events (those still waiting) as one batch, fast first and
    carefully if anything fails, as the drain does. Returns each one's resulting status.

    For callers that stored the rows themselves and want them applied now, in order: the CSV
    import, a chunk of rows at a time, inside its own transaction (the batch is a savepoint).
    """
    results: dict[int, str] = {}
    _fast_then_careful(
        what=f"of {len(ids)} given raw events",
        raw_event_id=None,
        batch_size=len(ids),
        only_ids=ids,
        results=results,
    )
    return results


def _process_batch(
    *,
    raw_event_id: int | None,
    batch_size: int,
    fast: bool,
    only_ids: list[int] | None = None,
    results: dict[int, str] | None = None,
) -> dict[str, int]:
    counts: dict[str, int] = {}
    with transaction.atomic():
        # Whole rows in the locking read itself: one round trip claims the batch.
        raws: list[RawEvent] = []
        if only_ids is not None:
            raws = list(
                RawEvent.objects.select_for_update(skip_locked=True).filter(
                    pk__in=only_ids, status=RawEvent.Status.RECEIVED
                )
            )
        elif raw_event_id is not None:
            raws = list(
                RawEvent.objects.select_for_update(skip_locked=True).filter(
                    pk=raw_event_id, status__in=[RawEvent.Status.RECEIVED, RawEvent.Status.FAILED]
                )
            )
        if only_ids is None and batch_size > len(raws):
            waiting = RawEvent.objects.select_for_update(skip_locked=True).filter(status=RawEvent.Status.RECEIVED)
            if raw_event_id is not None:
                waiting = waiting.exclude(pk=raw_event_id)
            raws += list(waiting.order_by("received_at", "id")[: batch_size - len(raws)])
        if not raws:
            return counts
        raws.sort(key=lambda r: (r.received_at, r.pk))
        connections = Connection.objects.select_related("client").in_bulk({r.connection_id for r in raws})
        for raw in raws:
            raw.connection = connections[raw.connection_id]
        if fast:
            deferred = _Deferred()
            statuses = _process_set(raws, deferred)
            _flush(deferred)
        else:
            statuses = [(raw, _process_locked(raw, deferred=None)) for raw in raws]
        for raw, status in statuses:
            counts[status] = counts.get(status, 0) + 1
            if results is not None:
                results[raw.pk] = status
    return counts


def _process_set(raws: list[RawEvent], deferred: _Deferred) -> list[tuple[RawEvent, str]]:
    """A fast batch, set-wise: normalize every raw event, then hand all the normalized events
    to each consumer at once (its `apply_events`, when its module has one; else `apply_event`
    per event, in order), then write the normalized events in one INSERT.

    Only first attempts go this way. A retried or replayed raw event may have normalized events
    and consumers already applied (idempotency decides what is left): those, and raw events
    held by their connection, take the per-event path after the set.
    """
    fresh = [raw for raw in raws if raw.attempts == 0 and not raw.connection.holds_processing]
    statuses: list[tuple[RawEvent, str]] = []
    normalized: list[NormalizedEvent] = []
    envelopes: list[BusinessEvent] = []
    for raw in fresh:
        adapter = get_adapter(raw.provider)
        raw.attempts = 1
        try:
            items = adapter.normalize(raw)
        except Exception as exc:  # also adapter None: the careful re-run records it
            raise _RerunCarefully(f"raw event {raw.pk} did not normalize: {exc}") from exc
        for item in items:
            event = _normalized_event(raw, item)
            normalized.append(event)
            envelopes.append(_envelope(raw, event, item))
        raw.status = RawEvent.Status.NORMALIZED if items else RawEvent.Status.IGNORED
        deferred.done.setdefault(raw.status, []).append(raw.pk)
        statuses.append((raw, raw.status))
    if envelopes:
        # Written before the consumers run, so every envelope carries its event's id (an
        # enrollment a rule makes points at the event that fired it); the lead the consumers
        # find and their names are filled in after, with one UPDATE. A key already taken (a race
        # with a replay) fails the INSERT: the careful re-run sorts it out.
        NormalizedEvent.objects.bulk_create(normalized)
        if normalized[0].pk is None:  # MySQL/MariaDB: bulk_create returns no ids
            ids = dict(
                NormalizedEvent.objects.filter(idempotency_key__in=[e.idempotency_key for e in normalized]).values_list(
                    "idempotency_key", "pk"
                )
            )
            for event in normalized:
                event.pk = ids[event.idempotency_key]
                event._state.adding = False
        for event, envelope in zip(normalized, envelopes, strict=True):
            envelope.normalized_event_id = event.pk
        names = []
        for consumer in _consumers():
            batch = getattr(import_module(consumer.__module__), "apply_events", None)
            if batch is not None:
                batch(events=envelopes)
            else:
                for envelope in envelopes:
                    consumer(event=envelope)
            names.append(f"{consumer.__module__}.{consumer.__name__}")
        now = timezone.now()
        for event, envelope in zip(normalized, envelopes, strict=True):
            event.lead = envelope.lead
            event.applied_consumers = names
            event.applied_at = now
        update_rows(normalized, ["lead", "applied_consumers", "applied_at"])
    done = {raw.pk for raw in fresh}
    statuses += [(raw, _process_locked(raw, deferred=deferred)) for raw in raws if raw.pk not in done]
    return statuses


def _normalized_event(raw: RawEvent, item) -> NormalizedEvent:
    """The unsaved normalized event of one item an adapter's normalize() made of `raw`."""
    key = f"{raw.provider}:{raw.connection_id}:{raw.idempotency_key}"
    return NormalizedEvent(
        idempotency_key=(f"{key}:{item.key_suffix}" if item.key_suffix else key)[:255],
        client_id=raw.client_id,
        raw_event=raw,
        event_type=item.event_type,
        occurred_at=item.occurred_at,
        data=item.data,
    )


def _envelope(raw: RawEvent, event: NormalizedEvent, item) -> BusinessEvent:
    """What the consumers get. A stored event that was applied before (a replay) brings the
    lead found last time."""
    return BusinessEvent(
        normalized_event_id=event.pk,
        event_type=event.event_type,
        client=raw.connection.client,
        occurred_at=event.occurred_at,
        provider=raw.provider,
        data=event.data,
        signal=item.signal,
        lead=event.lead if event.lead_id else None,
    )


def _flush(deferred: _Deferred) -> None:
    if deferred.applied:
        NormalizedEvent.objects.bulk_update(deferred.applied, ["lead", "applied_consumers", "applied_at"])
    now = timezone.now()
    for status, ids in deferred.done.items():
        RawEvent.objects.filter(pk__in=ids).update(
            status=status, processed_at=now, next_attempt_at=None, last_error="", attempts=F("attempts") + 1
        )


def _process_locked(raw: RawEvent, *, deferred: _Deferred | None) -> str:
    """The work on one raw event whose row lock the caller holds inside a transaction.

    deferred: the fast batch's end-of-batch writes; a failure then raises _RerunCarefully
    instead of being recorded (the careful re-run records it). None: write and record here.
    """
    if raw.connection.holds_processing:
        raw.status = RawEvent.Status.HELD
        raw.save(update_fields=["status"])
        return raw.status
    adapter = get_adapter(raw.provider)
    raw.attempts += 1
    try:
        with atomic_step():
            if adapter is None:
                raise _StageError(SyncError.Stage.NORMALIZE, LookupError(f"No adapter for provider {raw.provider!r}"))
            try:
                items = adapter.normalize(raw)
            except Exception as exc:
                raise _StageError(SyncError.Stage.NORMALIZE, exc) from exc
            _apply_normalized(raw, items, deferred)
    except _StageError as failure:
        if deferred is not None:
            raise _RerunCarefully(str(failure)) from failure
        _record_failure(raw, failure)
        return raw.status
    raw.status = RawEvent.Status.NORMALIZED if items else RawEvent.Status.IGNORED
    if deferred is not None and raw.attempts == 1:
        deferred.done.setdefault(raw.status, []).append(raw.pk)
        return raw.status
    raw.processed_at = timezone.now()
    raw.next_attempt_at = None
    raw.last_error = ""
    raw.save(update_fields=["status", "processed_at", "next_attempt_at", "last_error", "attempts"])
    if raw.attempts > 1:  # only a retried event can have an open failure to close
        SyncError.objects.filter(raw_event=raw, state__in=[SyncError.State.RETRYING, SyncError.State.DEAD]).update(
            state=SyncError.State.RESOLVED,
            resolved_at=timezone.now(),
            resolution=f"Succeeded on attempt {raw.attempts}",
        )
    return raw.status


def _record_failure(raw: RawEvent, failure: _StageError) -> None:
    original = failure.original
    message = f"{original.__class__.__name__}: {original}"[:2000]
    trace = "".join(traceback.format_exception(original))[-20000:]
    delay = retry_delay(raw.attempts)
    now = timezone.now()
    raw.status = RawEvent.Status.FAILED if delay else RawEvent.Status.DEAD
    raw.next_attempt_at = now + delay if delay else None
    raw.last_error = message
    raw.save(update_fields=["status", "next_attempt_at", "last_error", "attempts"])
    error = SyncError.objects.filter(
        raw_event=raw, stage=failure.stage, state__in=[SyncError.State.RETRYING, SyncError.State.DEAD]
    ).first()
    fields = {
        "error": message,
        "traceback": trace,
        "attempt": raw.attempts,
        "next_retry_at": raw.next_attempt_at,
        "state": SyncError.State.RETRYING if delay else SyncError.State.DEAD,
    }
    if error is None:
        SyncError.objects.create(
            connection_id=raw.connection_id, client_id=raw.client_id, raw_event=raw, stage=failure.stage, **fields
        )
    else:
        for name, value in fields.items():
            setattr(error, name, value)
        error.save()
    Connection.objects.filter(pk=raw.connection_id).update(last_error_at=now, last_error=message)
    logger.warning("raw event %s failed at %s (attempt %s): %s", raw.pk, failure.stage, raw.attempts, message)


def raw_events_requeue_due(*, stuck_after: timedelta, limit: int = 1000) -> int:
    """The sweeper: find raw events a lost message left in `received` (one drain task takes them
    all, oldest first) and failed ones whose retry time has come (a task each: the drain only
    claims `received`). Returns how many rows it found."""
    from .tasks import drain_raw_events, process_raw_event

    now = timezone.now()
    stuck = RawEvent.objects.filter(status=RawEvent.Status.RECEIVED, received_at__lt=now - stuck_after)
    stuck_count = stuck.order_by().values("pk")[:limit].count()
    due = list(
        RawEvent.objects.filter(status=RawEvent.Status.FAILED, next_attempt_at__lte=now)
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
    if stuck_count:
        # Not through the doorbell: the sweeper is the net for when that hint itself is wrong.
        drain_raw_events.apply_async()
    for pk in due:
        process_raw_event.apply_async(args=[pk])
    return stuck_count + len(due)


# --- staff actions: replay, retry, resolve, connections ---------------------------------------


def raw_events_replay(*, raw_events, actor, reason: str = "") -> int:
    """Put raw events back to `received` and enqueue them. Consumers are idempotent, so a replay
    of a processed event repeats nothing it already did; it re-runs what failed or was held."""
    from .tasks import process_raw_event

    count = 0
    with transaction.atomic():
        for raw in raw_events.select_for_update():
            previous = raw.status
            raw.status = RawEvent.Status.RECEIVED
            raw.next_attempt_at = None
            if previous == RawEvent.Status.DEAD:
                raw.attempts = 0
            raw.save(update_fields=["status", "next_attempt_at", "attempts"])
            action_record(
                verb="raw_event.replay",
                actor=actor,
                client=raw.client,
                target=raw,
                summary=f"Replayed {raw.provider} {raw.kind} (was {previous})",
                detail={"reason": reason, "previous_status": previous},
            )
            enqueue_on_commit(process_raw_event, raw.pk)
            count += 1
    return count


def sync_errors_set_state(*, errors, state: str, actor, resolution: str = "") -> int:
    if state in (SyncError.State.RESOLVED, SyncError.State.IGNORED) and not resolution.strip():
        from zartsalgo.errors import ApplicationError

        raise ApplicationError("Say how it was resolved (or why it is ignored).")
    count = 0
    now = timezone.now()
    with transaction.atomic():
        for error in errors.select_for_update():
            error.state = state
            error.resolved_by = actor if not isinstance(actor, str) else None
            error.resolved_at = now
            error.resolution = resolution[:500]
            error.save()
            action_record(
                verb=f"sync_error.{state}",
                actor=actor,
                client=error.client,
                target=error,
                summary=f"{state.title()}: {resolution}"[:500],
            )
            count += 1
    return count


def sync_errors_acknowledge(*, errors, actor) -> int:
    count = 0
    with transaction.atomic():
        for error in errors.select_for_update().filter(acknowledged_at__isnull=True):
            error.acknowledged_by = actor
            error.acknowledged_at = timezone.now()
            error.save(update_fields=["acknowledged_by", "acknowledged_at", "updated_at"])
            action_record(
                verb="sync_error.acknowledge", actor=actor, client=error.client, target=error, summary="Acknowledged"
            )
            count += 1
    return count


def connection_create(
    *,
    client,
    provider: str,
    reason: str,
    actor,
    owner=None,
    name: str = "",
    credentials: dict | None = None,
    config: dict | None = None,
    expected_freshness: timedelta | None = None,
    status: str = Connection.Status.CONNECTED,
) -> Connection:
    from zartsalgo.errors import ApplicationError

    if get_adapter(provider) is None:
        raise ApplicationError(f"Unknown provider {provider!r}", {"provider": provider})
    for key, ref in (credentials or {}).items():
        if not str(ref).startswith("env:"):
            raise ApplicationError(
                f"Credential {key!r} must be an env reference like env:NAME, never the secret itself."
            )
    with transaction.atomic():
        connection = Connection.objects.create(
            client=client,
            provider=provider,
            reason=reason,
            owner=owner,
            name=name,
            credentials=credentials or {},
            config=config or {},
            status=status,
            **({"expected_freshness": expected_freshness} if expected_freshness else {}),
        )
        action_record(
            verb="connection.create",
            actor=actor,
            client=client,
            target=connection,
            summary=f"Connected {provider}: {reason}"[:500],
        )
    return connection


def connection_set_status(*, connection: Connection, status: str, actor, reason: str = "") -> Connection:
    """Change a connection's state. Leaving paused/uncertain releases every held raw event, in
    the order received, so processing resumes exactly where it stopped (the drain takes the
    oldest first)."""
    with transaction.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        previous = connection.status
        connection.status = status
        connection.status_reason = reason[:500]
        connection.save(update_fields=["status", "status_reason", "updated_at"])
        connections_forget_cached()
        released = 0
        if not connection.holds_processing:
            held = list(
                RawEvent.objects.filter(connection=connection, status=RawEvent.Status.HELD)
                .order_by("received_at", "id")
                .values_list("pk", flat=True)
            )
            RawEvent.objects.filter(pk__in=held).update(status=RawEvent.Status.RECEIVED)
            if held:
                transaction.on_commit(raw_events_ring, robust=True)
            released = len(held)
        action_record(
            verb="connection.status",
            actor=actor,
            client=connection.client,
            target=connection,
            summary=f"{previous} → {status}"
            + (f" ({reason})" if reason else "")
            + (f"; released {released} held event(s)" if released else ""),
            detail={"released": released},
        )
    return connection


def connections_flag_stale() -> int:
    """Mark connections silent past their expected window (once, with an action-log entry)."""
    now = timezone.now()
    flagged = 0
    candidates = Connection.objects.filter(
        status__in=[Connection.Status.CONNECTED, Connection.Status.UNCERTAIN], stale_since__isnull=True
    )
    for connection in candidates.select_related("client"):
        if connection.is_stale:
            Connection.objects.filter(pk=connection.pk, stale_since__isnull=True).update(stale_since=now)
            action_record(
                verb="connection.stale",
                actor="system:freshness",
                client=connection.client,
                target=connection,
                summary=(
                    f"No {connection.provider} event since {connection.last_event_at or 'connection'}; "
                    f"expected within {connection.expected_freshness}"
                ),
            )
            flagged += 1
    return flagged
