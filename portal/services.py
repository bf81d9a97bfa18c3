"""Portal writes: portal logins, and the life cycle of client-facing proof (summaries, metric cards).

Summaries and metric cards share one state machine and one transition helper (_transition):

    draft ──check──▶ checked ──approve──▶ approved ──publish──▶ published ──retract──▶ retracted
    (edit: draft/checked/approved/retracted ──▶ draft; the client-facing text changed, so the
    checks and the approval no longer vouch for it)

Every transition writes the action log. Publishing and retracting change what a client sees, so
they log `intended` first (committed before anything changes) and mark it succeeded in the
transaction that makes the change, or failed with the reason it was refused.
"""

import datetime
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from adminops.services import (
    action_mark_failed,
    action_mark_succeeded,
    action_record,
    action_record_intended,
)
from integrations.models import Connection
from leads.models import Client
from zartsalgo.errors import ApplicationError, InvalidTransition

from .checks import checks_configured, worst
from .models import CheckResult, CheckRun, ClientUser, MetricCard, ProofStatus, Summary
from .selectors import LeadStats, check_run_failures, check_run_latest, lead_stats
from .summarizers import summarizer_get

Actor = AbstractBaseUser | str
ProofItem = Summary | MetricCard
S = ProofStatus


class PublishBlocked(ApplicationError):
    """Publishing was refused: checks missing, out of date, or failing without an override reason."""

    status_code = 409
    code = "publish_blocked"


@transaction.atomic
def client_user_create(
    *, client, email: str, password: str, actor, name: str = "", role: str = ClientUser.Role.VIEWER
) -> ClientUser:
    User = get_user_model()
    email = email.strip().casefold()
    if User.objects.filter(username=email).exists():
        raise ApplicationError(f"A login named {email} already exists.", {"email": email})
    first, _, last = name.strip().partition(" ")
    # Never staff: the admin is closed to portal users by construction.
    user = User.objects.create_user(
        username=email, email=email, password=password, first_name=first, last_name=last, is_staff=False
    )
    link = ClientUser.objects.create(user=user, client=client, role=role)
    action_record(
        verb="portal.user_create", actor=actor, client=client, target=link, summary=f"Portal login {email} created"
    )
    return link


# --- the shared state machine -----------------------------------------------------------------------

# action → (states it may start from, state it ends in). Anything else is refused.
TRANSITIONS: dict[str, tuple[frozenset[str], str]] = {
    "check": (frozenset({S.DRAFT, S.CHECKED}), S.CHECKED),
    "approve": (frozenset({S.CHECKED}), S.APPROVED),
    "publish": (frozenset({S.APPROVED}), S.PUBLISHED),
    "retract": (frozenset({S.PUBLISHED}), S.RETRACTED),
    "edit": (frozenset({S.DRAFT, S.CHECKED, S.APPROVED, S.RETRACTED}), S.DRAFT),
}

# Fields whose change alters what the client would see (an edit of these sends the item back to draft).
SUMMARY_CONTENT_FIELDS = ("title", "body")
SUMMARY_INTERNAL_FIELDS = ("internal_draft",)
CARD_CONTENT_FIELDS = (
    "source_label",
    "connection",
    "metric_label",
    "unit",
    "baseline_value",
    "current_value",
    "health",
    "next_action",
    "meaning",
)
CARD_INTERNAL_FIELDS = ("internal_notes",)


def _prefix(item: ProofItem) -> str:
    return "summary" if isinstance(item, Summary) else "metric_card"


def _label(item: ProofItem) -> str:
    return f"{'Summary' if isinstance(item, Summary) else 'Metric card'} #{item.pk} “{item}”"


def _lock(item: ProofItem) -> ProofItem:
    # The one row lock of this module: the item itself, re-read under the lock. No select_related:
    # on MySQL/MariaDB FOR UPDATE would lock the joined client row too (MariaDB has no OF).
    return type(item).objects.select_for_update().get(pk=item.pk)


