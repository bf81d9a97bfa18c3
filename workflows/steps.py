"""Step kinds: what each one's configuration must look like, checked with errors that name the field.

Targets ("yes"/"no"/"then") name another step's key, or "next" (the following step) or "exit".
"""

from __future__ import annotations

from typing import Any

from django.template import Engine, TemplateSyntaxError

from leads.models import Lead
from zartsalgo.errors import ApplicationError

from .models import Step

DELAY_UNITS = ("minutes", "hours", "days", "weeks")
WAITABLE_EVENTS = {
    "sms.replied": "Replied to an SMS",
    "email.opened": "Opened an email",
    "email.clicked": "Clicked a link in an email",
    "invoice.paid": "Paid an invoice",
    "job.booked": "Booked a job",
}
BRANCH_CONDITIONS = (*WAITABLE_EVENTS, "lead_field")
FIELD_OPS = ("eq", "ne", "in", "empty", "not_empty")
# Lead fields a branch may test and an update may set: plain values, nothing internal.
LEAD_FIELDS = ("status", "source", "service_type", "market", "urgency", "contact_method", "postal_code", "city")
SETTABLE_STATUSES = tuple(s for s in Lead.Status.values if s != Lead.Status.LOST)
TARGET_WORDS = ("next", "exit")
MAX_TEXT = {"sms": 1600, "subject": 300, "email": 100_000, "title": 200}


class StepConfigError(ApplicationError, ValueError):
    pass


def _fail(errors: dict[str, str]) -> None:
    if errors:
        first = next(iter(errors.items()))
        raise StepConfigError(f"Step configuration is invalid: {first[0]}: {first[1]}", {"fields": errors})


def _template_ok(errors: dict[str, str], name: str, value: Any, *, limit: int, required: bool = True) -> None:
    if not isinstance(value, str) or (required and not value.strip()):
        errors[name] = "required text" if required else "must be text"
        return
    if len(value) > limit:
        errors[name] = f"longer than {limit} characters"
        return
    try:
        Engine().from_string(value)
    except TemplateSyntaxError as exc:
        errors[name] = f"template error: {exc}"


def _duration_ok(errors: dict[str, str], name: str, value: Any) -> None:
    if not isinstance(value, dict):
        errors[name] = 'needs {"amount": N, "unit": "minutes|hours|days|weeks"}'
        return
    amount, unit = value.get("amount"), value.get("unit")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount < 1 or amount > 10_000:
        errors[f"{name}.amount"] = "a whole number from 1 to 10000"
    if unit not in DELAY_UNITS:
        errors[f"{name}.unit"] = f"one of {', '.join(DELAY_UNITS)}"


def _target_ok(errors: dict[str, str], name: str, value: Any, step_keys: set[str] | None) -> None:
    if value in TARGET_WORDS:
        return
    if not isinstance(value, str) or not value:
        errors[name] = 'a step key, "next" or "exit"'
    elif step_keys is not None and value not in step_keys:
        errors[name] = f"no step with key {value!r} in this version"


def validate_step_config(kind: str, config: Any, *, step_keys: set[str] | None = None) -> dict[str, Any]:
    """Check one step's configuration; returns it with defaults filled. step_keys: the version's
    keys, to check branch targets (None: not checked yet, as while a draft is being built)."""
    if kind not in Step.Kind.values:
        raise StepConfigError(
            f"Unknown step kind {kind!r}", {"fields": {"kind": f"one of {', '.join(Step.Kind.values)}"}}
        )
    if not isinstance(config, dict):
        raise StepConfigError("Step configuration must be an object", {"fields": {"config": "must be an object"}})
    config = dict(config)
    errors: dict[str, str] = {}
    match kind:
        case Step.Kind.SEND_SMS:
            _template_ok(errors, "body", config.get("body"), limit=MAX_TEXT["sms"])
        case Step.Kind.SEND_EMAIL:
            _template_ok(errors, "subject", config.get("subject"), limit=MAX_TEXT["subject"])
            _template_ok(errors, "body", config.get("body"), limit=MAX_TEXT["email"])
        case Step.Kind.DELAY:
            _duration_ok(errors, "duration", config.get("duration"))
        case Step.Kind.WAIT_FOR_EVENT:
            if config.get("event") not in WAITABLE_EVENTS:
                errors["event"] = f"one of {', '.join(WAITABLE_EVENTS)}"
            _duration_ok(errors, "timeout", config.get("timeout"))
            config.setdefault("yes", "next")
            config.setdefault("no", "next")
            _target_ok(errors, "yes", config["yes"], step_keys)
            _target_ok(errors, "no", config["no"], step_keys)
        case Step.Kind.BRANCH:
            condition = config.get("condition")
            if condition not in BRANCH_CONDITIONS:
                errors["condition"] = f"one of {', '.join(BRANCH_CONDITIONS)}"
            elif condition == "lead_field":
                if config.get("field") not in LEAD_FIELDS:
                    errors["field"] = f"one of {', '.join(LEAD_FIELDS)}"
                op = config.setdefault("op", "eq")
                if op not in FIELD_OPS:
                    errors["op"] = f"one of {', '.join(FIELD_OPS)}"
                elif op == "in" and not (
                    isinstance(config.get("value"), list) and all(isinstance(v, str) for v in config["value"])
                ):
                    errors["value"] = "a list of text values for op 'in'"
                elif op in ("eq", "ne") and not isinstance(config.get("value"), str):
                    errors["value"] = "text"
            config.setdefault("yes", "next")
            config.setdefault("no", "next")
            _target_ok(errors, "yes", config["yes"], step_keys)
            _target_ok(errors, "no", config["no"], step_keys)
        case Step.Kind.CREATE_TASK:
            _template_ok(errors, "title", config.get("title"), limit=MAX_TEXT["title"])
            if "notes" in config:
                _template_ok(errors, "notes", config["notes"], limit=10_000, required=False)
            if config.get("assignee") is not None and not isinstance(config.get("assignee"), str):
                errors["assignee"] = "a staff username, or omit it for the lead's owner"
            if config.get("due") is not None:
                _duration_ok(errors, "due", config["due"])
        case Step.Kind.UPDATE_LEAD:
            changes = {k: config.get(k) for k in ("status", "add_tag", "remove_tag") if config.get(k) is not None}
            if not changes:
                errors["config"] = "set at least one of status, add_tag, remove_tag"
            if "status" in changes and changes["status"] not in SETTABLE_STATUSES:
                errors["status"] = f"one of {', '.join(SETTABLE_STATUSES)} (mark lost by hand, with a reason)"
            for name in ("add_tag", "remove_tag"):
                value = changes.get(name)
                if value is not None and (not isinstance(value, str) or not value.strip() or len(value) > 40):
                    errors[name] = "a tag of 1 to 40 characters"
        case Step.Kind.CRM_HANDOFF:
            if not isinstance(config.setdefault("must_reach", True), bool):
                errors["must_reach"] = "true or false (true: a dead handoff becomes a staff task with the payload)"
        case Step.Kind.EXIT:
            reason = config.setdefault("reason", "")
            if not isinstance(reason, str) or len(reason) > 300:
                errors["reason"] = "text up to 300 characters"
    _fail(errors)
    return config


def step_targets(step: Step) -> list[str]:
    if step.kind in (Step.Kind.BRANCH, Step.Kind.WAIT_FOR_EVENT):
        return [step.config.get("yes", "next"), step.config.get("no", "next")]
    return []
