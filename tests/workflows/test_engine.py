"""The workflow engine end to end: definitions, versions, enrollments, sends, waits, exits, holds.

Sends go through the console channel (the embedded demo's) or, where the provider matters,
through the real Twilio SDK to a local fake server (tests/fakes/provider_server.py).
"""

import datetime
import json

import pytest
from django.utils import timezone

from adminops.models import AdminAction
from integrations.models import NormalizedEvent
from leads.models import Activity, Lead
from leads.services import consent_set, lead_set_status
from tests import factories
from workflows import engine, services
from workflows.models import Enrollment, OutboundMessage, StaffTask, StepRun, Workflow
from workflows.steps import StepConfigError

pytestmark = pytest.mark.django_db
ACTOR = "system:test"


@pytest.fixture
def client_no_quiet(acme):
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)  # no quiet hours: any time of day
    acme.save()
    return acme


@pytest.fixture
def outbox(settings, tmp_path):
    settings.WORKFLOWS_CONSOLE_CHANNEL = True
    settings.WORKFLOWS_CONSOLE_CHANNEL_PATH = str(tmp_path / "outbox.jsonl")
    path = tmp_path / "outbox.jsonl"

    def read():
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    return read


@pytest.fixture
def lead(client_no_quiet):
    return factories.LeadFactory(client=client_no_quiet, first_name="Dana", service_type="Water heater")


def build(client, steps, name="Follow-up"):
    workflow = services.workflow_create(client=client, name=name, actor=ACTOR)
    for kind, config, key in steps:
        services.step_add(workflow=workflow, kind=kind, config=config, key=key, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    workflow.refresh_from_db()
    return workflow


def enroll(workflow, lead, capture):
    with capture(execute=True):
        return services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR)


def make_due(enrollment):
    Enrollment.objects.filter(pk=enrollment.pk).update(next_run_at=timezone.now() - datetime.timedelta(seconds=1))


def run_due(capture):
    with capture(execute=True):
        return engine.enrollments_dispatch_due()


SMS = ("send_sms", {"body": "Hi {{ lead.first_name|default:'there' }}, {{ client.name }} got your request."}, "hello")
DELAY_2D = ("delay", {"duration": {"amount": 2, "unit": "days"}}, "wait-2d")
EMAIL = ("send_email", {"subject": "Your {{ lead.service_type }} quote", "body": "Hello {{ lead.first_name }}"}, "mail")


def test_configuration_errors_name_the_field(client_no_quiet):
    workflow = services.workflow_create(client=client_no_quiet, name="Bad", actor=ACTOR)
    with pytest.raises(StepConfigError) as err:
        services.step_add(
            workflow=workflow, kind="delay", config={"duration": {"amount": 0, "unit": "fortnights"}}, actor=ACTOR
        )
    assert set(err.value.extra["fields"]) == {"duration.amount", "duration.unit"}
    with pytest.raises(StepConfigError) as err:
        services.step_add(workflow=workflow, kind="send_sms", config={"body": "Hi {% if %}"}, actor=ACTOR)
    assert "template error" in err.value.extra["fields"]["body"]
    services.step_add(
        workflow=workflow, kind="branch", config={"condition": "sms.replied", "yes": "nowhere"}, key="b", actor=ACTOR
    )
    with pytest.raises(StepConfigError) as err:
        services.workflow_publish(workflow=workflow, actor=ACTOR)
    assert "b.yes" in err.value.extra["fields"]
    assert Workflow.objects.get(pk=workflow.pk).status == "draft"


