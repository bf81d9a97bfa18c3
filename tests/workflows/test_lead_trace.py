"""From any lead, every message, task, CRM handoff and enrollment step, on the lead's page."""

import pytest

from adminops.roles import roles_sync
from integrations.crm import crm_handoff_request
from tests import factories
from workflows import services
from workflows.models import OutboundMessage, StaffTask, StepRun

pytestmark = pytest.mark.django_db
ACTOR = "system:test"


def test_the_lead_page_traces_messages_tasks_handoffs_and_each_step_run(client, acme, data_ops_user):
    roles_sync()
    lead = factories.LeadFactory(client=acme, first_name="Maria")
    workflow = services.workflow_create(client=acme, name="Follow-up", actor=ACTOR)
    services.step_add(workflow=workflow, kind="send_sms", config={"body": "Hi"}, key="hi", actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR, run_now=False)
    for visit, state in ((0, "deferred"), (1, "succeeded")):
        StepRun.objects.create(
            enrollment=enrollment, client=acme, step_key="hi", step_kind="send_sms", visit=visit, state=state
        )
    OutboundMessage.objects.create(
        client=acme,
        lead=lead,
        enrollment=enrollment,
        step_key="hi",
        idempotency_key="k1",
        channel="sms",
        to="+15125550143",
        body="Hi",
        status="sent",
        provider_id="SMabc123",
    )
    StaffTask.objects.create(client=acme, lead=lead, enrollment=enrollment, title="Call Maria back")
    factories.ConnectionFactory(client=acme, provider="hubspot")
    crm_handoff_request(lead=lead, source="workflow", source_key="trace", actor=ACTOR)
    other = factories.LeadFactory(client=acme)
    StaffTask.objects.create(client=acme, lead=other, title="Someone else's task")

    client.force_login(data_ops_user)
    html = client.get(f"/admin/leads/lead/{lead.pk}/change/").content.decode()

    assert "hi #0: deferred · hi #1: succeeded" in html  # every step run of the enrollment, in order
    assert "SMabc123" in html and "Call Maria back" in html
    assert "CRM handoffs" in html and "pending" in html.lower()
    assert "Someone else&#x27;s task" not in html and "Someone else's task" not in html
