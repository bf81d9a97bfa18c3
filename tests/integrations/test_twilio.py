"""Twilio adapter: inbound SMS (with STOP/START/HELP), message status callbacks, voice callbacks.

Deliveries are signed with Twilio's real scheme (`RequestValidator.compute_signature` over the URL
the Django test client calls plus the form params) with a random auth token made in the test.
"""

import secrets
from types import SimpleNamespace
from urllib.parse import urlencode

import pytest
from django.utils import timezone
from twilio.request_validator import HMAC_SHA256, RequestValidator

from integrations.models import NormalizedEvent, RawEvent, WebhookEvent
from integrations.providers.twilio import TwilioAdapter
from leads.models import Activity, Consent, Lead
from leads.services import activity_record

pytestmark = pytest.mark.django_db

ACCOUNT_SID = "AC3f9c1e2d4b5a6978e1f2a3b4c5d6e7f8"
SERVICE_SID = "MG8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a"
BUSINESS = "+15125550100"  # the client's Twilio (tracking) number
CALLER = "+15125550143"
FORM = "application/x-www-form-urlencoded"


def sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


def inbound_sms(body: str, **overrides) -> dict[str, str]:
    """An inbound message webhook as Twilio sends it (Messaging Service number, US long code)."""
    message_sid = overrides.pop("MessageSid", None) or sid("SM")
    params = {
        "ToCountry": "US",
        "ToState": "TX",
        "SmsMessageSid": message_sid,
        "NumMedia": "0",
        "ToCity": "AUSTIN",
        "FromZip": "78701",
        "SmsSid": message_sid,
        "FromState": "TX",
        "SmsStatus": "received",
        "FromCity": "AUSTIN",
        "Body": body,
        "FromCountry": "US",
        "To": BUSINESS,
        "MessagingServiceSid": SERVICE_SID,
        "ToZip": "78701",
        "NumSegments": "1",
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": CALLER,
        "ApiVersion": "2010-04-01",
    }
    params.update(overrides)
    return params


def status_callback(message_sid: str, status: str, **overrides) -> dict[str, str]:
    params = {
        "SmsSid": message_sid,
        "SmsStatus": status,
        "MessageStatus": status,
        "To": CALLER,
        "MessagingServiceSid": SERVICE_SID,
        "MessageSid": message_sid,
        "AccountSid": ACCOUNT_SID,
        "From": BUSINESS,
        "ApiVersion": "2010-04-01",
    }
    if status == "delivered":
        params["RawDlrDoneDate"] = "2611241504"
    params.update(overrides)
    return params


def dial_action(call_sid: str, dial_status: str, **overrides) -> dict[str, str]:
    """The <Dial action=…> callback of an inbound call forwarded to the business's cell."""
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": "in-progress",
        "Called": BUSINESS,
        "CalledCity": "AUSTIN",
        "CalledCountry": "US",
        "CalledState": "TX",
        "Caller": CALLER,
        "CallerCountry": "US",
        "CallerState": "TX",
        "DialCallSid": sid("CA"),
        "DialCallStatus": dial_status,
        "DialBridged": "false",
        "Direction": "inbound",
        "From": CALLER,
        "FromCountry": "US",
        "FromState": "TX",
        "To": BUSINESS,
        "ToCountry": "US",
        "ToState": "TX",
    }
    if dial_status == "completed":
        params["DialCallDuration"] = "95"
    params.update(overrides)
    return params


def call_status(call_sid: str, status: str, **overrides) -> dict[str, str]:
    params = {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Called": BUSINESS,
        "Caller": CALLER,
        "Direction": "inbound",
        "From": CALLER,
        "SequenceNumber": "3",
        "Timestamp": "Tue, 24 Nov 2026 15:04:05 +0000",
        "To": BUSINESS,
    }
    if status == "completed":
        params.update(CallDuration="47", Duration="1")
    params.update(overrides)
    return params


def webhook_url(connection, query: str = "") -> str:
    # Django's test client host; the view rebuilds exactly this URL (no WEBHOOK_PUBLIC_BASE_URL).
    return f"http://testserver/api/webhooks/twilio/{connection.webhook_token}/" + (f"?{query}" if query else "")


def signed(token: str, url: str, params: dict[str, str], **extra) -> dict[str, str]:
    return {"HTTP_X_TWILIO_SIGNATURE": RequestValidator(token).compute_signature(url, params), **extra}


