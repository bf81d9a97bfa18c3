"""The engine: runs each enrollment's steps, at the right local time, sending each message once.

One run works an enrollment forward until it must wait (a delay, a wait step, quiet hours, a
hold) or ends. Every step is a transaction of its own holding the enrollment's row lock, except a
send's provider call, which happens between two transactions:

1. lock; the outbound message row (UNIQUE key enrollment-step-visit) and the action log's
   `intended` row commit; the enrollment is leased (WORKFLOWS_LEASE_SECONDS) so nobody else runs it;
2. the provider call, outside any transaction;
3. lock again; the outcome is written: sent (timeline activity with the provider id), rejected
   (not sent: recorded, the workflow goes on or retries), or unknown (a timeout, a 5xx: the
   enrollment is held for a person, never re-sent blindly).

A task that dies between 1 and 3 leaves the message `intended`; whoever runs the enrollment next
finds it, marks it `unknown` and holds the enrollment. That is the only way to be sure nobody
gets the same text twice.
"""

from __future__ import annotations

import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.utils import timezone

from adminops.models import AdminAction
from adminops.services import (
    action_build,
    action_mark_failed,
    action_mark_succeeded,
    action_mark_unknown,
    action_record_intended,
)
from integrations.models import Connection, NormalizedEvent
from leads.models import Activity, Consent, Lead
from leads.services import activity_build, activity_effects, activity_record, lead_change_tags, lead_set_status
from zartsalgo.db import columns, update_changed, update_rows
from zartsalgo.errors import ApplicationError
from zartsalgo.tasks import enqueue_on_commit

from . import timing
from .channels import ConsoleChannel, SendGridEmailChannel, SendOutcomeUnknown, SendRejected, TwilioSmsChannel
from .models import Enrollment, OutboundMessage, Step, StepRun, Workflow
from .rendering import render, render_email_html

logger = logging.getLogger(__name__)
ACTOR = "system:workflows"
MAX_STEPS_PER_RUN = 50
RETRYABLE_SEND_ATTEMPTS = 3


# --- scheduling ----------------------------------------------------------------------------------


def _lease() -> timedelta:
    return timedelta(seconds=settings.WORKFLOWS_LEASE_SECONDS)


def enrollments_dispatch_due(*, limit: int = 500) -> int:
    """Claim due enrollments (active with a step due, or waiting past their timeout) and enqueue
    their runs, WORKFLOWS_RUN_BATCH enrollments per task (a task per step would cost more than
    the step). SKIP LOCKED: several schedulers never claim the same row. The claim moves
    next_run_at forward by the lease, so a lost task only delays its enrollments by that much."""
    from .tasks import run_enrollments

    now = timezone.now()
    # A connection that was paused, uncertain or failing may be fine again: enrollments it held
    # try their send once a minute (and hold again, in place, if it is still not usable).
    Enrollment.objects.filter(
        state=Enrollment.State.HELD, hold_kind="channel", held_at__lte=now - timedelta(seconds=60)
    ).update(state=Enrollment.State.ACTIVE, hold_kind="", hold_reason="", next_run_at=now)
    with transaction.atomic():
        # One state per query: each reads the (state, next_run_at) index in order and stops at
        # `limit` rows, with no sort, whatever the size of the table.
        due: list[int] = []
        for state in (Enrollment.State.ACTIVE, Enrollment.State.WAITING):
            if len(due) >= limit:
                break
            due += list(
                Enrollment.objects.select_for_update(skip_locked=True)
                .filter(state=state, next_run_at__lte=now)
                .order_by("next_run_at")
                .values_list("pk", flat=True)[: limit - len(due)]
            )
        if due:
            lease = now + _lease()
            Enrollment.objects.filter(pk__in=due).update(next_run_at=lease, updated_at=now)
            size = settings.WORKFLOWS_RUN_BATCH
            for start in range(0, len(due), size):
                enqueue_on_commit(run_enrollments, due[start : start + size], lease.isoformat())
    return len(due)


def enrollments_run(*, enrollment_ids: list[int], claim: str) -> dict[str, int]:
    """Run claimed enrollments: together, a cycle per transaction (_run_batch), falling back to
    one at a time (each in its own transactions) for any the batch hands back, and for all of
    them if the batch itself fails. One failing does not stop the others: its lease runs out
    and the scheduler hands it out again."""
    states: dict[str, int] = {}
    done, due_now, under_claim = _run_batch(enrollment_ids, claim)
    for state in done.values():
        states[state] = states.get(state, 0) + 1
    for enrollment_id, its_claim in [*((pk, None) for pk in due_now), *((pk, claim) for pk in under_claim)]:
        try:
            state = enrollment_run(enrollment_id=enrollment_id, claim=its_claim)
        except Exception:
            logger.exception("enrollment %s failed to run; it is retried when its lease ends", enrollment_id)
            state = "error"
        states[state] = states.get(state, 0) + 1
    return states


# --- one run -------------------------------------------------------------------------------------


@dataclass
class _PendingSend:
    message_id: int
    channel: Any
    params: dict[str, Any]


_STOP = "stop"
_CONTINUE = "continue"


def enrollment_run(*, enrollment_id: int, claim: str | None = None) -> str:
    """Work the enrollment forward. claim: the lease the scheduler gave it (a stale claim, e.g.
    a redelivered task after someone else ran it, does nothing). Returns the state it ends in."""
    state = "missing"
    cache: dict = {}
    for _ in range(MAX_STEPS_PER_RUN):
        with transaction.atomic():
            enrollment = _lock(Enrollment.objects.select_for_update(skip_locked=True).filter(pk=enrollment_id), cache)
            if enrollment is None:
                return "locked"
            state = enrollment.state
            if not _runnable(enrollment, claim):
                return state
            claim = None  # only the first step needs the scheduler's claim
            outcome = _run_current(enrollment)
        if isinstance(outcome, _PendingSend):
            outcome = _deliver(outcome, enrollment_id=enrollment_id, cache=cache)
        if outcome == _STOP:
            return Enrollment.objects.values_list("state", flat=True).get(pk=enrollment_id)
    # A long chain of instant steps (or a loop): let the scheduler pick it up again at once.
    Enrollment.objects.filter(pk=enrollment_id, state=Enrollment.State.ACTIVE).update(next_run_at=timezone.now())
    return Enrollment.State.ACTIVE


def _lock(queryset, cache: dict | None = None) -> Enrollment | None:
    """Lock enrollment rows alone, then attach workflow and client. On MariaDB a FOR UPDATE over
    a join would lock the workflow and client rows too, serializing every run of a client."""
    enrollment = queryset.first()
    if enrollment is not None:
        _attach(enrollment, cache)
    return enrollment


