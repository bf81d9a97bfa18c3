"""Built-in templates publish as they are; the history purge command; the scheduler on a real worker."""

import datetime
import json

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from integrations.models import NormalizedEvent
from tests import factories
from tests.conftest import wait_for
from workflows import engine, services
from workflows.models import Enrollment, OutboundMessage, StepRun
from workflows.templates import TEMPLATES, workflow_from_template

ACTOR = "system:test"


@pytest.mark.django_db
@pytest.mark.parametrize("key", sorted(TEMPLATES))
def test_every_built_in_template_makes_a_publishable_workflow(acme, key):
    workflow = workflow_from_template(client=acme, key=key, actor=ACTOR)
    version = services.workflow_publish(workflow=workflow, actor=ACTOR)
    assert [s.key for s in version.steps.order_by("position")] == [k for k, _, _ in TEMPLATES[key]["steps"]]


@pytest.mark.django_db
def test_payment_escalation_stops_when_the_invoice_is_paid(
    acme, django_capture_on_commit_callbacks, settings, tmp_path
):
    settings.WORKFLOWS_CONSOLE_CHANNEL_PATH = str(tmp_path / "outbox.jsonl")
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    workflow = workflow_from_template(client=acme, key="payment-overdue", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    lead = factories.LeadFactory(client=acme)
    with django_capture_on_commit_callbacks(execute=True):
        enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR)
    assert OutboundMessage.objects.get().step_key == "day1"
    NormalizedEvent.objects.create(
        client=acme, lead=lead, event_type="invoice.paid", occurred_at=timezone.now(), idempotency_key="inv-1", data={}
    )
    Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=timezone.now())
    engine.enrollment_run(enrollment_id=enrollment.pk)
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "invoice_paid")
    assert OutboundMessage.objects.count() == 1
    assert [json.loads(line)["subject"] for line in (tmp_path / "outbox.jsonl").read_text().splitlines()] == [
        "A friendly reminder from Acme Plumbing"
    ]


@pytest.mark.django_db
def test_purge_step_runs_command(acme, capsys, django_capture_on_commit_callbacks):
    workflow = workflow_from_template(client=acme, key="new-lead-follow-up", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = services.enrollment_create(
        workflow=workflow, lead=factories.LeadFactory(client=acme), actor=ACTOR, run_now=False
    )
    for visit in range(3):
        StepRun.objects.create(
            enrollment=enrollment, client=acme, step_key="confirm", step_kind="send_sms", visit=visit, state="succeeded"
        )
    StepRun.objects.filter(visit__lt=2).update(started_at=timezone.now() - datetime.timedelta(days=40))
    call_command("purge_step_runs", "--older-than-days", "30", "--dry-run")
    assert "2 step run(s)" in capsys.readouterr().out and StepRun.objects.count() == 3
    call_command("purge_step_runs", "--older-than-days", "30", "--client", "acme")
    assert "Purged 2" in capsys.readouterr().out and StepRun.objects.count() == 1
    with pytest.raises(CommandError):
        call_command("purge_step_runs", "--older-than-days", "30", "--client", "nope")


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_the_beat_dispatch_runs_due_enrollments_on_a_real_worker(acme, celery_worker, settings, tmp_path):
    """Redis carries dispatch → run_enrollment; a separate worker process sends from MariaDB."""
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    workflow = services.workflow_create(client=acme, name="Later", actor=ACTOR)
    services.step_add(workflow=workflow, kind="delay", config={"duration": {"amount": 1, "unit": "hours"}}, actor=ACTOR)
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Hello"}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    leads = [factories.LeadFactory(client=acme) for _ in range(3)]
    enrollments = [services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR) for lead in leads]
    assert wait_for(lambda: Enrollment.objects.filter(step_key__startswith="send", visit=1).count() == 3, timeout=60)
    assert not OutboundMessage.objects.exists()
    Enrollment.objects.filter(pk__in=[e.pk for e in enrollments]).update(next_run_at=timezone.now())
    from workflows.tasks import dispatch_due

    dispatch_due.delay()
    assert wait_for(lambda: OutboundMessage.objects.filter(status="sent").count() == 3, timeout=60)
    assert wait_for(lambda: Enrollment.objects.filter(state="completed").count() == 3, timeout=30)


@pytest.mark.django_db
def test_the_embedded_scheduler_wakes_delayed_steps(
    acme, settings, tmp_path, capsys, django_capture_on_commit_callbacks
):
    settings.WORKFLOWS_CONSOLE_CHANNEL_PATH = str(tmp_path / "outbox.jsonl")
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    workflow = services.workflow_create(client=acme, name="Later", actor=ACTOR)
    services.step_add(workflow=workflow, kind="delay", config={"duration": {"amount": 3, "unit": "hours"}}, actor=ACTOR)
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Hello"}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = services.enrollment_create(
        workflow=workflow, lead=factories.LeadFactory(client=acme), actor=ACTOR, run_now=False
    )
    with django_capture_on_commit_callbacks(execute=True):  # outside tests, autocommit runs them
        call_command("run_scheduler", "--once")  # runs the first step (due now): the delay
    enrollment.refresh_from_db()
    assert enrollment.next_run_at > timezone.now() + datetime.timedelta(hours=2)
    Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        call_command("run_scheduler", "--once")
    assert OutboundMessage.objects.get().status == "sent"
    assert "workflows-dispatch-due" in capsys.readouterr().out
