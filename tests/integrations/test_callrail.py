import base64
import copy
import hashlib
import hmac
import json
import secrets
from pathlib import Path

import pytest

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from leads.models import Activity, Lead

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "payloads" / "callrail"


def payload(name: str) -> dict:
    return json.loads((PAYLOADS / f"{name}.json").read_text())


def sign(secret: str, body: bytes, scheme: str = "hmac_sha1_base64") -> str:
    """The two candidate CallRail schemes, computed here independently of the adapter."""
    if scheme == "hmac_sha1_base64":
        return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha1).digest()).decode()
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


@pytest.fixture
def callrail(make_connection):
    secret = secrets.token_hex(20)
    return make_connection("callrail", signing_secret=secret), secret


@pytest.fixture
def post(client, django_capture_on_commit_callbacks):
    """POST like CallRail to a webhook URL configured with `?kind=…`, run on-commit processing."""

    def send(connection, data, *, kind: str | None = "post_call", secret: str | None = None, headers=None):
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        url = f"/api/webhooks/callrail/{connection.webhook_token}/" + (f"?kind={kind}" if kind else "")
        scheme = (connection.config or {}).get("signature_scheme", "hmac_sha1_base64")
        signed = {"HTTP_SIGNATURE": sign(secret, body, scheme)} if secret else {}
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(url, data=body, content_type="application/json", **{**signed, **(headers or {})})

    return send


def test_missed_post_call_becomes_a_missed_call_lead_end_to_end(callrail, acme, post):
    connection, secret = callrail
    response = post(connection, payload("post_call_missed"), secret=secret)
    assert response.status_code == 200

    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("accepted", "valid", 200)
    raw = RawEvent.objects.get()
    assert raw.status == "normalized" and raw.kind == "call.post" and raw.receipt == receipt
    assert raw.idempotency_key == "CAL8154748ae6bd4e278a7cddd38a662f4f:post_call"
    assert "0143" in raw.summary and "555" not in raw.summary.replace("0143", "")
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "call.missed" and event.lead == lead
    assert event.data["provider_id"] == "CAL8154748ae6bd4e278a7cddd38a662f4f" and event.data["duration"] == 0
    assert (lead.source, lead.phone_e164, lead.first_name, lead.last_name) == (
        "missed_call",
        "+15125550143",
        "Maria",
        "Garcia",
    )
    assert (lead.tracking_number, lead.utm_source, lead.gclid, lead.city, lead.state_region) == (
        "+15125550199",
        "Google Ads",
        "EAIaIQobChMI8rTq",
        "Austin",
        "TX",
    )
    assert lead.landing_page == "https://acme.example/water-heater-repair"
    missed = lead.activities.get(kind=Activity.Kind.CALL_MISSED)
    assert missed.provider == "callrail" and missed.provider_id == "CAL8154748ae6bd4e278a7cddd38a662f4f"
    assert lead.activities.filter(kind=Activity.Kind.LEAD_CAPTURED).exists()


def test_call_modified_for_the_same_call_makes_no_second_lead(callrail, post):
    connection, secret = callrail
    assert post(connection, payload("post_call_missed"), secret=secret).status_code == 200
    assert post(connection, payload("call_modified"), kind="call_modified", secret=secret).status_code == 200

    assert Lead.objects.count() == 1 and NormalizedEvent.objects.count() == 1
    modified = RawEvent.objects.get(kind="call.modified")
    assert modified.status == "ignored"
    assert modified.idempotency_key.startswith("CAL8154748ae6bd4e278a7cddd38a662f4f:call_modified:")
    assert Lead.objects.get().activities.filter(kind=Activity.Kind.CALL_MISSED).count() == 1


def test_a_later_different_modification_is_stored_and_its_retry_is_a_duplicate(callrail, post):
    connection, secret = callrail
    first = payload("call_modified")
    later = {**copy.deepcopy(first), "value": "450", "changes": ["value"]}
    for body in (first, later, later):
        assert post(connection, body, kind="call_modified", secret=secret).status_code == 200
    assert RawEvent.objects.filter(kind="call.modified").count() == 2
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == [
        "accepted",
        "accepted",
        "duplicate",
    ]


def test_pre_call_and_routing_complete_are_stored_but_only_post_call_makes_the_lead(callrail, post):
    connection, secret = callrail
    pre = {k: v for k, v in payload("post_call_missed").items() if k not in ("recording", "gclid", "medium")}
    assert post(connection, pre, kind="pre_call", secret=secret).status_code == 200
    assert post(connection, pre, kind="call-routing-complete", secret=secret).status_code == 200
    assert Lead.objects.count() == 0
    assert sorted(RawEvent.objects.values_list("kind", "status")) == [
        ("call.pre", "ignored"),
        ("call.routing_complete", "ignored"),
    ]
    assert post(connection, payload("post_call_missed"), secret=secret).status_code == 200
    assert Lead.objects.count() == 1 and RawEvent.objects.count() == 3