def test_sms_then_delay_then_email_each_once_on_the_timeline(lead, outbox, django_capture_on_commit_callbacks):
    workflow = build(lead.client, [SMS, DELAY_2D, EMAIL])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)

    enrollment.refresh_from_db()
    assert enrollment.state == "active" and enrollment.step_key == "mail"
    # Two calendar days in the client's zone (DST-aware, see test_timing).
    assert enrollment.next_run_at > timezone.now() + datetime.timedelta(hours=47)
    sms = OutboundMessage.objects.get(channel="sms")
    assert sms.status == "sent" and sms.body == "Hi Dana, Acme Plumbing got your request."
    assert Activity.objects.filter(lead=lead, kind="sms_outbound", provider_id=sms.provider_id).count() == 1
    assert AdminAction.objects.get(idempotency_key=sms.idempotency_key).state == "succeeded"
    lead.refresh_from_db()
    assert lead.status == "contacted" and lead.first_response_at is not None

    assert run_due(django_capture_on_commit_callbacks) == 0  # nothing due yet
    make_due(enrollment)
    assert run_due(django_capture_on_commit_callbacks) == 1
    enrollment.refresh_from_db()
    assert enrollment.state == "completed" and enrollment.live_lead_id is None
    assert [m["channel"] for m in outbox()] == ["sms", "email"]
    email = OutboundMessage.objects.get(channel="email")
    assert email.subject == "Your Water heater quote"
    assert list(StepRun.objects.filter(enrollment=enrollment).order_by("visit").values_list("step_key", "state")) == [
        ("hello", "succeeded"),
        ("wait-2d", "succeeded"),
        ("mail", "succeeded"),
    ]
    # Running it again (a redelivered task) sends nothing more.
    engine.enrollment_run(enrollment_id=enrollment.pk)
    assert len(outbox()) == 2


def test_email_bodies_are_escaped_sms_bodies_are_not(client_no_quiet, outbox, django_capture_on_commit_callbacks):
    lead = factories.LeadFactory(client=client_no_quiet, first_name="<b>Bo</b>")
    workflow = build(client_no_quiet, [SMS, EMAIL])
    enroll(workflow, lead, django_capture_on_commit_callbacks)
    sms, email = outbox()
    assert sms["body"].startswith("Hi <b>Bo</b>")
    assert "&lt;b&gt;Bo&lt;/b&gt;" in email["html"] and "<b>" not in email["html"]


def test_editing_a_live_workflow_only_affects_new_enrollments(lead, outbox, django_capture_on_commit_callbacks):
    workflow = build(lead.client, [DELAY_2D, ("send_sms", {"body": "Version one"}, "ask")])
    first = enroll(workflow, lead, django_capture_on_commit_callbacks)

    draft_step = services.workflow_draft(workflow=workflow).steps.get(key="ask")
    services.step_update(step=draft_step, config={"body": "Version two"}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR, notes="new wording")
    workflow.refresh_from_db()
    assert workflow.published_version.number == 2

    other = factories.LeadFactory(client=lead.client)
    second = enroll(workflow, other, django_capture_on_commit_callbacks)
    for enrollment in (first, second):
        make_due(enrollment)
    run_due(django_capture_on_commit_callbacks)
    bodies = dict(OutboundMessage.objects.values_list("lead_id", "body"))
    assert bodies == {lead.pk: "Version one", other.pk: "Version two"}
    with pytest.raises(Exception, match="Published versions cannot change"):
        services.step_update(
            step=workflow.versions.get(number=1).steps.get(key="ask"), config={"body": "x"}, actor=ACTOR
        )


def test_a_lead_is_live_once_per_workflow_and_a_paused_workflow_takes_no_one(
    lead, outbox, django_capture_on_commit_callbacks
):
    workflow = build(lead.client, [DELAY_2D, SMS])
    enroll(workflow, lead, django_capture_on_commit_callbacks)
    with pytest.raises(Exception, match="already enrolled"):
        services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR)
    services.workflow_set_status(workflow=workflow, status="paused", actor=ACTOR)
    with pytest.raises(Exception, match="no new enrollments"):
        services.enrollment_create(workflow=workflow, lead=factories.LeadFactory(client=lead.client), actor=ACTOR)
    # ...while the enrolled lead goes on.
    make_due(Enrollment.objects.get())
    run_due(django_capture_on_commit_callbacks)
    assert OutboundMessage.objects.filter(lead=lead, status="sent").count() == 1


