"""CRM handoff: services and selectors (docs/crm.md).

A handoff is requested inside the caller's transaction (a workflow step, an automation rule, a
staff user): the handoff row and its `intended` action-log entry commit together, and the send
is enqueued on commit. Sending commits `sending` + the attempt number *before* the CRM is
called, and records the outcome in a second transaction after it answers.

Why a repeat never creates a second CRM contact: every attempt of one handoff carries the same
idempotency key, and both adapters turn a repeat into a no-op on the CRM's side (Standard
Webhooks receivers dedupe on `webhook-id`; HubSpot upserts on a unique property holding the
lead's stable key). So when we cannot know whether a call landed — the worker was killed
mid-call, the call timed out — sending again is the safe move. That is unlike SMS and email
(workflows.engine), where a repeat reaches a person twice and an unknown outcome is held for
review instead.
"""

from __future__ import annotations

import hashlib
import logging
import traceback
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string

from adminops.models import AdminAction
from adminops.services import Actor, action_mark_failed, action_mark_succeeded, action_record, action_record_intended
from leads.models import Activity, Lead
from leads.services import activity_record
from zartsalgo.errors import ApplicationError, InvalidTransition
from zartsalgo.tasks import enqueue_on_commit

from .crm_adapters import CRM_PROVIDERS, CrmRejected, crm_adapter
from .models import Connection, SyncError
from .models_crm import CrmHandoff

# The retry schedule (INTEGRATIONS_RETRY_SCHEDULE, ±20% jitter) is the inbound pipeline's: one
# schedule for every failure staff review, so "dead" means the same thing everywhere.
from .services import retry_delay

logger = logging.getLogger(__name__)
Status = CrmHandoff.Status
SYSTEM_ACTOR = "system:crm"
VERB = "crm.handoff"


class NoCrmConnection(ApplicationError, LookupError):
    """The client has no usable CRM connection (none, not connected, or another client's)."""

    status_code = 409
    code = "no_crm_connection"


# Used when a connection has no CrmFieldMapping rows: (lead field, CRM field). HubSpot's are its
# default contact properties; the webhook's are plain names a receiver can read without docs.
# Empty values are left out (HubSpot clears a property sent as "").
DEFAULT_MAPPINGS: dict[str, list[tuple[str, str]]] = {
    "hubspot": [
        ("first_name", "firstname"),
        ("last_name", "lastname"),
        ("email_normalized", "email"),
        ("phone_e164", "phone"),
        ("postal_code", "zip"),
        ("city", "city"),
        ("state_region", "state"),
    ],
    "crm_webhook": [
        ("lead_id", "lead_id"),
        ("first_name", "first_name"),
        ("last_name", "last_name"),
        ("phone_e164", "phone"),
        ("email_normalized", "email"),
        ("postal_code", "postal_code"),
        ("city", "city"),
        ("state_region", "state"),
        ("source", "source"),
        ("service_type", "service_type"),
        ("market", "market"),
        ("urgency", "urgency"),
        ("lead_url", "lead_url"),
    ],
}
DEFAULT_LEAD_KEY_PREFIX = "zartsalgo-lead-"


def _stuck_after() -> timedelta:
    return timedelta(seconds=settings.INTEGRATIONS_CRM_STUCK_AFTER_SECONDS)


# --- selectors -----------------------------------------------------------------------------------


def crm_connection_for_client(*, client) -> Connection:
    """The client's CRM connection: a connected crm_webhook or hubspot connection (the oldest if
    there are several). Raises NoCrmConnection."""
    connection = (
        Connection.objects.filter(client=client, provider__in=CRM_PROVIDERS, status=Connection.Status.CONNECTED)
        .order_by("created_at", "id")
        .first()
    )
    if connection is None:
        raise NoCrmConnection(f"{client} has no connected CRM connection.", {"client_id": client.pk})
    return connection


def crm_lead_key(*, connection: Connection, lead: Lead) -> str:
    """The lead's stable key in the CRM (HubSpot's unique id property): the same for every
    handoff of the lead, so two handoffs of one lead update one contact."""
    prefix = str((connection.config or {}).get("lead_key_prefix") or DEFAULT_LEAD_KEY_PREFIX)
    return f"{prefix}{lead.pk}"


def _lead_value(lead: Lead, field: str) -> Any:
    if field == "lead_id":
        return lead.pk
    if field == "lead_url":
        # Absolute only when the deployment knows its public URL (WEBHOOK_PUBLIC_BASE_URL).
        return settings.WEBHOOK_PUBLIC_BASE_URL.rstrip("/") + reverse("admin:leads_lead_change", args=[lead.pk])
    value = getattr(lead, field)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return "" if value is None else value