def test_answered_call_is_a_completed_call_and_transcripts_stay_internal(callrail, acme, post):
    connection, secret = callrail
    assert post(connection, payload("post_call_answered"), secret=secret).status_code == 200
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "call.completed" and event.lead == lead
    assert (lead.source, lead.phone_e164, lead.utm_source, lead.tracking_number) == (
        "phone_call",
        "+15125550161",
        "gbp",
        "+15125550198",
    )
    call = lead.activities.get(kind=Activity.Kind.CALL_INBOUND)
    assert call.data["duration"] == 187 and call.body == ""
    # The transcript, summary and recording links live in the raw payload only.
    raw = RawEvent.objects.get()
    assert "leaking" in raw.payload["transcription"]
    for text in (json.dumps(event.data), raw.summary, call.summary, json.dumps(call.data)):
        assert "leaking" not in text and "recording" not in text and "access_key" not in text


def test_kind_is_inferred_when_the_url_has_none(callrail, post):
    connection, secret = callrail
    assert post(connection, payload("post_call_missed"), kind=None, secret=secret).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.kind, raw.idempotency_key) == ("call.post", "CAL8154748ae6bd4e278a7cddd38a662f4f:post_call")
    assert NormalizedEvent.objects.get().event_type == "call.missed"


def test_camel_case_fields_are_read_too(callrail, post):
    connection, secret = callrail
    body = {
        "resourceId": "CAL99aa",
        "answered": False,
        "callType": "voicemail",
        "duration": 31,
        "customerNumber": "+15125550144",
        "customerName": "Lee Park",
        "trackingPhoneNumber": "+15125550199",
        "sourceName": "Yelp",
        "startTime": "2026-11-22T08:00:00Z",
    }
    assert post(connection, body, secret=secret).status_code == 200
    lead = Lead.objects.get()
    assert (lead.source, lead.phone_e164, lead.utm_source, lead.tracking_number) == (
        "missed_call",
        "+15125550144",
        "Yelp",
        "+15125550199",
    )
    assert RawEvent.objects.get().idempotency_key == "CAL99aa:post_call"


def test_withheld_caller_records_the_call_without_a_lead(callrail, post):
    connection, secret = callrail
    body = {**payload("post_call_missed"), "customer_number": "anonymous", "customer_name": "ANONYMOUS"}
    assert post(connection, body, secret=secret).status_code == 200
    assert NormalizedEvent.objects.get().event_type == "call.missed"
    assert RawEvent.objects.get().status == "normalized" and Lead.objects.count() == 0


def test_outbound_post_call_is_stored_and_ignored(callrail, post):
    connection, secret = callrail
    body = {**payload("post_call_answered"), "direction": "outbound", "call_type": "outbound"}
    assert post(connection, body, secret=secret).status_code == 200
    assert RawEvent.objects.get().status == "ignored" and Lead.objects.count() == 0


def test_form_submission_becomes_a_web_form_lead(callrail, acme, post):
    connection, secret = callrail
    assert post(connection, payload("form_submission"), kind="form_submission", secret=secret).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.kind, raw.idempotency_key) == ("form.submitted", "FRM2f8d1e6c9b7a4c3d8e5f1a2b3c4d5e6f:form_submission")
    assert "Dana" not in raw.summary and "0177" in raw.summary
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "lead.captured" and event.lead == lead and event.data["has_message"] is True
    assert (lead.source, lead.first_name, lead.last_name, lead.email_normalized, lead.phone_e164) == (
        "web_form",
        "Dana",
        "Reyes",
        "dana.reyes@example.com",
        "+15125550177",
    )
    assert (lead.service_type, lead.postal_code, lead.utm_source, lead.source_detail) == (
        "Drain cleaning",
        "78701",
        "google",
        "Contact us",
    )
    assert lead.referrer == "https://www.google.com/"


def test_inbound_text_is_an_sms_on_the_leads_timeline(callrail, acme, post):
    connection, secret = callrail
    assert (
        post(connection, payload("text_message_received"), kind="text_message_received", secret=secret).status_code
        == 200
    )
    raw = RawEvent.objects.get()
    assert raw.kind == "text.received" and "Water heater" not in raw.summary and "chars" in raw.summary
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "sms.received" and event.lead == lead and lead.source == "sms"
    sms = lead.activities.get(kind=Activity.Kind.SMS_INBOUND)
    assert sms.body.startswith("Hi, is anyone free today?") and sms.provider_id == "SMS5a1b2c3d4e5f40718293a4b5c6d7e8f9"