def test_quiet_hours_defer_a_send_to_their_end_never_drop_it(lead, outbox, django_capture_on_commit_callbacks):
    client = lead.client
    local_now = timezone.now().astimezone(client.tz)
    client.quiet_hours_start = (local_now - datetime.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    client.quiet_hours_end = (local_now + datetime.timedelta(hours=1)).time().replace(second=0, microsecond=0)
    client.save()
    workflow = build(client, [SMS])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)

    enrollment.refresh_from_db()
    assert outbox() == [] and not OutboundMessage.objects.exists()
    assert enrollment.state == "active" and enrollment.step_key == "hello"
    wait = enrollment.next_run_at - timezone.now()
    assert datetime.timedelta(minutes=55) < wait <= datetime.timedelta(hours=1)
    assert enrollment.next_run_at.astimezone(client.tz).time() == client.quiet_hours_end
    assert StepRun.objects.get(enrollment=enrollment).state == "deferred"

    client.quiet_hours_start = client.quiet_hours_end  # the night is over
    client.save()
    make_due(enrollment)
    run_due(django_capture_on_commit_callbacks)
    assert len(outbox()) == 1
    assert StepRun.objects.get(enrollment=enrollment, step_key="hello").state == "succeeded"


def test_a_reply_takes_the_yes_path_and_no_reply_times_out_to_no(
    client_no_quiet, outbox, django_capture_on_commit_callbacks
):
    steps = [
        SMS,
        ("wait_for_event", {"event": "sms.replied", "timeout": {"amount": 1, "unit": "days"}, "no": "nudge"}, "wait"),
        ("update_lead", {"add_tag": "replied"}, "tag"),
        ("exit", {"reason": "Replied"}, "done"),
        ("send_sms", {"body": "Still interested?"}, "nudge"),
    ]
    workflow = build(client_no_quiet, steps)
    replier, silent = factories.LeadFactory(client=client_no_quiet), factories.LeadFactory(client=client_no_quiet)
    a = enroll(workflow, replier, django_capture_on_commit_callbacks)
    b = enroll(workflow, silent, django_capture_on_commit_callbacks)
    a.refresh_from_db()
    assert a.state == "waiting" and a.waiting_for == "sms.replied"

    # The reply arrives as a normalized event through the pipeline's consumers.
    from integrations.services import _consumers  # the configured, ordered list
    from zartsalgo.events import BusinessEvent

    event = NormalizedEvent.objects.create(
        client=client_no_quiet,
        lead=replier,
        event_type="sms.received",
        occurred_at=timezone.now(),
        idempotency_key="r1",
        data={},
    )
    envelope = BusinessEvent(
        normalized_event_id=event.pk,
        event_type="sms.received",
        client=client_no_quiet,
        occurred_at=event.occurred_at,
        provider="twilio",
        data={},
        lead=replier,
    )
    with django_capture_on_commit_callbacks(execute=True):
        for consumer in _consumers():
            if consumer.__module__ == "workflows.consumers":
                consumer(event=envelope)
    a.refresh_from_db()
    replier.refresh_from_db()
    assert a.state == "exited" and a.exit_reason == "exit_step" and "replied" in replier.tags

    make_due(b)  # the day passes without a reply
    run_due(django_capture_on_commit_callbacks)
    b.refresh_from_db()
    assert b.state == "completed"
    assert list(OutboundMessage.objects.filter(lead=silent).values_list("step_key", flat=True).order_by("id")) == [
        "hello",
        "nudge",
    ]


