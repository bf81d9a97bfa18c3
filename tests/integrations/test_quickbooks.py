"""QuickBooks Online webhooks: legacy eventNotifications and CloudEvents, signed with a real HMAC token."""

import base64
import hashlib
import hmac
import json
import secrets
from pathlib import Path

import pytest

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from leads.models import Lead

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "payloads" / "quickbooks"
REALM = "9341455130166501"


def sign(token: str, body: bytes) -> dict:
    """`intuit-signature` as Intuit computes it: base64(HMAC-SHA256(verifier token, raw body))."""
    digest = hmac.new(token.encode(), body, hashlib.sha256).digest()
    return {"HTTP_INTUIT_SIGNATURE": base64.b64encode(digest).decode()}


def cloud_event(event_type: str, entity_id: str, **extra) -> dict:
    return {
        "specversion": "1.0",
        "id": f"{secrets.token_hex(4)}-{secrets.token_hex(2)}-{event_type}-{entity_id}",
        "source": "intuit.dsnBgbseACLLRZNxo2dfc4evmEJdxde58xeeYcZliOU=",
        "type": event_type,
        "time": "2026-11-21T09:12:30.179851517Z",
        "intuitentityid": entity_id,
        "intuitaccountid": REALM,
        **extra,
    }


@pytest.fixture
def quickbooks(make_connection):
    token = secrets.token_urlsafe(32)  # Intuit's verifier tokens are opaque strings like this
    return make_connection("quickbooks", verifier_token=token), token


@pytest.fixture
def post(deliver):
    def send(connection, body: bytes, headers: dict, content_type: str = "application/json"):
        return deliver("quickbooks", connection, body, headers, content_type)

    return send


def test_legacy_notification_with_two_entities_becomes_two_raw_events(quickbooks, post):
    connection, token = quickbooks
    body = (PAYLOADS / "legacy_two_entities.json").read_bytes()

    response = post(connection, body, sign(token, body))

    assert response.status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.events_count, receipt.duplicates_count) == (
        "accepted",
        "valid",
        2,
        0,
    )
    invoice, payment = RawEvent.objects.order_by("id")
    assert (invoice.kind, payment.kind) == ("invoice.create", "payment.create")
    assert invoice.idempotency_key == f"{REALM}:Invoice:1043:Create:2026-11-20T15:04:05.000Z"
    assert payment.idempotency_key == f"{REALM}:Payment:877:Create:2026-11-20T15:06:41.512Z"
    assert invoice.payload["realmId"] == REALM and invoice.payload["dataChangeEvent"]["entities"][0]["id"] == "1043"
    assert invoice.occurred_at.isoformat() == "2026-11-20T15:04:05+00:00"
    assert {invoice.status, payment.status} == {"normalized"}

    created = NormalizedEvent.objects.get(raw_event=invoice)
    paid = NormalizedEvent.objects.get(raw_event=payment)
    assert created.event_type == "invoice.created"
    assert created.data == {"realm_id": REALM, "entity": "Invoice", "entity_id": "1043", "operation": "Create"}
    assert paid.event_type == "invoice.paid" and paid.data["entity_id"] == "877"
    # Thin payloads name no customer: nothing to match, so no lead is touched or created.
    assert created.lead is None and paid.lead is None and Lead.objects.count() == 0


def test_cloudevents_array_becomes_one_raw_event_per_element(quickbooks, post):
    connection, token = quickbooks
    body = (PAYLOADS / "cloudevents.json").read_bytes()

    assert post(connection, body, sign(token, body)).status_code == 200

    raws = RawEvent.objects.order_by("id")
    assert [r.kind for r in raws] == ["invoice.updated", "invoice.emailed", "payment.created"]
    assert [r.idempotency_key for r in raws] == [e["id"] for e in json.loads(body)]
    assert raws[0].payload == json.loads(body)[0]  # stored as received
    assert raws[0].occurred_at.isoformat() == "2026-11-21T09:12:30.179851+00:00"  # nanoseconds trimmed
    events = NormalizedEvent.objects.order_by("raw_event_id")
    assert [e.event_type for e in events] == ["invoice.updated", "invoice.updated", "invoice.paid"]
    assert events[0].data == {"realm_id": REALM, "entity": "Invoice", "entity_id": "1043", "operation": "Update"}
    assert (events[1].data["operation"], events[2].data["entity"]) == ("Emailed", "Payment")
    assert Lead.objects.count() == 0


def test_customer_email_is_passed_on_when_the_cloudevent_carries_one(quickbooks, post):
    connection, token = quickbooks
    body = json.dumps(
        [cloud_event("qbo.invoice.created.v1", "1050", data={"BillEmail": {"Address": "maria@example.com"}})]
    ).encode()

    assert (
        post(connection, body, sign(token, body), content_type="application/cloudevents-batch+json").status_code == 200
    )

    event = NormalizedEvent.objects.get()
    assert event.event_type == "invoice.created" and event.data["customer_email"] == "maria@example.com"


