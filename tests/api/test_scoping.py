"""A client's rows are reachable only by staff and by that client's own API users: another
client's row answers 404 (as a missing one would), a user who is neither gets 403, nobody 401."""

import pytest

from tests import factories
from workflows import services

ACTOR = "system:test"


@pytest.fixture
def zenith_rows(other_client):
    """One of everything, belonging to Zenith."""
    lead = factories.LeadFactory(client=other_client)
    workflow = services.workflow_create(client=other_client, name="Zenith follow-up", actor=ACTOR)
    services.step_add(workflow=workflow, kind="exit", key="done", config={}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor=ACTOR, run_now=False)
    run = enrollment.step_runs.create(
        client=other_client, step_key="done", step_kind="exit", visit=0, state="succeeded"
    )
    connection = factories.ConnectionFactory(client=other_client, credentials={"secret": "env:ZENITH_SECRET"})
    event = factories.NormalizedEventFactory(raw_event__connection=connection, lead=lead)
    return {
        "leads": lead.pk,
        "workflows": workflow.pk,
        "enrollments": enrollment.pk,
        "step-runs": run.pk,
        "connections": connection.pk,
        "normalized-events": event.pk,
    }


@pytest.mark.django_db
def test_anonymous_gets_401_with_the_error_shape(anonymous_api):
    r = anonymous_api.get("/api/v1/leads/")
    assert r.status_code == 401
    assert set(r.json()) == {"message", "code", "extra"} and r.json()["code"] == "not_authenticated"


@pytest.mark.django_db
def test_a_user_who_is_neither_staff_nor_a_client_user_gets_403():
    from tests.api.conftest import token_client

    r = token_client(factories.UserFactory()).get("/api/v1/workflows/")
    assert r.status_code == 403 and r.json()["code"] == "permission_denied"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "resource", ["leads", "workflows", "enrollments", "step-runs", "connections", "normalized-events"]
)
def test_a_client_user_cannot_see_another_clients_rows(acme_api, zenith_api, staff_api, zenith_rows, resource):
    pk = zenith_rows[resource]
    # Acme's user: not in lists, 404 on the row (never 403, which would say it exists)
    assert acme_api.get(f"/api/v1/{resource}/").json()["results"] == []
    r = acme_api.get(f"/api/v1/{resource}/{pk}/")
    assert r.status_code == 404 and r.json()["code"] == "not_found"
    # Zenith's own user and staff see it
    assert [row["id"] for row in zenith_api.get(f"/api/v1/{resource}/").json()["results"]] == [pk]
    assert zenith_api.get(f"/api/v1/{resource}/{pk}/").status_code == 200
    assert staff_api.get(f"/api/v1/{resource}/{pk}/").status_code == 200


@pytest.mark.django_db
def test_staff_see_both_clients(staff_api, acme, other_client, zenith_rows):
    factories.LeadFactory(client=acme)
    clients = {row["client"] for row in staff_api.get("/api/v1/leads/").json()["results"]}
    assert clients == {acme.pk, other_client.pk}


@pytest.mark.django_db
def test_a_client_user_cannot_change_another_clients_rows(acme_api, acme, other_client, zenith_rows):
    lead_id = zenith_rows["leads"]
    assert acme_api.patch(f"/api/v1/leads/{lead_id}/", {"city": "Hacked"}, format="json").status_code == 404
    # nor reach them through a foreign key: another client's id is "does not exist"
    mine = factories.LeadFactory(client=acme)
    r = acme_api.post("/api/v1/enrollments/", {"workflow": zenith_rows["workflows"], "lead": mine.pk}, format="json")
    assert r.status_code == 403  # enrolling is staff only
    r = acme_api.post("/api/v1/leads/", {"client": other_client.pk, "phone": "5125550100"}, format="json")
    assert r.status_code == 400 and "client" in r.json()["extra"]["fields"]
    assert not other_client.leads.filter(phone_e164="+15125550100").exists()


