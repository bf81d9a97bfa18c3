"""Demo workflows for `make run`: the four built-in templates, published for the first demo
client, its newest leads enrolled in New Lead Follow-Up, and two automation rules that enroll
new web-form, quote and missed-call leads in it from here on. Sends go to the console channel
(var/outbox.jsonl) when the client has no Twilio/SendGrid connection. Run twice, changes nothing."""

from django.core.management.base import BaseCommand
from django.db import transaction

from leads.models import Client, Lead
from workflows import services
from workflows.models import Enrollment, OutboundMessage, Workflow
from workflows.rules import rule_create
from workflows.templates import TEMPLATES, workflow_from_template

ACTOR = "system:seed_demo"


class Command(BaseCommand):
    help = "Create the built-in workflow templates for the first demo client and enroll a few leads."

    def add_arguments(self, parser):
        parser.add_argument("--enroll", type=int, default=12, help="newest leads to enroll (default 12)")

    def handle(self, *args, **options):
        client = Client.objects.order_by("id").first()
        if client is None:
            self.stdout.write(self.style.WARNING("No clients yet: run seed_demo first."))
            return
        if Workflow.objects.filter(client=client).exists():
            self.stdout.write(self.style.WARNING(f"{client} already has workflows; nothing changed."))
            return
        with transaction.atomic():
            made = {}
            for key in TEMPLATES:
                workflow = workflow_from_template(client=client, key=key, actor=ACTOR)
                services.workflow_publish(workflow=workflow, actor=ACTOR, notes="Built-in template")
                made[key] = workflow
            leads = Lead.objects.filter(client=client, status=Lead.Status.NEW).order_by("-captured_at")
            for lead in leads[: options["enroll"]]:
                services.enrollment_create(workflow=made["new-lead-follow-up"], lead=lead, actor=ACTOR)
            for name, event_type, sources in (
                ("New site leads → follow-up", "lead.captured", ["web_form", "thumbtack", "angi"]),
                ("Quote requests → follow-up", "quote.requested", []),
                ("Missed calls → follow-up", "call.missed", []),
            ):
                rule_create(
                    client=client,
                    actor=ACTOR,
                    name=name,
                    event_type=event_type,
                    filters={"source": sources} if sources else {},
                    workflow=made["new-lead-follow-up"],
                    reenroll="after_ended",
                )
        # The enrollments' first steps ran after commit (in-process without Redis).
        states = dict.fromkeys(Enrollment.State.values, 0)
        for state in Enrollment.objects.filter(client=client).values_list("state", flat=True):
            states[state] += 1
        self.stdout.write(
            self.style.SUCCESS(
                f"Workflows for {client}: {', '.join(w.name for w in made.values())}. "
                f"Enrollments: {', '.join(f'{k} {v}' for k, v in states.items() if v)}; "
                f"messages sent: {OutboundMessage.objects.filter(client=client, status='sent').count()} "
                f"Automation rules: 3 (admin → Automation rules). "
                f"(see var/outbox.jsonl and admin → Workflows)."
            )
        )