def crm_payload_build(*, connection: Connection, lead: Lead) -> tuple[dict[str, Any], list[str]]:
    """The prepared payload {"lead_key", "properties"} and the required CRM fields left empty."""
    mappings = [(m.lead_field, m.crm_field, m.required) for m in connection.crm_mappings.order_by("position", "id")]
    if not mappings:
        mappings = [(lead_field, crm_field, False) for lead_field, crm_field in DEFAULT_MAPPINGS[connection.provider]]
    properties: dict[str, Any] = {}
    missing: list[str] = []
    for lead_field, crm_field, required in mappings:
        value = _lead_value(lead, lead_field)
        if value in ("", None):
            if required:
                missing.append(crm_field)
            continue
        properties[crm_field] = value
    return {"lead_key": crm_lead_key(connection=connection, lead=lead), "properties": properties}, missing


def crm_handoff_key(*, connection_id: int, lead_id: int, source_key: str) -> str:
    key = f"crm:{connection_id}:{lead_id}:{source_key}"
    if len(key) <= 255:
        return key
    # Still unique per request, and still readable up to the lead.
    return f"crm:{connection_id}:{lead_id}:sha256:{hashlib.sha256(source_key.encode()).hexdigest()}"


def crm_handoffs_due(*, now=None, limit: int = 500) -> list[int]:
    """Ids of open handoffs the sweeper should send now: retries that are due, and pending or
    sending rows past their stuck time. One index range (status, next_attempt_at) per status."""
    now = now or timezone.now()
    ids: list[int] = []
    for status in CrmHandoff.OPEN_STATUSES:
        due = CrmHandoff.objects.filter(status=status, next_attempt_at__lte=now).order_by("next_attempt_at")
        ids += due.values_list("pk", flat=True)[:limit]
    return ids


# --- request ------------------------------------------------------------------------------------


def crm_handoff_request(
    *,
    lead: Lead,
    source: str,
    source_key: str,
    actor: Actor,
    connection: Connection | None = None,
    must_reach: bool = False,
) -> CrmHandoff:
    """Ask for `lead` to be put into its client's CRM. Idempotent on (connection, lead, source_key):
    a second call returns the first call's row and sends nothing more.

    Works inside the caller's transaction: the row and its `intended` action-log entry are
    written with the caller's other changes, and the send is enqueued only once they commit.
    """
    if connection is None:
        connection = crm_connection_for_client(client=lead.client)
    elif connection.provider not in CRM_PROVIDERS or connection.client_id != lead.client_id:
        raise NoCrmConnection(
            f"Connection {connection.pk} is not a CRM connection of {lead.client}.", {"connection_id": connection.pk}
        )
    key = crm_handoff_key(connection_id=connection.pk, lead_id=lead.pk, source_key=source_key)
    try:
        # A savepoint: a duplicate must not break the caller's transaction. The UNIQUE key
        # decides races between two callers, not a read before the write.
        with transaction.atomic():
            handoff = CrmHandoff.objects.create(
                client_id=lead.client_id,
                lead=lead,
                connection=connection,
                idempotency_key=key,
                source=source[:32],
                source_key=source_key[:255],
                must_reach=must_reach,
                # If the queue message is lost, the sweeper sends it from this time on.
                next_attempt_at=timezone.now() + _stuck_after(),
            )
    except IntegrityError:
        return CrmHandoff.objects.get(idempotency_key=key)
    action, _ = action_record_intended(
        verb=VERB,
        actor=actor,
        lead=lead,
        target=handoff,
        idempotency_key=key,
        summary=f"Hand lead {lead.pk} to {connection.provider} ({source})",
        detail={"connection_id": connection.pk, "source": source, "source_key": source_key, "must_reach": must_reach},
    )
    handoff.action = action
    handoff.save(update_fields=["action", "updated_at"])
    _enqueue_send(handoff.pk)
    return handoff


def _enqueue_send(handoff_id: int) -> None:
    from .tasks_crm import send_crm_handoff

    enqueue_on_commit(send_crm_handoff, handoff_id)


# --- send ---------------------------------------------------------------------------------------


def _skip_reason(handoff: CrmHandoff, now) -> str:
    if handoff.status in (Status.SUCCEEDED, Status.MANUAL, Status.DEAD):
        return f"already {handoff.status}"
    if handoff.status == Status.RETRYING and handoff.next_attempt_at and handoff.next_attempt_at > now:
        return "retry not due yet"
    if handoff.status == Status.SENDING and handoff.next_attempt_at and handoff.next_attempt_at > now:
        # Another worker is in the middle of the call (a duplicate message). Past this time the
        # call is presumed lost with its worker and is made again — safe, see the module doc.
        return "a send is in flight"
    return ""


