"""SendGrid Event Webhook (signed), after django-anymail's sendgrid tracking webhook.

One POST carries a JSON ARRAY of events; each becomes its own raw event keyed on `sg_event_id`,
so SendGrid's frequent duplicate copies (inside one delivery and across retries) collapse on the
UNIQUE key. Events are email delivery/engagement news about mail we sent: they advance the
outbound email activity's delivery status and revoke/grant email consent, but never create leads.

Custom args sent with the mail come back as top-level keys of each event; "zid_lead" carries our
lead id so an event finds its lead without guessing from the address.
"""

from __future__ import annotations

import binascii
import datetime
import functools
import hashlib
import json
import time
from typing import Any, ClassVar

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric import ec
from django.utils import timezone
from sendgrid.helpers.eventwebhook import EventWebhook

from integrations.models import CredentialMissing

from .base import (
    InboundRequest,
    MalformedPayload,
    Normalized,
    ParsedEvent,
    ProviderAdapter,
    SignatureInvalid,
    SignatureMissing,
    from_unix,
    load_json,
    mask_email,
)

SIGNATURE_HEADER = "X-Twilio-Email-Event-Webhook-Signature"
TIMESTAMP_HEADER = "X-Twilio-Email-Event-Webhook-Timestamp"

# SendGrid event name -> anymail-style normalized status (the leads consumer ranks these).
EMAIL_STATUS = {
    "processed": "queued",
    "dropped": "rejected",
    "delivered": "delivered",
    "deferred": "deferred",
    "bounce": "bounced",
    "open": "opened",
    "click": "clicked",
    "spamreport": "complained",
    "unsubscribe": "unsubscribed",
    "group_unsubscribe": "unsubscribed",
    "group_resubscribe": "subscribed",
}
# Events that also change the recipient's email consent.
OPT_OUT_EVENTS = frozenset({"unsubscribe", "group_unsubscribe", "spamreport"})
OPT_IN_EVENTS = frozenset({"group_resubscribe"})

LEAD_ID_ARG = "zid_lead"


def _event_key(event: dict[str, Any]) -> str:
    sg_event_id = event.get("sg_event_id")
    if isinstance(sg_event_id, str) and sg_event_id:
        return sg_event_id
    # No sg_event_id (old accounts, test posts from the console): fall back to a hash of the
    # element's canonical JSON, so a byte-identical retry still dedupes while distinct events
    # never collide. Canonical = sorted keys, no whitespace, so key order on the wire is irrelevant.
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _x_message_id(sg_message_id: Any) -> str:
    # sg_message_id is "<X-Message-Id from the 202>.<filter/worker suffix>"; the part before the
    # first "." is what Mail Send returned and what the outbound activity stored as provider_id.
    return str(sg_message_id or "").split(".", 1)[0]


def _lead_id(value: Any) -> int | None:
    # Custom args are strings. Lead ids are integers: anything else (a typo, another system's
    # value) would make the consumer's pk lookup raise, so it is dropped and the email decides.
    text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""
    return int(text) if text.isdigit() else None


@functools.lru_cache(maxsize=64)
def _load_public_key(raw: str) -> ec.EllipticCurvePublicKey:
    """The key object for a configured public key. Cached by its text: loading DER is a real part
    of a delivery's cost, and a rotated key (new text) takes effect on the next delivery."""
    # The console shows bare base64 DER; tolerate someone pasting it PEM-armoured.
    if "BEGIN PUBLIC KEY" in raw:
        raw = "".join(line for line in raw.splitlines() if line and not line.startswith("-----"))
    try:
        key = EventWebhook().convert_public_key_to_ecdsa(raw)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        # A configured but unreadable key means we cannot tell authentic from forged: hold the
        # delivery (CredentialMissing) rather than reject what SendGrid would stop retrying.
        raise CredentialMissing(f"public_key is set but is not a base64 DER public key ({exc})") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CredentialMissing("public_key is not an elliptic-curve (P-256) key")
    return key


