import json
import time

import pytest

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from leads.models import Activity, Consent, Lead

from .conftest import form_body, sign_standard_webhook, webform_secret

pytestmark = pytest.mark.django_db


@pytest.fixture
def webform(make_connection):
    secret = webform_secret()
    return make_connection("webform", signing_secret=secret), secret


@pytest.fixture
def post(deliver):
    def send(client, connection, body, headers, content_type="application/json"):
        return deliver("webform", connection, body, headers, content_type)

    return send


def test_signed_quote_request_becomes_a_lead_end_to_end(client, webform, acme, post):
    connection, secret = webform
    body = form_body()
    response = post(client, connection, body, sign_standard_webhook(secret, body))
    assert response.status_code == 200

    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status, receipt.events_count) == (
        "accepted",
        "valid",
        200,
        1,
    )
    raw = RawEvent.objects.get()
    assert raw.status == "normalized" and raw.receipt == receipt and raw.kind == "quote.requested"
    assert "0143" in raw.summary and "555" not in raw.summary.replace("0143", "")  # redacted
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert event.event_type == "quote.requested" and event.lead == lead and event.raw_event == raw
    assert lead.phone_e164 == "+15125550143" and lead.email_normalized == "maria.garcia@example.com"
    assert (lead.source, lead.urgency, lead.market, lead.gclid) == ("quote_request", "emergency", "Austin", "Cj0KCQ")
    assert Consent.objects.get(lead=lead, channel="sms").state == "granted"
    assert lead.activities.filter(kind=Activity.Kind.LEAD_CAPTURED).exists()
    connection.refresh_from_db()
    assert connection.last_event_at is not None


def test_redelivery_is_a_duplicate_answered_2xx(client, webform, post):
    connection, secret = webform
    body = form_body()
    headers = sign_standard_webhook(secret, body, msg_id="msg_same")
    assert post(client, connection, body, headers).status_code == 200
    assert post(client, connection, body, headers).status_code == 200
    assert RawEvent.objects.count() == 1 and NormalizedEvent.objects.count() == 1
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == ["accepted", "duplicate"]


@pytest.mark.parametrize(
    ("mutate", "status", "outcome", "signature"),
    [
        (lambda h, s, b: {**h, "HTTP_WEBHOOK_SIGNATURE": "v1,AAAA"}, 401, "rejected_signature", "invalid"),
        (
            lambda h, s, b: {k: v for k, v in h.items() if k != "HTTP_WEBHOOK_SIGNATURE"},
            401,
            "rejected_signature",
            "missing",
        ),
        (
            lambda h, s, b: sign_standard_webhook(s, b, timestamp=int(time.time()) - 600),
            401,
            "rejected_signature",
            "invalid",
        ),
        (
            lambda h, s, b: sign_standard_webhook(s, b, timestamp=int(time.time()) + 600),
            401,
            "rejected_signature",
            "invalid",
        ),
        (
            lambda h, s, b: {**h, "HTTP_WEBHOOK_SIGNATURE": "garbage-without-comma"},
            401,
            "rejected_signature",
            "invalid",
        ),
    ],
    ids=["bad-signature", "missing-signature", "timestamp-too-old", "timestamp-too-new", "malformed-header"],
)
def test_bad_signatures_are_rejected_with_a_receipt(client, webform, mutate, status, outcome, signature, post):
    connection, secret = webform
    body = form_body()
    response = post(client, connection, body, mutate(sign_standard_webhook(secret, body), secret, body))
    assert response.status_code == status
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == (outcome, signature, status)
    assert receipt.reason
    assert RawEvent.objects.count() == 0 and Lead.objects.count() == 0


def test_malformed_body_is_400_with_receipt(client, webform, post):
    connection, secret = webform
    body = b'{"type": "quote.requested", '
    response = post(client, connection, body, sign_standard_webhook(secret, body))
    assert response.status_code == 400
    assert WebhookEvent.objects.get().outcome == "rejected_malformed"
    assert RawEvent.objects.count() == 0


def test_unknown_token_is_404_and_unknown_provider_is_404(client, webform, post):
    body = form_body()
    assert (
        client.post("/api/webhooks/webform/not-a-token/", data=body, content_type="application/json").status_code == 404
    )
    assert client.post("/api/webhooks/nosuch/whatever/", data=body, content_type="application/json").status_code == 404
    assert sorted(WebhookEvent.objects.values_list("outcome", flat=True)) == ["unknown_connection", "unknown_provider"]


def test_unsupported_content_type_is_415(client, webform, post):
    connection, secret = webform
    body = b"type=quote.requested"
    response = post(client, connection, body, sign_standard_webhook(secret, body), content_type="text/plain")
    assert response.status_code == 415
    assert WebhookEvent.objects.get().outcome == "rejected_content_type"


def test_oversized_body_is_413(client, webform, settings, post):
    settings.WEBHOOK_MAX_BODY_BYTES = 2048
    connection, secret = webform
    body = form_body(message="x" * 5000)
    response = post(client, connection, body, sign_standard_webhook(secret, body))
    assert response.status_code == 413
    receipt = WebhookEvent.objects.get()
    assert receipt.outcome == "rejected_too_large" and receipt.connection == connection


def test_unknown_event_kind_is_2xx_and_ignored(client, webform, post):
    connection, secret = webform
    body = json.dumps({"type": "newsletter.signup", "contact": {"email": "a@b.example"}}).encode()
    assert post(client, connection, body, sign_standard_webhook(secret, body)).status_code == 200
    raw = RawEvent.objects.get()
    assert raw.status == "ignored" and raw.kind == "unknown:newsletter.signup"
    assert NormalizedEvent.objects.count() == 0 and Lead.objects.count() == 0


def test_missing_credential_holds_and_marks_uncertain(client, make_connection, monkeypatch, post):
    connection = make_connection("webform", signing_secret="whsec_dGVzdA==")
    monkeypatch.delenv(connection.credentials["signing_secret"][4:])
    body = form_body()
    assert post(client, connection, body, sign_standard_webhook("whsec_dGVzdA==", body)).status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("paused", "unverifiable")
    assert RawEvent.objects.get().status == "held" and Lead.objects.count() == 0
    connection.refresh_from_db()
    assert connection.status == "uncertain" and "not verifiable" in connection.status_reason