def _require_from(item: ProofItem, action: str) -> str:
    allowed, target = TRANSITIONS[action]
    if item.status not in allowed:
        raise InvalidTransition(
            f"{_label(item)} is {item.status}; it cannot be {'edited' if action == 'edit' else action + 'ed'} "
            f"(allowed from: {', '.join(sorted(allowed))}).",
            {"id": item.pk, "status": item.status, "action": action},
        )
    return target


def _transition(
    *, item: ProofItem, action: str, actor: Actor, changes: dict[str, Any], summary: str, detail: dict | None = None
) -> ProofItem:
    """Move a locked item along TRANSITIONS, apply `changes` and log it, in the caller's transaction."""
    target = _require_from(item, action)
    for name, value in changes.items():
        setattr(item, name, value)
    item.status = target
    item.save(update_fields=[*changes, "status", "updated_at"])
    action_record(
        verb=f"{_prefix(item)}.{action}",
        actor=actor,
        client=item.client,
        target=item,
        summary=summary,
        detail={"status": target, **(detail or {})},
    )
    return item


def _require_staff_user(actor: Actor, what: str) -> AbstractBaseUser:
    if isinstance(actor, str) or not getattr(actor, "is_staff", False) or not actor.is_active:
        raise ApplicationError(
            f"{what} needs a named, active staff user.",
            {"actor": actor if isinstance(actor, str) else actor.get_username()},
            code="staff_required",
        )
    return actor


def _user_or_none(actor: Actor):
    return None if isinstance(actor, str) else actor


_RESET_APPROVAL = {
    "checked_at": None,
    "approved_by": None,
    "approved_at": None,
    "published_by": None,
    "published_at": None,
    "publish_override_reason": "",
    "retracted_by": None,
    "retracted_at": None,
    "retracted_reason": "",
}


def _proof_update(
    *, item: ProofItem, actor: Actor, data: dict[str, Any], content_fields: tuple, internal_fields: tuple
) -> ProofItem:
    unknown = set(data) - {*content_fields, *internal_fields}
    if unknown:
        raise ApplicationError(
            f"These fields cannot be edited: {', '.join(sorted(unknown))}.", {"fields": sorted(unknown)}
        )
    with transaction.atomic():
        locked = _lock(item)
        changed = {k: v for k, v in data.items() if getattr(locked, k) != v}
        content = {k: v for k, v in changed.items() if k in content_fields}
        if not changed:
            return locked
        names = ", ".join(sorted(changed))
        if not content:
            # Internal notes are not client-facing: editing them leaves checks and approval standing.
            for name, value in changed.items():
                setattr(locked, name, value)
            locked.save(update_fields=[*changed, "updated_at"])
            action_record(
                verb=f"{_prefix(locked)}.edit_internal",
                actor=actor,
                client=locked.client,
                target=locked,
                summary=f"{_label(locked)}: internal fields edited ({names})",
            )
            return locked
        return _transition(
            item=locked,
            action="edit",
            actor=actor,
            changes={**changed, **_RESET_APPROVAL, "content_changed_at": timezone.now()},
            summary=f"{_label(locked)} edited ({names}); back to draft, checks and approval needed again",
            detail={"fields": sorted(changed), "was": item.status},
        )