def crm_handoff_send(*, handoff_id: int) -> CrmHandoff | None:
    """Send one handoff to its CRM (the Celery task's body). Returns the row as it ends up.

    Phase 1 (transaction, row locked): build the payload, mark `sending`, attempts + 1, commit.
    Phase 2 (no transaction, no lock held): the CRM call.
    Phase 3 (transaction, row locked): record success, a retry, or a dead letter.
    """
    now = timezone.now()
    with transaction.atomic():
        handoff = CrmHandoff.objects.select_for_update().filter(pk=handoff_id).first()
        if handoff is None:
            return None
        reason = _skip_reason(handoff, now)
        if reason:
            logger.info("CRM handoff %s not sent: %s", handoff_id, reason)
            return handoff
        connection = Connection.objects.get(pk=handoff.connection_id)
        lead = Lead.objects.get(pk=handoff.lead_id)
        if connection.status != Connection.Status.CONNECTED:
            # Uncertainty pauses (DESIGN.md): held, position kept, no attempt spent; looked at
            # again by the sweeper until the connection is connected again.
            handoff.status = Status.RETRYING if handoff.attempts else Status.PENDING
            handoff.next_attempt_at = now + _stuck_after()
            handoff.last_error = f"Held: the connection is {connection.status}."
            handoff.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
            return handoff
        payload, missing = crm_payload_build(connection=connection, lead=lead)
        handoff.payload = payload
        handoff.attempts += 1
        if missing:
            # Nothing a retry can fix: a person completes the lead or settles it by hand.
            _record_dead(
                handoff, message=f"Required CRM field(s) without a value on the lead: {', '.join(missing)}", trace=""
            )
            return handoff
        handoff.status = Status.SENDING
        handoff.next_attempt_at = now + _stuck_after()
        handoff.save(update_fields=["payload", "attempts", "status", "next_attempt_at", "updated_at"])
    attempt = handoff.attempts
    # Committed: the row says "sending, attempt N" and the log says "intended" before the CRM
    # hears anything. If this process dies now, the sweeper sends it again with the same key.
    try:
        crm_id = crm_adapter(connection.provider).upsert_contact(
            connection=connection, payload=payload, idempotency_key=handoff.idempotency_key
        )
    except CrmRejected as exc:
        return _record_failure(handoff_id, attempt=attempt, exc=exc, retryable=False)
    except Exception as exc:  # CrmUnavailable, CredentialMissing, or a bug: retried on the schedule
        return _record_failure(handoff_id, attempt=attempt, exc=exc, retryable=True)
    return _record_success(handoff_id, attempt=attempt, crm_id=crm_id)


def _record_success(handoff_id: int, *, attempt: int, crm_id: str) -> CrmHandoff:
    now = timezone.now()
    with transaction.atomic():
        handoff = CrmHandoff.objects.select_for_update().get(pk=handoff_id)
        if handoff.status in CrmHandoff.FINAL_STATUSES:
            return handoff  # another attempt, or a person, settled it meanwhile
        handoff.status = Status.SUCCEEDED
        handoff.crm_id = crm_id[:255]
        handoff.succeeded_at = now
        handoff.next_attempt_at = None
        handoff.last_error = ""
        handoff.save(update_fields=["status", "crm_id", "succeeded_at", "next_attempt_at", "last_error", "updated_at"])
        _open_errors(handoff).update(
            state=SyncError.State.RESOLVED,
            next_retry_at=None,
            resolved_at=now,
            resolution=f"Succeeded on attempt {attempt}",
            updated_at=now,
        )
        connection = handoff.connection
        _action_finish(handoff, succeeded=True, message=f"In {connection.provider} as {crm_id} (attempt {attempt})")
        activity_record(
            lead=handoff.lead,
            kind=Activity.Kind.NOTE,
            summary=f"Handed off to the client's CRM ({connection.provider}, id {crm_id})",
            actor=SYSTEM_ACTOR,
            provider=connection.provider,
            # One timeline entry per handoff, however often the success is recorded.
            provider_id=f"crm-handoff-{handoff.pk}",
            data={"handoff_id": handoff.pk, "crm_id": crm_id, "attempts": attempt},
        )
    return handoff


