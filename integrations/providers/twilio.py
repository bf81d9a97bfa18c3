"""Twilio: inbound SMS, message status callbacks, voice status and `<Dial action>` callbacks.

One endpoint receives every Twilio callback of a connection, so the kind is read from the params:

- `MessageStatus` present                      → "sms.status"  key `MessageSid:MessageStatus`
- `MessageSid` + `Body` (SmsStatus=received)   → "sms.inbound" key `MessageSid`
- `CallSid` + `DialCallStatus`                 → "call.dial"   key `CallSid:DialCallStatus`
- `CallSid` + `CallStatus`                     → "call.status" key `CallSid:CallStatus`
- anything else carrying a Sid                 → "unknown:<what>" (stored, then ignored)
- no `MessageSid` and no `CallSid`             → MalformedPayload (400)

Every request is signed with `X-Twilio-Signature` over the exact URL Twilio called plus the
sorted form params; the official `RequestValidator` checks it (port quirk, constant time).
Twilio expects TwiML back, so the 2xx answer is an empty `<Response/>`.
"""

from __future__ import annotations

import datetime
import email.utils
import hashlib
import hmac
import json

from django.utils import timezone
from twilio.request_validator import SIGNATURE_SETTINGS_HEADER, RequestValidator, get_signature_algorithm

from leads.services import LeadSignal

from .base import (
    InboundRequest,
    MalformedPayload,
    Normalized,
    ParsedEvent,
    ProviderAdapter,
    SignatureInvalid,
    SignatureMissing,
    mask_phone,
)

SIGNATURE_HEADER = "X-Twilio-Signature"

# Twilio's default English keywords. REVOKE and OPTOUT are in Twilio's current list (Advanced
# Opt-Out docs) and Twilio blocks sends after them too, so our consent must follow.
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
OPT_IN_KEYWORDS = frozenset({"START", "YES", "UNSTOP"})
HELP_KEYWORDS = frozenset({"HELP", "INFO"})
# With Advanced Opt-Out Twilio names the category itself (custom or translated keywords).
OPT_OUT_TYPES = {"STOP": "contact.opted_out", "START": "contact.opted_in", "HELP": "contact.help"}

MISSED_DIAL_STATUSES = frozenset({"no-answer", "busy", "failed", "canceled"})
ANSWERED_DIAL_STATUSES = frozenset({"completed", "answered"})  # "answered": dialing a <Conference>
MISSED_CALL_STATUSES = frozenset({"no-answer", "busy"})

# What Twilio puts in `From` when the caller withheld the number (keypad spellings of
# ANONYMOUS, RESTRICTED, BLOCKED, UNAVAIL, UNKNOWN). One lead for all of them would merge
# strangers, so such calls are recorded without a lead.
WITHHELD_CALLERS = frozenset(
    {"+266696687", "+7378742833", "+2562533", "+8656696", "+86282452253", "anonymous", "restricted", "unknown"}
)

TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'


def _int(value: object) -> int | None:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return None


def _caller(value: str) -> str:
    """The caller's phone, or "" when it is withheld or not a phone (client:…, sip:…)."""
    value = (value or "").strip()
    if value.lower() in WITHHELD_CALLERS or ":" in value or not any(ch.isdigit() for ch in value):
        return ""
    return value


def _rfc2822(value: str) -> datetime.datetime | None:
    # Voice status callbacks carry `Timestamp` ("Tue, 24 Nov 2026 15:04:05 +0000"); SMS has none.
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)


def _keyword_event(form: dict[str, str]) -> str | None:
    """contact.opted_out / opted_in / help when the message is exactly one keyword, else None."""
    by_type = OPT_OUT_TYPES.get((form.get("OptOutType") or "").strip().upper())
    if by_type:
        return by_type
    word = (form.get("Body") or "").strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return "contact.opted_out"
    if word in OPT_IN_KEYWORDS:
        return "contact.opted_in"
    if word in HELP_KEYWORDS:
        return "contact.help"
    return None