def _proof_check(*, item: ProofItem, actor: Actor) -> CheckRun:
    with transaction.atomic():
        locked = _lock(item)
        _require_from(locked, "check")
        if isinstance(locked, Summary) and not locked.body.strip():
            raise ApplicationError(
                f"{_label(locked)} has no client-safe body yet: write it (the internal draft is never published).",
                {"id": locked.pk},
                code="body_required",
            )
        now = timezone.now()
        outcomes = [
            (check, check.run(locked.client, locked.period_start, locked.period_end, subject=locked))
            for check in checks_configured()
        ]
        run = CheckRun.objects.create(
            client=locked.client,
            summary=locked if isinstance(locked, Summary) else None,
            card=locked if isinstance(locked, MetricCard) else None,
            period_start=locked.period_start,
            period_end=locked.period_end,
            ran_by=_user_or_none(actor),
            ran_by_label=actor if isinstance(actor, str) else f"user:{actor.get_username()}",
            ran_at=now,
            status=worst(outcome.status for _, outcome in outcomes),
        )
        results = CheckResult.objects.bulk_create(
            CheckResult(
                run=run,
                check_key=check.key,
                name=check.name,
                status=outcome.status,
                summary=outcome.summary[:500],
                details=outcome.details,
            )
            for check, outcome in outcomes
        )
        _transition(
            item=locked,
            action="check",
            actor=actor,
            changes={"checked_at": now},
            summary=f"{_label(locked)} checked: {run.status} ("
            + ", ".join(f"{r.check_key} {r.status}" for r in results)
            + ")",
            detail={"check_run_id": run.pk, "results": {r.check_key: r.status for r in results}},
        )
    item.refresh_from_db()
    return run


def _proof_approve(*, item: ProofItem, actor: Actor) -> ProofItem:
    user = _require_staff_user(actor, "Approving client-facing proof")
    with transaction.atomic():
        locked = _lock(item)
        run = check_run_latest(item=locked)
        return _transition(
            item=locked,
            action="approve",
            actor=user,
            changes={"approved_by": user, "approved_at": timezone.now()},
            summary=f"{_label(locked)} approved by {user.get_username()}",
            detail={"check_run_id": run.pk if run else None, "check_status": run.status if run else None},
        )


def _publish_blockers(item: ProofItem, run: CheckRun | None) -> str:
    """Why no override can publish this: the checks are missing or do not cover the current text."""
    if run is None:
        return "the checks have never run"
    if run.ran_at < item.content_changed_at:
        return "it was edited after the checks ran"
    max_age = datetime.timedelta(hours=settings.PORTAL_CHECK_MAX_AGE_HOURS)
    if timezone.now() - run.ran_at > max_age:
        return f"the checks are older than {settings.PORTAL_CHECK_MAX_AGE_HOURS} h"
    return ""


def _proof_publish(*, item: ProofItem, actor: Actor, override_reason: str = "") -> ProofItem:
    reason = (override_reason or "").strip()
    # Logged before anything becomes client-visible, committed on its own: a refused or crashed
    # publish still leaves "someone tried to publish this" in the log.
    action, _ = action_record_intended(
        verb=f"{_prefix(item)}.publish",
        actor=actor,
        client=item.client,
        target=item,
        summary=f"Publishing {_label(item)} to the client portal",
        detail={"override_reason": reason} if reason else {},
    )
    try:
        with transaction.atomic():
            locked = _lock(item)
            _require_from(locked, "publish")
            run = check_run_latest(item=locked)
            blocker = _publish_blockers(locked, run)
            if blocker:
                raise PublishBlocked(
                    f"{_label(locked)} cannot be published: {blocker}. Run the checks again.",
                    {"id": locked.pk, "blocker": blocker},
                )
            failures = check_run_failures(run=run)
            if failures and not reason:
                raise PublishBlocked(
                    f"{_label(locked)} cannot be published: a check failed ({'; '.join(failures)[:300]}). "
                    "Fix the data and re-run the checks, or publish with a written override reason.",
                    {"id": locked.pk, "check_run_id": run.pk, "failures": failures},
                )
            target = _require_from(locked, "publish")
            changes = {
                "published_by": _user_or_none(actor),
                "published_at": timezone.now(),
                "publish_override_reason": reason if failures else "",
            }
            for name, value in changes.items():
                setattr(locked, name, value)
            locked.status = target
            locked.save(update_fields=[*changes, "status", "updated_at"])
            action_mark_succeeded(
                action=action,
                summary=f"{_label(locked)} published"
                + (f" over failing checks — override: {reason}" if failures else ""),
                detail={
                    "status": target,
                    "check_run_id": run.pk,
                    "overridden_failures": failures,
                    "override_reason": reason if failures else "",
                },
            )
    except ApplicationError as exc:
        action_mark_failed(action=action, error=exc.message)
        raise
    item.refresh_from_db()
    return locked


