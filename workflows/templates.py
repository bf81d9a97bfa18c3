"""The four built-in workflow templates (the product definition's Workflows sheet), as data.

`workflow_from_template` makes a client's own draft workflow from one; staff adjust the wording
and publish it. Times are in the client's zone; sends respect its quiet hours.
"""

from __future__ import annotations

from leads.models import Client

from . import services
from .models import Workflow

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


def workflow_from_template(*, client: Client, key: str, actor, name: str = "") -> Workflow:
    """A draft workflow for `client` with the template's steps (publish it to start)."""
    template = TEMPLATES.get(key)
    if template is None:
        from zartsalgo.errors import NotFound

        raise NotFound(f"No built-in template {key!r}", {"templates": sorted(TEMPLATES)})
    workflow = services.workflow_create(
        client=client,
        name=name or template["name"],
        description=template["description"],
        actor=actor,
        template_key=key,
    )
    for step_key, kind, config in template["steps"]:
        services.step_add(workflow=workflow, kind=kind, config=config, key=step_key, actor=actor)
    return workflow
