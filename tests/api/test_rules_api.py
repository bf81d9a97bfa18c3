"""Automation rules through the API: CRUD through workflows.rules (logged with the API user) and
the dry run that says whether a rule would fire on a stored event, and why."""

import pytest

from adminops.models import AdminAction
from tests import factories
from workflows import services
from workflows.models_rules import AutomationRule

ACTOR = "system:test"


@pytest.fixture
def live_workflow(acme):
    workflow = services.workflow_create(client=acme, name="New lead", actor=ACTOR)
    services.step_add(workflow=workflow, kind="exit", key="done", config={}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    return workflow


@pytest.mark.django_db
def test_rule_crud_and_dry_run(staff_api, acme_api, acme, live_workflow, data_ops_user):
    r = staff_api.post(
        "/api/v1/rules/",
        {
            "client": acme.pk,
            "name": "Angi leads",
            "event_type": "lead.captured",
            "filters": {"source": ["angi"]},
            "workflow": live_workflow.pk,
        },
        format="json",
    )
    assert r.status_code == 201, r.json()
    rule = r.json()
    assert rule["created_by_label"] == f"user:{data_ops_user.username}" and rule["action"] == "enroll"

    angi = factories.LeadFactory(client=acme, source="angi")
    web = factories.LeadFactory(client=acme, source="web_form")
    connection = factories.ConnectionFactory(client=acme)
    hit = factories.NormalizedEventFactory(raw_event__connection=connection, lead=angi, event_type="lead.captured")
    miss = factories.NormalizedEventFactory(raw_event__connection=connection, lead=web, event_type="lead.captured")

    r = staff_api.post(f"/api/v1/rules/{rule['id']}/test/", {"event": hit.pk}, format="json")
    assert r.status_code == 200 and r.json()["fired"] is True and r.json()["would_enroll"] is True
    r = acme_api.post(f"/api/v1/rules/{rule['id']}/test/", {"event": miss.pk}, format="json")
    assert r.status_code == 200 and r.json()["fired"] is False
    assert any("source web_form is not one of angi" in reason for reason in r.json()["reasons"])

    r = staff_api.patch(f"/api/v1/rules/{rule['id']}/", {"is_active": False}, format="json")
    assert r.status_code == 200 and r.json()["is_active"] is False
    assert staff_api.get("/api/v1/rules/", {"is_active": "false"}).json()["results"][0]["id"] == rule["id"]
    assert acme_api.patch(f"/api/v1/rules/{rule['id']}/", {"is_active": True}, format="json").status_code == 403
    assert staff_api.delete(f"/api/v1/rules/{rule['id']}/").status_code == 204
    assert not AutomationRule.objects.exists()
    verbs = set(AdminAction.objects.filter(actor_user=data_ops_user).values_list("verb", flat=True))
    assert {"rule.create", "rule.update", "rule.delete"} <= verbs


@pytest.mark.django_db
def test_rule_errors_name_the_field(staff_api, acme, other_client, live_workflow):
    r = staff_api.post(
        "/api/v1/rules/",
        {
            "client": other_client.pk,
            "name": "x",
            "event_type": "lead.teleported",
            "filters": {"source": ["carrier pigeon"]},
        },
        format="json",
    )
    assert r.status_code == 400
    assert {"event_type", "filters.source"} <= set(r.json()["extra"]["fields"])
    r = staff_api.post(
        "/api/v1/rules/",
        {"client": other_client.pk, "name": "x", "event_type": "lead.captured", "workflow": live_workflow.pk},
        format="json",
    )
    assert r.status_code == 400 and r.json()["extra"]["fields"] == {"workflow": "belongs to another client"}


@pytest.mark.django_db
def test_a_rule_is_tested_only_against_events_the_caller_may_see(acme_api, acme, other_client, live_workflow):
    rule = AutomationRule.objects.create(client=acme, name="r", event_type="lead.captured", workflow=live_workflow)
    theirs = factories.NormalizedEventFactory(raw_event__connection=factories.ConnectionFactory(client=other_client))
    r = acme_api.post(f"/api/v1/rules/{rule.pk}/test/", {"event": theirs.pk}, format="json")
    assert r.status_code == 400 and "event" in r.json()["extra"]["fields"]