class SendGridAdapter(ProviderAdapter):
    key = "sendgrid"
    label = "SendGrid Event Webhook"
    content_types = ("application/json",)
    credential_names = ("public_key",)
    # SendGrid documents no tolerance; 300 s is the usual choice and bounds replays of a captured
    # delivery. Unconfirmed: whether a retry is re-signed with a fresh timestamp. If it is not,
    # retries later than this are refused: look for rejected_signature receipts whose reason says
    # "old" before widening it.
    timestamp_tolerance: ClassVar[int] = 300

    def _public_key(self, connection) -> ec.EllipticCurvePublicKey:
        return _load_public_key(connection.secret("public_key").strip())

    def verify(self, request: InboundRequest, connection) -> None:
        signature = request.header(SIGNATURE_HEADER).strip()
        timestamp = request.header(TIMESTAMP_HEADER).strip()
        if not (signature and timestamp):
            raise SignatureMissing(f"{SIGNATURE_HEADER} and {TIMESTAMP_HEADER} headers are required")
        try:
            sent_at = int(timestamp)
        except ValueError as exc:
            raise SignatureInvalid(f"{TIMESTAMP_HEADER} is not a unix timestamp") from exc
        skew = int(time.time()) - sent_at
        if abs(skew) > self.timestamp_tolerance:
            # Signed content includes the timestamp, so an old one means a replayed capture (or a
            # badly wrong clock); either way the delivery is not fresh enough to trust.
            raise SignatureInvalid(
                f"{TIMESTAMP_HEADER} is {abs(skew)} s {'old' if skew > 0 else 'in the future'}; "
                f"more than {self.timestamp_tolerance} s from now is treated as a replay"
            )
        key = self._public_key(connection)
        try:
            # The signature covers the raw bytes; the library wants text, so decode without
            # re-serialising (UTF-8 round-trips byte for byte).
            payload = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SignatureInvalid("Body is not UTF-8, so it cannot match a SendGrid signature") from exc
        try:
            valid = EventWebhook().verify_signature(payload, signature, timestamp, public_key=key)
        except (binascii.Error, ValueError, TypeError) as exc:  # signature header is not base64
            raise SignatureInvalid(f"Unreadable signature ({exc.__class__.__name__})") from exc
        if not valid:
            raise SignatureInvalid("ECDSA signature does not match timestamp + body")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        body = load_json(request.body, expect=list)
        parsed = []
        for index, event in enumerate(body):
            if not isinstance(event, dict):
                raise MalformedPayload(f"Event {index} is not a JSON object")
            name = event.get("event")
            name = name if isinstance(name, str) and name else "none"
            kind = f"email.{name}" if name in EMAIL_STATUS else f"unknown:{name}"
            parsed.append(
                ParsedEvent(
                    idempotency_key=_event_key(event),
                    kind=kind,
                    payload=event,
                    summary=f"Email {name} for {mask_email(str(event.get('email') or ''))}",
                    occurred_at=from_unix(event.get("timestamp")),
                )
            )
        return parsed

    def normalize(self, raw) -> list[Normalized]:
        name = raw.kind.removeprefix("email.")
        if not raw.kind.startswith("email.") or name not in EMAIL_STATUS:
            return []
        event = raw.payload
        occurred_at = raw.occurred_at or raw.received_at or timezone.now()
        email = str(event.get("email") or "")
        lead_id = _lead_id(event.get(LEAD_ID_ARG))
        data: dict[str, Any] = {
            "provider_id": _x_message_id(event.get("sg_message_id")),
            "status": EMAIL_STATUS[name],
            "event": name,
            "email": email,
        }
        if lead_id is not None:
            data["lead_id"] = lead_id
        if name == "click" and event.get("url"):
            data["url"] = str(event["url"])
        # No LeadSignal: email events are about mail we sent, never a new enquiry.
        items = [Normalized(event_type="email.event", occurred_at=occurred_at, data=data)]

        if name in OPT_OUT_EVENTS or name in OPT_IN_EVENTS:
            evidence = f"SendGrid {name} at {occurred_at.astimezone(datetime.UTC).isoformat()}"
            if event.get("asm_group_id") is not None:
                evidence += f" (unsubscribe group {event['asm_group_id']})"
            consent: dict[str, Any] = {"channel": "email", "email": email, "evidence": evidence}
            if lead_id is not None:
                consent["lead_id"] = lead_id
            items.append(
                Normalized(
                    event_type="contact.opted_out" if name in OPT_OUT_EVENTS else "contact.opted_in",
                    occurred_at=occurred_at,
                    data=consent,
                    key_suffix="consent",
                )
            )
        return items