def _record_failure(handoff_id: int, *, attempt: int, exc: BaseException, retryable: bool) -> CrmHandoff:
    message = f"{exc.__class__.__name__}: {exc}"[:2000]
    trace = "".join(traceback.format_exception(exc))[-20000:]
    with transaction.atomic():
        handoff = CrmHandoff.objects.select_for_update().get(pk=handoff_id)
        if handoff.status != Status.SENDING or handoff.attempts != attempt:
            return handoff  # a later attempt or a person has moved it on; their outcome stands
        delay = retry_delay(attempt) if retryable else None
        if delay is None:
            _record_dead(handoff, message=message, trace=trace)
        else:
            handoff.status = Status.RETRYING
            handoff.next_attempt_at = timezone.now() + delay
            handoff.last_error = message
            handoff.save(update_fields=["status", "next_attempt_at", "last_error", "updated_at"])
            _sync_error_upsert(handoff, message=message, trace=trace, state=SyncError.State.RETRYING)
    logger.warning("CRM handoff %s failed (attempt %s): %s", handoff_id, attempt, message)
    return handoff


def _record_dead(handoff: CrmHandoff, *, message: str, trace: str) -> None:
    """Dead letter: failure review, the log entry failed, then the fallbacks (inside the
    caller's transaction, with the row locked)."""
    handoff.status = Status.DEAD
    handoff.next_attempt_at = None
    handoff.last_error = message
    handoff.save(update_fields=["payload", "attempts", "status", "next_attempt_at", "last_error", "updated_at"])
    error = _sync_error_upsert(handoff, message=message, trace=trace, state=SyncError.State.DEAD)
    _action_finish(handoff, succeeded=False, message=message)
    for path in settings.INTEGRATIONS_CRM_DEAD_HANDLERS:
        try:
            with transaction.atomic():
                import_string(path)(handoff=handoff)
        except Exception as exc:
            # The dead letter itself stands (it is in failure review); the broken fallback is
            # written on it for the person who looks.
            logger.exception("CRM dead-letter handler %s failed for handoff %s", path, handoff.pk)
            error.error = f"{error.error}\nDead-letter handler {path} failed: {exc.__class__.__name__}: {exc}"[:5000]
            error.save(update_fields=["error", "updated_at"])


def _open_errors(handoff: CrmHandoff) -> QuerySet[SyncError]:
    return SyncError.objects.filter(crm_handoff=handoff, state__in=[SyncError.State.RETRYING, SyncError.State.DEAD])


def _sync_error_upsert(handoff: CrmHandoff, *, message: str, trace: str, state: str) -> SyncError:
    now = timezone.now()
    fields = {
        "error": message,
        "traceback": trace,
        "attempt": handoff.attempts,
        "next_retry_at": handoff.next_attempt_at,
        "state": state,
    }
    error = _open_errors(handoff).first()
    if error is None:
        error = SyncError.objects.create(
            connection_id=handoff.connection_id,
            client_id=handoff.client_id,
            crm_handoff=handoff,
            stage=SyncError.Stage.OUTBOUND,
            **fields,
        )
    else:
        for name, value in fields.items():
            setattr(error, name, value)
        error.save()
    Connection.objects.filter(pk=handoff.connection_id).update(last_error_at=now, last_error=message)
    return error


def _action_finish(handoff: CrmHandoff, *, succeeded: bool, message: str) -> None:
    """Close the handoff's `intended` entry (or `unknown`: the stale-intent sweeper marks one
    that waits through long retries). A finished entry is left as it is."""
    action = AdminAction.objects.filter(pk=handoff.action_id).first() if handoff.action_id else None
    if action is None or action.state not in (AdminAction.State.INTENDED, AdminAction.State.UNKNOWN):
        return
    detail = {"attempts": handoff.attempts, "crm_id": handoff.crm_id}
    if succeeded:
        action_mark_succeeded(action=action, summary=f"Handed lead {handoff.lead_id} off: {message}", detail=detail)
    else:
        action_mark_failed(action=action, error=message, detail=detail)


# --- staff actions ------------------------------------------------------------------------------