@pytest.fixture
def twilio(make_connection):
    token = secrets.token_hex(16)  # Twilio auth tokens are 32 hex characters
    return make_connection("twilio", auth_token=token), token


@pytest.fixture
def post(deliver):
    """Sign `params` for the connection's URL with `token` and deliver them form-encoded."""

    def send(connection, token: str, params: dict[str, str], headers: dict | None = None):
        body = urlencode(params).encode()
        return deliver(
            "twilio",
            connection,
            body,
            signed(token, webhook_url(connection), params) if headers is None else headers,
            FORM,
        )

    return send


def test_inbound_sms_from_a_new_number_creates_an_sms_lead(twilio, acme, post):
    connection, token = twilio
    params = inbound_sms("Hi, is anyone free to look at a leaking water heater today?")
    response = post(connection, token, params)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/xml")
    assert response.content == b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status, receipt.events_count) == (
        "accepted",
        "valid",
        200,
        1,
    )
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind, raw.idempotency_key, raw.receipt) == (
        "normalized",
        "sms.inbound",
        params["MessageSid"],
        receipt,
    )
    assert raw.occurred_at is None  # Twilio sends no event time on SMS: the pipeline uses received_at
    assert "0143" in raw.summary and "5550143" not in raw.summary and "water" not in raw.summary
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert (event.event_type, event.lead, event.raw_event) == ("sms.received", lead, raw)
    assert event.data["provider_id"] == params["MessageSid"] and event.data["num_media"] == 0
    assert (lead.phone_e164, lead.source) == (CALLER, "sms")
    sms = lead.activities.get(kind=Activity.Kind.SMS_INBOUND)
    assert (sms.provider, sms.provider_id, sms.body) == ("twilio", params["MessageSid"], params["Body"])
    assert lead.activities.filter(kind=Activity.Kind.LEAD_CAPTURED).exists()
    assert not Consent.objects.exists()


def test_redelivery_is_a_duplicate_answered_with_twiml(twilio, post):
    connection, token = twilio
    params = inbound_sms("Need a quote for a drain")
    first, second = post(connection, token, params), post(connection, token, params)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.content == first.content and second["Content-Type"].startswith("text/xml")
    assert RawEvent.objects.count() == 1 and NormalizedEvent.objects.count() == 1
    assert Activity.objects.filter(kind=Activity.Kind.SMS_INBOUND).count() == 1
    assert list(WebhookEvent.objects.order_by("id").values_list("outcome", flat=True)) == ["accepted", "duplicate"]


def test_stop_revokes_sms_consent_and_start_restores_it(twilio, acme, post):
    connection, token = twilio
    stop = inbound_sms("  stop ")
    assert post(connection, token, stop).status_code == 200

    lead = Lead.objects.get(client=acme, phone_e164=CALLER)
    consent = Consent.objects.get(lead=lead, channel="sms")
    assert consent.state == "revoked"
    assert "STOP" in consent.evidence and stop["MessageSid"] in consent.evidence
    assert CALLER not in consent.evidence  # the evidence masks the number
    assert sorted(NormalizedEvent.objects.values_list("event_type", flat=True)) == [
        "contact.opted_out",
        "sms.received",
    ]
    opted_out = NormalizedEvent.objects.get(event_type="contact.opted_out")
    assert opted_out.lead == lead and opted_out.idempotency_key.endswith(f"{stop['MessageSid']}:consent")
    assert lead.activities.filter(kind=Activity.Kind.CONSENT_CHANGE).count() == 1

    start = inbound_sms("START")
    assert post(connection, token, start).status_code == 200
    consent.refresh_from_db()
    assert consent.state == "granted" and "START" in consent.evidence
    assert lead.activities.filter(kind=Activity.Kind.SMS_INBOUND).count() == 2
    assert lead.activities.filter(kind=Activity.Kind.CONSENT_CHANGE).count() == 2
    assert Lead.objects.filter(client=acme).count() == 1


def test_advanced_opt_out_type_wins_over_the_body(twilio, acme, post):
    # A custom or translated keyword: Twilio tells us the category in OptOutType.
    connection, token = twilio
    assert post(connection, token, inbound_sms("Arrêt", OptOutType="STOP")).status_code == 200
    assert Consent.objects.get(lead__client=acme, channel="sms").state == "revoked"