def test_outbound_text_is_stored_and_ignored(callrail, post):
    connection, secret = callrail
    body = {**payload("text_message_received"), "source_number": "+15125550199", "destination_number": "+15125550143"}
    assert post(connection, body, kind="text_message_sent", secret=secret).status_code == 200
    assert RawEvent.objects.get().status == "ignored" and Lead.objects.count() == 0


def test_redelivery_is_a_duplicate_answered_2xx(callrail, post):
    connection, secret = callrail
    for _ in range(2):
        assert post(connection, payload("post_call_missed"), secret=secret).status_code == 200
    assert RawEvent.objects.count() == 1 and NormalizedEvent.objects.count() == 1 and Lead.objects.count() == 1
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == ["accepted", "duplicate"]


@pytest.mark.parametrize("scheme", ["hmac_sha1_base64", "hmac_sha256_hex"])
def test_both_signature_schemes_verify_and_reject_the_other(callrail, post, scheme):
    connection, secret = callrail
    connection.config = {"signature_scheme": scheme}
    connection.save(update_fields=["config"])
    body = json.dumps(payload("post_call_missed")).encode()
    other = "hmac_sha256_hex" if scheme == "hmac_sha1_base64" else "hmac_sha1_base64"

    wrong = post(connection, body, headers={"HTTP_SIGNATURE": sign(secret, body, other)})
    assert wrong.status_code == 401
    assert RawEvent.objects.count() == 0
    right = post(connection, body, headers={"HTTP_SIGNATURE": sign(secret, body, scheme)})
    assert right.status_code == 200
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", "signature")) == [
        ("rejected_signature", "invalid"),
        ("accepted", "valid"),
    ]
    assert Lead.objects.count() == 1


@pytest.mark.parametrize(
    ("headers", "signature"),
    [
        ({}, "missing"),
        ({"HTTP_SIGNATURE": "AAAA"}, "invalid"),
        ({"HTTP_SIGNATURE": sign("not-the-secret", b"{}")}, "invalid"),
    ],
    ids=["missing", "garbage", "wrong-secret"],
)
def test_bad_signatures_are_401_with_a_receipt_and_no_raw_event(callrail, post, headers, signature):
    connection, _ = callrail
    response = post(connection, payload("post_call_missed"), headers=headers)
    assert response.status_code == 401
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("rejected_signature", signature, 401)
    assert RawEvent.objects.count() == 0 and Lead.objects.count() == 0


def test_a_signature_over_other_bytes_is_rejected(callrail, post):
    connection, secret = callrail
    body = json.dumps(payload("post_call_missed")).encode()
    tampered = body.replace(b"+15125550143", b"+15125550999")
    assert post(connection, tampered, headers={"HTTP_SIGNATURE": sign(secret, body)}).status_code == 401


def test_unsupported_scheme_holds_the_delivery_as_unverifiable(callrail, post):
    connection, _ = callrail
    connection.config = {"signature_scheme": "md5"}
    connection.save(update_fields=["config"])
    assert post(connection, payload("post_call_missed"), headers={"HTTP_SIGNATURE": "x"}).status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("paused", "unverifiable")
    assert RawEvent.objects.get().status == "held" and Lead.objects.count() == 0


@pytest.mark.parametrize("body", [b'{"resource_id": "CAL1", ', b"[1, 2]", b'{"answered": false}'])
def test_malformed_body_is_400_with_a_receipt(callrail, post, body):
    connection, secret = callrail
    response = post(connection, body, secret=secret)
    assert response.status_code == 400
    assert WebhookEvent.objects.get().outcome == "rejected_malformed"
    assert RawEvent.objects.count() == 0


def test_unknown_kind_is_2xx_and_ignored(callrail, post):
    connection, secret = callrail
    body = {"resource_id": "OUT1", "outbound_status": "scheduled"}
    assert post(connection, body, kind="outbound_call_scheduled", secret=secret).status_code == 200
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind, raw.idempotency_key) == (
        "ignored",
        "unknown:outbound_call_scheduled",
        "OUT1:outbound_call_scheduled",
    )
    assert NormalizedEvent.objects.count() == 0 and Lead.objects.count() == 0


def test_unknown_body_without_kind_or_id_is_still_stored_and_ignored(callrail, post):
    connection, secret = callrail
    assert post(connection, {"hello": "world"}, kind=None, secret=secret).status_code == 200
    raw = RawEvent.objects.get()
    assert raw.status == "ignored" and raw.kind == "unknown:none"
