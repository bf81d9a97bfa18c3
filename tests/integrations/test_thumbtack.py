import base64
import copy
import json
import secrets
from pathlib import Path

import pytest

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from leads.models import Activity, Lead

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "payloads" / "thumbtack"


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def basic(username: str, password: str) -> dict:
    token = base64.b64encode(f"{username}:{password}".encode()).decode()
    return {"HTTP_AUTHORIZATION": f"Basic {token}"}


@pytest.fixture
def thumbtack(make_connection):
    username, password = "tt-acme", secrets.token_urlsafe(24)
    connection = make_connection("thumbtack", basic_username=username, basic_password=password)
    return connection, basic(username, password)


@pytest.fixture
def post(deliver):
    def send(connection, data, headers):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return deliver("thumbtack", connection, body, headers)

    return send


def test_new_negotiation_becomes_a_thumbtack_lead_end_to_end(thumbtack, acme, post):
    connection, auth = thumbtack
    response = post(connection, payload("negotiation_created"), auth)
    assert response.status_code == 200

    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("accepted", "valid", 200)
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind, raw.idempotency_key) == ("normalized", "negotiation.created", "590299344770662410")
    assert "0188" in raw.summary and "Olivia" not in raw.summary and "555" not in raw.summary.replace("0188", "")
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "lead.captured" and event.lead == lead and event.raw_event == raw
    assert (lead.source, lead.source_detail, lead.phone_e164) == (
        "thumbtack",
        "negotiation 590299344770662410",
        "+15125550188",
    )
    assert (lead.first_name, lead.last_name, lead.service_type, lead.postal_code, lead.city, lead.state_region) == (
        "Olivia",
        "Young",
        "Water heater",  # the client's catalog spelling
        "78704",
        "Austin",
        "TX",
    )
    assert event.data["details"][0] == {"question": "Type of water heater", "answer": "Gas"}
    assert event.data["lead_price"] == "$25.00"
    assert lead.activities.filter(kind=Activity.Kind.LEAD_CAPTURED).exists()


def test_message_before_its_negotiation_ends_with_one_lead(thumbtack, acme, post):
    """Thumbtack's own docs: the lead-description message can arrive before the negotiation."""
    connection, auth = thumbtack
    assert post(connection, payload("message_created"), auth).status_code == 200
    message = RawEvent.objects.get()
    assert (message.kind, message.idempotency_key, message.status) == (
        "message.created",
        "590299344781230011",
        "normalized",
    )
    assert Lead.objects.count() == 0  # "Olivia Y." alone cannot be matched to anyone later

    assert post(connection, payload("negotiation_created"), auth).status_code == 200
    lead = Lead.objects.get(client=acme)
    assert lead.source == "thumbtack" and lead.phone_e164 == "+15125550188"
    recorded = NormalizedEvent.objects.get(raw_event=message)
    assert recorded.event_type == "lead.captured" and recorded.data["negotiation_id"] == "590299344770662410"
    assert recorded.data["body"] == "Gas water heater pilot keeps going out."


def test_message_with_a_phone_before_its_negotiation_merges_into_one_lead(thumbtack, acme, post):
    connection, auth = thumbtack
    message = payload("message_created")
    message["data"]["customer"].update({"firstName": "Olivia", "lastName": "Young", "phone": "(512) 555-0188"})
    assert post(connection, message, auth).status_code == 200
    assert post(connection, payload("negotiation_created"), auth).status_code == 200

    lead = Lead.objects.get(client=acme)
    assert (lead.source, lead.phone_e164, lead.service_type, lead.postal_code) == (
        "thumbtack",
        "+15125550188",
        "Water heater",  # filled by the negotiation that came second
        "78704",
    )
    assert lead.activities.filter(kind=Activity.Kind.MERGE).count() == 1
    assert NormalizedEvent.objects.filter(lead=lead).count() == 2


