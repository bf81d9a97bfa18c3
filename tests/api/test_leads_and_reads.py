"""Leads through the API (dedupe, filters, edits through the service) and the read-only
connections and normalized events (no secrets, no raw payloads)."""

import datetime
import json

import pytest
from django.utils import timezone

from leads.models import Activity
from tests import factories


@pytest.mark.django_db
def test_creating_a_known_phone_merges_into_the_lead(staff_api, acme):
    first = staff_api.post("/api/v1/leads/", {"client": acme.pk, "phone": "512 555 0101", "source": "web_form"})
    assert first.status_code == 201
    again = staff_api.post(
        "/api/v1/leads/", {"client": acme.pk, "phone": "+1 (512) 555-0101", "first_name": "Sam"}, format="json"
    )
    assert again.status_code == 200 and again.json()["id"] == first.json()["id"]
    assert again.json()["first_name"] == "Sam"  # filled, since it was empty


@pytest.mark.django_db
def test_lead_filters(staff_api, acme, other_client):
    old = factories.LeadFactory(client=acme, status="quoted", source="angi", service_type="Water heater")
    new = factories.LeadFactory(client=acme, phone_raw="+15125550177", email_raw="x@example.com")
    other = factories.LeadFactory(client=other_client)
    type(old).objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=10))

    def ids(**params):
        r = staff_api.get("/api/v1/leads/", params)
        assert r.status_code == 200, r.json()
        return {row["id"] for row in r.json()["results"]}

    assert ids(status="quoted") == {old.pk}
    assert ids(source="angi", service_type="Water heater") == {old.pk}
    assert ids(client=other_client.pk) == {other.pk}
    assert ids(phone="(512) 555-0177") == {new.pk}
    assert ids(email="X@Example.com") == {new.pk}
    since = (timezone.now() - datetime.timedelta(days=1)).isoformat()
    assert old.pk not in ids(created_after=since) and ids(created_before=since) == {old.pk}


@pytest.mark.django_db
def test_lead_update_goes_through_the_service_and_hides_notes(staff_api, acme, data_ops_user):
    lead = factories.LeadFactory(client=acme)
    factories.ActivityFactory(lead=lead, kind=Activity.Kind.NOTE, body="private: owes us money")
    r = staff_api.patch(
        f"/api/v1/leads/{lead.pk}/",
        {"email": "NEW@Example.com", "status": "lost", "lost_reason": "price", "owner": data_ops_user.pk},
        format="json",
    )
    assert r.status_code == 200, r.json()
    body = r.json()
    assert (body["email"], body["status"], body["lost_reason"], body["owner"]) == (
        "new@example.com",
        "lost",
        "price",
        data_ops_user.pk,
    )
    assert "owes us money" not in json.dumps(body) and "activities" not in body and "notes" not in body
    assert lead.activities.filter(kind=Activity.Kind.FIELD_CHANGE, actor_user=data_ops_user).exists()
    # the pipeline's rules answer 409; a lost lead needs a reason (400, named)
    assert staff_api.patch(f"/api/v1/leads/{lead.pk}/", {"status": "booked"}, format="json").status_code == 409
    other = factories.LeadFactory(client=acme)
    r = staff_api.patch(f"/api/v1/leads/{other.pk}/", {"status": "lost"}, format="json")
    assert r.status_code == 400 and "lost_reason" in r.json()["extra"]["fields"]
    # another lead's email is a named conflict, not a duplicate
    r = staff_api.patch(f"/api/v1/leads/{other.pk}/", {"email": "new@example.com"}, format="json")
    assert r.status_code == 400 and "email" in r.json()["extra"]["fields"]


@pytest.mark.django_db
def test_connections_show_credential_names_never_values(staff_api, acme_api, acme, monkeypatch):
    monkeypatch.setenv("ACME_TWILIO_TOKEN", "super-secret-value")
    connection = factories.ConnectionFactory(
        client=acme, provider="twilio", credentials={"auth_token": "env:ACME_TWILIO_TOKEN"}
    )
    staff_view = staff_api.get(f"/api/v1/connections/{connection.pk}/").json()
    assert staff_view["credential_names"] == ["auth_token"]
    assert "super-secret-value" not in json.dumps(staff_view) and "ACME_TWILIO_TOKEN" not in json.dumps(staff_view)
    assert staff_view["webhook_url"].endswith(f"/api/webhooks/twilio/{connection.webhook_token}/")
    client_view = acme_api.get(f"/api/v1/connections/{connection.pk}/").json()
    assert client_view["webhook_url"] is None and connection.webhook_token not in json.dumps(client_view)


@pytest.mark.django_db
def test_normalized_events_show_normalized_fields_never_the_raw_payload(staff_api, acme):
    connection = factories.ConnectionFactory(client=acme)
    lead = factories.LeadFactory(client=acme)
    event = factories.NormalizedEventFactory(
        raw_event__connection=connection,
        raw_event__payload={"secret_field": "raw only"},
        lead=lead,
        event_type="call.missed",
        data={"phone": "+15125550143", "summary": "Missed call"},
    )
    factories.NormalizedEventFactory(
        raw_event__connection=connection, occurred_at=timezone.now() - datetime.timedelta(days=3)
    )
    body = staff_api.get(f"/api/v1/normalized-events/{event.pk}/").json()
    assert body["data"] == {"phone": "+15125550143", "summary": "Missed call"}
    assert "raw only" not in json.dumps(body) and "raw_event" not in body
    r = staff_api.get("/api/v1/normalized-events/", {"lead": lead.pk, "event_type": "call.missed"})
    assert [row["id"] for row in r.json()["results"]] == [event.pk]
    since = (timezone.now() - datetime.timedelta(days=1)).isoformat()
    assert [
        row["id"] for row in staff_api.get("/api/v1/normalized-events/", {"occurred_after": since}).json()["results"]
    ] == [event.pk]


@pytest.mark.django_db
def test_cursor_pages_walk_the_whole_list_without_repeats(staff_api, acme, django_assert_max_num_queries):
    made = {factories.LeadFactory(client=acme).pk for _ in range(7)}
    seen, url, pages = [], "/api/v1/leads/?page_size=3", 0
    while url:
        with django_assert_max_num_queries(3):
            body = staff_api.get(url).json()
        seen += [row["id"] for row in body["results"]]
        url, pages = body["next"], pages + 1
    assert pages == 3 and len(seen) == 7 and set(seen) == made and seen == sorted(seen, reverse=True)


@pytest.mark.django_db
def test_message_text_is_for_staff_a_client_user_sees_the_named_fields(staff_api, acme, acme_api):
    event = factories.NormalizedEventFactory(
        raw_event__connection=factories.ConnectionFactory(client=acme),
        event_type="sms.received",
        data={"phone": "+15125550143", "summary": "SMS received", "body": "gate code is 4417", "lead_price": "19.50"},
    )
    staff = staff_api.get(f"/api/v1/normalized-events/{event.pk}/").json()
    assert staff["data"]["body"] == "gate code is 4417" and staff["data"]["lead_price"] == "19.50"
    mine = acme_api.get(f"/api/v1/normalized-events/{event.pk}/").json()
    assert mine["data"] == {"phone": "+15125550143", "summary": "SMS received"}
