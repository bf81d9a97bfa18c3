"""Automation rules: leads enroll themselves from real signed webhooks, filters and the
re-enrollment policy decide, a person arriving by two sources is one enrollment, and a rule can be
tested against a past event without enrolling anyone."""

import datetime

import pytest
from django.utils import timezone

from adminops.models import AdminAction
from integrations import services as pipeline
from integrations.models import NormalizedEvent, RawEvent
from leads.models import Consent, Lead
from tests.integrations.conftest import form_body, sign_standard_webhook, webform_secret
from tests.integrations.test_twilio import dial_action, inbound_sms, post, sid, twilio  # noqa: F401
from workflows import services
from workflows.models import Enrollment
from workflows.models_rules import AutomationRule
from workflows.rules import RuleConfigError, rule_create, rule_delete, rule_explain, rule_update, validate_filters
from zartsalgo.flags import flag_clear, flag_set_if_absent

pytestmark = pytest.mark.django_db
ACTOR = "system:test"
PHONE = "+15125550143"


@pytest.fixture
def webform(make_connection):
    secret = webform_secret()
    return make_connection("webform", signing_secret=secret), secret


@pytest.fixture
def submit(webform, deliver):
    connection, secret = webform

    def send(**overrides):
        body = form_body(**overrides)
        response = deliver("webform", connection, body, sign_standard_webhook(secret, body))
        assert response.status_code == 200, response.content
        return response

    return send