def test_the_pros_own_message_is_stored_and_ignored(thumbtack, post):
    connection, auth = thumbtack
    reply = payload("message_created")
    reply["data"].update({"messageID": "590299344781230099", "from": "Business", "text": "Hi Olivia!\r\nTomorrow?"})
    assert post(connection, reply, auth).status_code == 200
    assert RawEvent.objects.get().status == "ignored" and Lead.objects.count() == 0


def test_flat_payload_shape_is_accepted(thumbtack, post):
    connection, auth = thumbtack
    wrapped = payload("negotiation_created")
    flat = {"eventType": "NegotiationCreatedV4", **wrapped["data"]}
    flat["request"]["category"] = "Water Heater"
    assert post(connection, flat, auth).status_code == 200
    assert Lead.objects.get().service_type == "Water heater"


def test_redelivery_is_a_duplicate_answered_2xx(thumbtack, post):
    connection, auth = thumbtack
    for _ in range(2):
        assert post(connection, payload("negotiation_created"), auth).status_code == 200
    assert RawEvent.objects.count() == 1 and NormalizedEvent.objects.count() == 1 and Lead.objects.count() == 1
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == ["accepted", "duplicate"]


@pytest.mark.parametrize(
    ("headers", "status", "signature"),
    [
        ({}, 401, "missing"),
        ({"HTTP_AUTHORIZATION": "Bearer abc"}, 401, "missing"),
        (basic("tt-acme", "wrong-password"), 403, "invalid"),
        (basic("someone-else", "irrelevant"), 403, "invalid"),
        ({"HTTP_AUTHORIZATION": "Basic !!not-base64!!"}, 403, "invalid"),
        ({"HTTP_AUTHORIZATION": "Basic " + base64.b64encode(b"no-colon").decode()}, 403, "invalid"),
    ],
    ids=["missing", "not-basic", "wrong-password", "wrong-username", "not-base64", "no-colon"],
)
def test_bad_credentials_are_rejected_with_a_receipt(thumbtack, post, headers, status, signature):
    connection, _ = thumbtack
    response = post(connection, payload("negotiation_created"), headers)
    assert response.status_code == status
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("rejected_signature", signature, status)
    assert RawEvent.objects.count() == 0 and Lead.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        b'{"event": {"eventType": "NegotiationCreatedV4"}, ',
        b'"NegotiationCreatedV4"',
        json.dumps({"event": {"eventType": "NegotiationCreatedV4"}, "data": {"customer": {}}}).encode(),
    ],
    ids=["truncated", "not-an-object", "no-negotiation-id"],
)
def test_malformed_body_is_400_with_a_receipt(thumbtack, post, body):
    connection, auth = thumbtack
    response = post(connection, body, auth)
    assert response.status_code == 400
    assert WebhookEvent.objects.get().outcome == "rejected_malformed"
    assert RawEvent.objects.count() == 0


def test_unknown_event_type_is_2xx_and_ignored(thumbtack, post):
    connection, auth = thumbtack
    review = {
        "event": {"eventType": "ReviewCreatedV4", "triggeredAt": "2026-11-25T10:00:00Z"},
        "data": {
            "negotiationID": "590299344770662410",
            "reviewID": "rev-77",
            "review": {"rating": 5, "text": "Fast and clean."},
        },
    }
    assert post(connection, review, auth).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind) == ("ignored", "unknown:ReviewCreatedV4")
    # Its key never collides with the negotiation it is about.
    assert raw.idempotency_key == "ReviewCreatedV4:590299344770662410"
    assert post(connection, payload("negotiation_created"), auth).status_code == 200
    assert RawEvent.objects.count() == 2 and Lead.objects.count() == 1


def test_missing_credential_holds_and_marks_uncertain(thumbtack, monkeypatch, post):
    connection, auth = thumbtack
    monkeypatch.delenv(connection.credentials["basic_password"][4:])
    assert post(connection, copy.deepcopy(payload("negotiation_created")), auth).status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("paused", "unverifiable")
    assert RawEvent.objects.get().status == "held" and Lead.objects.count() == 0