def _attach(enrollment: Enrollment, cache: dict | None = None) -> Enrollment:
    """Attach the workflow and client, read once per run (`cache`): they hold the send switches,
    which must be current when the run starts, not re-read for every step of it."""
    from leads.models import Client

    cache = {} if cache is None else cache
    key_w, key_c = ("workflow", enrollment.workflow_id), ("client", enrollment.client_id)
    if key_w not in cache:
        cache[key_w] = Workflow.objects.get(pk=enrollment.workflow_id)
    if key_c not in cache:
        cache[key_c] = Client.objects.get(pk=enrollment.client_id)
    enrollment.workflow, enrollment.client = cache[key_w], cache[key_c]
    return enrollment


def _runnable(enrollment: Enrollment, claim: str | None) -> bool:
    now = timezone.now()
    if enrollment.state not in (Enrollment.State.ACTIVE, Enrollment.State.WAITING):
        return False
    if claim is not None:
        return enrollment.next_run_at is not None and enrollment.next_run_at.isoformat() == claim
    if enrollment.state == Enrollment.State.WAITING:
        return enrollment.next_run_at is not None and enrollment.next_run_at <= now
    return enrollment.next_run_at is None or enrollment.next_run_at <= now


# Steps of a published version never change (publishing freezes them; enrollments only ever
# pin published versions), so they are read once per process.
_VERSION_STEPS: dict[int, list[Step]] = {}


def _steps(enrollment: Enrollment) -> list[Step]:
    steps = _VERSION_STEPS.get(enrollment.version_id)
    if steps is None:
        if len(_VERSION_STEPS) > 1000:
            _VERSION_STEPS.clear()
        steps = list(Step.objects.filter(version_id=enrollment.version_id).order_by("position", "id"))
        _VERSION_STEPS[enrollment.version_id] = steps
    return steps


def steps_forget_cached() -> None:
    """Drop the per-process step cache (tests, where ids are reused after a rollback)."""
    _VERSION_STEPS.clear()


def _resolve(enrollment: Enrollment, step: Step, target: str) -> str | None:
    """The key of the step a target leads to; None = the end of the workflow."""
    steps = _steps(enrollment)
    if target == "exit":
        return None
    if target == "next":
        index = next(i for i, s in enumerate(steps) if s.key == step.key)
        return steps[index + 1].key if index + 1 < len(steps) else None
    return target


def _run_current(enrollment: Enrollment) -> str | _PendingSend:
    batch = _BATCH.get()
    lead = batch.leads[enrollment.lead_id] if batch is not None else Lead.objects.get(pk=enrollment.lead_id)
    exit_reason = exit_reason_for(enrollment=enrollment, lead=lead)
    if exit_reason is not None:
        enrollment_finish(
            enrollment=enrollment, state=Enrollment.State.EXITED, reason=exit_reason[0], detail=exit_reason[1]
        )
        return _STOP
    step = next((s for s in _steps(enrollment) if s.key == enrollment.step_key), None)
    if step is None:
        enrollment_finish(enrollment=enrollment, state=Enrollment.State.COMPLETED, reason="", detail="")
        return _STOP
    if enrollment.state == Enrollment.State.WAITING:  # its timeout has passed: the "no" path
        _complete_run(enrollment, step, summary="No event before the timeout", detail={"outcome": "no"})
        return _move(enrollment, _resolve(enrollment, step, step.config.get("no", "next")))
    if batch is not None and step.kind == Step.Kind.UPDATE_LEAD:
        raise _OneByOne("update_lead changes the lead the batch read")
    if batch is not None and step.kind == Step.Kind.CRM_HANDOFF:
        raise _OneByOne("a CRM handoff is written by its own service")
    handler = _HANDLERS[step.kind]
    return handler(enrollment, step, lead)


def _move(enrollment: Enrollment, key: str | None, *, at: datetime | None = None) -> str:
    enrollment.visit += 1
    if key is None:
        enrollment_finish(enrollment=enrollment, state=Enrollment.State.COMPLETED, reason="", detail="")
        return _STOP
    enrollment.step_key = key
    enrollment.state = Enrollment.State.ACTIVE
    enrollment.waiting_for = ""
    enrollment.next_run_at = at or timezone.now()
    _save(enrollment, ["visit", "step_key", "state", "waiting_for", "next_run_at", "updated_at"])
    return _STOP if at and at > timezone.now() else _CONTINUE


def _step_run(enrollment: Enrollment, step: Step, state: str, summary: str = "", **fields) -> StepRun:
    if (batch := _BATCH.get()) is not None:
        return batch.step_run(enrollment, step, state, summary, **fields)
    run, created = StepRun.objects.get_or_create(
        enrollment=enrollment,
        step_key=step.key,
        visit=enrollment.visit,
        defaults={
            "client_id": enrollment.client_id,
            "step_kind": step.kind,
            "state": state,
            "summary": summary[:300],
            **fields,
        },
    )
    if not created:
        run.state, run.summary = state, summary[:300] or run.summary
        for name, value in fields.items():
            setattr(run, name, value)
        run.save()
    return run


def _complete_run(enrollment: Enrollment, step: Step, *, summary: str, detail: dict | None = None, state=None) -> None:
    _step_run(
        enrollment,
        step,
        state or StepRun.State.SUCCEEDED,
        summary,
        finished_at=timezone.now(),
        detail=detail or {},
    )


def enrollment_finish(*, enrollment: Enrollment, state: str, reason: str, detail: str) -> Enrollment:
    enrollment.state = state
    enrollment.exit_reason = reason
    enrollment.exit_detail = detail[:300]
    enrollment.finished_at = timezone.now()
    enrollment.next_run_at = None
    enrollment.waiting_for = ""
    enrollment.live_lead_id = None
    _save(enrollment, None)
    return enrollment


def enrollment_hold(*, enrollment: Enrollment, reason: str, kind: str) -> None:
    enrollment.state = Enrollment.State.HELD
    enrollment.hold_reason = reason[:300]
    enrollment.hold_kind = kind
    enrollment.held_at = timezone.now()
    _save(enrollment, ["state", "hold_reason", "hold_kind", "held_at", "updated_at"])


# --- exit conditions -----------------------------------------------------------------------------


def exit_reason_for(*, enrollment: Enrollment, lead: Lead) -> tuple[str, str] | None:
    """Job booked, invoice paid, unsubscribed, lead lost: checked before every step and whenever
    an event arrives for the lead."""
    reasons = Enrollment.ExitReason
    if lead.status == Lead.Status.BOOKED:
        return reasons.JOB_BOOKED, "The lead booked a job"
    if lead.status == Lead.Status.LOST:
        return reasons.LEAD_LOST, f"Lead marked lost ({lead.get_lost_reason_display() or 'no reason'})"
    batch = _BATCH.get()
    if batch is not None and lead.pk in batch.leads:  # read for the whole batch at the start of its cycle
        revoked = batch.revoked.get(lead.pk, ())
        paid = any(at >= enrollment.created_at for at in batch.paid.get(lead.pk, ()))
    else:
        revoked = Consent.objects.filter(lead=lead, state=Consent.State.REVOKED).values_list("channel", flat=True)
        paid = NormalizedEvent.objects.filter(
            lead=lead, event_type="invoice.paid", occurred_at__gte=enrollment.created_at
        ).exists()
    if revoked:
        return reasons.UNSUBSCRIBED, f"Consent revoked: {', '.join(sorted(revoked))}"
    if paid:
        return reasons.INVOICE_PAID, "An invoice was paid"
    return None