def test_exit_conditions_stop_enrollments_before_the_next_step(lead, outbox, django_capture_on_commit_callbacks):
    workflow = build(lead.client, [SMS, DELAY_2D, ("send_sms", {"body": "Day 2"}, "day2")])
    booked = enroll(workflow, lead, django_capture_on_commit_callbacks)
    stopper = factories.LeadFactory(client=lead.client)
    unsubscribed = enroll(workflow, stopper, django_capture_on_commit_callbacks)

    lead_set_status(lead=Lead.objects.get(pk=lead.pk), status="booked", actor=ACTOR)
    consent_set(lead=stopper, channel="sms", state="revoked", evidence="Replied STOP", actor=ACTOR)
    for enrollment in (booked, unsubscribed):
        make_due(enrollment)
    run_due(django_capture_on_commit_callbacks)
    booked.refresh_from_db()
    unsubscribed.refresh_from_db()
    assert (booked.state, booked.exit_reason) == ("exited", "job_booked")
    assert (unsubscribed.state, unsubscribed.exit_reason) == ("exited", "unsubscribed")
    assert not OutboundMessage.objects.filter(step_key="day2").exists()


def test_a_send_hold_keeps_the_place_and_release_resumes_it_once(lead, outbox, django_capture_on_commit_callbacks):
    services.client_hold_sends(client=lead.client, held=True, actor=ACTOR, reason="Client asked us to stop texting")
    workflow = build(lead.client, [("create_task", {"title": "Call {{ lead.first_name }}"}, "call"), SMS])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)
    enrollment.refresh_from_db()
    assert enrollment.state == "held" and enrollment.step_key == "hello"
    assert StaffTask.objects.get().title == "Call Dana"  # steps before the send ran
    assert outbox() == []

    with django_capture_on_commit_callbacks(execute=True):
        services.client_hold_sends(client=lead.client, held=False, actor=ACTOR)
    enrollment.refresh_from_db()
    assert enrollment.state == "completed" and len(outbox()) == 1
    assert StaffTask.objects.count() == 1


def test_an_unknown_outcome_holds_for_review_and_is_never_resent_blindly(
    client_no_quiet, fake_provider, monkeypatch, django_capture_on_commit_callbacks
):
    """The real Twilio SDK against a fake server that answers too late: the SMS may have gone."""
    lead = factories.LeadFactory(client=client_no_quiet)
    monkeypatch.setenv("TEST_TWILIO_AUTH_TOKEN", "secret-token")
    factories.ConnectionFactory(
        client=client_no_quiet,
        provider="twilio",
        status="connected",
        credentials={"auth_token": "env:TEST_TWILIO_AUTH_TOKEN"},
        config={"account_sid": "AC" + "1" * 32, "from_number": "+15125550100", "api_base_url": fake_provider.url},
    )
    fake_provider.respond(500, json_body={"code": 20500, "message": "Internal error"})
    workflow = build(client_no_quiet, [SMS])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)

    enrollment.refresh_from_db()
    message = OutboundMessage.objects.get()
    assert enrollment.state == "held" and "unknown" in enrollment.hold_reason
    assert (
        message.status == "unknown"
        and AdminAction.objects.get(idempotency_key=message.idempotency_key).state == "unknown"
    )
    assert len(fake_provider.requests) == 1
    engine.enrollment_run(enrollment_id=enrollment.pk)  # a retried task
    assert len(fake_provider.requests) == 1  # nothing re-sent

    # Staff check Twilio's log: it did not go out. Released as not sent, it goes again, once.
    with django_capture_on_commit_callbacks(execute=True):
        engine.enrollment_release(enrollment=enrollment, actor=ACTOR, resolution="not_sent", note="Not in Twilio's log")
    enrollment.refresh_from_db()
    assert enrollment.state == "completed"
    assert len(fake_provider.requests) == 2
    sent = OutboundMessage.objects.get(status="sent")
    assert sent.provider == "twilio" and sent.provider_id.startswith("SM")
    form = fake_provider.requests[-1].form()
    assert form["To"] == [lead.phone_e164] and form["From"] == ["+15125550100"]


