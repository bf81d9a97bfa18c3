"""Workflow templates: the four built-ins (the product definition's Workflows sheet) and the
services that create, change and delete template rows.

Templates live in `workflows_workflowtemplate` rows (models_templates.WorkflowTemplate); the
built-ins were loaded from TEMPLATES below by migration 0005, which keeps its own frozen copy.
TEMPLATES stays as the reference for tests and as a fallback for a database without the rows.
`workflow_from_template` makes a client's own draft workflow from one; staff adjust the wording
and publish it. Times are in the client's zone; sends respect its quiet hours.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils.text import slugify

from adminops.services import Actor, action_record
from leads.models import Client
from zartsalgo.errors import ApplicationError, InvalidTransition, NotFound

from . import services
from .models import Step, Workflow
from .models_templates import WorkflowTemplate
from .steps import StepConfigError, step_targets, validate_step_config

TEMPLATES: dict[str, dict] = {
    "new-lead-follow-up": {
        "name": "New Lead Follow-Up",
        "description": "Initial confirmation SMS → Day 1 email → Day 3 check-in call reminder → Day 7 re-engage.",
        "steps": [
            (
                "confirm",
                "send_sms",
                {
                    "body": "Hi {{ lead.first_name|default:'there' }}, thanks for contacting "
                    "{{ client.name }}! We got your request and will call you shortly. Reply STOP to opt out."
                },
            ),
            ("wait-1d", "delay", {"duration": {"amount": 1, "unit": "days"}}),
            (
                "day1-email",
                "send_email",
                {
                    "subject": "Your {{ lead.service_type|default:'service' }} request with {{ client.name }}",
                    "body": "Hi {{ lead.first_name|default:'there' }},\n\nThanks for reaching out. Reply to this email "
                    "or call us to pick a time that suits you.\n\n{{ client.name }}",
                },
            ),
            ("wait-2d", "delay", {"duration": {"amount": 2, "unit": "days"}}),
            (
                "day3-call",
                "create_task",
                {
                    "title": "Day 3 check-in call: {{ lead.full_name }}",
                    "due": {"amount": 4, "unit": "hours"},
                },
            ),
            ("wait-4d", "delay", {"duration": {"amount": 4, "unit": "days"}}),
            (
                "day7-reengage",
                "send_sms",
                {
                    "body": "Hi {{ lead.first_name|default:'there' }}, still looking for help "
                    "with your {{ lead.service_type|default:'project' }}? Reply here and we'll get you scheduled."
                },
            ),
        ],
    },
    "post-job-review": {
        "name": "Post-Job Review Request",
        "description": "24hr SMS with review link → 72hr email fallback → 7-day final ask.",
        "steps": [
            ("wait-24h", "delay", {"duration": {"amount": 24, "unit": "hours"}}),
            (
                "review-sms",
                "send_sms",
                {
                    "body": "Thanks for choosing {{ client.name }}, "
                    "{{ lead.first_name|default:'' }}! Would you leave us a quick review? {{ client.review_url }}"
                },
            ),
            (
                "wait-reply",
                "wait_for_event",
                {
                    "event": "sms.replied",
                    "timeout": {"amount": 2, "unit": "days"},
                    "yes": "exit",
                    "no": "next",
                },
            ),
            (
                "review-email",
                "send_email",
                {
                    "subject": "How did we do, {{ lead.first_name|default:'there' }}?",
                    "body": "Thanks again for choosing {{ client.name }}. A short review would mean a lot to our team:"
                    "\n\n{{ client.review_url }}",
                },
            ),
            ("wait-4d", "delay", {"duration": {"amount": 4, "unit": "days"}}),
            (
                "final-ask",
                "send_sms",
                {
                    "body": "Last note from {{ client.name }}: if you have a minute, we'd love your review: "
                    "{{ client.review_url }}"
                },
            ),
        ],
    },
    "recurring-service-reminder": {
        "name": "Recurring Service Reminder",
        "description": "30-day advance notice → 14-day confirmation → 2-day reminder → Day-of alert "
        "(enroll 30 days before the service date).",
        "steps": [
            (
                "notice-30d",
                "send_email",
                {
                    "subject": "Your {{ lead.service_type|default:'service' }} is coming up",
                    "body": "Hi {{ lead.first_name|default:'there' }}, your next service with {{ client.name }} is "
                    "due in about 30 days. Reply to pick a time.",
                },
            ),
            ("wait-16d", "delay", {"duration": {"amount": 16, "unit": "days"}}),
            (
                "confirm-14d",
                "send_sms",
                {
                    "body": "{{ client.name }}: your service is in 2 weeks. "
                    "Reply YES to confirm or call us to change it."
                },
            ),
            ("wait-12d", "delay", {"duration": {"amount": 12, "unit": "days"}}),
            ("reminder-2d", "send_sms", {"body": "Reminder from {{ client.name }}: we'll see you in 2 days."}),
            ("wait-2d", "delay", {"duration": {"amount": 2, "unit": "days"}}),
            ("day-of", "send_sms", {"body": "{{ client.name }}: our technician is on the way today."}),
        ],
    },
    "payment-overdue": {
        "name": "Payment Overdue Escalation",
        "description": "Day 1 friendly reminder → Day 7 firm notice → Day 14 final warning → Day 30 collections "
        "flag. Exits as soon as the invoice is paid.",
        "steps": [
            (
                "day1",
                "send_email",
                {
                    "subject": "A friendly reminder from {{ client.name }}",
                    "body": "Hi {{ lead.first_name|default:'there' }}, our records show an open invoice. "
                    "If you've already paid, thank you and please ignore this.",
                },
            ),
            ("wait-6d", "delay", {"duration": {"amount": 6, "unit": "days"}}),
            (
                "day7",
                "send_email",
                {
                    "subject": "Invoice past due: {{ client.name }}",
                    "body": "Hi {{ lead.first_name|default:'there' }}, your invoice is now a week past due. "
                    "Please pay at your earliest convenience.",
                },
            ),
            ("wait-7d", "delay", {"duration": {"amount": 7, "unit": "days"}}),
            (
                "day14",
                "send_sms",
                {
                    "body": "{{ client.name }}: final notice, your invoice is 14 days past due. "
                    "Please pay or call us to avoid collections."
                },
            ),
            ("wait-16d", "delay", {"duration": {"amount": 16, "unit": "days"}}),
            ("collections", "update_lead", {"add_tag": "collections"}),
            ("collections-task", "create_task", {"title": "Collections review: {{ lead.full_name }}"}),
        ],
    },
}


def _template_steps(key: str) -> tuple[str, str, list[dict[str, Any]]] | None:
    """(name, description, steps) of a template: its row, else the built-in dict."""
    row = WorkflowTemplate.objects.filter(key=key).first()
    if row is not None:
        return row.name, row.description, list(row.steps)
    template = TEMPLATES.get(key)
    if template is None:
        return None
    steps = [{"key": k, "kind": kind, "name": "", "config": config} for k, kind, config in template["steps"]]
    return template["name"], template["description"], steps


def workflow_from_template(*, client: Client, key: str, actor, name: str = "") -> Workflow:
    """A draft workflow for `client` with the template's steps (publish it to start)."""
    found = _template_steps(key)
    if found is None:
        known = sorted({*WorkflowTemplate.objects.values_list("key", flat=True), *TEMPLATES})
        raise NotFound(f"No template {key!r}", {"fields": {"template": "unknown key"}, "templates": known})
    template_name, description, steps = found
    with transaction.atomic():
        workflow = services.workflow_create(
            client=client,
            name=name or template_name,
            description=description,
            actor=actor,
            template_key=key,
        )
        for step in steps:
            services.step_add(
                workflow=workflow,
                kind=step["kind"],
                config=step.get("config") or {},
                key=step["key"],
                name=step.get("name", ""),
                actor=actor,
            )
    return workflow


