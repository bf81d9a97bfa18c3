"""SendGrid Event Webhook: signed JSON arrays of email events, signed here with a real P-256 key."""

import base64
import datetime
import json
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from leads.models import Activity, Consent, Lead
from leads.services import activity_record
from tests import factories

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "payloads" / "sendgrid"
X_MESSAGE_ID = "W86EgYT6SQKk0lRflfLRsA"
SG_MESSAGE_ID = f"{X_MESSAGE_ID}.filterdrecv-p3las1-5bf99c48d-7xr5f-18-5BF5A1E6-11.0"


def new_key_pair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A P-256 key and its public half as SendGrid shows it: base64 DER SubjectPublicKeyInfo."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_key, base64.b64encode(der).decode()


def sign(private_key: ec.EllipticCurvePrivateKey, body: bytes, *, timestamp: int | None = None) -> dict:
    """Headers as SendGrid sends them: ECDSA/SHA-256 over timestamp + raw body, base64 DER signature."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = private_key.sign(str(timestamp).encode() + body, ec.ECDSA(hashes.SHA256()))
    return {
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": base64.b64encode(signature).decode(),
        "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": str(timestamp),
    }


def event(kind: str, *, email: str = "maria.garcia@example.com", seconds_ago: int = 30, **extra) -> dict:
    """One event shaped like a captured one (custom args, like zid_lead, are top-level keys)."""
    timestamp = int(time.time()) - seconds_ago
    return {
        "email": email,
        "timestamp": timestamp,
        "smtp-id": f"<{X_MESSAGE_ID}@ismtpd0104p1mdw1.sendgrid.net>",
        "event": kind,
        "category": "estimate-follow-up",
        "sg_event_id": base64.urlsafe_b64encode(f"{kind}-{timestamp}-{email}".encode()).decode().rstrip("="),
        "sg_message_id": SG_MESSAGE_ID,
        **extra,
    }


def batch_body() -> bytes:
    # The file's own bytes, exactly as captured: the signature covers them, not a re-serialisation.
    return (PAYLOADS / "delivered_batch.json").read_bytes()


@pytest.fixture
def sendgrid(make_connection):
    private_key, public_key = new_key_pair()
    return make_connection("sendgrid", public_key=public_key), private_key


@pytest.fixture
def lead(acme):
    return factories.LeadFactory(
        client=acme, email_raw="Maria.Garcia@Example.com", email_normalized="maria.garcia@example.com"
    )


@pytest.fixture
def outbound_email(lead):
    activity, _ = activity_record(
        lead=lead,
        kind="email_outbound",
        summary="Estimate follow-up",
        actor="system:test",
        provider="sendgrid",
        provider_id=X_MESSAGE_ID,
        delivery_status="queued",
    )
    return activity


@pytest.fixture
def post(deliver):
    def send(connection, body: bytes, headers: dict, content_type: str = "application/json"):
        return deliver("sendgrid", connection, body, headers, content_type)

    return send


def test_batch_with_inner_duplicate_then_redelivery_stores_each_event_once(sendgrid, outbound_email, post):
    connection, private_key = sendgrid
    body = batch_body()  # processed, delivered, and a second copy of the same delivered event

    response = post(connection, body, sign(private_key, body))

    assert response.status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.events_count, receipt.duplicates_count) == (
        "accepted",
        "valid",
        3,
        1,
    )
    raws = RawEvent.objects.order_by("id")
    assert [r.kind for r in raws] == ["email.processed", "email.delivered"]
    assert all(r.status == "normalized" and r.receipt == receipt for r in raws)
    assert raws[0].idempotency_key == "cHJvY2Vzc2VkLTQ1NDk1NTMzLVc4NkVnWVQ2U1FLazBsUmZsZkxSc0EtMA"
    assert "maria" not in raws[1].summary and "m•••@example.com" in raws[1].summary  # redacted
    delivered = NormalizedEvent.objects.get(raw_event=raws[1])
    assert delivered.event_type == "email.event"
    assert delivered.data == {
        "provider_id": X_MESSAGE_ID,
        "status": "delivered",
        "event": "delivered",
        "email": "maria.garcia@example.com",
    }
    assert delivered.lead == outbound_email.lead  # found by email; no lead is ever created
    outbound_email.refresh_from_db()
    assert outbound_email.delivery_status == "delivered"
    assert Lead.objects.count() == 1

    # SendGrid redelivers the whole array (new signature timestamp, same events).
    assert post(connection, body, sign(private_key, body)).status_code == 200
    redelivery = WebhookEvent.objects.order_by("-id").first()
    assert (redelivery.outcome, redelivery.events_count, redelivery.duplicates_count) == ("duplicate", 3, 3)
    assert RawEvent.objects.count() == 2 and NormalizedEvent.objects.count() == 2


def test_late_processed_never_moves_delivered_backwards(sendgrid, outbound_email, post):
    connection, private_key = sendgrid
    for body in (
        json.dumps([event("delivered", seconds_ago=20, response="250 OK")]).encode(),
        json.dumps([event("processed", seconds_ago=60)]).encode(),  # arrives late, happened first
    ):
        assert post(connection, body, sign(private_key, body)).status_code == 200

    assert sorted(RawEvent.objects.values_list("status", flat=True)) == ["normalized", "normalized"]
    outbound_email.refresh_from_db()
    assert outbound_email.delivery_status == "delivered"

    body = json.dumps([event("click", url="https://acme.example/estimate/1043", seconds_ago=5)]).encode()
    assert post(connection, body, sign(private_key, body)).status_code == 200
    outbound_email.refresh_from_db()
    assert outbound_email.delivery_status == "clicked"
    click = NormalizedEvent.objects.get(raw_event__kind="email.click")
    assert click.data["url"] == "https://acme.example/estimate/1043" and click.data["status"] == "clicked"


@pytest.mark.parametrize("kind", ["unsubscribe", "group_unsubscribe", "spamreport"])
def test_unsubscribe_revokes_email_consent_of_the_lead_found_by_email(sendgrid, lead, outbound_email, kind, post):
    connection, private_key = sendgrid
    Consent.objects.create(
        lead=lead,
        channel="email",
        state="granted",
        evidence="Web form checkbox",
        changed_at=timezone.now() - datetime.timedelta(days=3),  # granted before the unsubscribe
    )
    extra = {"asm_group_id": 42} if kind == "group_unsubscribe" else {}
    body = json.dumps([event(kind, email="MARIA.GARCIA@example.com", seconds_ago=5, **extra)]).encode()

    assert post(connection, body, sign(private_key, body)).status_code == 200

    raw = RawEvent.objects.get()
    assert raw.status == "normalized" and raw.kind == f"email.{kind}"
    types = dict(NormalizedEvent.objects.values_list("event_type", "lead"))
    assert types == {"email.event": lead.pk, "contact.opted_out": lead.pk}
    opted_out = NormalizedEvent.objects.get(event_type="contact.opted_out")
    assert opted_out.idempotency_key.endswith(":consent") and opted_out.data["channel"] == "email"
    consent = Consent.objects.get(lead=lead, channel="email")
    assert consent.state == "revoked" and consent.evidence.startswith(f"SendGrid {kind} at ")
    assert ("group 42" in consent.evidence) == (kind == "group_unsubscribe")
    outbound_email.refresh_from_db()
    assert outbound_email.delivery_status == ("complained" if kind == "spamreport" else "unsubscribed")
    assert Lead.objects.count() == 1


def test_lead_custom_arg_wins_over_the_address_and_resubscribe_grants_again(sendgrid, acme, lead, post):
    connection, private_key = sendgrid
    # The recipient forwards to a different address; zid_lead (a custom arg) still names the lead.
    other = factories.LeadFactory(client=acme, email_raw="other@example.com", email_normalized="other@example.com")
    for kind, ago in (("group_unsubscribe", 60), ("group_resubscribe", 10)):
        body = json.dumps(
            [event(kind, email="other@example.com", seconds_ago=ago, asm_group_id=42, zid_lead=str(lead.pk))]
        ).encode()
        assert post(connection, body, sign(private_key, body)).status_code == 200

    consent = Consent.objects.get(lead=lead, channel="email")
    assert consent.state == "granted" and consent.evidence.startswith("SendGrid group_resubscribe at ")
    assert not Consent.objects.filter(lead=other).exists()
    opted_in = NormalizedEvent.objects.get(event_type="contact.opted_in")
    assert opted_in.lead == lead and opted_in.data["lead_id"] == lead.pk


def test_events_without_sg_event_id_dedupe_on_a_hash_of_the_event(sendgrid, post):
    connection, private_key = sendgrid
    bare = event("open", seconds_ago=5, useragent="Mozilla/5.0", ip="203.0.113.9")
    del bare["sg_event_id"]
    body = json.dumps([bare]).encode()
    reordered = json.dumps([dict(reversed(list(bare.items())))], indent=1).encode()  # same event, other bytes

    assert post(connection, body, sign(private_key, body)).status_code == 200
    assert post(connection, reordered, sign(private_key, reordered)).status_code == 200

    raw = RawEvent.objects.get()
    assert raw.idempotency_key.startswith("sha256:") and len(raw.idempotency_key) == 7 + 64
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == ["accepted", "duplicate"]


def _reserialised(h, key, body):
    # Same JSON, different bytes: what a framework's parsed-then-dumped body would look like.
    return sign(key, json.dumps(json.loads(body), separators=(",", ":")).encode())


@pytest.mark.parametrize(
    ("mutate", "signature", "reason"),
    [
        (_reserialised, "invalid", "does not match"),
        (lambda h, key, body: sign(key, body, timestamp=int(time.time()) - 301), "invalid", "s old"),
        (lambda h, key, body: sign(key, body, timestamp=int(time.time()) + 600), "invalid", "in the future"),
        (lambda h, key, body: sign(new_key_pair()[0], body), "invalid", "does not match"),
        (
            lambda h, key, body: {**h, "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_SIGNATURE": "not base64 at all!"},
            "invalid",
            "Unreadable signature",
        ),
        (
            lambda h, key, body: {**h, "HTTP_X_TWILIO_EMAIL_EVENT_WEBHOOK_TIMESTAMP": "yesterday"},
            "invalid",
            "not a unix timestamp",
        ),
        (
            lambda h, key, body: {k: v for k, v in h.items() if not k.endswith("SIGNATURE")},
            "missing",
            "required",
        ),
        (
            lambda h, key, body: {k: v for k, v in h.items() if not k.endswith("TIMESTAMP")},
            "missing",
            "required",
        ),
    ],
    ids=[
        "reserialised-body",
        "stale-timestamp",
        "future-timestamp",
        "other-key",
        "garbage-base64",
        "bad-timestamp",
        "no-signature",
        "no-timestamp",
    ],
)
def test_bad_signatures_are_401_with_a_receipt_and_no_raw_event(sendgrid, mutate, signature, reason, post):
    connection, private_key = sendgrid
    body = batch_body()

    response = post(connection, body, mutate(sign(private_key, body), private_key, body))

    assert response.status_code == 401
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("rejected_signature", signature, 401)
    assert reason in receipt.reason
    assert RawEvent.objects.count() == 0


def test_non_utf8_body_is_401_not_500(sendgrid, post):
    connection, private_key = sendgrid
    body = b'[{"event": "delivered", "email": "caf\xe9@example.com"}]'  # latin-1, not UTF-8

    response = post(connection, body, sign(private_key, body))

    assert response.status_code == 401
    receipt = WebhookEvent.objects.get()
    assert receipt.outcome == "rejected_signature" and "UTF-8" in receipt.reason
    assert RawEvent.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'[{"event": "delivered", ', "not JSON"),
        (json.dumps(event("delivered")).encode(), "JSON array"),  # one object, not an array
        (json.dumps([event("delivered"), "delivered"]).encode(), "Event 1 is not a JSON object"),
        (b"[]", "No events"),
    ],
    ids=["truncated", "object-not-array", "element-not-object", "empty-array"],
)
def test_malformed_body_is_400_with_a_receipt(sendgrid, body, reason, post):
    connection, private_key = sendgrid

    response = post(connection, body, sign(private_key, body))

    assert response.status_code == 400
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("rejected_malformed", "valid") and reason in receipt.reason
    assert RawEvent.objects.count() == 0


def test_unknown_event_kind_is_2xx_and_ignored(sendgrid, outbound_email, post):
    connection, private_key = sendgrid
    body = json.dumps([event("account_status_change", type="compliance_suspend")]).encode()

    assert post(connection, body, sign(private_key, body)).status_code == 200

    raw = RawEvent.objects.get()
    assert raw.status == "ignored" and raw.kind == "unknown:account_status_change"
    assert NormalizedEvent.objects.count() == 0
    outbound_email.refresh_from_db()
    assert outbound_email.delivery_status == "queued"


def test_unreadable_public_key_holds_the_delivery_instead_of_losing_it(make_connection, post):
    connection = make_connection("sendgrid", public_key="bm90IGEga2V5")  # base64 of "not a key"
    private_key, _ = new_key_pair()
    body = batch_body()

    assert post(connection, body, sign(private_key, body)).status_code == 200

    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("paused", "unverifiable")
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"held"}
    connection.refresh_from_db()
    assert connection.status == "uncertain" and "public_key" in connection.status_reason
    assert not Activity.objects.exists()