def test_help_records_only_the_sms(twilio, acme, post):
    connection, token = twilio
    assert post(connection, token, inbound_sms("help")).status_code == 200
    lead = Lead.objects.get(client=acme)
    assert sorted(NormalizedEvent.objects.values_list("event_type", flat=True)) == ["contact.help", "sms.received"]
    assert not Consent.objects.exists()
    assert set(lead.activities.values_list("kind", flat=True)) == {
        Activity.Kind.LEAD_CAPTURED,
        Activity.Kind.SMS_INBOUND,
    }


def test_a_sentence_containing_stop_is_not_an_opt_out(twilio, post):
    connection, token = twilio
    assert post(connection, token, inbound_sms("Please stop by tomorrow to fix the sink")).status_code == 200
    assert list(NormalizedEvent.objects.values_list("event_type", flat=True)) == ["sms.received"]
    assert not Consent.objects.exists()


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("STOPALL", "contact.opted_out"),
        ("Unsubscribe", "contact.opted_out"),
        ("cancel", "contact.opted_out"),
        (" END\n", "contact.opted_out"),
        ("quit", "contact.opted_out"),
        ("yes", "contact.opted_in"),
        ("unstop", "contact.opted_in"),
        ("INFO", "contact.help"),
        ("stop please", None),
        ("", None),
    ],
)
def test_keyword_classification(body, expected):
    raw = SimpleNamespace(kind="sms.inbound", payload=inbound_sms(body), occurred_at=None, received_at=timezone.now())
    items = TwilioAdapter().normalize(raw)
    assert items[0].event_type == "sms.received" and items[0].signal.source == "sms"
    assert [item.event_type for item in items[1:]] == ([expected] if expected else [])


def test_status_callbacks_out_of_order_never_move_backwards(twilio, acme, post):
    connection, token = twilio
    post(connection, token, inbound_sms("Can you come Tuesday?"))
    lead = Lead.objects.get(client=acme)
    outbound_sid = sid("SM")
    activity, _ = activity_record(
        lead=lead,
        kind="sms_outbound",
        summary="SMS sent",
        actor="system:test",
        body="Yes, 9am works.",
        provider="twilio",
        provider_id=outbound_sid,
        delivery_status="queued",
    )

    assert post(connection, token, status_callback(outbound_sid, "delivered")).status_code == 200
    activity.refresh_from_db()
    assert activity.delivery_status == "delivered"

    assert post(connection, token, status_callback(outbound_sid, "sent")).status_code == 200  # late
    activity.refresh_from_db()
    assert activity.delivery_status == "delivered"

    keys = set(RawEvent.objects.filter(kind="sms.status").values_list("idempotency_key", "status"))
    assert keys == {(f"{outbound_sid}:delivered", "normalized"), (f"{outbound_sid}:sent", "normalized")}
    statuses = NormalizedEvent.objects.filter(event_type="sms.status")
    assert {e.data["status"] for e in statuses} == {"delivered", "sent"}
    assert all(
        e.data == {"provider_id": outbound_sid, "status": e.data["status"], "error_code": None} for e in statuses
    )
    assert Lead.objects.count() == 1  # a status callback is never a lead signal


def test_failed_status_keeps_the_error_code(twilio, acme, post):
    connection, token = twilio
    post(connection, token, inbound_sms("hello"))
    outbound_sid = sid("SM")
    activity, _ = activity_record(
        lead=Lead.objects.get(client=acme),
        kind="sms_outbound",
        summary="SMS sent",
        actor="system:test",
        provider="twilio",
        provider_id=outbound_sid,
        delivery_status="sent",
    )
    post(connection, token, status_callback(outbound_sid, "undelivered", ErrorCode="30003"))
    activity.refresh_from_db()
    assert activity.delivery_status == "undelivered"
    raw = RawEvent.objects.get(kind="sms.status")
    assert "30003" in raw.summary
    assert NormalizedEvent.objects.get(event_type="sms.status").data["error_code"] == "30003"