def _proof_retract(*, item: ProofItem, actor: Actor, reason: str) -> ProofItem:
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why it is retracted: the client saw it.", {"id": item.pk}, code="reason_required")
    action, _ = action_record_intended(
        verb=f"{_prefix(item)}.retract",
        actor=actor,
        client=item.client,
        target=item,
        summary=f"Retracting {_label(item)} from the client portal: {reason}",
        detail={"reason": reason},
    )
    try:
        with transaction.atomic():
            locked = _lock(item)
            target = _require_from(locked, "retract")
            locked.status = target
            locked.retracted_by = _user_or_none(actor)
            locked.retracted_at = timezone.now()
            locked.retracted_reason = reason
            locked.save(update_fields=["status", "retracted_by", "retracted_at", "retracted_reason", "updated_at"])
            action_mark_succeeded(
                action=action, summary=f"{_label(locked)} retracted: {reason}", detail={"status": target}
            )
    except ApplicationError as exc:
        action_mark_failed(action=action, error=exc.message)
        raise
    item.refresh_from_db()
    return locked


# --- summaries -------------------------------------------------------------------------------------------


@transaction.atomic
def summary_draft(*, client: Client, period_start: datetime.date, period_end: datetime.date, actor: Actor) -> Summary:
    """A new draft from the configured summarizer. A generated (AI) draft stays internal: the
    client-safe body starts empty and a person writes it."""
    if period_end < period_start:
        raise ApplicationError(
            "The period ends before it starts.", {"start": str(period_start), "end": str(period_end)}
        )
    summarizer = summarizer_get()
    draft = summarizer.summarize(client, period_start, period_end)
    generated = getattr(summarizer, "is_generated", True)  # unknown summarizers are treated as generated
    internal = "\n\n".join(t for t in (draft.body if generated else "", draft.internal_notes) if t)
    summary = Summary.objects.create(
        client=client,
        period_start=period_start,
        period_end=period_end,
        title=draft.title[:200],
        body="" if generated else draft.body,
        internal_draft=internal,
        summarizer=getattr(summarizer, "key", type(summarizer).__name__),
        evidence=draft.evidence,
        drafted_by_label=actor if isinstance(actor, str) else f"user:{actor.get_username()}",
    )
    action_record(
        verb="summary.draft",
        actor=actor,
        client=client,
        target=summary,
        summary=f"{_label(summary)} drafted by the {summary.summarizer} summarizer",
        detail={"status": S.DRAFT, "summarizer": summary.summarizer, "lead_count": draft.evidence.get("lead_count")},
    )
    return summary


def summary_update(*, summary: Summary, actor: Actor, data: dict[str, Any]) -> Summary:
    return _proof_update(
        item=summary,
        actor=actor,
        data=data,
        content_fields=SUMMARY_CONTENT_FIELDS,
        internal_fields=SUMMARY_INTERNAL_FIELDS,
    )


def summary_check(*, summary: Summary, actor: Actor) -> CheckRun:
    return _proof_check(item=summary, actor=actor)


def summary_approve(*, summary: Summary, actor: Actor) -> Summary:
    return _proof_approve(item=summary, actor=actor)


def summary_publish(*, summary: Summary, actor: Actor, override_reason: str = "") -> Summary:
    return _proof_publish(item=summary, actor=actor, override_reason=override_reason)


def summary_retract(*, summary: Summary, actor: Actor, reason: str) -> Summary:
    return _proof_retract(item=summary, actor=actor, reason=reason)


# --- metric cards --------------------------------------------------------------------------------------

H = MetricCard.Health
U = MetricCard.Unit