class TwilioAdapter(ProviderAdapter):
    key = "twilio"
    label = "Twilio (SMS, voice)"
    content_types = ("application/x-www-form-urlencoded",)
    # "webhook_shared_key" is optional: only for Webhook Settings that sign with a SharedKey.
    credential_names = ("auth_token",)

    def verify(self, request: InboundRequest, connection) -> None:
        signature = request.header(SIGNATURE_HEADER).strip()
        if not signature:
            raise SignatureMissing(f"{SIGNATURE_HEADER} header is required")
        # A Webhook Setting may sign with a SharedKey (HMAC-SHA1 or -SHA256) instead of the auth
        # token; Twilio then names the algorithm in this header. Absent: the classic auth token.
        settings_header = request.header(SIGNATURE_SETTINGS_HEADER)
        algorithm = get_signature_algorithm(settings_header)
        if settings_header and "webhook_shared_key" in (connection.credentials or {}):
            secret = connection.secret("webhook_shared_key")
        else:
            secret = connection.secret("auth_token")
        validator = RequestValidator(secret)
        # The library's validate() signs the URL twice (with and without a port) on every call.
        # The URL as the server saw it is one of the two: sign that first; only a mismatch pays
        # for the library's full check.
        try:
            expected = validator.compute_signature(request.url, request.form, algorithm)
        except Exception:  # an algorithm the library does not know: validate() says why
            expected = ""
        if expected and hmac.compare_digest(expected, signature):
            return
        if not validator.validate(request.url, request.form, signature, algorithm=algorithm):
            raise SignatureInvalid(
                f"{SIGNATURE_HEADER} does not match ({algorithm}); check the auth token and that the URL "
                "Twilio calls (scheme, host, path, query) is the one the server sees"
            )

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        form = dict(request.form)
        message_sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid") or ""
        call_sid = form.get("CallSid") or ""
        if not (message_sid or call_sid):
            raise MalformedPayload("Neither MessageSid nor CallSid in the form parameters")
        who = mask_phone(form.get("From", ""))

        if message_sid and form.get("MessageStatus"):
            status = form["MessageStatus"]
            error = f", error {form['ErrorCode']}" if form.get("ErrorCode") else ""
            return [self._event(f"{message_sid}:{status}", "sms.status", form, f"SMS {message_sid} {status}{error}")]
        if message_sid and "Body" in form:
            media = _int(form.get("NumMedia")) or 0
            summary = f"SMS from {who}, {len(form['Body'])} chars" + (f", {media} media" if media else "")
            return [self._event(message_sid, "sms.inbound", form, summary)]
        if call_sid and form.get("DialCallStatus"):
            status = form["DialCallStatus"]
            return [
                self._event(
                    f"{call_sid}:{status}",
                    "call.dial",
                    form,
                    f"Dial {status} for call from {who}",
                    occurred_at=_rfc2822(form.get("Timestamp", "")),
                )
            ]
        if call_sid and form.get("CallStatus") and not form.get("RecordingSid"):
            status = form["CallStatus"]
            direction = form.get("Direction") or "unknown direction"
            return [
                self._event(
                    f"{call_sid}:{status}",
                    "call.status",
                    form,
                    f"Call {status} ({direction}) from {who}",
                    occurred_at=_rfc2822(form.get("Timestamp", "")),
                )
            ]

        # Recognisable but not handled (recordings, transcriptions, message callbacks without a
        # body…): keep it, ignore it. The key hashes the params so an exact redelivery dedupes
        # and two different callbacks about the same Sid do not.
        what = "recording" if form.get("RecordingSid") else "message" if message_sid else "call"
        digest = hashlib.sha256(json.dumps(form, sort_keys=True).encode()).hexdigest()[:16]
        return [
            self._event(
                f"{message_sid or call_sid}:{what}:{digest}", f"unknown:{what}", form, f"Twilio {what} callback"
            )
        ]

    @staticmethod
    def _event(
        key: str, kind: str, form: dict[str, str], summary: str, occurred_at: datetime.datetime | None = None
    ) -> ParsedEvent:
        return ParsedEvent(idempotency_key=key, kind=kind, payload=form, summary=summary, occurred_at=occurred_at)

    def normalize(self, raw) -> list[Normalized]:
        form: dict[str, str] = raw.payload or {}
        when = raw.occurred_at or raw.received_at or timezone.now()
        if raw.kind == "sms.inbound":
            return self._sms_inbound(form, when)
        if raw.kind == "sms.status":
            return [
                Normalized(
                    event_type="sms.status",
                    occurred_at=when,
                    data={
                        "provider_id": form.get("MessageSid") or form.get("SmsSid", ""),
                        "status": form.get("MessageStatus", ""),
                        "error_code": form.get("ErrorCode") or None,
                    },
                )
            ]
        if raw.kind == "call.dial":
            # The action URL belongs to the inbound call being forwarded; an outbound call's
            # From is our own number, not a lead.
            if (form.get("Direction") or "inbound") != "inbound":
                return []
            status = form.get("DialCallStatus", "")
            duration = _int(form.get("DialCallDuration"))
            if status in MISSED_DIAL_STATUSES:
                return [self._call("call.missed", form, when, duration, status)]
            if status in ANSWERED_DIAL_STATUSES:
                return [self._call("call.completed", form, when, duration, status)]
            return []
        if raw.kind == "call.status":
            if form.get("Direction") != "inbound":
                return []
            status = form.get("CallStatus", "")
            if status == "completed":
                return [self._call("call.completed", form, when, _int(form.get("CallDuration")), status)]
            if status in MISSED_CALL_STATUSES:
                return [self._call("call.missed", form, when, _int(form.get("CallDuration")), status)]
            return []  # queued, ringing, in-progress, …: not news for the lead
        return []

    @staticmethod
    def _sms_inbound(form: dict[str, str], when: datetime.datetime) -> list[Normalized]:
        sid = form.get("MessageSid") or form.get("SmsMessageSid") or form.get("SmsSid", "")
        phone = form.get("From", "")
        items = [
            Normalized(
                event_type="sms.received",
                occurred_at=when,
                data={
                    "provider_id": sid,
                    "phone": phone,
                    "body": form.get("Body", ""),
                    "summary": "SMS received",
                    "num_media": _int(form.get("NumMedia")) or 0,
                },
                signal=LeadSignal(source="sms", phone=phone, occurred_at=when, summary="SMS received"),
            )
        ]
        consent_event = _keyword_event(form)
        if consent_event:
            keyword = (form.get("OptOutType") or form.get("Body") or "").strip().upper()
            items.append(
                Normalized(
                    event_type=consent_event,
                    occurred_at=when,
                    # No signal: the leads consumer finds the lead the SMS above just upserted by phone.
                    data={
                        "phone": phone,
                        "channel": "sms",
                        "provider_id": sid,
                        "keyword": keyword[:20],
                        "evidence": f"SMS {keyword[:20]} from {mask_phone(phone)} ({sid})",
                    },
                    key_suffix="consent" if consent_event != "contact.help" else "help",
                )
            )
        return items

    @staticmethod
    def _call(
        event_type: str, form: dict[str, str], when: datetime.datetime, duration: int | None, status: str
    ) -> Normalized:
        phone = _caller(form.get("From", ""))
        missed = event_type == "call.missed"
        tracking = form.get("To", "")
        signal = None
        if phone:
            signal = LeadSignal(
                source="missed_call" if missed else "phone_call",
                phone=phone,
                attribution={"tracking_number": tracking} if tracking else {},
                occurred_at=when,
                summary="Missed call" if missed else "Inbound call",
            )
        return Normalized(
            event_type=event_type,
            occurred_at=when,
            data={
                "provider_id": form.get("CallSid", ""),
                "phone": phone,
                "summary": "Missed call" if missed else "Inbound call",
                "duration": duration,
                "call_status": status,
                "tracking_number": tracking,
                "caller_withheld": not phone,
            },
            signal=signal,
        )

    def response(self, *, accepted: bool) -> tuple[bytes, str]:
        return TWIML_EMPTY, "text/xml"
