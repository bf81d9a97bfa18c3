"""State changes for leads. Every writer (webhooks, imports, admin, API, demo) comes through here."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from adminops.services import action_build, action_record, actor_fields
from zartsalgo.db import atomic_step
from zartsalgo.errors import ApplicationError, InvalidTransition

from . import normalize as norm
from .models import Activity, Channel, Client, Consent, ContactMethod, Lead

Actor = AbstractBaseUser | str

ATTRIBUTION_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "fbclid",
    "msclkid",
    "tracking_number",
    "landing_page",
    "referrer",
)
# Fields a later signal may fill when empty but never overwrite: the first value is kept and a
# different later value is recorded as a conflict on the timeline for staff to judge.
MERGEABLE_FIELDS = (
    "first_name",
    "last_name",
    "postal_code",
    "city",
    "state_region",
    "source_detail",
    "service_type",
    "contact_method",
    "market",
    *ATTRIBUTION_FIELDS,
)


@dataclass
class LeadSignal:
    """What one inbound signal (form, call, SMS, marketplace lead, CSV row) says about a person."""

    source: str
    phone: str = ""
    email: str = ""
    first_name: str = ""
    last_name: str = ""
    full_name: str = ""
    source_detail: str = ""
    service_type: str = ""
    contact_method: str = ""
    market: str = ""
    urgency: str = ""
    postal_code: str = ""
    city: str = ""
    state_region: str = ""
    attribution: dict[str, str] = field(default_factory=dict)
    occurred_at: datetime.datetime | None = None
    # channel -> (granted?, evidence), e.g. {"sms": (True, "TCPA checkbox on /quote")}
    consent: dict[str, tuple[bool, str]] = field(default_factory=dict)
    summary: str = ""


@dataclass
class LeadUpsertResult:
    lead: Lead
    created: bool
    filled: dict[str, Any] = field(default_factory=dict)
    conflicts: dict[str, dict[str, Any]] = field(default_factory=dict)
    flags: list[dict[str, str]] = field(default_factory=list)


def signal_values(client: Client, signal: LeadSignal) -> tuple[dict[str, Any], list[norm.Flag]]:
    flags: list[norm.Flag] = []
    values: dict[str, Any] = {}

    phone_e164, flag = norm.normalize_phone(signal.phone, client.phone_region)
    flags += [flag] if flag else []
    email, flag = norm.normalize_email(signal.email)
    flags += [flag] if flag else []
    if not (phone_e164 or email):
        flags.append(norm.Flag("contact", "no_contact_point", "No usable phone or email: cannot dedupe or follow up"))
    values.update(
        phone_raw=(signal.phone or "").strip()[:64],
        phone_e164=phone_e164,
        email_raw=(signal.email or "").strip()[:254],
        email_normalized=email,
    )

    first, last = norm.clean_name(signal.first_name), norm.clean_name(signal.last_name)
    if not (first or last) and signal.full_name:
        first, last = norm.split_full_name(signal.full_name)
    values.update(first_name=first, last_name=last)

    source, flag = norm.normalize_source(signal.source)
    flags += [flag] if flag else []
    values["source"] = source
    values["source_detail"] = (signal.source_detail or "").strip()[:200]

    values["service_type"], flag = norm.match_catalog(signal.service_type, client.service_catalog, "service_type")
    flags += [flag] if flag else []
    values["market"], flag = norm.match_catalog(signal.market, client.markets, "market")
    flags += [flag] if flag else []
    values["urgency"] = norm.normalize_urgency(signal.urgency)
    values["contact_method"] = norm.normalize_contact_method(signal.contact_method) or ""
    values["postal_code"] = (signal.postal_code or "").strip()[:12]
    values["city"] = norm.clean_name(signal.city)
    values["state_region"] = (signal.state_region or "").strip()[:50]

    for key in ATTRIBUTION_FIELDS:
        raw = str(signal.attribution.get(key) or "").strip()
        if key == "tracking_number" and raw:
            raw = norm.normalize_phone(raw, client.phone_region)[0] or raw
        limit = Lead._meta.get_field(key).max_length
        if key in ("landing_page", "referrer") and raw and not raw.startswith(("http://", "https://")):
            flags.append(norm.Flag(key, f"{key}_invalid", "Not an http(s) URL", raw))
            raw = ""
        values[key] = raw[:limit]
    return values, flags


def _merge_flags(existing: list[dict], new: list[norm.Flag], *, cleared_fields: set[str]) -> list[dict]:
    kept = [f for f in existing if f.get("field") not in cleared_fields]
    seen = {(f["field"], f["code"]) for f in kept}
    for flag in new:
        if (flag.field, flag.code) not in seen:
            kept.append(flag.as_dict())
            seen.add((flag.field, flag.code))
    return kept


def _find_matches(client: Client, values: dict[str, Any]) -> tuple[Lead | None, Lead | None]:
    by_phone = by_email = None
    phone, email = values["phone_e164"], values["email_normalized"]
    if not phone and not email:
        return None, None
    if phone and email:
        ids = list(
            Lead.objects.filter(Q(phone_e164=phone) | Q(email_normalized=email), client=client).values_list(
                "id", flat=True
            )
        )
        if not ids:
            return None, None
        # Lock in id order: concurrent merges touching the same two leads cannot deadlock.
        locked = list(Lead.objects.select_for_update().filter(id__in=sorted(set(ids))).order_by("id"))
    else:
        # One contact value matches at most one lead (UNIQUE per client): lock it in the read.
        lookup = {"phone_e164": phone} if phone else {"email_normalized": email}
        locked = list(Lead.objects.select_for_update().filter(client=client, **lookup))
    for lead in locked:
        lead.client = client  # the caller's instance: no query for it later
        if phone and lead.phone_e164 == phone:
            by_phone = lead
        if email and lead.email_normalized == email:
            by_email = lead
    return by_phone, by_email


def lead_upsert(*, client: Client, signal: LeadSignal, actor: Actor = "system:leads") -> LeadUpsertResult:
    """Create the lead a signal describes, or merge the signal into the lead it matches.

    Matching is per client on E.164 phone, then case-folded email. Unreadable contact values are
    kept raw and flagged, never dropped. The database's UNIQUE constraints settle races: the
    loser of a concurrent create retries and merges into the winner.
    """
    values, flags = signal_values(client, signal)
    occurred_at = signal.occurred_at or timezone.now()
    for attempt in range(3):
        try:
            with atomic_step():
                by_phone, by_email = _find_matches(client, values)
                if by_phone is None and by_email is None:
                    return _lead_create(
                        client=client, values=values, flags=flags, signal=signal, occurred_at=occurred_at, actor=actor
                    )
                return _lead_merge(
                    lead=by_phone or by_email,
                    other=by_email if by_phone and by_email and by_email.pk != by_phone.pk else None,
                    values=values,
                    flags=flags,
                    signal=signal,
                    occurred_at=occurred_at,
                    actor=actor,
                )
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _lead_create(*, client, values, flags, signal, occurred_at, actor) -> LeadUpsertResult:
    lead = lead_build(client=client, values=values, flags=flags, occurred_at=occurred_at)
    lead.save()
    capture = capture_activity_build(lead=lead, signal=signal, occurred_at=occurred_at, actor=actor)
    capture.save(force_insert=True)
    _apply_signal_consent(lead=lead, signal=signal, occurred_at=occurred_at, actor=actor, activity=capture)
    return LeadUpsertResult(lead=lead, created=True, filled=values, flags=lead.data_quality_flags)


def lead_build(*, client, values, flags, occurred_at) -> Lead:
    """The unsaved lead a signal with no match creates (lead_upsert; the leads batch consumer)."""
    lead = Lead(
        client=client,
        **{k: v for k, v in values.items() if k not in ("urgency", "contact_method")},
        urgency=values["urgency"] or Lead._meta.get_field("urgency").default,
        contact_method=values["contact_method"] or ContactMethod.ANY,
        captured_at=occurred_at,
        last_activity_at=occurred_at,
        data_quality_flags=[f.as_dict() for f in flags],
        has_data_quality_issues=bool(flags),
    )
    lead.full_name = f"{lead.first_name} {lead.last_name}".strip()  # save() does it too; bulk_create does not
    return lead


def capture_activity_build(*, lead, signal, occurred_at, actor) -> Activity:
    summary = signal.summary or f"Lead captured from {lead.get_source_display()}"
    return Activity(
        client=lead.client,
        lead=lead,
        kind=Activity.Kind.LEAD_CAPTURED,
        occurred_at=occurred_at,
        summary=summary[:300],
        data={"source": lead.source, "signal": _signal_snapshot(signal), "flags": lead.data_quality_flags},
        **actor_fields(actor),
    )


@dataclass
class SignalMerge:
    """What merging one signal into a lead did: the lead instance is changed in memory, the
    timeline entry and the action log row are built, nothing is written yet."""

    filled: dict[str, Any]
    conflicts: dict[str, dict[str, Any]]
    activity: Activity
    action_summary: str
    action_detail: dict[str, Any]


def _lead_merge(*, lead, other, values, flags, signal, occurred_at, actor) -> LeadUpsertResult:
    merge = signal_merge(
        lead=lead, other=other, values=values, flags=flags, signal=signal, occurred_at=occurred_at, actor=actor
    )
    lead.save()
    merge.activity.save(force_insert=True)
    action_record(
        verb="lead.merge",
        actor=actor,
        lead=lead,
        target=merge.activity,
        summary=merge.action_summary,
        detail=merge.action_detail,
    )
    _apply_signal_consent(lead=lead, signal=signal, occurred_at=occurred_at, actor=actor, activity=merge.activity)
    return LeadUpsertResult(
        lead=lead, created=False, filled=merge.filled, conflicts=merge.conflicts, flags=lead.data_quality_flags
    )


def signal_merge(*, lead, other, values, flags, signal, occurred_at, actor) -> SignalMerge:
    """Merge a signal's values into `lead` in memory (lead_upsert; the leads batch consumer).

    Fills empty fields, keeps existing values and records different ones as conflicts, raises
    urgency, never lowers it. `other`: a second lead the signal's email belongs to.
    """
    filled: dict[str, Any] = {}
    conflicts: dict[str, dict[str, Any]] = {}
    cleared: set[str] = set()

    for contact, raw_field in (("phone_e164", "phone_raw"), ("email_normalized", "email_raw")):
        new = values[contact]
        if new and not getattr(lead, contact) and not (other and contact == "email_normalized"):
            setattr(lead, contact, new)
            setattr(lead, raw_field, values[raw_field])
            filled[contact] = new
            cleared.add(contact.split("_")[0])
        elif new and getattr(lead, contact) != new:
            conflicts[contact] = {"kept": getattr(lead, contact), "received": new}
        elif not new and values[raw_field] and not getattr(lead, raw_field):
            setattr(lead, raw_field, values[raw_field])
            filled[raw_field] = values[raw_field]

    for name in MERGEABLE_FIELDS:
        new, current = values.get(name), getattr(lead, name)
        if name == "contact_method" and current == ContactMethod.ANY:
            current = ""  # "any" is the absence of a preference: a stated one fills it
        if not new:
            continue
        if not current:
            setattr(lead, name, new)
            filled[name] = new
        elif current != new:
            conflicts[name] = {"kept": current, "received": new}
    # A later, more urgent signal ("water everywhere now") raises urgency; it never lowers it.
    if values["urgency"] and norm.URGENCY_RANK[values["urgency"]] > norm.URGENCY_RANK[lead.urgency]:
        filled["urgency"] = values["urgency"]
        lead.urgency = values["urgency"]
    if values["source"] != lead.source:
        conflicts["source"] = {"kept": lead.source, "received": values["source"]}

    # A flag about the signal's value matters only if the lead took that value: a rejected
    # "Gas line" must not flag a lead that keeps "Drain cleaning", and an adopted one must.
    adopted = {name.split("_")[0] if name.startswith(("phone", "email")) else name for name in filled}
    new_flags = [f for f in flags if f.field in adopted and f.field not in cleared]
    if other is not None:
        new_flags.append(
            norm.Flag("email", "possible_duplicate", f"Email also belongs to lead #{other.pk}", values["email_raw"])
        )
    lead.data_quality_flags = _merge_flags(lead.data_quality_flags, new_flags, cleared_fields=cleared)
    lead.has_data_quality_issues = bool(lead.data_quality_flags)
    lead.captured_at = min(lead.captured_at, occurred_at)
    lead.last_activity_at = max(lead.last_activity_at or occurred_at, occurred_at)

    source_label = dict(Lead._meta.get_field("source").choices).get(values["source"], values["source"])
    activity = Activity(
        client=lead.client,
        lead=lead,
        kind=Activity.Kind.MERGE,
        occurred_at=occurred_at,
        summary=(signal.summary or f"New signal from {source_label} merged into this lead")[:300],
        data={
            "source": values["source"],
            "filled": dict(filled),
            "conflicts": conflicts,
            "possible_duplicate_of": other.pk if other else None,
            "signal": _signal_snapshot(signal),
        },
        **actor_fields(actor),
    )
    return SignalMerge(
        filled=filled,
        conflicts=conflicts,
        activity=activity,
        action_summary=f"Merged a {source_label} signal: filled {len(filled)} field(s), {len(conflicts)} conflict(s)",
        action_detail={"filled": sorted(filled), "conflicts": sorted(conflicts)},
    )


def _signal_snapshot(signal: LeadSignal) -> dict[str, Any]:
    snapshot = {k: v for k, v in signal.__dict__.items() if v and k not in {"occurred_at", "consent"}}
    if signal.consent:
        snapshot["consent"] = {ch: {"granted": g, "evidence": e} for ch, (g, e) in signal.consent.items()}
    return snapshot


def _apply_signal_consent(*, lead, signal, occurred_at, actor, activity) -> None:
    for channel, (granted, evidence) in signal.consent.items():
        consent_set(
            lead=lead,
            channel=channel,
            state=Consent.State.GRANTED if granted else Consent.State.REVOKED,
            evidence=evidence,
            actor=actor,
            occurred_at=occurred_at,
            source_activity=activity,
        )


def consent_set(
    *,
    lead: Lead,
    channel: str,
    state: str,
    evidence: str,
    actor: Actor,
    occurred_at: datetime.datetime | None = None,
    source_activity: Activity | None = None,
) -> Consent:
    """Record a consent change. An older change arriving late never overrides a newer one."""
    if channel not in Channel.values:
        raise ApplicationError(f"Unknown consent channel {channel!r}", {"channel": channel})
    if not evidence:
        raise ApplicationError("Consent changes need evidence (where and how it was given or revoked).")
    occurred_at = occurred_at or timezone.now()
    with atomic_step():
        consent, created = Consent.objects.select_for_update().get_or_create(
            lead=lead,
            channel=channel,
            defaults={
                "state": state,
                "changed_at": occurred_at,
                "evidence": evidence[:500],
                "source_activity": source_activity,
            },
        )
        if not created:
            if occurred_at < consent.changed_at or consent.state == state:
                return consent
            consent.state, consent.changed_at, consent.evidence = state, occurred_at, evidence[:500]
            consent.source_activity = source_activity
            consent.save()
        Activity.objects.create(
            client=lead.client,
            lead=lead,
            kind=Activity.Kind.CONSENT_CHANGE,
            occurred_at=occurred_at,
            summary=f"{consent.get_channel_display()} consent {consent.get_state_display().lower()}",
            body=evidence[:500],
            data={"channel": channel, "state": state},
            **actor_fields(actor),
        )
    return consent


def activity_record(
    *,
    lead: Lead,
    kind: str,
    summary: str,
    actor: Actor,
    body: str = "",
    occurred_at: datetime.datetime | None = None,
    provider: str = "",
    provider_id: str | None = None,
    delivery_status: str = "",
    is_internal: bool = True,
    data: dict[str, Any] | None = None,
    lead_locked: bool = False,
) -> tuple[Activity, bool]:
    """Append to the lead's timeline; idempotent on (provider, provider_id, kind).

    The first outbound response sets the lead's first-response time and moves a new lead to
    contacted, so response-time reporting needs no later guesswork. lead_locked: the caller
    holds the lead's row lock in this transaction and its instance is current (as lead_upsert
    returns it), so it is not read again.
    """
    activity = activity_build(
        lead=lead,
        kind=kind,
        summary=summary,
        actor=actor,
        body=body,
        occurred_at=occurred_at,
        provider=provider,
        provider_id=provider_id,
        delivery_status=delivery_status,
        is_internal=is_internal,
        data=data,
    )
    try:
        with atomic_step():
            activity.save(force_insert=True)
            _after_activity(lead=lead, activity=activity, actor=actor, lead_locked=lead_locked)
    except IntegrityError:
        if not provider_id:
            raise
        return Activity.objects.get(provider=provider, provider_id=provider_id, kind=kind), False
    return activity, True


def activity_build(
    *,
    lead: Lead,
    kind: str,
    summary: str,
    actor: Actor,
    body: str = "",
    occurred_at: datetime.datetime | None = None,
    provider: str = "",
    provider_id: str | None = None,
    delivery_status: str = "",
    is_internal: bool = True,
    data: dict[str, Any] | None = None,
) -> Activity:
    """The unsaved timeline entry activity_record writes (also built by the leads batch consumer)."""
    if kind not in Activity.Kind.values:
        raise ApplicationError(f"Unknown activity kind {kind!r}")
    return Activity(
        client_id=lead.client_id,
        lead=lead,
        kind=kind,
        occurred_at=occurred_at or timezone.now(),
        summary=summary[:300],
        body=body,
        provider=provider,
        provider_id=provider_id or None,
        delivery_status=delivery_status,
        is_internal=is_internal,
        data=data or {},
        **actor_fields(actor),
    )


def _after_activity(*, lead: Lead, activity: Activity, actor: Actor, lead_locked: bool = False) -> None:
    if not lead_locked:
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
    changed, rows = activity_effects(lead=lead, activity=activity, actor=actor)
    if changed:
        lead.save(update_fields=[*changed, "updated_at"])
    for row in rows:
        row.save(force_insert=True)


def activity_effects(*, lead: Lead, activity: Activity, actor: Actor) -> tuple[list[str], list]:
    """What a new timeline entry changes on its lead, in memory (the caller holds the lead's row
    lock and writes): the lead's changed fields, and the rows of a status change to insert.

    The first outbound response sets the first-response time and moves a new lead to contacted.
    """
    changed = []
    if lead.last_activity_at is None or activity.occurred_at > lead.last_activity_at:
        lead.last_activity_at = activity.occurred_at
        changed.append("last_activity_at")
    rows: list = []
    if activity.kind in Activity.OUTBOUND_RESPONSE_KINDS:
        if lead.first_response_at is None:
            lead.first_response_at = activity.occurred_at
            lead.first_response_seconds = max(0, int((activity.occurred_at - lead.captured_at).total_seconds()))
            changed += ["first_response_at", "first_response_seconds"]
        if lead.status == Lead.Status.NEW:
            rows = status_change_apply(
                lead=lead,
                status=Lead.Status.CONTACTED,
                actor=actor,
                reason="First response sent",
                occurred_at=activity.occurred_at,
            )
            changed += ["status", "lost_reason", "status_changed_at"]
    return changed, rows


def status_change_apply(
    *, lead: Lead, status: str, actor: Actor, reason: str, occurred_at, lost_reason: str = ""
) -> list:
    """Move a locked lead's status in memory; returns the timeline entry and the action log row
    the change writes (unsaved). The caller has validated the transition."""
    previous = lead.status
    lead.status = status
    lead.lost_reason = lost_reason if status == Lead.Status.LOST else ""
    lead.status_changed_at = occurred_at
    text = f"Status {previous} → {status}" + (f" ({lead.get_lost_reason_display()})" if lead.lost_reason else "")
    activity = Activity(
        client_id=lead.client_id,
        lead=lead,
        kind=Activity.Kind.STATUS_CHANGE,
        occurred_at=occurred_at,
        summary=text,
        body=reason,
        data={"from": previous, "to": status, "lost_reason": lead.lost_reason},
        **actor_fields(actor),
    )
    action = action_build(
        verb="lead.status_change", actor=actor, lead=lead, target=lead, summary=text, detail={"reason": reason}
    )
    return [activity, action]


def note_add(*, lead: Lead, body: str, actor: Actor) -> Activity:
    body = (body or "").strip()
    if not body:
        raise ApplicationError("A note needs some text.")
    activity, _ = activity_record(
        lead=lead, kind=Activity.Kind.NOTE, summary=body.splitlines()[0][:300], body=body, actor=actor
    )
    return activity


# new → contacted → quoted → booked, lost from anywhere; a lost lead can be reopened and a
# booked job that cancels becomes lost. Steps may be skipped (a call can book on the spot).
STATUS_TRANSITIONS: dict[str, frozenset[str]] = {
    Lead.Status.NEW: frozenset({Lead.Status.CONTACTED, Lead.Status.QUOTED, Lead.Status.BOOKED, Lead.Status.LOST}),
    Lead.Status.CONTACTED: frozenset({Lead.Status.QUOTED, Lead.Status.BOOKED, Lead.Status.LOST}),
    Lead.Status.QUOTED: frozenset({Lead.Status.CONTACTED, Lead.Status.BOOKED, Lead.Status.LOST}),
    Lead.Status.BOOKED: frozenset({Lead.Status.LOST}),
    Lead.Status.LOST: frozenset({Lead.Status.NEW, Lead.Status.CONTACTED, Lead.Status.QUOTED}),
}


def lead_set_status(
    *,
    lead: Lead,
    status: str,
    actor: Actor,
    lost_reason: str = "",
    reason: str = "",
    occurred_at: datetime.datetime | None = None,
) -> Lead:
    """Move a lead along the pipeline, validated against the row as the database has it
    (locked), not the caller's copy, which may be stale. `occurred_at` backdates the change
    for replays and imports."""
    if status == Lead.Status.LOST and lost_reason not in Lead.LostReason.values:
        raise ApplicationError("A lost lead needs a lost reason.", {"lost_reason": lost_reason})
    now = occurred_at or timezone.now()
    with transaction.atomic():
        current = Lead.objects.select_for_update().get(pk=lead.pk)
        previous = current.status
        if status == previous:
            lead.status, lead.lost_reason = current.status, current.lost_reason
            return lead
        if status not in STATUS_TRANSITIONS.get(previous, ()):
            raise InvalidTransition(
                f"A {current.get_status_display().lower()} lead cannot move to {status}.",
                {"from": previous, "to": status, "allowed": sorted(STATUS_TRANSITIONS[previous])},
            )
        lead.status = previous  # the row's, not the caller's copy
        rows = status_change_apply(
            lead=lead, status=status, actor=actor, reason=reason, occurred_at=now, lost_reason=lost_reason
        )
        lead.save(update_fields=["status", "lost_reason", "status_changed_at", "updated_at"])
        for row in rows:
            row.save(force_insert=True)
    return lead


STAFF_EDITABLE_FIELDS = (
    "first_name",
    "last_name",
    "phone_raw",
    "email_raw",
    "postal_code",
    "city",
    "state_region",
    "source",
    "source_detail",
    "service_type",
    "contact_method",
    "market",
    "urgency",
    "owner",
    "next_action",
    "next_action_due",
    *ATTRIBUTION_FIELDS,
)


def lead_contact_conflicts(*, lead: Lead | None, client: Client, phone: str, email: str) -> dict[str, str]:
    """Errors a staff edit of phone/email would cause (used by forms before saving)."""
    errors: dict[str, str] = {}
    phone_e164, _ = norm.normalize_phone(phone, client.phone_region)
    email_norm, _ = norm.normalize_email(email)
    others = Lead.objects.filter(client=client).exclude(pk=getattr(lead, "pk", None))
    if phone_e164 and (dup := others.filter(phone_e164=phone_e164).first()):
        errors["phone_raw"] = f"Lead #{dup.pk} ({dup}) already has {phone_e164}; merge instead of duplicating."
    if email_norm and (dup := others.filter(email_normalized=email_norm).first()):
        errors["email_raw"] = f"Lead #{dup.pk} ({dup}) already has {email_norm}; merge instead of duplicating."
    return errors


def lead_update(
    *, lead: Lead, data: dict[str, Any], actor: Actor, status: str | None = None, lost_reason: str = "", note: str = ""
) -> Lead:
    """A staff edit: set fields, re-normalize contact points, change status, add a note — logged."""
    unknown = set(data) - set(STAFF_EDITABLE_FIELDS)
    if unknown:
        raise ApplicationError(f"These fields cannot be edited: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        changes = {}
        for name, value in data.items():
            old = getattr(lead, name)
            if old != value:
                changes[name] = {
                    "from": str(old) if old is not None else None,
                    "to": str(value) if value is not None else None,
                }
                setattr(lead, name, value)
        if "phone_raw" in changes or "email_raw" in changes:
            errors = lead_contact_conflicts(lead=lead, client=lead.client, phone=lead.phone_raw, email=lead.email_raw)
            if errors:
                raise ApplicationError("Contact details belong to another lead.", errors, code="duplicate_contact")
            lead.phone_e164, phone_flag = norm.normalize_phone(lead.phone_raw, lead.client.phone_region)
            lead.email_normalized, email_flag = norm.normalize_email(lead.email_raw)
            touched = {f for f in ("phone", "email") if f"{f}_raw" in changes}
            new_flags = [f for f in (phone_flag, email_flag) if f and f.field in touched]
            lead.data_quality_flags = _merge_flags(lead.data_quality_flags, new_flags, cleared_fields=touched)
            lead.has_data_quality_issues = bool(lead.data_quality_flags)
        if changes:
            lead.save()
            summary = "Edited " + ", ".join(sorted(changes))
            Activity.objects.create(
                client_id=lead.client_id,
                lead=lead,
                kind=Activity.Kind.FIELD_CHANGE,
                summary=summary[:300],
                data={"changes": changes},
                **actor_fields(actor),
            )
            action_record(
                verb="lead.update", actor=actor, lead=lead, target=lead, summary=summary, detail={"changes": changes}
            )
        if status and status != lead.status:
            lead_set_status(lead=lead, status=status, actor=actor, lost_reason=lost_reason)
        if note.strip():
            note_add(lead=lead, body=note, actor=actor)
    return lead


def lead_create_manual(*, client: Client, data: dict[str, Any], actor: Actor) -> LeadUpsertResult:
    """A lead typed in by staff goes through the same dedupe as every provider signal."""
    attribution = {k: data.get(k, "") for k in ATTRIBUTION_FIELDS if data.get(k)}
    signal = LeadSignal(
        source=data.get("source") or "manual",
        phone=data.get("phone_raw", ""),
        email=data.get("email_raw", ""),
        first_name=data.get("first_name", ""),
        last_name=data.get("last_name", ""),
        source_detail=data.get("source_detail", ""),
        service_type=data.get("service_type", ""),
        contact_method=data.get("contact_method", ""),
        market=data.get("market", ""),
        urgency=data.get("urgency", ""),
        postal_code=data.get("postal_code", ""),
        city=data.get("city", ""),
        state_region=data.get("state_region", ""),
        attribution=attribution,
        summary="Lead entered by staff",
    )
    result = lead_upsert(client=client, signal=signal, actor=actor)
    extra = {k: data[k] for k in ("owner", "next_action", "next_action_due") if data.get(k)}
    if extra:
        result.lead = lead_update(lead=result.lead, data=extra, actor=actor)
    return result


def client_save(*, client: Client, changed_fields: list[str], actor: Actor, created: bool) -> Client:
    """Save a client's settings; quiet hours, time zone and coverage changes are logged."""
    client.full_clean()
    with transaction.atomic():
        client.save()
        if created or changed_fields:
            action_record(
                verb="client.create" if created else "client.update",
                actor=actor,
                client=client,
                target=client,
                summary=("Created client " + client.name)
                if created
                else "Changed " + ", ".join(sorted(changed_fields)),
                detail={"fields": sorted(changed_fields)},
            )
    return client


def lead_change_tags(*, lead: Lead, actor: Actor, add: list[str] = (), remove: list[str] = ()) -> Lead:
    """Add and remove labels ("collections", "vip"); the change is on the timeline."""
    with transaction.atomic():
        lead = Lead.objects.select_for_update().get(pk=lead.pk)
        before = list(lead.tags or [])
        tags = [t for t in before if t not in set(remove)]
        tags += [t for t in add if t not in tags]
        if tags == before:
            return lead
        lead.tags = tags
        lead.save(update_fields=["tags", "updated_at"])
        Activity.objects.create(
            client_id=lead.client_id,
            lead=lead,
            kind=Activity.Kind.FIELD_CHANGE,
            summary=f"Tags: {', '.join(tags) or '(none)'}",
            data={"field": "tags", "before": before, "after": tags},
            **actor_fields(actor),
        )
    return lead