# --- step kinds ----------------------------------------------------------------------------------


def _run_delay(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    duration = step.config["duration"]
    until = timing.add_delay(
        start=timezone.now(), amount=duration["amount"], unit=duration["unit"], tz=enrollment.client.tz
    )
    _complete_run(
        enrollment, step, summary=f"Wait {duration['amount']} {duration['unit']}", detail={"until": until.isoformat()}
    )
    return _move(enrollment, _resolve(enrollment, step, "next"), at=until)


def _happened(enrollment: Enrollment, lead: Lead, event: str, since: datetime) -> bool:
    if event == "sms.replied":
        return NormalizedEvent.objects.filter(lead=lead, event_type="sms.received", occurred_at__gte=since).exists()
    if event in ("email.opened", "email.clicked"):
        wanted = ["clicked"] if event == "email.clicked" else ["opened", "clicked"]
        ids = OutboundMessage.objects.filter(enrollment=enrollment, channel="email", status="sent").values(
            "activity_id"
        )
        return Activity.objects.filter(pk__in=ids, delivery_status__in=wanted).exists()
    if event == "invoice.paid":
        return NormalizedEvent.objects.filter(lead=lead, event_type="invoice.paid", occurred_at__gte=since).exists()
    if event == "job.booked":
        return (
            lead.status == Lead.Status.BOOKED
            or NormalizedEvent.objects.filter(lead=lead, event_type="job.booked", occurred_at__gte=since).exists()
        )
    return False


def _last_send_at(enrollment: Enrollment) -> datetime:
    last = (
        OutboundMessage.objects.filter(enrollment=enrollment)
        .order_by("-created_at")
        .values_list("created_at", flat=True)
    )
    return last.first() or enrollment.created_at


def _run_wait(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    event = step.config["event"]
    # What happened since our last message counts: a reply that came in while this step was
    # being reached is still a reply to it.
    if _happened(enrollment, lead, event, _last_send_at(enrollment)):
        _complete_run(enrollment, step, summary=f"{event}: already happened", detail={"outcome": "yes"})
        return _move(enrollment, _resolve(enrollment, step, step.config.get("yes", "next")))
    timeout = step.config["timeout"]
    until = timing.add_delay(
        start=timezone.now(), amount=timeout["amount"], unit=timeout["unit"], tz=enrollment.client.tz
    )
    _step_run(enrollment, step, StepRun.State.WAITING, f"Waiting for {event} until {until:%Y-%m-%d %H:%M} UTC")
    enrollment.state = Enrollment.State.WAITING
    enrollment.waiting_for = event
    enrollment.next_run_at = until
    _save(enrollment, ["state", "waiting_for", "next_run_at", "updated_at"])
    return _STOP


def _branch_true(enrollment: Enrollment, step: Step, lead: Lead) -> bool:
    config = step.config
    if config["condition"] != "lead_field":
        return _happened(enrollment, lead, config["condition"], enrollment.created_at)
    value = getattr(lead, config["field"]) or ""
    match config.get("op", "eq"):
        case "eq":
            return value == config.get("value")
        case "ne":
            return value != config.get("value")
        case "in":
            return value in config.get("value", [])
        case "empty":
            return value == ""
        case "not_empty":
            return value != ""
    return False


def _run_branch(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    result = _branch_true(enrollment, step, lead)
    target = step.config.get("yes" if result else "no", "next")
    _complete_run(
        enrollment,
        step,
        summary=f"{step.config['condition']}: {'yes' if result else 'no'}",
        detail={"outcome": "yes" if result else "no"},
    )
    return _move(enrollment, _resolve(enrollment, step, target))


def _run_task(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    from .models import StaffTask

    config = step.config
    assignee = lead.owner
    if config.get("assignee"):
        assignee = get_user_model().objects.filter(username=config["assignee"], is_active=True).first() or assignee
    due = None
    if config.get("due"):
        due = timing.add_delay(
            start=timezone.now(), amount=config["due"]["amount"], unit=config["due"]["unit"], tz=enrollment.client.tz
        )
    task, _ = StaffTask.objects.get_or_create(
        idempotency_key=f"wf-{enrollment.pk}-{step.key}-{enrollment.visit}",
        defaults={
            "client_id": enrollment.client_id,
            "lead": lead,
            "enrollment": enrollment,
            "title": render(config["title"], lead=lead, client=enrollment.client)[:200] or step.name or "Follow up",
            "notes": render(config.get("notes", ""), lead=lead, client=enrollment.client),
            "assignee": assignee,
            "due_at": due,
        },
    )
    _complete_run(
        enrollment, step, summary=f"Task for {assignee or 'the team'}: {task.title}", detail={"task_id": task.pk}
    )
    return _move(enrollment, _resolve(enrollment, step, "next"))


def _run_update(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    config = step.config
    done = []
    try:
        if config.get("status") and config["status"] != lead.status:
            lead_set_status(lead=lead, status=config["status"], actor=ACTOR, reason=f"Workflow {enrollment.workflow}")
            done.append(f"status → {config['status']}")
        add = [config["add_tag"]] if config.get("add_tag") else []
        remove = [config["remove_tag"]] if config.get("remove_tag") else []
        if add or remove:
            lead_change_tags(lead=lead, actor=ACTOR, add=add, remove=remove)
            done.append(", ".join([*(f"+{t}" for t in add), *(f"-{t}" for t in remove)]))
    except ApplicationError as exc:  # e.g. a status move the pipeline does not allow from here
        _complete_run(
            enrollment, step, summary=f"Not applied: {exc}", state=StepRun.State.FAILED, detail={"error": str(exc)}
        )
        return _move(enrollment, _resolve(enrollment, step, "next"))
    _complete_run(enrollment, step, summary="; ".join(done) or "Nothing to change")
    return _move(enrollment, _resolve(enrollment, step, "next"))


def _run_exit(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    _complete_run(enrollment, step, summary=step.config.get("reason") or "Exit")
    enrollment.visit += 1
    enrollment_finish(
        enrollment=enrollment,
        state=Enrollment.State.EXITED,
        reason=Enrollment.ExitReason.EXIT_STEP,
        detail=step.config.get("reason") or step.name or "Exit step",
    )
    return _STOP


def _run_crm_handoff(enrollment: Enrollment, step: Step, lead: Lead) -> str:
    """Ask for a handoff of the lead to the client's CRM (integrations.crm) and move on: the
    handoff has its own record, retries and dead letter, so the workflow does not wait for the
    CRM. Its key is the step's visit, so a re-run of this step (a retried task) finds the same
    handoff instead of asking for a second one."""
    from integrations.crm import NoCrmConnection, crm_handoff_request

    hold = _hold_reason(enrollment)
    if hold:
        _step_run(enrollment, step, StepRun.State.HELD, hold)
        enrollment_hold(enrollment=enrollment, reason=hold, kind="switch")
        return _STOP
    try:
        handoff = crm_handoff_request(
            lead=lead,
            source="workflow",
            source_key=f"enrollment:{enrollment.pk}:step:{step.key}:visit:{enrollment.visit}",
            actor=ACTOR,
            must_reach=step.config.get("must_reach", True),
        )
    except NoCrmConnection as exc:
        # Uncertainty pauses: without a usable CRM connection the enrollment keeps its place
        # until staff connect one and release it.
        reason = f"CRM handoff not possible: {exc}"
        _step_run(enrollment, step, StepRun.State.HELD, reason)
        enrollment_hold(enrollment=enrollment, reason=reason, kind="channel")
        return _STOP
    _complete_run(
        enrollment,
        step,
        summary=f"Handed off to {handoff.connection} (handoff #{handoff.pk}, {handoff.status})",
        detail={"handoff_id": handoff.pk},
    )
    return _move(enrollment, _resolve(enrollment, step, "next"))


# --- sends ---------------------------------------------------------------------------------------


def _connection(client_id: int, provider: str) -> Connection | None:
    return (
        Connection.objects.filter(client_id=client_id, provider=provider)
        .order_by("-status", "-id")  # any; the status decides below
        .first()
    )


def _channel(enrollment: Enrollment, kind: str) -> tuple[Any, str, str] | str:
    """(channel, from address, status callback URL) or the reason sends must wait."""
    provider = "twilio" if kind == Step.Kind.SEND_SMS else "sendgrid"
    connection = _connection(enrollment.client_id, provider)
    if connection is None:
        if settings.WORKFLOWS_CONSOLE_CHANNEL:
            return ConsoleChannel(path=settings.WORKFLOWS_CONSOLE_CHANNEL_PATH or None), "console", ""
        return f"No {provider} connection for {enrollment.client}"
    if connection.holds_processing or connection.status == Connection.Status.ERROR:
        return f"{connection} is {connection.status}: {connection.status_reason or 'sends held'}"
    config = connection.config or {}
    try:
        if provider == "twilio":
            channel = TwilioSmsChannel(
                account_sid=config.get("account_sid", ""),
                auth_token=connection.secret("auth_token"),
                base_url=config.get("api_base_url") or None,
            )
            callback = ""
            if settings.WEBHOOK_PUBLIC_BASE_URL:
                callback = (
                    f"{settings.WEBHOOK_PUBLIC_BASE_URL.rstrip('/')}/api/webhooks/twilio/{connection.webhook_token}/"
                )
            return channel, config.get("from_number", ""), callback
        channel = SendGridEmailChannel(api_key=connection.secret("api_key"), host=config.get("api_base_url") or None)
        return channel, config.get("from_email", ""), ""
    except LookupError as exc:  # CredentialMissing
        return f"{connection}: {exc}"


def _hold_reason(enrollment: Enrollment) -> str:
    client, workflow = enrollment.client, enrollment.workflow
    if client.sends_held:
        return f"Client sends held: {client.sends_held_reason}"
    if workflow.sends_held:
        return f"Workflow sends held: {workflow.sends_held_reason}"
    return ""


def _run_send(enrollment: Enrollment, step: Step, lead: Lead) -> str | _PendingSend:
    key = f"wf-{enrollment.pk}-{step.key}-{enrollment.visit}"
    batch = _BATCH.get()
    if batch is not None and key in batch.existing_keys:
        raise _OneByOne("a message for this step exists already")
    existing = None if batch else OutboundMessage.objects.select_for_update().filter(idempotency_key=key).first()
    if existing is not None:
        return _resume_send(enrollment, step, existing)
    hold, kind = _hold_reason(enrollment), "switch"
    channel = None if hold else (batch.channel(enrollment, step.kind) if batch else _channel(enrollment, step.kind))
    if isinstance(channel, str):
        hold, kind = channel, "channel"
    if hold and batch is not None:
        raise _OneByOne("sends are held")
    if hold:
        _step_run(enrollment, step, StepRun.State.HELD, hold)
        enrollment_hold(enrollment=enrollment, reason=hold, kind=kind)
        return _STOP
    sms = step.kind == Step.Kind.SEND_SMS
    to = lead.phone_e164 if sms else lead.email_normalized
    if not to and batch is not None:
        raise _OneByOne("no address")
    if not to:
        _complete_run(
            enrollment,
            step,
            summary=f"Skipped: the lead has no {'phone' if sms else 'email'}",
            state=StepRun.State.SKIPPED,
        )
        return _move(enrollment, _resolve(enrollment, step, "next"))
    now = timezone.now()
    client = enrollment.client
    send_at = timing.next_send_time(due=now, tz=client.tz, start=client.quiet_hours_start, end=client.quiet_hours_end)
    if send_at > now:
        _step_run(enrollment, step, StepRun.State.DEFERRED, f"Quiet hours: deferred to {send_at:%Y-%m-%d %H:%M} UTC")
        enrollment.next_run_at = send_at
        _save(enrollment, ["next_run_at", "updated_at"])
        return _STOP
    channel_obj, from_address, callback = channel
    body = render(step.config["body"], lead=lead, client=client)
    subject = "" if sms else render(step.config["subject"], lead=lead, client=client)
    verb, summary = (
        "workflow.send_sms" if sms else "workflow.send_email",
        f"{step.get_kind_display()} ({enrollment.workflow}, step {step.key}) to {to}",
    )
    if batch is not None:  # written at the end of the batch's cycle, before any provider call
        action = action_build(verb=verb, actor=ACTOR, lead=lead, summary=summary)
        action.state, action.completed_at, action.idempotency_key = AdminAction.State.INTENDED, None, key
    else:
        action, _ = action_record_intended(verb=verb, actor=ACTOR, lead=lead, summary=summary, idempotency_key=key)
    message = OutboundMessage(
        client_id=enrollment.client_id,
        lead=lead,
        enrollment=enrollment,
        step_key=step.key,
        visit=enrollment.visit,
        idempotency_key=key,
        channel=OutboundMessage.Channel.SMS if sms else OutboundMessage.Channel.EMAIL,
        to=to,
        from_address=from_address,
        subject=subject[:300],
        body=body,
        action=action if batch is None else None,
    )
    if batch is None:
        message.save(force_insert=True)
    run = _step_run(enrollment, step, StepRun.State.WAITING, "Sending", detail={"message_id": message.pk})
    # Leased while the provider is called: the scheduler leaves it alone; if this process dies
    # now, the next run finds the message `intended` and holds the enrollment for review.
    enrollment.next_run_at = now + _lease()
    _save(enrollment, ["next_run_at", "updated_at"])
    if sms:
        params = {"to": to, "from_": from_address, "body": body, "status_callback": callback or None}
    else:
        params = {
            "to": to,
            "from_email": from_address,
            "subject": subject,
            "html": render_email_html(step.config["body"], lead=lead, client=client),
            "text": body,
            "custom_args": {"zid_lead": str(lead.pk), "zid_message": str(message.pk)},
        }
    pending = _PendingSend(message_id=message.pk, channel=channel_obj, params=params)
    if batch is not None:
        batch.sends.append((enrollment, action, message, run, pending))
    return pending


def _resume_send(enrollment: Enrollment, step: Step, message: OutboundMessage) -> str:
    """A run found this step's message already there: a retried or redelivered task."""
    if message.status == OutboundMessage.Status.SENT:
        _complete_run(enrollment, step, summary=f"Sent ({message.provider_id})", detail={"message_id": message.pk})
        return _move(enrollment, _resolve(enrollment, step, "next"))
    if message.status in (OutboundMessage.Status.FAILED, OutboundMessage.Status.SKIPPED):
        return _move(enrollment, _resolve(enrollment, step, "next"))
    if message.status == OutboundMessage.Status.INTENDED:
        message.status = OutboundMessage.Status.UNKNOWN
        message.error = "The process sending it stopped before recording the provider's answer."
        message.save(update_fields=["status", "error", "updated_at"])
        if message.action_id:
            action = AdminAction.objects.get(pk=message.action_id)
            if action.state == AdminAction.State.INTENDED:
                action_mark_unknown(action=action, error=message.error)
    _step_run(
        enrollment,
        step,
        StepRun.State.UNKNOWN,
        "Send outcome unknown: held for review",
        detail={"message_id": message.pk},
    )
    enrollment_hold(
        enrollment=enrollment,
        reason=f"Outcome of message #{message.pk} unknown: check before re-sending",
        kind="send_unknown",
    )
    return _STOP


def _deliver(pending: _PendingSend, *, enrollment_id: int, cache: dict | None = None) -> str:
    """Call the provider (no transaction open), then record what happened."""
    result, error, unknown = _call_provider(pending)
    return _record_outcome(pending, result, error, unknown, enrollment_id=enrollment_id, cache=cache)


def _call_provider(pending: _PendingSend) -> tuple[Any, Exception | None, bool]:
    """(result, error, outcome unknown?) of one provider call; never raises."""
    try:
        if "from_email" in pending.params:
            return pending.channel.send_email(**pending.params), None, False
        return pending.channel.send_sms(**pending.params), None, False
    except SendRejected as exc:
        return None, exc, False
    except SendOutcomeUnknown as exc:
        return None, exc, True
    except Exception as exc:  # a bug or an unexpected SDK error: we cannot say it was not sent
        logger.exception("send of message %s raised", pending.message_id)
        return None, exc, True


def _record_outcome(pending, result, error, unknown: bool, *, enrollment_id: int, cache: dict | None = None) -> str:
    with transaction.atomic():
        enrollment = _attach(Enrollment.objects.select_for_update().get(pk=enrollment_id), cache)
        message = OutboundMessage.objects.select_for_update().get(pk=pending.message_id)
        step = next(s for s in _steps(enrollment) if s.key == message.step_key)
        action = AdminAction.objects.get(pk=message.action_id)
        if result is not None:
            return _record_sent(enrollment, step, message, action, result)
        if unknown:
            message.status = OutboundMessage.Status.UNKNOWN
            message.error = str(error)[:2000]
            message.save(update_fields=["status", "error", "updated_at"])
            action_mark_unknown(action=action, error=message.error)
            _step_run(
                enrollment,
                step,
                StepRun.State.UNKNOWN,
                f"Outcome unknown: {error}"[:300],
                detail={"message_id": message.pk},
            )
            enrollment_hold(
                enrollment=enrollment,
                reason=f"Outcome of message #{message.pk} unknown: {error}"[:300],
                kind="send_unknown",
            )
            return _STOP
        message.status = OutboundMessage.Status.FAILED
        message.error = str(error)[:2000]
        message.save(update_fields=["status", "error", "updated_at"])
        action_mark_failed(action=action, error=message.error)
        if (
            getattr(error, "retryable", False)
            and enrollment.visit - _first_visit(enrollment, step) < RETRYABLE_SEND_ATTEMPTS - 1
        ):
            # Certainly not sent (refused, rate-limited): try again under a new visit (a new key).
            _complete_run(enrollment, step, summary=f"Not sent, will retry: {error}"[:300], state=StepRun.State.FAILED)
            enrollment.visit += 1
            enrollment.next_run_at = timezone.now() + timedelta(minutes=2 ** (enrollment.visit % 6))
            _save(enrollment, ["visit", "next_run_at", "updated_at"])
            return _STOP
        _complete_run(
            enrollment,
            step,
            summary=f"Not sent: {error}"[:300],
            state=StepRun.State.FAILED,
            detail={"message_id": message.pk},
        )
        return _move(enrollment, _resolve(enrollment, step, "next"))


def _first_visit(enrollment: Enrollment, step: Step) -> int:
    first = (
        StepRun.objects.filter(enrollment=enrollment, step_key=step.key)
        .order_by("visit")
        .values_list("visit", flat=True)
        .first()
    )
    return first if first is not None else enrollment.visit


def _record_sent(enrollment, step, message, action, result) -> str:
    message.status = OutboundMessage.Status.SENT
    message.provider, message.provider_id = result.provider, result.provider_id
    message.sent_at = timezone.now()
    sms = message.channel == OutboundMessage.Channel.SMS
    if (batch := _BATCH.get()) is not None:
        batch.record_sent(enrollment, step, message, result)
        _complete_run(
            enrollment,
            step,
            summary=f"Sent via {result.provider} ({result.provider_id})",
            detail={"message_id": message.pk},
        )
        return _move(enrollment, _resolve(enrollment, step, "next"))
    activity, _ = activity_record(
        lead=message.lead,
        kind=Activity.Kind.SMS_OUTBOUND if sms else Activity.Kind.EMAIL_OUTBOUND,
        summary=(message.subject or message.body)[:300],
        body=message.body,
        actor=ACTOR,
        provider=result.provider,
        provider_id=result.provider_id,
        delivery_status=result.status,
        data={"workflow": enrollment.workflow.name, "step": step.key, "message_id": message.pk},
    )
    message.activity = activity
    message.save(update_fields=["status", "provider", "provider_id", "sent_at", "activity", "updated_at"])
    action_mark_succeeded(action=action)
    _complete_run(
        enrollment,
        step,
        summary=f"Sent via {result.provider} ({result.provider_id})",
        detail={"message_id": message.pk},
    )
    return _move(enrollment, _resolve(enrollment, step, "next"))


_HANDLERS = {
    Step.Kind.SEND_SMS: _run_send,
    Step.Kind.SEND_EMAIL: _run_send,
    Step.Kind.DELAY: _run_delay,
    Step.Kind.WAIT_FOR_EVENT: _run_wait,
    Step.Kind.BRANCH: _run_branch,
    Step.Kind.CREATE_TASK: _run_task,
    Step.Kind.UPDATE_LEAD: _run_update,
    Step.Kind.CRM_HANDOFF: _run_crm_handoff,
    Step.Kind.EXIT: _run_exit,
}


# --- batched runs --------------------------------------------------------------------------------
#
# A claimed batch runs together, in cycles. One cycle is one transaction: lock the batch's
# enrollments, read their leads and exit-condition facts once, record the outcome of the sends
# the previous cycle made, work every enrollment forward in memory through the same step
# handlers as a single run (their writes are collected by _Batch instead of made one by one),
# and write it all with a few statements per cycle. The new messages and their `intended` log
# rows commit with the cycle; the provider calls happen after it, outside any transaction; the
# next cycle records them. The exactly-once rules of a single run hold unchanged.
#
# Whatever a batch cannot do in memory (a send whose message exists already, held sends, an
# update_lead step, a failed or unknown send) is handed back: the enrollment's writes so far are
# flushed and it continues on the single-run path.

_BATCH: ContextVar[_Batch | None] = ContextVar("workflows_batch", default=None)


class _OneByOne(Exception):
    """The batch hands this enrollment back to the single-run path, at the step it is on."""


def _save(enrollment: Enrollment, fields: list[str] | None) -> None:
    batch = _BATCH.get()
    if batch is not None and enrollment.pk in batch.enrollments:
        return  # written at the end of the cycle, compared with the row as it was read
    if fields is None:
        enrollment.save()
    else:
        enrollment.save(update_fields=fields)


class _Batch:
    def __init__(self, enrollments: list[Enrollment], cache: dict) -> None:
        self.cache = cache
        self.enrollments = {e.pk: (e, columns(e)) for e in enrollments}
        lead_ids = {e.lead_id for e in enrollments}
        self.leads = Lead.objects.in_bulk(lead_ids)
        for enrollment in enrollments:  # the enrollment's client is its lead's: no query for it
            if enrollment.lead_id in self.leads:
                self.leads[enrollment.lead_id].client = enrollment.client
        self.revoked: dict[int, list[str]] = {}
        for lead_id, channel in Consent.objects.filter(lead_id__in=lead_ids, state=Consent.State.REVOKED).values_list(
            "lead_id", "channel"
        ):
            self.revoked.setdefault(lead_id, []).append(channel)
        self.paid: dict[int, list[datetime]] = {}
        for lead_id, at in NormalizedEvent.objects.filter(lead_id__in=lead_ids, event_type="invoice.paid").values_list(
            "lead_id", "occurred_at"
        ):
            self.paid.setdefault(lead_id, []).append(at)
        # Step runs of the steps the enrollments are on (a deferred send, a send in flight):
        # later steps are new visits, which have none yet.
        self.runs: dict[tuple[int, str, int], StepRun] = {}
        positions = {(e.pk, e.step_key, e.visit) for e in enrollments}
        if positions:
            rows = StepRun.objects.filter(
                enrollment_id__in=[p[0] for p in positions], visit__in={p[2] for p in positions}
            )
            for run in rows:
                if (run.enrollment_id, run.step_key, run.visit) in positions:
                    self.runs[(run.enrollment_id, run.step_key, run.visit)] = run
        keys = [f"wf-{e.pk}-{e.step_key}-{e.visit}" for e in enrollments]
        self.existing_keys = set(
            OutboundMessage.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", flat=True)
        )
        self.new_runs: list[StepRun] = []
        self.changed_runs: dict[int, StepRun] = {}
        self.sends: list[tuple] = []  # (enrollment, action, message, run, pending)
        self.sent: list[tuple[OutboundMessage, Activity]] = []
        self.channels: dict[tuple[int, str], Any] = {}

    def channel(self, enrollment: Enrollment, kind: str):
        key = (enrollment.client_id, kind)
        if key not in self.channels:
            self.channels[key] = _channel(enrollment, kind)
        return self.channels[key]

    def step_run(self, enrollment: Enrollment, step: Step, state: str, summary: str, **fields) -> StepRun:
        key = (enrollment.pk, step.key, enrollment.visit)
        run = self.runs.get(key)
        if run is None:
            run = StepRun(
                enrollment_id=enrollment.pk,
                client_id=enrollment.client_id,
                step_key=step.key,
                visit=enrollment.visit,
                step_kind=step.kind,
                state=state,
                summary=summary[:300],
                **fields,
            )
            self.runs[key] = run
            self.new_runs.append(run)
            return run
        run.state, run.summary = state, summary[:300] or run.summary
        for name, value in fields.items():
            setattr(run, name, value)
        if run.pk:
            self.changed_runs[run.pk] = run
        return run

    def record_sent(self, enrollment: Enrollment, step: Step, message: OutboundMessage, result) -> None:
        sms = message.channel == OutboundMessage.Channel.SMS
        activity = activity_build(
            lead=self.leads[message.lead_id],
            kind=Activity.Kind.SMS_OUTBOUND if sms else Activity.Kind.EMAIL_OUTBOUND,
            summary=(message.subject or message.body)[:300],
            body=message.body,
            actor=ACTOR,
            provider=result.provider,
            provider_id=result.provider_id,
            delivery_status=result.status,
            data={"workflow": enrollment.workflow.name, "step": step.key, "message_id": message.pk},
        )
        self.sent.append((message, activity))

    def write(self) -> None:
        now = timezone.now()
        if self.sent:
            self._write_sent(now)
        if self.sends:
            AdminAction.objects.bulk_create([action for _, action, _, _, _ in self.sends])
            for _, action, message, _, _ in self.sends:
                message.action_id = action.pk
            OutboundMessage.objects.bulk_create([message for _, _, message, _, _ in self.sends])
            for _, _, message, run, pending in self.sends:
                run.detail = {"message_id": message.pk}
                pending.message_id = message.pk
                if "custom_args" in pending.params:
                    pending.params["custom_args"]["zid_message"] = str(message.pk)
        if self.new_runs:
            StepRun.objects.bulk_create(self.new_runs)
        if self.changed_runs:
            update_rows(list(self.changed_runs.values()), ["state", "summary", "finished_at", "detail", "error"])
        update_changed(self.enrollments.values(), now=now)

    def _write_sent(self, now) -> None:
        """The sends of the previous cycle that succeeded: timeline entries (with their effect on
        the lead: first response, new → contacted), messages sent, log rows succeeded."""
        leads = {
            lead.pk: lead
            for lead in Lead.objects.select_for_update()
            .filter(pk__in=sorted({m.lead_id for m, _ in self.sent}))
            .order_by("id")
        }
        before = {pk: columns(lead) for pk, lead in leads.items()}
        activities, rows = [], []
        for message, activity in self.sent:
            lead = leads[message.lead_id]
            lead.client = self.leads[message.lead_id].client
            activity.lead = lead
            activities.append(activity)
            rows += activity_effects(lead=lead, activity=activity, actor=ACTOR)[1]
        Activity.objects.bulk_create(activities + [r for r in rows if isinstance(r, Activity)])
        actions = [r for r in rows if isinstance(r, AdminAction)]
        if actions:
            AdminAction.objects.bulk_create(actions)
        update_changed(((lead, before[pk]) for pk, lead in leads.items()), now=now)
        for message, activity in self.sent:
            message.activity = activity
            message.updated_at = now
        update_rows(
            [m for m, _ in self.sent], ["status", "provider", "provider_id", "sent_at", "activity", "updated_at"]
        )
        AdminAction.objects.filter(
            pk__in=[m.action_id for m, _ in self.sent],
            state__in=[AdminAction.State.INTENDED, AdminAction.State.UNKNOWN],
        ).update(state=AdminAction.State.SUCCEEDED, completed_at=now, updated_at=now, error="")


def _run_batch(enrollment_ids: list[int], claim: str) -> tuple[dict[int, str], list[int], list[int]]:
    """Run the batch. Returns (final state of each enrollment it finished with, ids handed back
    to the single-run path due now, ids handed back untouched, still under the claim)."""
    cache: dict = {}
    done: dict[int, str] = {}
    back: list[int] = []
    work = sorted(enrollment_ids)
    outcomes: dict[int, tuple] = {}  # enrollment id -> (pending, result, error, unknown)
    first = True
    for _ in range(MAX_STEPS_PER_RUN):
        if not work:
            break
        try:
            pending_sends = _batch_cycle(work, claim if first else None, outcomes, cache, done, back)
        except Exception:
            if first:
                logger.exception("batched run of %s enrollments failed; running them one by one", len(work))
                return done, back, work
            # Later cycles only record sends already made and carry on: do that one by one.
            logger.exception("batched cycle failed; recording its %s sends one by one", len(outcomes))
            pending_sends = []
            for enrollment_id, outcome in list(outcomes.items()):
                _hand_back_outcome(enrollment_id, outcome, cache, done, back)
            outcomes.clear()
        first = False
        for enrollment_id in list(outcomes):  # its enrollment was locked by someone else
            _hand_back_outcome(enrollment_id, outcomes.pop(enrollment_id), cache, done, back)
        # The provider calls, after the commit: one by one, as a single run makes them.
        for enrollment_id, pending in pending_sends:
            outcomes[enrollment_id] = (pending, *_call_provider(pending))
        for enrollment_id in [pk for pk, outcome in outcomes.items() if outcome[1] is None]:
            _hand_back_outcome(enrollment_id, outcomes.pop(enrollment_id), cache, done, back)
        work = sorted(outcomes)
    for enrollment_id, outcome in outcomes.items():  # only after MAX_STEPS_PER_RUN cycles
        _hand_back_outcome(enrollment_id, outcome, cache, done, back)
    for enrollment_id in back:
        done.pop(enrollment_id, None)
    return done, back, []


def _hand_back_outcome(enrollment_id: int, outcome: tuple, cache, done: dict, back: list) -> None:
    """A send the batch will not record (refused, unknown, or its cycle failed): the single-run
    path records it, then the enrollment goes on there if it can."""
    pending, result, error, unknown = outcome
    if _record_outcome(pending, result, error, unknown, enrollment_id=enrollment_id, cache=cache) == _STOP:
        done[enrollment_id] = Enrollment.objects.values_list("state", flat=True).get(pk=enrollment_id)
    else:
        back.append(enrollment_id)


def _batch_cycle(work, claim, outcomes: dict, cache: dict, done: dict, back: list) -> list[tuple[int, _PendingSend]]:
    """One cycle: one transaction. Returns the sends to make after it commits."""
    pending_sends: list[tuple[int, _PendingSend]] = []
    with transaction.atomic():
        # Waiting, not SKIP LOCKED: these rows are the batch's by its claim (lease), and a lock on
        # one is brief (a scheduler's scan passing over it, an event for its lead); skipping it
        # would leave a claimed enrollment unrun until its lease ran out.
        locked = [_attach(e, cache) for e in Enrollment.objects.select_for_update().filter(pk__in=work).order_by("id")]
        for missing in set(work) - {e.pk for e in locked}:
            done[missing] = "missing"  # deleted meanwhile; its send, if any, stays in `outcomes` for the caller
        if claim is not None:
            runnable = [e for e in locked if _runnable(e, claim)]
            done.update({e.pk: e.state for e in locked if e not in runnable})
            locked = runnable
        messages = OutboundMessage.objects.select_for_update().in_bulk(
            [outcomes[e.pk][0].message_id for e in locked if e.pk in outcomes]
        )
        batch = _Batch(locked, cache)
        token = _BATCH.set(batch)
        handed_back = []
        try:
            for enrollment in locked:
                outcome = outcomes.pop(enrollment.pk, None)
                message = messages[outcome[0].message_id] if outcome is not None else None
                try:
                    state = _batch_advance(enrollment, message, outcome)
                except _OneByOne:
                    handed_back.append(enrollment.pk)
                    continue
                if isinstance(state, _PendingSend):
                    pending_sends.append((enrollment.pk, state))
                else:
                    done[enrollment.pk] = state
            batch.write()
        finally:
            _BATCH.reset(token)
        if handed_back:  # due now, where each stands, for the single-run path
            Enrollment.objects.filter(pk__in=handed_back, state__in=list(Enrollment.LIVE_STATES)).update(
                next_run_at=timezone.now()
            )
            back += handed_back
    return pending_sends


def _batch_advance(enrollment: Enrollment, message: OutboundMessage | None, outcome: tuple | None):
    """Work one enrollment of a batch forward in memory until it must wait, ends, or has a send
    to make. `message`, `outcome`: its send of the previous cycle, which succeeded."""
    if outcome is not None:
        step = next(s for s in _steps(enrollment) if s.key == message.step_key)
        if _record_sent(enrollment, step, message, None, outcome[1]) == _STOP:
            return enrollment.state
    for _ in range(MAX_STEPS_PER_RUN):
        outcome = _run_current(enrollment)
        if isinstance(outcome, _PendingSend):
            return outcome
        if outcome == _STOP:
            return enrollment.state
    enrollment.next_run_at = timezone.now()  # a long chain of instant steps: due again at once
    return enrollment.state


# --- holds and reviews ---------------------------------------------------------------------------


def enrollments_release_held(*, actor, workflow: Workflow | None = None, client=None) -> int:
    """Resume enrollments held by a switch that was just cleared (not those held for an unknown
    send: a person settles those one by one). Each resumes at the step it stopped at."""
    held = Enrollment.objects.filter(state=Enrollment.State.HELD).exclude(hold_kind="send_unknown")
    if workflow is not None:
        held = held.filter(workflow=workflow)
    if client is not None:
        held = held.filter(client=client)
    from .tasks import run_enrollment

    ids = list(held.values_list("pk", flat=True))
    Enrollment.objects.filter(pk__in=ids).update(
        state=Enrollment.State.ACTIVE, hold_reason="", hold_kind="", held_at=None, next_run_at=timezone.now()
    )
    for pk in ids:
        enqueue_on_commit(run_enrollment, pk)
    return len(ids)


def enrollment_release(*, enrollment: Enrollment, actor, resolution: str, note: str = "") -> Enrollment:
    """A person clears a hold. For an unknown send they say what happened: "sent" (the workflow
    goes on as if it was) or "not_sent" (it is sent again, under a new key)."""
    from adminops.services import action_record

    with transaction.atomic():
        enrollment = Enrollment.objects.select_for_update().get(pk=enrollment.pk)
        if enrollment.state != Enrollment.State.HELD:
            raise ApplicationError("Only a held enrollment can be released.", {"state": enrollment.state})
        message = (
            OutboundMessage.objects.select_for_update()
            .filter(enrollment=enrollment, status=OutboundMessage.Status.UNKNOWN)
            .order_by("-id")
            .first()
        )
        if message is not None:
            if resolution not in ("sent", "not_sent"):
                raise ApplicationError(
                    'Say whether the message went out: "sent" or "not_sent".', {"fields": {"resolution": "required"}}
                )
            message.status = OutboundMessage.Status.SENT if resolution == "sent" else OutboundMessage.Status.FAILED
            message.error = f"Settled by staff as {resolution}: {note}"[:2000]
            message.save(update_fields=["status", "error", "updated_at"])
            if resolution == "not_sent":
                enrollment.visit += 1  # a new key: the step sends again
        enrollment.state = Enrollment.State.ACTIVE
        enrollment.hold_reason = ""
        enrollment.hold_kind = ""
        enrollment.held_at = None
        enrollment.next_run_at = timezone.now()
        enrollment.save(
            update_fields=["state", "hold_reason", "hold_kind", "held_at", "next_run_at", "visit", "updated_at"]
        )
        action_record(
            verb="workflow.release",
            actor=actor,
            lead=enrollment.lead,
            target=enrollment,
            summary=f"Released from hold ({resolution or 'resume'})" + (f": {note}" if note else ""),
        )
        from .tasks import run_enrollment

        enqueue_on_commit(run_enrollment, enrollment.pk)
    return enrollment


# --- events arriving (the workflows consumer) ----------------------------------------------------

_WAKES = {
    "sms.received": {"sms.replied"},
    "invoice.paid": {"invoice.paid"},
    "job.booked": {"job.booked"},
}


def enrollments_on_event(*, lead: Lead, event_type: str, data: dict[str, Any]) -> None:
    """Exit conditions and waiting branches, for every live enrollment of the lead."""
    wakes = set(_WAKES.get(event_type, set()))
    if event_type == "email.event":
        status = data.get("status", "")
        if status in ("opened", "clicked"):
            wakes |= {"email.opened"} | ({"email.clicked"} if status == "clicked" else set())
    shared: dict = {}  # one read of each workflow and client for all of the lead's enrollments
    live = [
        _attach(e, shared)
        for e in Enrollment.objects.select_for_update()
        .filter(lead=lead, state__in=list(Enrollment.LIVE_STATES))
        .order_by("id")
    ]
    if not live:
        return
    lead = Lead.objects.get(pk=lead.pk)
    from .tasks import run_enrollment

    for enrollment in live:
        reason = exit_reason_for(enrollment=enrollment, lead=lead)
        if reason is not None:
            enrollment_finish(enrollment=enrollment, state=Enrollment.State.EXITED, reason=reason[0], detail=reason[1])
            continue
        if enrollment.state == Enrollment.State.WAITING and enrollment.waiting_for in wakes:
            step = next((s for s in _steps(enrollment) if s.key == enrollment.step_key), None)
            if step is None:
                continue
            _complete_run(
                enrollment,
                step,
                summary=f"{enrollment.waiting_for}: yes",
                detail={"outcome": "yes", "event": event_type},
            )
            if _move(enrollment, _resolve(enrollment, step, step.config.get("yes", "next"))) == _CONTINUE:
                enqueue_on_commit(run_enrollment, enrollment.pk)


# --- timeline preview ----------------------------------------------------------------------------


def workflow_preview(*, workflow: Workflow, lead: Lead, start: datetime | None = None, version=None) -> list[dict]:
    """When each step would fire for this lead if enrolled at `start`, in UTC and the client's
    local time, given delays and quiet hours. The path assumes nothing happens (waits time out,
    event branches say no); lead-field branches are decided on the lead as it is now."""
    from .models import WorkflowVersion

    if version is None:
        version = (
            workflow.published_version or WorkflowVersion.objects.filter(workflow=workflow).order_by("-number").first()
        )
    client = workflow.client
    tz = client.tz
    steps = list(Step.objects.filter(version=version).order_by("position", "id")) if version else []
    by_key = {s.key: s for s in steps}
    order = [s.key for s in steps]

    def after(key: str, target: str = "next") -> str | None:
        if target == "exit":
            return None
        if target == "next":
            index = order.index(key)
            return order[index + 1] if index + 1 < len(order) else None
        return target

    at = start or timezone.now()
    key = order[0] if order else None
    rows: list[dict] = []
    probe = Enrollment(workflow=workflow, lead=lead, client=client, version=version)
    for _ in range(len(steps) * 3 + 1):  # a loop through branches ends the preview, not the page
        if key is None:
            break
        step = by_key[key]
        note = ""
        fires = at
        if step.kind in Step.SENDS:
            fires = timing.next_send_time(due=at, tz=tz, start=client.quiet_hours_start, end=client.quiet_hours_end)
            if fires > at:
                note = "deferred to the end of quiet hours"
            at = fires
            key = after(key)
        elif step.kind == Step.Kind.DELAY:
            d = step.config["duration"]
            at = timing.add_delay(start=at, amount=d["amount"], unit=d["unit"], tz=tz)
            note = f"next step at {at.astimezone(tz):%a %d %b %H:%M} local"
            key = after(key)
        elif step.kind == Step.Kind.WAIT_FOR_EVENT:
            t = step.config["timeout"]
            at = timing.add_delay(start=at, amount=t["amount"], unit=t["unit"], tz=tz)
            note = f"if no {step.config['event']} by {at.astimezone(tz):%a %d %b %H:%M} local: the 'no' path"
            key = after(key, step.config.get("no", "next"))
        elif step.kind == Step.Kind.BRANCH:
            if step.config["condition"] == "lead_field":
                yes = _branch_true(probe, step, lead)
                note = f"{step.config['field']} → {'yes' if yes else 'no'}"
            else:
                yes = False
                note = f"assuming no {step.config['condition']}"
            key = after(key, step.config.get("yes" if yes else "no", "next"))
        elif step.kind == Step.Kind.EXIT:
            key = None
        else:
            key = after(key)
        rows.append(
            {
                "step": step.key,
                "kind": step.get_kind_display(),
                "name": step.name,
                "at": fires,
                "local": fires.astimezone(tz),
                "note": note,
            }
        )
    return rows
