"""Rows the ops tests need, made through the owning apps' services where one exists."""

import itertools
from datetime import timedelta

from django.utils import timezone

from tests import factories

_names = itertools.count(1)


def published_workflow(client, name="Follow-up"):
    from workflows import services as wf

    workflow = wf.workflow_create(client=client, name=name, actor="system:test")
    wf.step_add(workflow=workflow, kind="send_sms", config={"body": "Hi {{ lead.first_name }}"}, key="hi", actor="t")
    wf.workflow_publish(workflow=workflow, actor="system:test")
    return workflow


def held_enrollment(client, *, kind="switch", workflow=None, reason="Client asked to pause texts"):
    from workflows import engine
    from workflows import services as wf

    workflow = workflow or published_workflow(client, name=f"Held {kind} {next(_names)}")
    lead = factories.LeadFactory(client=client)
    enrollment = wf.enrollment_create(workflow=workflow, lead=lead, actor="system:test", run_now=False)
    engine.enrollment_hold(enrollment=enrollment, reason=reason, kind=kind)
    enrollment.refresh_from_db()
    return enrollment


def unknown_send(client):
    """An enrollment held because its SMS's outcome is unknown, with that message."""
    from workflows.models import OutboundMessage

    enrollment = held_enrollment(client, kind="send_unknown", reason="Twilio timed out")
    message = OutboundMessage.objects.create(
        client=client,
        lead=enrollment.lead,
        enrollment=enrollment,
        step_key="hi",
        visit=enrollment.visit,
        idempotency_key=f"enr:{enrollment.pk}:hi:{enrollment.visit}",
        channel="sms",
        to=enrollment.lead.phone_e164,
        body="Hi",
        provider="twilio",
        status=OutboundMessage.Status.UNKNOWN,
        error="ReadTimeout",
    )
    return enrollment, message


def dead_handoff(client):
    from integrations.crm import crm_handoff_request
    from integrations.models import CrmHandoff

    factories.ConnectionFactory(client=client, provider="hubspot", reason="CRM")
    lead = factories.LeadFactory(client=client)
    handoff = crm_handoff_request(lead=lead, source="manual", source_key="ops-test", actor="system:test")
    CrmHandoff.objects.filter(pk=handoff.pk).update(status=CrmHandoff.Status.DEAD, last_error="HTTP 400")
    handoff.refresh_from_db()
    return handoff


def stale_connection(client, provider="twilio"):
    return factories.ConnectionFactory(
        client=client,
        provider=provider,
        last_event_at=timezone.now() - timedelta(days=3),
        expected_freshness=timedelta(days=2),
    )
