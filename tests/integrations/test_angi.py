import json
import secrets
from pathlib import Path

import pytest

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from leads.models import Activity, Lead

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "payloads" / "angi"


def payload(name: str = "homeadvisor_lead") -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


@pytest.fixture
def angi(make_connection):
    api_key = secrets.token_urlsafe(48)  # Angi allows up to 160 characters
    return make_connection("angi", api_key=api_key), {"HTTP_X_API_KEY": api_key}


@pytest.fixture
def post(deliver):
    def send(connection, data, headers):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return deliver("angi", connection, body, headers)

    return send


def test_homeadvisor_lead_becomes_an_angi_lead_end_to_end(angi, acme, post):
    connection, auth = angi
    response = post(connection, payload(), auth)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/json" and json.loads(response.content)["status"] == "success"

    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("accepted", "valid", 200)
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind, raw.idempotency_key) == ("normalized", "lead", "461229871")
    assert "0122" in raw.summary and "JAMES" not in raw.summary and "oneil" not in raw.summary
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "lead.captured" and event.lead == lead
    assert event.data["provider_id"] == "461229871" and event.data["service_request_id"] == "182734455"
    assert (lead.source, lead.phone_e164, lead.email_normalized, lead.first_name, lead.last_name) == (
        "angi",
        "+15125550122",
        "jim.oneil@example.net",
        "James",
        "O'Neil",
    )
    assert (lead.city, lead.state_region, lead.postal_code, lead.service_type, lead.urgency) == (
        "Austin",
        "TX",
        "78751",
        "Water Heater - Repair or Service",
        "emergency",  # "Urgent (1-2 days)"
    )
    assert lead.source_detail == "Angi lead 461229871 (SR 182734455)"
    assert lead.activities.filter(kind=Activity.Kind.LEAD_CAPTURED).exists()


def test_three_retries_of_the_same_lead_make_one_raw_event_and_one_lead(angi, post):
    """HomeAdvisor retries 3 times, 15 minutes apart, after a timeout we never saw."""
    connection, auth = angi
    responses = [post(connection, payload(), auth) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert all(json.loads(r.content)["status"] == "success" for r in responses)  # Angi needs JSON, even for dups
    assert RawEvent.objects.count() == 1 and NormalizedEvent.objects.count() == 1 and Lead.objects.count() == 1
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == [
        "accepted",
        "duplicate",
        "duplicate",
    ]


def test_lead_keyed_on_the_service_request_when_it_has_no_lead_id(angi, post):
    connection, auth = angi
    body = {k: v for k, v in payload().items() if k != "leadOid"}
    assert post(connection, body, auth).status_code == 200
    assert RawEvent.objects.get().idempotency_key == "182734455"


def test_nested_lead_shape_is_accepted(angi, acme, post):
    connection, auth = angi
    body = {
        "lead": {
            "leadId": "ANG-5521",
            "createdAt": "2026-11-21T09:00:00Z",
            "category": {"id": 10213, "name": "Drain cleaning"},
            "customer": {
                "firstName": "Ana",
                "lastName": "Lopez",
                "phone": "+1 512 555 0135",
                "email": "ana@example.org",
            },
            "location": {"city": "Round Rock", "state": "TX", "postalCode": "78664"},
        }
    }
    assert post(connection, body, auth).status_code == 200
    lead = Lead.objects.get(client=acme)
    assert (lead.phone_e164, lead.first_name, lead.service_type, lead.city, lead.postal_code) == (
        "+15125550135",
        "Ana",
        "Drain cleaning",
        "Round Rock",
        "78664",
    )
    assert RawEvent.objects.get().idempotency_key == "ANG-5521"


def test_without_a_configured_key_deliveries_need_no_header(make_connection, post):
    connection = make_connection("angi")
    assert post(connection, payload(), {}).status_code == 200
    assert WebhookEvent.objects.get().signature == "valid" and Lead.objects.count() == 1


@pytest.mark.parametrize(
    ("headers", "status", "signature"),
    [
        ({}, 401, "missing"),
        ({"HTTP_X_API_KEY": "not-the-key"}, 403, "invalid"),
        ({"HTTP_X_API_KEY": "k" * 161}, 403, "invalid"),
    ],
    ids=["missing", "wrong", "too-long"],
)
def test_bad_api_key_is_rejected_with_a_receipt(angi, post, headers, status, signature):
    connection, _ = angi
    response = post(connection, payload(), headers)
    assert response.status_code == status
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("rejected_signature", signature, status)
    assert RawEvent.objects.count() == 0 and Lead.objects.count() == 0


@pytest.mark.parametrize("body", [b'{"srOid": 182734455, "firstName": ', b'[{"srOid": 1}]'])
def test_malformed_body_is_400_with_a_receipt(angi, post, body):
    connection, auth = angi
    response = post(connection, body, auth)
    assert response.status_code == 400
    assert WebhookEvent.objects.get().outcome == "rejected_malformed"
    assert RawEvent.objects.count() == 0


def test_unknown_event_kind_is_2xx_and_ignored(angi, post):
    connection, auth = angi
    body = {"eventType": "lead.updated", "leadOid": 461229871, "status": "Closed"}
    response = post(connection, body, auth)
    assert response.status_code == 200 and json.loads(response.content)["status"] == "success"
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind, raw.idempotency_key) == (
        "ignored",
        "unknown:lead.updated",
        "unknown:lead.updated:461229871",
    )
    assert NormalizedEvent.objects.count() == 0 and Lead.objects.count() == 0


def test_connectivity_test_post_without_a_lead_is_2xx_and_ignored(angi, post):
    connection, auth = angi
    assert post(connection, {"test": True}, auth).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind) == ("ignored", "unknown:no_lead")
    assert Lead.objects.count() == 0
