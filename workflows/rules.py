"""Automation rules: services (create, update, delete — each logged with its actor), the
matching the workflows consumer runs on every normalized event, and `rule_explain`, which
answers "would this rule have fired on that event, and why not" without enrolling anyone.

Matching is one function (`_verdict`) used both to fire and to explain, so the explanation a
person reads is the decision the consumer made.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from adminops.services import Actor, action_record, actor_fields
from leads.models import Channel, Client, Consent, ContactMethod, Lead, LeadSource, Urgency
from zartsalgo.errors import ApplicationError
from zartsalgo.events import BusinessEvent

from .models import Enrollment, Workflow
from .models_rules import AutomationRule

# Filters a rule may narrow on. Choice fields are checked against their choices; free-text
# fields (service type, market) match case-insensitively on the trimmed value.
CHOICE_FILTERS: dict[str, tuple[str, ...]] = {
    "source": tuple(LeadSource.values),
    "urgency": tuple(Urgency.values),
    "contact_method": tuple(ContactMethod.values),
}
TEXT_FILTERS = ("service_type", "market")
CONSENT_STATES = ("granted", "not_revoked", "revoked", "unknown")
EDITABLE = ("name", "description", "is_active", "event_type", "filters", "action", "workflow", "reenroll", "priority")


class RuleConfigError(ApplicationError, ValueError):
    pass


def _event_types() -> tuple[str, ...]:
    # The controlled vocabulary lives with the pipeline (integrations), one layer down.
    from integrations.models import EventType

    return tuple(EventType.values)


def validate_filters(filters: Any) -> dict[str, Any]:
    """A rule's filters, cleaned: lists of allowed values per field, consent per channel.
    Raises RuleConfigError naming each field that is wrong."""
    if filters in (None, ""):
        return {}
    if not isinstance(filters, dict):
        raise RuleConfigError("filters must be an object", {"fields": {"filters": "must be a JSON object"}})
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    for key, value in filters.items():
        if key in CHOICE_FILTERS or key in TEXT_FILTERS:
            values = [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) and v.strip() for v in values):
                errors[f"filters.{key}"] = "a list of non-empty strings"
                continue
            if key in CHOICE_FILTERS:
                unknown = [v for v in values if v not in CHOICE_FILTERS[key]]
                if unknown:
                    errors[f"filters.{key}"] = f"unknown {unknown}; one of {', '.join(CHOICE_FILTERS[key])}"
                    continue
                clean[key] = values
            else:
                clean[key] = [v.strip() for v in values]
        elif key == "consent":
            if not isinstance(value, dict):
                errors["filters.consent"] = 'e.g. {"sms": "granted"}'
                continue
            for channel, state in value.items():
                if channel not in Channel.values:
                    errors[f"filters.consent.{channel}"] = f"unknown channel; one of {', '.join(Channel.values)}"
                elif state not in CONSENT_STATES:
                    errors[f"filters.consent.{channel}"] = f"one of {', '.join(CONSENT_STATES)}"
            clean["consent"] = dict(value)
        else:
            allowed = ", ".join([*CHOICE_FILTERS, *TEXT_FILTERS, "consent"])
            errors[f"filters.{key}"] = f"unknown filter; one of {allowed}"
    if errors:
        first = next(iter(errors.items()))
        raise RuleConfigError(f"Rule filters are invalid: {first[0]}: {first[1]}", {"fields": errors})
    return clean


def _validated(client: Client, values: dict[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    if "name" in values and not str(values["name"] or "").strip():
        errors["name"] = "required"
    if "event_type" in values and values["event_type"] not in _event_types():
        errors["event_type"] = f"unknown event type; one of {', '.join(_event_types())}"
    if "action" in values and values["action"] not in AutomationRule.Action.values:
        errors["action"] = f"one of {', '.join(AutomationRule.Action.values)}"
    if "reenroll" in values and values["reenroll"] not in AutomationRule.Reenroll.values:
        errors["reenroll"] = f"one of {', '.join(AutomationRule.Reenroll.values)}"
    workflow = values.get("workflow")
    if workflow is not None:
        if workflow.client_id != client.pk:
            errors["workflow"] = "belongs to another client"
        elif workflow.status == Workflow.Status.ARCHIVED:
            errors["workflow"] = "is archived"
    if "filters" in values:
        try:
            values["filters"] = validate_filters(values["filters"])
        except RuleConfigError as exc:
            errors.update(exc.extra["fields"])
    if errors:
        first = next(iter(errors.items()))
        raise RuleConfigError(f"Rule is invalid: {first[0]}: {first[1]}", {"fields": errors})
    return values


def _check_action(rule: AutomationRule) -> None:
    if rule.action == AutomationRule.Action.ENROLL and rule.workflow_id is None:
        raise RuleConfigError("An enroll rule needs a workflow", {"fields": {"workflow": "required to enroll"}})


def _snapshot(rule: AutomationRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "description": rule.description,
        "is_active": rule.is_active,
        "event_type": rule.event_type,
        "filters": rule.filters,
        "action": rule.action,
        "workflow": rule.workflow_id,
        "reenroll": rule.reenroll,
        "priority": rule.priority,
    }


def rule_create(*, client: Client, actor: Actor, **fields: Any) -> AutomationRule:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise RuleConfigError(f"Unknown rule fields {sorted(unknown)}", {"fields": dict.fromkeys(unknown, "unknown")})
    for required in ("name", "event_type"):
        fields.setdefault(required, "")
    values = _validated(client, dict(fields))
    who = actor_fields(actor)
    rule = AutomationRule(
        client=client,
        created_by=who["actor_user"],
        created_by_label=who["actor_label"],
        updated_by=who["actor_user"],
        updated_by_label=who["actor_label"],
        **values,
    )
    _check_action(rule)
    try:
        with transaction.atomic():
            rule.save(force_insert=True)
            action_record(
                verb="rule.create",
                actor=actor,
                client=client,
                target=rule,
                summary=f"Created rule {rule.name}",
                detail={"rule": _snapshot(rule)},
            )
    except IntegrityError as exc:
        raise RuleConfigError(
            f"A rule named {rule.name!r} already exists for {client}", {"fields": {"name": "already used"}}
        ) from exc
    return rule


def rule_update(*, rule: AutomationRule, actor: Actor, **fields: Any) -> AutomationRule:
    unknown = set(fields) - set(EDITABLE)
    if unknown:
        raise RuleConfigError(f"Unknown rule fields {sorted(unknown)}", {"fields": dict.fromkeys(unknown, "unknown")})
    values = _validated(rule.client, dict(fields))
    with transaction.atomic():
        rule = AutomationRule.objects.select_for_update().select_related("client").get(pk=rule.pk)
        before = _snapshot(rule)
        for name, value in values.items():
            setattr(rule, name, value)
        _check_action(rule)
        after = _snapshot(rule)
        changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        if not changed:
            return rule
        who = actor_fields(actor)
        rule.updated_by, rule.updated_by_label = who["actor_user"], who["actor_label"]
        try:
            with transaction.atomic():
                rule.save()
        except IntegrityError as exc:
            raise RuleConfigError(
                f"A rule named {rule.name!r} already exists", {"fields": {"name": "already used"}}
            ) from exc
        action_record(
            verb="rule.update",
            actor=actor,
            client=rule.client,
            target=rule,
            summary=f"Changed rule {rule.name}: {', '.join(sorted(changed))}",
            detail={"changed": changed},
        )
    return rule


def rule_delete(*, rule: AutomationRule, actor: Actor) -> None:
    """Delete a rule; the log keeps what it was (enrollments it made keep their own trace:
    `enrolled_by_label` names the rule and `source_event` the event that fired it)."""
    with transaction.atomic():
        action_record(
            verb="rule.delete",
            actor=actor,
            client=rule.client,
            target=rule,
            summary=f"Deleted rule {rule.name}",
            detail={"rule": _snapshot(rule), "fired_count": rule.fired_count},
        )
        rule.delete()


# --- matching --------------------------------------------------------------------------------------


@dataclass
class RuleVerdict:
    fired: bool  # the event and the lead match the rule
    would_enroll: bool  # …and the re-enrollment policy and the workflow let it act
    reasons: list[str] = field(default_factory=list)
    restart: Enrollment | None = None  # "always": the live enrollment it would end first


def _consent_state(lead: Lead, channel: str, consents: dict | None) -> str:
    if consents is None:
        consents = {c.channel: c.state for c in Consent.objects.filter(lead=lead)}
    return consents.get(channel, Consent.State.UNKNOWN)


def _verdict(rule: AutomationRule, *, event_type: str, lead: Lead | None, consents: dict | None = None) -> RuleVerdict:
    reasons: list[str] = []
    ok = True
    if not rule.is_active:
        ok = False
        reasons.append("the rule is inactive")
    if event_type != rule.event_type:
        ok = False
        reasons.append(f"event type {event_type} is not {rule.event_type}")
    if lead is None:
        return RuleVerdict(False, False, [*reasons, "the event is about no lead"])
    if lead.client_id != rule.client_id:
        return RuleVerdict(False, False, [*reasons, "the lead belongs to another client"])
    filters = rule.filters or {}
    for key in CHOICE_FILTERS:
        wanted = filters.get(key)
        if wanted:
            value = getattr(lead, key)
            if value in wanted:
                reasons.append(f"{key} {value} matches")
            else:
                ok = False
                reasons.append(f"{key} {value or '(empty)'} is not one of {', '.join(wanted)}")
    for key in TEXT_FILTERS:
        wanted = filters.get(key)
        if wanted:
            value = (getattr(lead, key) or "").strip()
            if value.casefold() in {w.casefold() for w in wanted}:
                reasons.append(f"{key} {value} matches")
            else:
                ok = False
                reasons.append(f"{key} {value or '(empty)'} is not one of {', '.join(wanted)}")
    for channel, wanted in (filters.get("consent") or {}).items():
        state = _consent_state(lead, channel, consents)
        matches = state != Consent.State.REVOKED if wanted == "not_revoked" else state == wanted
        if matches:
            reasons.append(f"{channel} consent {state} matches {wanted}")
        else:
            ok = False
            reasons.append(f"{channel} consent is {state}, the rule needs {wanted}")
    if not ok:
        return RuleVerdict(False, False, reasons)
    if rule.action == AutomationRule.Action.CRM_HANDOFF:
        return RuleVerdict(True, True, [*reasons, "hands the lead to the client's CRM"])
    return _enroll_policy(rule, lead, reasons)


def _enroll_policy(rule: AutomationRule, lead: Lead, reasons: list[str]) -> RuleVerdict:
    workflow = rule.workflow
    if workflow.status != Workflow.Status.ACTIVE or workflow.published_version_id is None:
        return RuleVerdict(True, False, [*reasons, f"{workflow} is {workflow.status}: it takes no new enrollments"])
    previous = list(Enrollment.objects.filter(workflow_id=workflow.pk, lead_id=lead.pk).order_by("-id")[:1])
    if not previous:
        return RuleVerdict(True, True, [*reasons, f"enrolls in {workflow}"])
    last = previous[0]
    live = last.state in Enrollment.LIVE_STATES
    if rule.reenroll == AutomationRule.Reenroll.NEVER:
        return RuleVerdict(True, False, [*reasons, f"re-enrollment is off: enrolled before (enrollment #{last.pk})"])
    if not live:
        return RuleVerdict(True, True, [*reasons, f"enrolls again: enrollment #{last.pk} ended ({last.state})"])
    if rule.reenroll == AutomationRule.Reenroll.ALWAYS:
        cooldown = timedelta(seconds=settings.WORKFLOWS_RULE_RESTART_COOLDOWN_SECONDS)
        if timezone.now() - last.created_at >= cooldown:
            return RuleVerdict(
                True, True, [*reasons, f"restarts: ends live enrollment #{last.pk} and enrolls again"], restart=last
            )
        # The same person arriving by a second source minutes later (a form, then a missed
        # call) is one enrollment, not a restart.
        return RuleVerdict(
            True, False, [*reasons, f"already live in {workflow} (enrollment #{last.pk}), started within the cooldown"]
        )
    return RuleVerdict(True, False, [*reasons, f"already live in {workflow} (enrollment #{last.pk})"])


def rule_explain(*, rule: AutomationRule, event) -> RuleVerdict:
    """Would `rule` fire on this stored normalized event, judged on the lead as it is now?
    Enrolls no one and writes nothing."""
    lead = Lead.objects.filter(pk=event.lead_id).first() if event.lead_id else None
    verdict = _verdict(rule, event_type=event.event_type, lead=lead)
    if event.client_id != rule.client_id:
        verdict.fired = verdict.would_enroll = False
        verdict.reasons.insert(0, "the event belongs to another client")
    return verdict


def rules_for(*, client_ids: set[int], event_types: set[str]) -> dict[tuple[int, str], list[AutomationRule]]:
    """The active rules of these clients for these event types, in priority order: one query."""
    found: dict[tuple[int, str], list[AutomationRule]] = {}
    if not client_ids or not event_types:
        return found
    rules = (
        AutomationRule.objects.filter(is_active=True, client_id__in=client_ids, event_type__in=event_types)
        .select_related("workflow")
        .order_by("priority", "id")
    )
    for rule in rules:
        found.setdefault((rule.client_id, rule.event_type), []).append(rule)
    return found


def rules_fire(*, event: BusinessEvent, rules: list[AutomationRule]) -> list[tuple[int, str, str]]:
    """Act on every rule that matches `event` (inside the event's processing transaction, so an
    enrollment commits with the event that caused it, or not at all). Returns what happened per
    rule: (rule id, the action taken or "", why), for the consumer, logs and tests."""
    from .services import enrollment_create

    lead = event.lead
    outcomes = []
    for rule in rules:
        verdict = _verdict(rule, event_type=event.event_type, lead=lead)
        if not verdict.would_enroll:
            outcomes.append((rule.pk, "", "; ".join(verdict.reasons[-1:])))
            continue
        actor = f"rule:{rule.pk}"
        try:
            if rule.action == AutomationRule.Action.CRM_HANDOFF:
                from integrations.crm import crm_handoff_request

                crm_handoff_request(
                    lead=lead,
                    source="rule",
                    source_key=f"rule:{rule.pk}:event:{event.normalized_event_id}",
                    actor=actor,
                    must_reach=True,
                )
            else:
                with transaction.atomic():
                    if verdict.restart is not None:
                        from .engine import enrollment_finish

                        live = Enrollment.objects.select_for_update().get(pk=verdict.restart.pk)
                        if live.state in Enrollment.LIVE_STATES:
                            enrollment_finish(
                                enrollment=live,
                                state=Enrollment.State.EXITED,
                                reason=Enrollment.ExitReason.UNENROLLED,
                                detail=f"Restarted by rule {rule.name}",
                            )
                    enrollment_create(
                        workflow=rule.workflow,
                        lead=lead,
                        actor=actor,
                        source_event_id=event.normalized_event_id,
                    )
        except ApplicationError as exc:  # InvalidTransition, integrations.crm.NoCrmConnection too
            # Another source enrolled the lead a moment ago (the database refused a second live
            # enrollment), the workflow was paused meanwhile, or the client has no CRM: nothing
            # to do, and the event must still be processed.
            outcomes.append((rule.pk, "", f"not applied: {exc}"))
            continue
        AutomationRule.objects.filter(pk=rule.pk).update(fired_count=F("fired_count") + 1, last_fired_at=timezone.now())
        outcomes.append((rule.pk, rule.action, "; ".join(verdict.reasons[-1:])))
    return outcomes
