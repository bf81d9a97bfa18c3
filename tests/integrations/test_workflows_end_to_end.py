"""Workflows meet the webhook pipeline: a workflow texts a lead through the real Twilio SDK (to a
local fake server), Twilio's signed status callback updates that message on the timeline, the
lead's signed reply wakes the waiting branch, and a signed STOP ends another enrollment."""

import datetime

import pytest

from leads.models import Activity
from tests import factories
from workflows import services
from workflows.models import Enrollment, OutboundMessage

from .test_twilio import inbound_sms, post, status_callback, twilio  # noqa: F401 - fixtures used by name

pytestmark = pytest.mark.django_db
ACTOR = "system:test"


@pytest.fixture
def wired(twilio, acme, fake_provider):  # noqa: F811
    connection, token = twilio
    connection.config = {
        "account_sid": "AC" + "2" * 32,
        "from_number": "+15125550100",
        "api_base_url": fake_provider.url,
    }
    connection.save(update_fields=["config"])
    acme.quiet_hours_start = acme.quiet_hours_end = datetime.time(0, 0)
    acme.save()
    return connection, token


def ask_and_wait(client):
    workflow = services.workflow_create(client=client, name="Ask", actor=ACTOR)
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Still need help?"}, key="ask", actor=ACTOR)
    services.step_add(
        workflow=workflow,
        kind="wait_for_event",
        config={"event": "sms.replied", "timeout": {"amount": 2, "unit": "days"}, "no": "exit"},
        key="wait",
        actor=ACTOR,
    )
    services.step_add(workflow=workflow, kind="update_lead", config={"add_tag": "engaged"}, key="tag", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    return workflow


def test_send_status_callback_and_reply_all_land_on_the_one_lead(
    wired,
    acme,
    fake_provider,
    post,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    connection, token = wired
    lead = factories.LeadFactory(client=acme, phone_raw="+15125550143", phone_e164="+15125550143")
    with django_capture_on_commit_callbacks(execute=True):
        enrollment = services.enrollment_create(workflow=ask_and_wait(acme), lead=lead, actor=ACTOR)

    message = OutboundMessage.objects.get()
    assert message.status == "sent" and message.provider == "twilio"
    assert fake_provider.requests[0].form()["Body"] == ["Still need help?"]
    enrollment.refresh_from_db()
    assert enrollment.state == "waiting"

    # Twilio reports delivery for the SID it gave us: the timeline entry follows.
    assert (
        post(connection, token, status_callback(message.provider_id, "delivered", To=lead.phone_e164)).status_code
        == 200
    )
    activity = Activity.objects.get(kind="sms_outbound", provider_id=message.provider_id)
    assert activity.lead_id == lead.pk and activity.delivery_status == "delivered"

    # The lead replies: the waiting branch takes its "yes" path at once.
    assert post(connection, token, inbound_sms("Yes please", From=lead.phone_e164)).status_code == 200
    enrollment.refresh_from_db()
    lead.refresh_from_db()
    assert enrollment.state == "completed" and "engaged" in lead.tags


def test_a_signed_stop_ends_the_enrollment_as_unsubscribed(
    wired,
    acme,
    post,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    connection, token = wired
    lead = factories.LeadFactory(client=acme, phone_raw="+15125550177", phone_e164="+15125550177")
    with django_capture_on_commit_callbacks(execute=True):
        enrollment = services.enrollment_create(workflow=ask_and_wait(acme), lead=lead, actor=ACTOR)
    assert post(connection, token, inbound_sms("STOP", From=lead.phone_e164)).status_code == 200
    enrollment.refresh_from_db()
    assert (enrollment.state, enrollment.exit_reason) == (Enrollment.State.EXITED, "unsubscribed")