def crm_handoffs_retry(*, handoffs: QuerySet[CrmHandoff], actor: Actor) -> int:
    """Send handoffs again now (from the admin or failure review). A dead one starts a fresh
    retry schedule. In-flight and settled ones are left alone. Returns how many were queued."""
    count = 0
    now = timezone.now()
    with transaction.atomic():
        retryable = handoffs.filter(status__in=[Status.PENDING, Status.RETRYING, Status.DEAD])
        for handoff in retryable.select_for_update().order_by("pk"):
            previous = handoff.status
            handoff.status = Status.PENDING
            handoff.next_attempt_at = now + _stuck_after()
            if previous == Status.DEAD:
                handoff.attempts = 0
            action = AdminAction.objects.filter(pk=handoff.action_id).first() if handoff.action_id else None
            if action is None or action.state in (AdminAction.State.SUCCEEDED, AdminAction.State.FAILED):
                # A new send is about to happen: it gets its own `intended` entry, like the first.
                handoff.action, _ = action_record_intended(
                    verb=VERB,
                    actor=actor,
                    lead=handoff.lead,
                    target=handoff,
                    summary=f"Hand lead {handoff.lead_id} to the CRM again (retry after {previous})",
                    detail={"connection_id": handoff.connection_id, "retry_of_action": handoff.action_id},
                )
            handoff.save(update_fields=["status", "next_attempt_at", "attempts", "action", "updated_at"])
            action_record(
                verb="crm.handoff.retry",
                actor=actor,
                lead=handoff.lead,
                target=handoff,
                summary=f"Retry CRM handoff #{handoff.pk} (was {previous})",
                detail={"previous_status": previous},
            )
            _enqueue_send(handoff.pk)
            count += 1
    return count


def crm_handoff_mark_manual(*, handoff: CrmHandoff, actor: Actor, reason: str, crm_id: str = "") -> CrmHandoff:
    """A person put the lead into the CRM (or decided it need not be): the handoff is settled,
    its failures resolved, and nothing will send it again."""
    if not reason.strip():
        raise ApplicationError("Say how the handoff was settled (it goes in the action log).")
    now = timezone.now()
    with transaction.atomic():
        handoff = CrmHandoff.objects.select_for_update().get(pk=handoff.pk)
        if handoff.status in CrmHandoff.FINAL_STATUSES:
            raise InvalidTransition(
                f"CRM handoff #{handoff.pk} is already {handoff.status}.", {"handoff_id": handoff.pk}
            )
        if handoff.status == Status.SENDING and handoff.next_attempt_at and handoff.next_attempt_at > now:
            raise InvalidTransition(
                f"CRM handoff #{handoff.pk} is being sent right now; wait for its outcome.", {"handoff_id": handoff.pk}
            )
        previous = handoff.status
        handoff.status = Status.MANUAL
        handoff.crm_id = (crm_id.strip() or handoff.crm_id)[:255]
        handoff.next_attempt_at = None
        handoff.save(update_fields=["status", "crm_id", "next_attempt_at", "updated_at"])
        _open_errors(handoff).update(
            state=SyncError.State.RESOLVED,
            next_retry_at=None,
            resolved_by=actor if not isinstance(actor, str) else None,
            resolved_at=now,
            resolution=f"Settled by hand: {reason}"[:500],
            updated_at=now,
        )
        _action_finish(handoff, succeeded=False, message=f"Not sent by the system; settled by hand: {reason}")
        action_record(
            verb="crm.handoff.manual",
            actor=actor,
            lead=handoff.lead,
            target=handoff,
            summary=f"CRM handoff #{handoff.pk} settled by hand: {reason}",
            detail={"previous_status": previous, "crm_id": handoff.crm_id},
        )
    return handoff


def crm_handoffs_export(*, handoffs: QuerySet[CrmHandoff], actor: Actor) -> list[dict[str, Any]]:
    """The prepared payloads, for a person to put into the CRM by hand (logged: they hold
    personal data). A handoff never attempted gets its payload built now."""
    rows = []
    for handoff in handoffs.select_related("connection", "lead", "client").order_by("pk"):
        payload = handoff.payload or crm_payload_build(connection=handoff.connection, lead=handoff.lead)[0]
        rows.append(
            {
                "handoff_id": handoff.pk,
                "idempotency_key": handoff.idempotency_key,
                "client": handoff.client.slug,
                "lead_id": handoff.lead_id,
                "provider": handoff.connection.provider,
                "status": handoff.status,
                "crm_id": handoff.crm_id,
                "last_error": handoff.last_error,
                "payload": payload,
            }
        )
    action_record(
        verb="crm.handoff.export",
        actor=actor,
        summary=f"Exported {len(rows)} prepared CRM payload(s)",
        detail={"handoff_ids": [row["handoff_id"] for row in rows][:1000]},
    )
    return rows


def crm_handoffs_requeue_due(*, limit: int = 500) -> int:
    """The sweeper: enqueue every due handoff (see crm_handoffs_due). A row enqueued twice is
    sent once: the second message finds it in flight or settled."""
    from .tasks_crm import send_crm_handoff

    ids = crm_handoffs_due(limit=limit)
    for pk in ids:
        send_crm_handoff.apply_async(args=[pk])
    return len(ids)