# key → (label, unit, higher is better, the stat, what it means for the client)
METRICS: dict[str, tuple[str, str, bool, Any, str]] = {
    "leads_captured": (
        "Leads captured",
        U.LEADS,
        True,
        lambda s: Decimal(s.total) if s.total else Decimal(0),
        "New people who asked you for work in this period, from every source (spam and duplicates removed).",
    ),
    "median_response_minutes": (
        "Median first response",
        U.MINUTES,
        False,
        lambda s: s.median_response_minutes,
        "How quickly half of your leads heard back from you the first time. Faster answers win more jobs.",
    ),
    "booked_rate": (
        "Booked rate",
        U.PERCENT,
        True,
        lambda s: s.booked_rate,
        "The share of this period's leads that booked a job.",
    ),
    "source_coverage": (
        "Source coverage",
        U.PERCENT,
        True,
        lambda s: s.source_coverage,
        "The share of leads we can trace to where they came from (ad, listing, call-tracking number).",
    ),
}

NEXT_ACTIONS: dict[str, dict[str, str]] = {
    "leads_captured": {
        H.ON_TRACK: "Keep current campaigns running.",
        H.WATCH: "We are reviewing campaign spend and listings for this period.",
        H.OFF_TRACK: "We will review sources with you and adjust campaigns.",
    },
    "median_response_minutes": {
        H.ON_TRACK: "Keep instant text-back on.",
        H.WATCH: "We will review who answers new leads and when.",
        H.OFF_TRACK: "We will set up faster follow-up for new leads with you.",
    },
    "booked_rate": {
        H.ON_TRACK: "Keep following up on quotes.",
        H.WATCH: "We will review open quotes with you.",
        H.OFF_TRACK: "We will review lost leads and quote follow-up with you.",
    },
    "source_coverage": {
        H.ON_TRACK: "No action needed.",
        H.WATCH: "We are adding tracking to the remaining lead sources.",
        H.OFF_TRACK: "We are fixing tracking so every lead shows its source.",
    },
}


def metric_health(*, current: Decimal | None, baseline: Decimal | None, higher_is_better: bool) -> str:
    """Against the pre-join baseline: as good or better → on track, up to 10% worse → watch, else
    off track. No value → watch; no baseline → on track (nothing to fall behind)."""
    if current is None:
        return H.WATCH
    if baseline is None:
        return H.ON_TRACK
    better = current >= baseline if higher_is_better else current <= baseline
    if better:
        return H.ON_TRACK
    slack = abs(baseline) * Decimal("0.1")
    close = current >= baseline - slack if higher_is_better else current <= baseline + slack
    return H.WATCH if close else H.OFF_TRACK