def test_a_process_that_died_mid_send_leaves_an_intended_message_that_holds(
    lead, outbox, django_capture_on_commit_callbacks
):
    from django.db import transaction

    workflow = build(lead.client, [SMS])
    with django_capture_on_commit_callbacks(execute=False):
        enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR)
    # Phase 1 commits (message + intended action), then the worker is killed before the call.
    with transaction.atomic():
        locked = engine._attach(Enrollment.objects.select_for_update().get(pk=enrollment.pk))
        pending = engine._run_current(locked)
    assert isinstance(pending, engine._PendingSend)
    assert OutboundMessage.objects.get().status == "intended"

    make_due(enrollment)  # the lease runs out; the scheduler hands it to another worker
    run_due(django_capture_on_commit_callbacks)
    enrollment.refresh_from_db()
    assert enrollment.state == "held" and outbox() == []
    assert OutboundMessage.objects.get().status == "unknown"


def test_dispatch_claims_only_due_enrollments_and_a_stale_claim_does_nothing(
    lead, outbox, django_capture_on_commit_callbacks
):
    workflow = build(lead.client, [DELAY_2D, SMS])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)
    make_due(enrollment)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert engine.enrollments_dispatch_due() == 1
    assert engine.enrollments_dispatch_due() == 0  # leased: not claimed twice
    enrollment.refresh_from_db()
    claim = enrollment.next_run_at.isoformat()
    assert engine.enrollment_run(enrollment_id=enrollment.pk, claim="2000-01-01T00:00:00+00:00") == "active"
    assert outbox() == []
    assert engine.enrollment_run(enrollment_id=enrollment.pk, claim=claim) == "completed"
    assert len(outbox()) == 1 and len(callbacks) == 1  # one task for the claimed batch


def test_unenroll_and_purge_history_are_logged(lead, outbox, django_capture_on_commit_callbacks):
    workflow = build(lead.client, [SMS, DELAY_2D, (*SMS[:2], "again")])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)
    services.enrollment_unenroll(enrollment=enrollment, actor=ACTOR, reason="Asked by phone")
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason) == ("exited", "unenrolled")
    assert StepRun.objects.count() == 2
    StepRun.objects.update(started_at=timezone.now() - datetime.timedelta(days=100))
    assert services.step_runs_purge(before=timezone.now() - datetime.timedelta(days=90), actor=ACTOR) == 2
    assert set(AdminAction.objects.values_list("verb", flat=True)) >= {"workflow.unenroll", "workflow.purge_history"}


def test_a_paused_connection_holds_sends_in_place_and_they_resume_when_it_is_fixed(
    lead, monkeypatch, fake_provider, django_capture_on_commit_callbacks
):
    monkeypatch.setenv("TEST_TWILIO_HOLD_TOKEN", "secret-token")
    connection = factories.ConnectionFactory(
        client=lead.client,
        provider="twilio",
        status="paused",
        status_reason="Number being ported",
        credentials={"auth_token": "env:TEST_TWILIO_HOLD_TOKEN"},
        config={"account_sid": "AC" + "4" * 32, "from_number": "+15125550100", "api_base_url": fake_provider.url},
    )
    workflow = build(lead.client, [SMS])
    enrollment = enroll(workflow, lead, django_capture_on_commit_callbacks)
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.hold_kind, enrollment.step_key) == ("held", "channel", "hello")
    assert "Number being ported" in enrollment.hold_reason and fake_provider.requests == []

    Enrollment.objects.filter(pk=enrollment.pk).update(held_at=timezone.now() - datetime.timedelta(minutes=2))
    run_due(django_capture_on_commit_callbacks)  # still paused: tried, held again in place
    enrollment.refresh_from_db()
    assert enrollment.state == "held" and fake_provider.requests == []

    connection.status = "connected"
    connection.save()
    Enrollment.objects.filter(pk=enrollment.pk).update(held_at=timezone.now() - datetime.timedelta(minutes=2))
    run_due(django_capture_on_commit_callbacks)
    enrollment.refresh_from_db()
    assert enrollment.state == "completed" and len(fake_provider.requests) == 1
    assert OutboundMessage.objects.get().status == "sent"


