"""Timeline preview, the per-contact admin views, and two schedulers racing on MariaDB."""

import datetime
import threading

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from tests import factories
from workflows import engine, services
from workflows.models import Enrollment, OutboundMessage, StepRun
from workflows.templates import workflow_from_template

ACTOR = "system:test"
UTC = datetime.UTC


@pytest.mark.django_db
def test_preview_applies_delays_in_local_days_and_defers_sends_past_quiet_hours(acme):
    """New Lead Follow-Up for a lead enrolled Saturday 2026-10-31 22:30 in Chicago (CDT, UTC-5):
    the confirmation waits for 08:00; day 1 is Sunday 1 November, the day clocks fall back."""
    workflow = workflow_from_template(client=acme, key="new-lead-follow-up", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    lead = factories.LeadFactory(client=acme)
    start = datetime.datetime(2026, 11, 1, 3, 30, tzinfo=UTC)  # 22:30 CDT on Oct 31, inside 21:00-08:00
    rows = {row["step"]: row for row in engine.workflow_preview(workflow=workflow, lead=lead, start=start)}

    confirm = rows["confirm"]
    assert confirm["local"].strftime("%Y-%m-%d %H:%M") == "2026-11-01 08:00"
    assert confirm["at"] == datetime.datetime(2026, 11, 1, 14, 0, tzinfo=UTC)  # 08:00 CST after the fall-back
    assert "quiet hours" in confirm["note"]
    # One calendar day later at the same local time: 08:00 CST on Nov 2.
    assert rows["day1-email"]["local"].strftime("%Y-%m-%d %H:%M") == "2026-11-02 08:00"
    assert rows["day3-call"]["local"].strftime("%Y-%m-%d %H:%M") == "2026-11-04 08:00"
    assert rows["day7-reengage"]["local"].strftime("%Y-%m-%d %H:%M") == "2026-11-08 08:00"


@pytest.mark.django_db
def test_admin_shows_the_preview_and_a_leads_enrollments(client, engineer, acme):
    workflow = workflow_from_template(client=acme, key="post-job-review", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    lead = factories.LeadFactory(client=acme)
    enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR, run_now=False)
    client.force_login(engineer)
    page = client.get(f"/admin/workflows/workflow/{workflow.pk}/preview/", {"lead": lead.pk})
    assert page.status_code == 200 and [r["step"] for r in page.context["rows"]][:2] == ["wait-24h", "review-sms"]
    assert b"review-email" in page.content
    assert (
        "No lead" in client.get(f"/admin/workflows/workflow/{workflow.pk}/preview/", {"lead": 999999}).context["error"]
    )
    lead_page = client.get(f"/admin/leads/lead/{lead.pk}/change/")
    assert (
        lead_page.status_code == 200
        and f"/admin/workflows/enrollment/{enrollment.pk}/change/".encode() in lead_page.content
    )
    listing = client.get("/admin/workflows/enrollment/")
    assert acme.time_zone.encode() in listing.content  # next run shown in the client's local time


@pytest.mark.django_db(transaction=True)
def test_two_schedulers_claim_each_due_enrollment_once_and_run_each_step_once(acme, settings, tmp_path):
    if db_connection.vendor != "mysql":
        pytest.skip("SKIP LOCKED between connections is exercised on MariaDB")
    from zartsalgo.celery import app

    app.conf.task_always_eager = True  # each scheduler runs what it claimed, in its own thread
    settings.WORKFLOWS_CONSOLE_CHANNEL_PATH = str(tmp_path / "outbox.jsonl")
    settings.WORKFLOWS_RUN_BATCH = 10
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    workflow = services.workflow_create(client=acme, name="Race", actor=ACTOR)
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Hi"}, key="hi", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollments = [
        services.enrollment_create(
            workflow=workflow, lead=factories.LeadFactory(client=acme), actor=ACTOR, run_now=False
        )
        for _ in range(60)
    ]
    Enrollment.objects.update(next_run_at=timezone.now() - datetime.timedelta(seconds=1))
    barrier = threading.Barrier(2)
    claimed, errors = [], []

    def scheduler():
        try:
            barrier.wait()
            claimed.append(engine.enrollments_dispatch_due(limit=100))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(claimed) == len(enrollments)  # each claimed by exactly one of them
    assert OutboundMessage.objects.count() == len(enrollments)
    assert StepRun.objects.filter(step_key="hi").count() == len(enrollments)
    assert set(Enrollment.objects.values_list("state", flat=True)) == {"completed"}