def test_dial_no_answer_is_a_missed_call_lead_with_tracking_number(twilio, acme, post):
    connection, token = twilio
    call_sid = sid("CA")
    assert post(connection, token, dial_action(call_sid, "no-answer")).status_code == 200

    raw = RawEvent.objects.get()
    assert (raw.kind, raw.idempotency_key, raw.status) == ("call.dial", f"{call_sid}:no-answer", "normalized")
    event = NormalizedEvent.objects.get()
    lead = Lead.objects.get(client=acme)
    assert (event.event_type, event.lead) == ("call.missed", lead)
    assert (event.data["provider_id"], event.data["phone"], event.data["summary"]) == (call_sid, CALLER, "Missed call")
    assert (lead.source, lead.tracking_number, lead.phone_e164) == ("missed_call", BUSINESS, CALLER)
    missed = lead.activities.get(kind=Activity.Kind.CALL_MISSED)
    assert (missed.provider, missed.provider_id, missed.summary) == ("twilio", call_sid, "Missed call")


def test_dial_completed_is_an_answered_call(twilio, acme, post):
    connection, token = twilio
    call_sid = sid("CA")
    post(connection, token, dial_action(call_sid, "completed"))
    event = NormalizedEvent.objects.get()
    assert (event.event_type, event.data["duration"]) == ("call.completed", 95)
    lead = Lead.objects.get(client=acme)
    assert lead.source == "phone_call"
    assert lead.activities.get(kind=Activity.Kind.CALL_INBOUND).provider_id == call_sid


def test_withheld_caller_is_recorded_without_a_lead(twilio, post):
    connection, token = twilio
    post(connection, token, dial_action(sid("CA"), "busy", From="+266696687", Caller="+266696687"))
    event = NormalizedEvent.objects.get()
    assert (event.event_type, event.lead, event.data["phone"], event.data["caller_withheld"]) == (
        "call.missed",
        None,
        "",
        True,
    )
    assert Lead.objects.count() == 0


def test_voice_status_callbacks(twilio, acme, post):
    connection, token = twilio
    call_sid = sid("CA")
    for status in ("ringing", "in-progress", "completed"):
        assert post(connection, token, call_status(call_sid, status)).status_code == 200
    assert post(connection, token, call_status(sid("CA"), "completed", Direction="outbound-api")).status_code == 200

    by_key = dict(RawEvent.objects.values_list("idempotency_key", "status"))
    assert by_key[f"{call_sid}:ringing"] == "ignored" and by_key[f"{call_sid}:in-progress"] == "ignored"
    assert by_key[f"{call_sid}:completed"] == "normalized"
    assert sorted(by_key.values()).count("ignored") == 3  # the outbound call is not a lead either
    event = NormalizedEvent.objects.get()
    assert (event.event_type, event.data["duration"], event.occurred_at.isoformat()) == (
        "call.completed",
        47,
        "2026-11-24T15:04:05+00:00",  # from Twilio's Timestamp param
    )
    lead = Lead.objects.get(client=acme)
    assert (lead.source, lead.tracking_number) == ("phone_call", BUSINESS)


def test_inbound_call_status_no_answer_is_missed(twilio, acme, post):
    connection, token = twilio
    post(connection, token, call_status(sid("CA"), "no-answer"))
    assert NormalizedEvent.objects.get().event_type == "call.missed"
    assert Lead.objects.get(client=acme).source == "missed_call"


def test_url_with_query_string_signs_correctly(twilio, acme, client, django_capture_on_commit_callbacks):
    connection, token = twilio
    query = "channel=sms&number=%2B15125550100"
    params = inbound_sms("Do you service Round Rock?")
    body = urlencode(params).encode()
    path = f"/api/webhooks/twilio/{connection.webhook_token}/?{query}"

    with django_capture_on_commit_callbacks(execute=True):
        without_query = client.post(
            path, data=body, content_type=FORM, **signed(token, webhook_url(connection), params)
        )
        with_query = client.post(
            path, data=body, content_type=FORM, **signed(token, webhook_url(connection, query), params)
        )

    assert without_query.status_code == 401  # Twilio signs the full URL, query included
    assert with_query.status_code == 200
    assert RawEvent.objects.get().status == "normalized"
    assert Lead.objects.filter(client=acme, source="sms").count() == 1