def _travel(enrollment, capture, *, before_each=None, limit=40):
    """Run the enrollment through time: each due date is made 'now' in turn (time travel)."""
    for _ in range(limit):
        enrollment.refresh_from_db()
        if enrollment.state not in ("active", "waiting"):
            return enrollment
        if before_each:
            before_each(enrollment)
            enrollment.refresh_from_db()
            if enrollment.state not in ("active", "waiting"):
                return enrollment
        make_due(enrollment)
        run_due(capture)
    raise AssertionError("did not finish")


@pytest.mark.parametrize(
    "key, expected",
    [
        ("new-lead-follow-up", ["confirm", "day1-email", "day7-reengage"]),
        ("post-job-review", ["review-sms", "review-email", "final-ask"]),
        ("recurring-service-reminder", ["notice-30d", "confirm-14d", "reminder-2d", "day-of"]),
        ("payment-overdue", ["day1", "day7", "day14"]),
    ],
)
def test_each_template_runs_end_to_end_when_nothing_happens(
    client_no_quiet, outbox, django_capture_on_commit_callbacks, key, expected
):
    from workflows.templates import workflow_from_template

    workflow = workflow_from_template(client=client_no_quiet, key=key, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    lead = factories.LeadFactory(client=client_no_quiet)
    enrollment = _travel(enroll(workflow, lead, django_capture_on_commit_callbacks), django_capture_on_commit_callbacks)
    assert enrollment.state == "completed"
    assert list(OutboundMessage.objects.order_by("id").values_list("step_key", flat=True)) == expected
    lead.refresh_from_db()
    if key == "payment-overdue":
        assert "collections" in lead.tags and StaffTask.objects.filter(title__startswith="Collections review").exists()
    if key == "new-lead-follow-up":
        assert StaffTask.objects.get().title.startswith("Day 3 check-in call")


def test_templates_take_the_right_path_when_people_act_mid_way(
    client_no_quiet, outbox, django_capture_on_commit_callbacks
):
    from workflows.templates import workflow_from_template

    def make(key):
        workflow = workflow_from_template(client=client_no_quiet, key=key, actor=ACTOR)
        services.workflow_publish(workflow=workflow, actor=ACTOR)
        return workflow

    # A booking after the day-1 email ends New Lead Follow-Up before the call task.
    lead = factories.LeadFactory(client=client_no_quiet)

    def book_after_email(enrollment):
        if OutboundMessage.objects.filter(lead=lead, step_key="day1-email").exists():
            with django_capture_on_commit_callbacks(execute=True):
                # The booking, then the event about it reaching the workflows consumer.
                lead_set_status(lead=Lead.objects.get(pk=lead.pk), status="booked", actor=ACTOR)
                engine.enrollments_on_event(lead=Lead.objects.get(pk=lead.pk), event_type="job.booked", data={})

    done = _travel(
        enroll(make("new-lead-follow-up"), lead, django_capture_on_commit_callbacks),
        django_capture_on_commit_callbacks,
        before_each=book_after_email,
    )
    assert (done.state, done.exit_reason) == ("exited", "job_booked")
    assert not StaffTask.objects.filter(lead=lead).exists()

    # A reply to the review SMS takes the wait step's "yes" path (exit): no email fallback.
    reviewer = factories.LeadFactory(client=client_no_quiet)

    def reply_when_waiting(enrollment):
        if enrollment.state == "waiting":
            NormalizedEvent.objects.create(
                client=client_no_quiet,
                lead=reviewer,
                event_type="sms.received",
                occurred_at=timezone.now(),
                idempotency_key=f"reply-{enrollment.pk}",
                data={},
            )
            with django_capture_on_commit_callbacks(execute=True):
                engine.enrollments_on_event(lead=reviewer, event_type="sms.received", data={})

    done = _travel(
        enroll(make("post-job-review"), reviewer, django_capture_on_commit_callbacks),
        django_capture_on_commit_callbacks,
        before_each=reply_when_waiting,
    )
    assert done.state == "completed"
    assert list(OutboundMessage.objects.filter(lead=reviewer).values_list("step_key", flat=True)) == ["review-sms"]