@pytest.mark.django_db
def test_client_users_read_workflows_but_only_staff_change_them(acme_api, staff_api, acme):
    workflow = services.workflow_create(client=acme, name="Acme follow-up", actor=ACTOR)
    assert acme_api.get(f"/api/v1/workflows/{workflow.pk}/").status_code == 200
    assert acme_api.patch(f"/api/v1/workflows/{workflow.pk}/", {"name": "x"}, format="json").status_code == 403
    assert acme_api.post(f"/api/v1/workflows/{workflow.pk}/publish/", {}, format="json").status_code == 403
    assert acme_api.delete(f"/api/v1/workflows/{workflow.pk}/").status_code == 403
    assert (
        acme_api.post("/api/v1/step-runs/purge/", {"before": "2020-01-01T00:00:00Z"}, format="json").status_code == 403
    )


@pytest.mark.django_db
def test_client_users_create_and_change_their_own_leads(acme_api, acme):
    r = acme_api.post("/api/v1/leads/", {"first_name": "Ana", "phone": "512-555-0142"}, format="json")
    assert r.status_code == 201, r.json()
    assert r.json()["client"] == acme.pk  # always their own client
    r = acme_api.patch(f"/api/v1/leads/{r.json()['id']}/", {"status": "contacted", "city": "Austin"}, format="json")
    assert r.status_code == 200 and (r.json()["status"], r.json()["city"]) == ("contacted", "Austin")
    # owners are assigned by staff
    r = acme_api.patch(f"/api/v1/leads/{r.json()['id']}/", {"owner": None}, format="json")
    assert r.status_code == 200


@pytest.mark.django_db
def test_validation_errors_name_the_field(staff_api, acme):
    r = staff_api.post(
        "/api/v1/leads/", {"client": acme.pk, "email": "not-an-email", "urgency": "yesterday"}, format="json"
    )
    assert r.status_code == 400
    body = r.json()
    assert body["code"] == "invalid" and body["message"] == "Validation error"
    assert set(body["extra"]["fields"]) == {"email", "urgency"}
    r = staff_api.post("/api/v1/leads/", {"client": acme.pk}, format="json")
    assert set(r.json()["extra"]["fields"]) == {"phone", "email"}
    r = staff_api.post("/api/v1/workflows/", {"client": acme.pk}, format="json")
    assert r.json()["extra"]["fields"] == {"name": ["required unless a template is given"]}
    r = staff_api.get("/api/v1/leads/", {"created_after": "last tuesday"})
    assert r.status_code == 400 and "created_after" in r.json()["extra"]["fields"]


@pytest.mark.django_db
def test_operational_text_is_blank_for_a_client_user_and_whole_for_staff(acme, staff_api, acme_api):
    lead = factories.LeadFactory(client=acme)
    workflow = services.workflow_create(client=acme, name="Acme follow-up", actor=ACTOR)
    services.step_add(workflow=workflow, kind="exit", key="done", config={}, actor=ACTOR)
    services.workflow_publish(workflow=workflow, actor=ACTOR)
    enrollment = services.enrollment_create(workflow=workflow, lead=lead, actor="user:dana", run_now=False)
    type(enrollment).objects.filter(pk=enrollment.pk).update(hold_reason="Twilio 30007: carrier filtered")
    run = enrollment.step_runs.create(
        client=acme, step_key="done", step_kind="exit", visit=0, state="failed", error="SMTP 550 mailbox full"
    )
    connection = factories.ConnectionFactory(client=acme, status_reason="Auth token rotated by Dana")

    staff = staff_api.get(f"/api/v1/enrollments/{enrollment.pk}/").json()
    assert staff["hold_reason"] == "Twilio 30007: carrier filtered" and staff["enrolled_by_label"] == "user:dana"
    assert staff["step_runs"][0]["error"] == "SMTP 550 mailbox full"
    assert staff_api.get(f"/api/v1/connections/{connection.pk}/").json()["status_reason"].startswith("Auth")

    mine = acme_api.get(f"/api/v1/enrollments/{enrollment.pk}/").json()
    assert mine["hold_reason"] == "" and mine["enrolled_by_label"] == "" and mine["exit_detail"] == ""
    assert mine["step_runs"][0]["error"] == "" and mine["state"] == enrollment.state
    assert acme_api.get(f"/api/v1/step-runs/{run.pk}/").json()["error"] == ""
    assert acme_api.get(f"/api/v1/connections/{connection.pk}/").json()["status_reason"] == ""
    listed = acme_api.get("/api/v1/enrollments/").json()["results"]
    assert [row["enrolled_by_label"] for row in listed] == [""]