# --- template rows -------------------------------------------------------------------------------


def step_error_fields(exc: StepConfigError, *, prefix: str = "") -> dict[str, str]:
    """A step error's fields as the caller sent them: "kind", "config", else "config.<field>"."""
    return {
        f"{prefix}{field if field in ('kind', 'config') else 'config.' + field}": message
        for field, message in exc.extra.get("fields", {}).items()
    }


def template_steps_validate(steps: Any) -> list[dict[str, Any]]:
    """Each step's kind and configuration (workflows.steps), keys unique slugs, targets known.
    Errors name the field: {"fields": {"steps[2].config.body": "required text"}}."""
    if not isinstance(steps, list) or not steps:
        raise StepConfigError("A template needs a list of steps.", {"fields": {"steps": "a non-empty list"}})
    problems: dict[str, str] = {}
    keys: list[str] = []
    for index, step in enumerate(steps):
        where = f"steps[{index}]"
        if not isinstance(step, dict):
            problems[where] = "an object with key, kind, name, config"
            continue
        key = step.get("key")
        if not isinstance(key, str) or not key or key != slugify(key) or len(key) > 40:
            problems[f"{where}.key"] = "a slug of 1 to 40 characters (lowercase letters, digits, hyphens)"
        elif key in keys:
            problems[f"{where}.key"] = f"{key!r} is used by an earlier step"
        else:
            keys.append(key)
        name = step.get("name", "")
        if not isinstance(name, str) or len(name) > 120:
            problems[f"{where}.name"] = "text up to 120 characters"
        unknown = set(step) - {"key", "kind", "name", "config"}
        if unknown:
            problems[where] = f"unknown fields: {', '.join(sorted(map(str, unknown)))}"
    cleaned: list[dict[str, Any]] = []
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        where = f"steps[{index}]"
        try:
            config = validate_step_config(step.get("kind"), step.get("config", {}), step_keys=set(keys))
        except StepConfigError as exc:
            problems.update(step_error_fields(exc, prefix=f"{where}."))
            continue
        probe = Step(key=str(step.get("key")), kind=step["kind"], config=config)
        if probe.key in step_targets(probe):
            problems[f"{where}.config.target"] = "a step cannot branch to itself"
        cleaned.append({"key": step.get("key"), "kind": step["kind"], "name": step.get("name", ""), "config": config})
    if problems:
        first = next(iter(problems.items()))
        raise StepConfigError(f"The template is invalid: {first[0]}: {first[1]}", {"fields": problems})
    return cleaned