@pytest.mark.parametrize(
    ("headers", "signature"),
    [
        (lambda c, t, p: signed(secrets.token_hex(16), webhook_url(c), p), "invalid"),
        (lambda c, t, p: {"HTTP_X_TWILIO_SIGNATURE": "bm90IGEgc2lnbmF0dXJl"}, "invalid"),
        (lambda c, t, p: {}, "missing"),
        # Signed for another body: someone changed "START" into "STOP" on the way.
        (lambda c, t, p: signed(t, webhook_url(c), {**p, "Body": "START"}), "invalid"),
        (lambda c, t, p: signed(t, webhook_url(c).replace("http://", "https://"), p), "invalid"),
    ],
    ids=["wrong-token", "garbage", "missing", "tampered-body", "other-scheme"],
)
def test_bad_signatures_are_401_with_a_receipt(twilio, post, headers, signature):
    connection, token = twilio
    params = inbound_sms("STOP")
    response = post(connection, token, params, headers=headers(connection, token, params))
    assert response.status_code == 401
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature, receipt.http_status) == ("rejected_signature", signature, 401)
    assert receipt.reason
    assert RawEvent.objects.count() == 0 and Lead.objects.count() == 0 and Consent.objects.count() == 0
    connection.refresh_from_db()
    assert connection.last_error


def test_webhook_shared_key_with_sha256_is_accepted(make_connection, post):
    # Twilio Webhook Settings may sign with a SharedKey and name the algorithm in a header.
    shared = secrets.token_urlsafe(32)
    connection = make_connection("twilio", auth_token=secrets.token_hex(16), webhook_shared_key=shared)
    params = inbound_sms("Is Saturday possible?")
    key_id = f"webhooks_sharedkey_{secrets.token_hex(13)}"
    headers = {
        "HTTP_X_TWILIO_SIGNATURE": RequestValidator(shared).compute_signature(
            webhook_url(connection), params, algorithm=HMAC_SHA256
        ),
        "HTTP_X_TWILIO_WEBHOOKS_SIGNATURE_SETTINGS": f"key={key_id},algorithm=HMAC_SHA256",
    }
    assert post(connection, None, params, headers=headers).status_code == 200
    assert WebhookEvent.objects.get().signature == "valid"


def test_body_without_message_or_call_sid_is_400(twilio, post):
    connection, token = twilio
    response = post(connection, token, {"AccountSid": ACCOUNT_SID, "From": CALLER, "Body": "hi"})
    assert response.status_code == 400
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("rejected_malformed", "valid")
    assert RawEvent.objects.count() == 0


def test_json_body_is_415(twilio, client):
    connection, _ = twilio
    response = client.post(
        f"/api/webhooks/twilio/{connection.webhook_token}/",
        data=b'{"MessageSid": "SM1"}',
        content_type="application/json",
    )
    assert response.status_code == 415
    assert WebhookEvent.objects.get().outcome == "rejected_content_type"


@pytest.mark.parametrize(
    ("params", "kind"),
    [
        (
            {
                "AccountSid": ACCOUNT_SID,
                "CallSid": "CA0b1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e",
                "RecordingSid": "RE1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d",
                "RecordingUrl": "https://api.twilio.com/2010-04-01/Accounts/AC/Recordings/RE1",
                "RecordingStatus": "completed",
                "RecordingDuration": "31",
                "RecordingChannels": "1",
                "RecordingSource": "DialVerb",
            },
            "unknown:recording",
        ),
        (
            {"AccountSid": ACCOUNT_SID, "MessageSid": "SM9f8e7d6c5b4a39281706f5e4d3c2b1a0", "From": CALLER},
            "unknown:message",
        ),
    ],
    ids=["recording-status", "message-without-body-or-status"],
)
def test_unknown_callback_is_2xx_and_ignored(twilio, post, params, kind):
    connection, token = twilio
    response = post(connection, token, params)
    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    raw = RawEvent.objects.get()
    assert (raw.status, raw.kind) == ("ignored", kind)
    assert NormalizedEvent.objects.count() == 0 and Lead.objects.count() == 0
    # An exact redelivery dedupes.
    assert post(connection, token, params).status_code == 200
    assert RawEvent.objects.count() == 1


def test_missing_auth_token_holds_and_marks_uncertain(make_connection, monkeypatch, post):
    token = secrets.token_hex(16)
    connection = make_connection("twilio", auth_token=token)
    monkeypatch.delenv(connection.credentials["auth_token"][4:])
    assert post(connection, token, inbound_sms("STOP")).status_code == 200
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.signature) == ("paused", "unverifiable")
    assert RawEvent.objects.get().status == "held" and Consent.objects.count() == 0
    connection.refresh_from_db()
    assert connection.status == "uncertain"
