"""Issue #5's "done when", in process: a real signed web-form delivery fires an automation rule,
the rule enrolls the lead, the workflow's CRM step hands the lead to a local fake CRM (a real
HTTP server verifying the real Standard Webhooks signature), once — and a redelivered webhook, a
re-run step and a retried send task change nothing. The same with the worker SIGKILLed mid-call
is tests/integrations/test_crm_worker_killed.py (real workers, MariaDB)."""

import uuid

import pytest

from adminops.models import AdminAction
from integrations.crm import crm_handoff_request, crm_handoff_send
from integrations.models import CrmHandoff, NormalizedEvent
from integrations.services import connection_create
from tests.fakes.crm_server import running_fake_crm
from workflows import services
from workflows.models import Enrollment, StepRun
from workflows.rules import rule_create

from .conftest import form_body, sign_standard_webhook, webform_secret

pytestmark = pytest.mark.django_db
ACTOR = "system:test"


@pytest.fixture
def fake_crm():
    with running_fake_crm() as server:
        yield server


@pytest.fixture
def crm(acme, fake_crm, monkeypatch):
    var = f"TEST_CRM_E2E_{uuid.uuid4().hex[:8].upper()}"
    monkeypatch.setenv(var, fake_crm.signing_secret)
    return connection_create(
        client=acme,
        provider="crm_webhook",
        reason="Leads go to the client's CRM",
        actor=ACTOR,
        credentials={"signing_secret": f"env:{var}"},
        config={"url": fake_crm.webhook_url},
    )


def test_a_signed_form_is_enrolled_by_a_rule_and_handed_to_the_crm_once(
    acme, make_connection, deliver, crm, fake_crm, data_ops_user
):
    workflow = services.workflow_create(client=acme, name="Hand off and follow up", actor=ACTOR)
    services.step_add(workflow=workflow, kind="crm_handoff", config={}, key="to-crm", actor=ACTOR)
    services.step_add(
        workflow=workflow, kind="delay", config={"duration": {"amount": 1, "unit": "days"}}, key="wait", actor=ACTOR
    )
    services.step_add(workflow=workflow, kind="create_task", config={"title": "Call"}, key="call", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    rule_create(client=acme, actor=data_ops_user, name="Quotes", event_type="quote.requested", workflow=workflow)
    secret = webform_secret()
    webform = make_connection("webform", signing_secret=secret)
    body = form_body()
    headers = sign_standard_webhook(secret, body)

    assert deliver("webform", webform, body, headers).status_code == 200

    event = NormalizedEvent.objects.get(event_type="quote.requested")
    enrollment = Enrollment.objects.get()
    assert enrollment.source_event_id == event.pk and enrollment.lead_id == event.lead_id
    assert enrollment.step_key == "call" and enrollment.state == "active"  # handed off, now waiting a day
    run = StepRun.objects.get(enrollment=enrollment, step_key="to-crm")
    handoff = CrmHandoff.objects.get()
    assert run.state == "succeeded" and run.detail == {"handoff_id": handoff.pk}
    assert handoff.lead_id == event.lead_id and handoff.status == "succeeded" and handoff.crm_id
    assert len(fake_crm.contacts) == 1
    contact = next(iter(fake_crm.contacts.values()))
    assert "Garcia" in str(contact["properties"])
    action = AdminAction.objects.get(pk=handoff.action_id)
    assert action.state == "succeeded" and action.lead_id == event.lead_id

    # The provider retries the same delivery: a duplicate receipt, no second enrollment or handoff.
    assert deliver("webform", webform, body, headers).status_code == 200
    # The step is run again for the same visit (a retried task) and the send task is redelivered:
    # the same handoff row, and the CRM is not asked to create anything.
    again = crm_handoff_request(
        lead=enrollment.lead,
        source="workflow",
        source_key=f"enrollment:{enrollment.pk}:step:to-crm:visit:0",
        actor=ACTOR,
        must_reach=True,
    )
    assert again.pk == handoff.pk
    crm_handoff_send(handoff_id=handoff.pk)
    CrmHandoff.objects.filter(pk=handoff.pk).update(status="sending")  # as if the worker died mid-call
    crm_handoff_send(handoff_id=handoff.pk)

    assert Enrollment.objects.count() == 1 and CrmHandoff.objects.count() == 1
    assert len(fake_crm.contacts) == 1
    assert CrmHandoff.objects.get().status == "succeeded"


def test_without_a_crm_connection_the_step_holds_the_enrollment(
    acme, data_ops_user, django_capture_on_commit_callbacks
):
    from tests import factories

    workflow = services.workflow_create(client=acme, name="CRM only", actor=ACTOR)
    services.step_add(workflow=workflow, kind="crm_handoff", config={}, key="to-crm", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    lead = factories.LeadFactory(client=acme)
    with django_capture_on_commit_callbacks(execute=True):
        enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=data_ops_user)
    enrollment.refresh_from_db()
    assert enrollment.state == "held" and enrollment.hold_kind == "channel"
    assert "CRM" in enrollment.hold_reason
    assert not CrmHandoff.objects.exists()


def test_a_rule_can_hand_a_lead_straight_to_the_crm(acme, make_connection, deliver, crm, fake_crm, data_ops_user):
    rule_create(
        client=acme,
        actor=data_ops_user,
        name="Quotes to the CRM",
        event_type="quote.requested",
        action="crm_handoff",
        filters={"urgency": ["emergency", "high"]},
    )
    secret = webform_secret()
    webform = make_connection("webform", signing_secret=secret)
    body = form_body()  # urgency "ASAP" → high
    assert deliver("webform", webform, body, sign_standard_webhook(secret, body)).status_code == 200

    event = NormalizedEvent.objects.get(event_type="quote.requested")
    handoff = CrmHandoff.objects.get()
    assert handoff.lead_id == event.lead_id and handoff.status == "succeeded" and handoff.must_reach
    assert handoff.source == "rule" and str(event.pk) in handoff.source_key
    assert len(fake_crm.contacts) == 1 and not Enrollment.objects.exists()

    calm = form_body(urgency="whenever", contact={"name": "Tom Lee", "phone": "512-555-0199"}, form="Other form")
    assert deliver("webform", webform, calm, sign_standard_webhook(secret, calm)).status_code == 200
    assert CrmHandoff.objects.count() == 1  # the filter said no