def template_create(
    *, key: str, name: str, actor: Actor, steps: list[dict[str, Any]], description: str = ""
) -> WorkflowTemplate:
    steps = template_steps_validate(steps)
    try:
        with transaction.atomic():
            template = WorkflowTemplate.objects.create(key=key, name=name, description=description, steps=steps)
            action_record(verb="template.create", actor=actor, target=template, summary=f"Created template {name}")
    except IntegrityError as exc:
        raise ApplicationError(f"A template with key {key!r} exists.", {"fields": {"key": "already used"}}) from exc
    return template


def template_update(*, template: WorkflowTemplate, actor: Actor, **fields: Any) -> WorkflowTemplate:
    """Change name, description or steps. Workflows made from it earlier keep their own steps."""
    unknown = set(fields) - {"name", "description", "steps"}
    if unknown:
        raise ApplicationError(f"These fields cannot be changed: {', '.join(sorted(unknown))}")
    if "steps" in fields:
        fields["steps"] = template_steps_validate(fields["steps"])
    with transaction.atomic():
        template = WorkflowTemplate.objects.select_for_update().get(pk=template.pk)
        changed = sorted(name for name, value in fields.items() if getattr(template, name) != value)
        for name, value in fields.items():
            setattr(template, name, value)
        if changed:
            template.save()
            action_record(
                verb="template.update",
                actor=actor,
                target=template,
                summary=f"Changed {', '.join(changed)} of template {template.name}"
                + (" (built-in)" if template.is_builtin else ""),
                detail={"fields": changed},
            )
    return template


def template_delete(*, template: WorkflowTemplate, actor: Actor) -> None:
    """Built-ins are never deleted (the product ships them; edit their wording instead).
    Workflows made from a deleted template keep their steps and their template_key."""
    if template.is_builtin:
        raise InvalidTransition(
            f"{template.name!r} is a built-in template and cannot be deleted; change its steps instead.",
            {"key": template.key},
        )
    with transaction.atomic():
        action_record(verb="template.delete", actor=actor, target=template, summary=f"Deleted template {template.name}")
        template.delete()