def follow_up(client, name="Follow-up"):
    workflow = services.workflow_create(client=client, name=name, actor=ACTOR)
    # A long delay first: the enrollment stays live while the test looks at it.
    services.step_add(
        workflow=workflow, kind="delay", config={"duration": {"amount": 2, "unit": "days"}}, key="wait", actor=ACTOR
    )
    services.step_add(workflow=workflow, kind="create_task", config={"title": "Call back"}, key="call", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    return workflow


def test_a_signed_form_enrolls_the_lead_through_a_rule_traced_to_its_event(acme, submit, data_ops_user):
    workflow = follow_up(acme)
    rule = rule_create(
        client=acme,
        actor=data_ops_user,
        name="Quotes from the site",
        event_type="quote.requested",
        filters={
            "source": ["web_form", "quote_request"],
            "service_type": ["Water Heater"],
            "consent": {"sms": "granted"},
        },
        workflow=workflow,
    )

    submit()

    event = NormalizedEvent.objects.get(event_type="quote.requested")
    assert Enrollment.objects.count() == 1, rule_explain(rule=rule, event=event).reasons
    enrollment = Enrollment.objects.get()
    assert enrollment.workflow == workflow and enrollment.lead == event.lead
    assert enrollment.source_event_id == event.pk  # traceable to the event that fired it
    assert enrollment.enrolled_by_label == f"rule:{rule.pk}"
    rule.refresh_from_db()
    assert rule.fired_count == 1 and rule.last_fired_at is not None
    assert AdminAction.objects.filter(verb="workflow.enroll", target_id=str(enrollment.pk)).exists()


def test_filters_that_do_not_match_enroll_no_one_and_the_test_view_says_why(acme, submit, data_ops_user):
    workflow = follow_up(acme)
    rule = rule_create(
        client=acme,
        actor=data_ops_user,
        name="Emergencies only",
        event_type="quote.requested",
        filters={"urgency": ["emergency"], "market": ["Dallas"]},
        workflow=workflow,
    )
    submit(urgency="next week")

    assert not Enrollment.objects.exists()
    verdict = rule_explain(rule=rule, event=NormalizedEvent.objects.get(event_type="quote.requested"))
    assert not verdict.fired and not verdict.would_enroll
    assert any(r.startswith("urgency normal is not one of emergency") for r in verdict.reasons), verdict.reasons
    assert any(r.startswith("market Austin is not one of Dallas") for r in verdict.reasons), verdict.reasons

    # Explaining enrolls no one, even when the rule would fire.
    rule = rule_update(rule=rule, actor=data_ops_user, filters={"market": ["AUSTIN"]})
    verdict = rule_explain(rule=rule, event=NormalizedEvent.objects.get(event_type="quote.requested"))
    assert verdict.fired and verdict.would_enroll, verdict.reasons
    assert not Enrollment.objects.exists()


def test_the_same_person_by_form_and_missed_call_is_one_lead_and_one_enrollment(
    acme,
    submit,
    twilio,  # noqa: F811
    post,  # noqa: F811
    data_ops_user,
):
    workflow = follow_up(acme)
    for event_type in ("quote.requested", "call.missed"):
        rule_create(client=acme, actor=data_ops_user, name=event_type, event_type=event_type, workflow=workflow)
    connection, token = twilio

    submit(contact={"name": "Maria Garcia", "phone": "(512) 555-0143"})
    response = post(connection, token, dial_action(sid("CA"), "no-answer", From=PHONE, Caller=PHONE))
    assert response.status_code == 200

    assert NormalizedEvent.objects.filter(event_type="call.missed").count() == 1
    assert Lead.objects.count() == 1
    enrollment = Enrollment.objects.get()
    assert enrollment.state in Enrollment.LIVE_STATES
    verdict = rule_explain(
        rule=AutomationRule.objects.get(event_type="call.missed"),
        event=NormalizedEvent.objects.get(event_type="call.missed"),
    )
    assert verdict.fired and not verdict.would_enroll
    assert f"already live in {workflow} (enrollment #{enrollment.pk})" in verdict.reasons[-1]


@pytest.mark.parametrize(
    ("policy", "ended", "old", "expected"),
    [
        ("never", True, True, 1),  # once ever
        ("after_ended", False, True, 1),  # not while live
        ("after_ended", True, False, 2),  # again after it ended
        ("always", False, False, 1),  # live and recent: the cooldown keeps one enrollment
        ("always", False, True, 2),  # live and old: restarted
    ],
)
def test_reenrollment_policy(acme, submit, data_ops_user, policy, ended, old, expected):
    workflow = follow_up(acme)
    rule_create(
        client=acme, actor=data_ops_user, name="r", event_type="quote.requested", workflow=workflow, reenroll=policy
    )
    submit()
    first = Enrollment.objects.get()
    if ended:
        services.enrollment_unenroll(enrollment=first, actor=ACTOR)
    if old:
        Enrollment.objects.filter(pk=first.pk).update(created_at=timezone.now() - datetime.timedelta(hours=2))

    submit(submitted_at="2026-11-21T10:00:00Z", form="Second form")  # a new event from the same person

    assert Enrollment.objects.count() == expected
    assert Enrollment.objects.filter(state__in=list(Enrollment.LIVE_STATES)).count() <= 1  # never live twice
    if policy == "always" and expected == 2:
        first.refresh_from_db()
        assert first.state == "exited" and "Restarted by rule" in first.exit_detail


def test_rules_fire_in_a_set_wise_batch_too(acme, make_connection, client, data_ops_user):
    """The drain's fast batch (many events, one transaction): each enrollment still points at
    the event that fired it, and a lead's later event in the same batch sees its new enrollment."""
    workflow = follow_up(acme)
    rule_create(client=acme, actor=data_ops_user, name="r", event_type="quote.requested", workflow=workflow)
    secret = webform_secret()
    connection = make_connection("webform", signing_secret=secret)
    flag_set_if_absent(pipeline.DRAIN_PENDING_FLAG, ttl_seconds=30)  # deliveries wait for one drain
    try:
        for n in range(6):
            body = form_body(contact={"name": f"Person {n}", "phone": f"512-555-01{n:02d}"}, form=f"f{n}")
            headers = sign_standard_webhook(secret, body)
            url = f"/api/webhooks/webform/{connection.webhook_token}/"
            assert client.post(url, data=body, content_type="application/json", **headers).status_code == 200
        assert RawEvent.objects.filter(status="received").count() == 6
        counts = pipeline.raw_events_process_batch(raw_event_id=None, batch_size=50)
    finally:
        flag_clear(pipeline.DRAIN_PENDING_FLAG)
    assert counts == {"normalized": 6}
    enrollments = list(Enrollment.objects.select_related("source_event"))
    assert len(enrollments) == 6
    for enrollment in enrollments:
        assert enrollment.source_event.event_type == "quote.requested"
        assert enrollment.source_event.lead_id == enrollment.lead_id


def test_rule_changes_are_on_record_with_who_and_what(acme, data_ops_user, engineer):
    workflow = follow_up(acme)
    rule = rule_create(client=acme, actor=data_ops_user, name="r", event_type="lead.captured", workflow=workflow)
    assert (rule.created_by, rule.updated_by) == (data_ops_user, data_ops_user)

    rule = rule_update(rule=rule, actor=engineer, reenroll="never", filters={"source": ["sms"]})
    assert rule.updated_by == engineer and rule.created_by == data_ops_user
    change = AdminAction.objects.get(verb="rule.update")
    assert change.actor_user == engineer
    assert change.detail["changed"] == {"reenroll": ["after_ended", "never"], "filters": [{}, {"source": ["sms"]}]}

    rule_delete(rule=rule, actor=engineer)
    deleted = AdminAction.objects.get(verb="rule.delete")
    assert deleted.detail["rule"]["name"] == "r" and not AutomationRule.objects.exists()
    assert AdminAction.objects.filter(verb="rule.create", actor_user=data_ops_user).exists()


def test_bad_rules_are_refused_naming_the_field(acme, other_client, data_ops_user):
    foreign = follow_up(other_client, name="Theirs")
    with pytest.raises(RuleConfigError) as error:
        rule_create(
            client=acme,
            actor=data_ops_user,
            name="bad",
            event_type="lead.nope",
            filters={"source": ["carrier_pigeon"], "colour": ["red"], "consent": {"sms": "maybe"}},
            workflow=foreign,
        )
    fields = error.value.extra["fields"]
    assert set(fields) == {"event_type", "workflow", "filters.source", "filters.colour", "filters.consent.sms"}
    with pytest.raises(RuleConfigError) as error:
        rule_create(client=acme, actor=data_ops_user, name="no workflow", event_type="lead.captured")
    assert error.value.extra["fields"] == {"workflow": "required to enroll"}
    assert validate_filters({"service_type": "water heater"}) == {"service_type": ["water heater"]}
    assert not AutomationRule.objects.exists()


def test_consent_filter_follows_stop(
    acme,
    submit,
    twilio,  # noqa: F811
    post,  # noqa: F811
    data_ops_user,
):
    workflow = follow_up(acme)
    rule = rule_create(
        client=acme,
        actor=data_ops_user,
        name="texts",
        event_type="sms.received",
        filters={"consent": {"sms": "not_revoked"}},
        workflow=workflow,
    )
    connection, token = twilio
    assert post(connection, token, inbound_sms("STOP", From=PHONE)).status_code == 200
    assert Consent.objects.get(lead__phone_e164=PHONE, channel="sms").state == "revoked"
    assert not Enrollment.objects.exists()
    event = NormalizedEvent.objects.filter(event_type="sms.received").first()
    if event is not None:  # STOP may be normalized as opted_out only; then test the explanation on it
        verdict = rule_explain(rule=rule, event=event)
        assert not verdict.fired and "sms consent is revoked" in " ".join(verdict.reasons)
    assert post(connection, token, inbound_sms("START", From=PHONE)).status_code == 200
    assert post(connection, token, inbound_sms("Can you come today?", From=PHONE)).status_code == 200
    assert Enrollment.objects.count() == 1


def test_the_admin_test_page_explains_a_rule_on_a_past_event(acme, submit, client, data_ops_user):
    from adminops.roles import roles_sync

    roles_sync()
    workflow = follow_up(acme)
    rule = rule_create(
        client=acme,
        actor=data_ops_user,
        name="Emergencies",
        event_type="quote.requested",
        filters={"urgency": ["emergency"]},
        workflow=workflow,
    )
    submit(urgency="no rush")
    event = NormalizedEvent.objects.get(event_type="quote.requested")
    client.force_login(data_ops_user)

    page = client.get(f"/admin/workflows/automationrule/{rule.pk}/test/")
    assert page.status_code == 200 and f"?event={event.pk}" in page.content.decode()  # recent events listed
    page = client.get(f"/admin/workflows/automationrule/{rule.pk}/test/?event={event.pk}")
    text = page.content.decode()
    assert "No: it would not fire." in text and "urgency low is not one of emergency" in text
    assert not Enrollment.objects.exists()