def baseline_period(*, client: Client, start: datetime.date, end: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The same number of days, ending the day before the client joined."""
    length = (end - start).days
    last = client.joined_on - datetime.timedelta(days=1)
    return last - datetime.timedelta(days=length), last


def metric_card_draft(
    *,
    client: Client,
    period_start: datetime.date,
    period_end: datetime.date,
    metric_key: str,
    content: dict[str, Any],
    evidence: dict[str, Any],
    actor: Actor,
) -> MetricCard:
    """One computed card: an unpublished card for the same metric, period and connection is
    refreshed through metric_card_update (unchanged numbers leave it and its approval alone;
    changed ones send it back to draft and log the edit); otherwise a new draft, logged as
    `metric_card.draft`. Every card computation (lead metrics, Search Console) ends here."""
    existing = (
        MetricCard.objects.filter(
            client=client,
            metric_key=metric_key,
            period_start=period_start,
            period_end=period_end,
            connection=content.get("connection"),
            status__in=[S.DRAFT, S.CHECKED, S.APPROVED],
        )
        .order_by("-id")
        .first()
    )
    if existing is not None:
        card = metric_card_update(card=existing, actor=actor, data=content)
        MetricCard.objects.filter(pk=card.pk).update(evidence=evidence)
        card.evidence = evidence
        return card
    value, unit, baseline = content["current_value"], content["unit"], content["baseline_value"]
    with transaction.atomic():
        card = MetricCard.objects.create(
            client=client,
            period_start=period_start,
            period_end=period_end,
            metric_key=metric_key,
            evidence=evidence,
            drafted_by_label=actor if isinstance(actor, str) else f"user:{actor.get_username()}",
            **content,
        )
        action_record(
            verb="metric_card.draft",
            actor=actor,
            client=client,
            target=card,
            summary=f"{_label(card)} computed: {value} {unit} (baseline {baseline})",
            detail={"status": S.DRAFT, "metric": metric_key, "value": str(value), "baseline": str(baseline)},
        )
    return card


def metric_cards_compute(
    *,
    client: Client,
    period_start: datetime.date,
    period_end: datetime.date,
    actor: Actor,
    connection: Connection | None = None,
) -> list[MetricCard]:
    """Draft cards for every metric in METRICS, from lead records. An unpublished card for the same
    metric and period is refreshed (back to draft when its numbers changed) instead of duplicated."""
    if period_end < period_start:
        raise ApplicationError(
            "The period ends before it starts.", {"start": str(period_start), "end": str(period_end)}
        )
    if connection is not None and connection.client_id != client.pk:
        raise ApplicationError("That connection belongs to another client.", {"connection": connection.pk})
    current = lead_stats(client=client, start=period_start, end=period_end)
    b_start, b_end = baseline_period(client=client, start=period_start, end=period_end)
    before: LeadStats | None = lead_stats(client=client, start=b_start, end=b_end)
    if not before.total:
        before = None  # no lead records before joining: no baseline, rather than a fake zero
    source_label = str(connection) if connection else "Leads (all sources)"
    cards = []
    for key, (label, unit, higher, stat, meaning) in METRICS.items():
        value = stat(current)
        baseline = stat(before) if before else None
        health = metric_health(current=value, baseline=baseline, higher_is_better=higher)
        content = {
            "source_label": source_label[:120],
            "connection": connection,
            "metric_label": label,
            "unit": unit,
            "baseline_value": baseline,
            "current_value": value,
            "health": health,
            "next_action": NEXT_ACTIONS[key][health],
            "meaning": meaning,
        }
        evidence = {
            "lead_count": current.total,
            "baseline_period": [str(b_start), str(b_end)],
            "baseline_lead_count": before.total if before else 0,
        }
        cards.append(
            metric_card_draft(
                client=client,
                period_start=period_start,
                period_end=period_end,
                metric_key=key,
                content=content,
                evidence=evidence,
                actor=actor,
            )
        )
    return cards


def metric_card_update(*, card: MetricCard, actor: Actor, data: dict[str, Any]) -> MetricCard:
    return _proof_update(
        item=card, actor=actor, data=data, content_fields=CARD_CONTENT_FIELDS, internal_fields=CARD_INTERNAL_FIELDS
    )


def metric_card_check(*, card: MetricCard, actor: Actor) -> CheckRun:
    return _proof_check(item=card, actor=actor)


def metric_card_approve(*, card: MetricCard, actor: Actor) -> MetricCard:
    return _proof_approve(item=card, actor=actor)


def metric_card_publish(*, card: MetricCard, actor: Actor, override_reason: str = "") -> MetricCard:
    return _proof_publish(item=card, actor=actor, override_reason=override_reason)


def metric_card_retract(*, card: MetricCard, actor: Actor, reason: str) -> MetricCard:
    return _proof_retract(item=card, actor=actor, reason=reason)


# Generic entry points for interfaces that handle both kinds (admin actions).
def proof_check(*, item: ProofItem, actor: Actor) -> CheckRun:
    return _proof_check(item=item, actor=actor)


def proof_approve(*, item: ProofItem, actor: Actor) -> ProofItem:
    return _proof_approve(item=item, actor=actor)


def proof_publish(*, item: ProofItem, actor: Actor, override_reason: str = "") -> ProofItem:
    return _proof_publish(item=item, actor=actor, override_reason=override_reason)


def proof_retract(*, item: ProofItem, actor: Actor, reason: str) -> ProofItem:
    return _proof_retract(item=item, actor=actor, reason=reason)