@pytest.mark.parametrize("fixture", ["legacy_two_entities.json", "cloudevents.json"])
def test_redelivery_is_a_duplicate(quickbooks, fixture, post):
    connection, token = quickbooks
    body = (PAYLOADS / fixture).read_bytes()
    headers = sign(token, body)
    count = len(json.loads(body)) if fixture == "cloudevents.json" else 2

    assert post(connection, body, headers).status_code == 200
    assert post(connection, body, headers).status_code == 200

    assert RawEvent.objects.count() == count and NormalizedEvent.objects.count() == count
    receipts = WebhookEvent.objects.order_by("id")
    assert [(r.outcome, r.duplicates_count) for r in receipts] == [("accepted", 0), ("duplicate", count)]


def test_a_later_update_of_the_same_invoice_is_a_new_event(quickbooks, post):
    connection, token = quickbooks

    def update(last_updated: str) -> bytes:
        entity = {"name": "Invoice", "id": "1043", "operation": "Update", "lastUpdated": last_updated}
        notification = {"realmId": REALM, "dataChangeEvent": {"entities": [entity]}}
        return json.dumps({"eventNotifications": [notification]}).encode()

    for body in (update("2026-11-20T16:00:00.000Z"), update("2026-11-20T17:30:00.000Z")):
        assert post(connection, body, sign(token, body)).status_code == 200

    assert RawEvent.objects.count() == 2
    assert set(NormalizedEvent.objects.values_list("event_type", flat=True)) == {"invoice.updated"}


@pytest.mark.parametrize(
    ("headers", "signature"),
    [
        (lambda body: sign("not-the-verifier-token", body), "invalid"),
        (lambda body: sign("x", body) | {"HTTP_INTUIT_SIGNATURE": "!!!"}, "invalid"),
        (lambda body: {}, "missing"),
    ],
    ids=["wrong-token", "garbage", "missing"],
)
def test_bad_signature_is_401_with_a_receipt_and_no_raw_event(quickbooks, headers, signature, post):
    connection, _ = quickbooks
    body = (PAYLOADS / "legacy_two_entities.json").read_bytes()

    response = post(connection, body, headers(body))

    assert response.status_code == 401
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("rejected_signature", signature, 401)
    assert RawEvent.objects.count() == 0


def test_signature_over_a_reserialised_body_fails(quickbooks, post):
    connection, token = quickbooks
    body = (PAYLOADS / "legacy_two_entities.json").read_bytes()
    compact = json.dumps(json.loads(body), separators=(",", ":")).encode()

    assert post(connection, body, sign(token, compact)).status_code == 401
    assert RawEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"eventNotifications": [', "not JSON"),
        (b'{"notifications": []}', "neither"),
        (b'{"eventNotifications": [{"realmId": "1"}]}', "dataChangeEvent"),
        (b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": ["Invoice"]}}]}', "not a JSON"),
        (b'{"eventNotifications": [{"realmId": "1", "dataChangeEvent": {"entities": [{"name": "Invoice"}]}}]}', "id"),
        (b'[{"specversion": "1.0", "type": "qbo.invoice.updated.v1"}]', "no id"),
        (b"[42]", "not a JSON object"),
        (b'{"eventNotifications": []}', "No events"),
    ],
    ids=[
        "truncated",
        "unknown-shape",
        "no-entities",
        "entity-not-object",
        "entity-without-id",
        "cloudevent-without-id",
        "cloudevent-not-object",
        "empty",
    ],
)
def test_malformed_body_is_400_with_a_receipt(quickbooks, body, reason, post):
    connection, token = quickbooks

    response = post(connection, body, sign(token, body))

    assert response.status_code == 400
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("rejected_malformed", "valid") and reason in receipt.reason
    assert RawEvent.objects.count() == 0


def test_unknown_entities_and_operations_are_2xx_and_ignored(quickbooks, post):
    connection, token = quickbooks
    legacy = {
        "eventNotifications": [
            {
                "realmId": REALM,
                "dataChangeEvent": {
                    "entities": [
                        {"name": "Customer", "id": "58", "operation": "Merge", "lastUpdated": "2026-11-20T15:00:00Z"},
                        {"name": "Invoice", "id": "1043", "operation": "Void", "lastUpdated": "2026-11-20T15:01:00Z"},
                    ]
                },
            }
        ]
    }
    cloud = [cloud_event("qbo.estimate.created.v1", "12", data={}), cloud_event("intuit.payroll.thing", "7")]
    for body in (json.dumps(legacy).encode(), json.dumps(cloud).encode()):
        assert post(connection, body, sign(token, body)).status_code == 200

    raws = RawEvent.objects.order_by("id")
    assert [r.kind for r in raws] == [
        "unknown:customer.merge",
        "unknown:invoice.void",
        "unknown:estimate.created",
        "unknown:intuit.payroll.thing",
    ]
    assert {r.status for r in raws} == {"ignored"}
    assert NormalizedEvent.objects.count() == 0
