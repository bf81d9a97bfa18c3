"""A worker killed (SIGKILL) in the middle of a send: no second message, no lost step.

Real worker processes, real Redis, MariaDB; the real Twilio SDK talking to a local fake server
that takes its time to answer, so the kill lands while the request is in flight."""

import datetime
import os
import signal

import pytest

from adminops.models import AdminAction
from tests import factories
from tests.conftest import start_celery_worker, stop_celery_worker, wait_for
from workflows import engine, services
from workflows.models import Enrollment, OutboundMessage, StepRun
from workflows.tasks import dispatch_due

ACTOR = "system:test"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_send_neither_duplicates_nor_loses_the_step(
    acme, fake_provider, monkeypatch, settings, tmp_path
):
    from zartsalgo.celery import app

    app.conf.task_always_eager = False
    settings.WORKFLOWS_LEASE_SECONDS = 3  # the scheduler here and the workers agree on it
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    monkeypatch.setenv("TEST_TWILIO_KILL_TOKEN", "secret-token")
    factories.ConnectionFactory(
        client=acme,
        provider="twilio",
        status="connected",
        credentials={"auth_token": "env:TEST_TWILIO_KILL_TOKEN"},
        config={"account_sid": "AC" + "3" * 32, "from_number": "+15125550100", "api_base_url": fake_provider.url},
    )
    fake_provider.respond(201, delay=8)  # Twilio accepts it, slowly
    workflow = services.workflow_create(client=acme, name="Kill", actor=ACTOR)
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Only once"}, key="hi", actor=ACTOR)
    services.step_add(workflow=workflow, kind="update_lead", config={"add_tag": "texted"}, key="tag", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    lead = factories.LeadFactory(client=acme)

    worker, log = start_celery_worker(tmp_path, WORKFLOWS_LEASE_SECONDS="3")
    try:
        enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR)
        assert wait_for(lambda: len(fake_provider.requests) == 1, timeout=60), "the send never reached the provider"
        os.kill(worker.pid, signal.SIGKILL)  # mid-request: Twilio may or may not have sent it
        worker.wait(timeout=10)
    finally:
        stop_celery_worker(worker, log)
    message = OutboundMessage.objects.get()
    assert message.status == "intended"  # committed before the call; the outcome never came

    worker, log = start_celery_worker(tmp_path, WORKFLOWS_LEASE_SECONDS="3")
    try:
        # After the lease the beat hands the enrollment out again; the new worker finds the
        # intended message and holds the enrollment instead of texting the lead a second time.
        def dispatched_and_held():
            dispatch_due.delay()
            return Enrollment.objects.get(pk=enrollment.pk).state == "held"

        assert wait_for(dispatched_and_held, timeout=60, interval=2)
        enrollment.refresh_from_db()
        message.refresh_from_db()
        assert enrollment.step_key == "hi" and "unknown" in enrollment.hold_reason  # the step is kept, in view
        assert message.status == "unknown"
        assert AdminAction.objects.get(idempotency_key=message.idempotency_key).state == "unknown"
        assert StepRun.objects.get(enrollment=enrollment, step_key="hi").state == "unknown"
        assert len(fake_provider.requests) == 1  # no duplicate

        # Staff see it in Twilio's log: it went out. Released as sent, the workflow goes on.
        engine.enrollment_release(enrollment=enrollment, actor=ACTOR, resolution="sent", note="Delivered per Twilio")
        assert wait_for(lambda: Enrollment.objects.get(pk=enrollment.pk).state == "completed", timeout=60)
    finally:
        stop_celery_worker(worker, log)
    lead.refresh_from_db()
    assert "texted" in lead.tags and len(fake_provider.requests) == 1
    assert OutboundMessage.objects.count() == 1
