"""Thumbtack (leads marketplace): `NegotiationCreatedV4` (a new lead) and `MessageCreatedV4`.

What we know of the deliveries:
- Thumbtack's developer docs (developers.thumbtack.com, "Businesses"/"Users" → Webhooks) register a
  webhook with `eventTypes` ["MessageCreatedV4", "NegotiationCreatedV4"] and
  `"auth": {"username", "password"}` (`authType: "Basic"`): deliveries carry HTTP Basic auth.
- The docs' message object: `messageID`, `negotiationID`, `customer{customerID, displayName}`,
  `from` ("Customer"…), `text`, `attachments`, `sentAt`. Their "Troubleshooting Messages" page says
  messages can arrive before their negotiation (the lead-description and quick-reply messages).
- The envelope is not in the docs we could read. A captured delivery published in a public
  repository shows `{"event": {"eventType", "triggeredAt", "webhookID", "description"},
  "data": {negotiationID, createdAt, customer{customerID, firstName, lastName, phone},
  request{requestID, category{categoryID, name}, description, location{address1, city, state,
  zipCode}, details[{question, answer}]}, business{…}, leadPrice, …}}`. Secondary, so the adapter
  also accepts a flat body (`eventType` and the fields at the top level) and string categories.

Idempotency key: `negotiationID` for a negotiation, `messageID` for a message (PROVIDERS.md).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from django.utils import timezone

from leads.services import LeadSignal

from .base import (
    Forbidden,
    InboundRequest,
    MalformedPayload,
    Normalized,
    ParsedEvent,
    ProviderAdapter,
    SignatureMissing,
    constant_time_equals,
    load_json,
    mask_email,
    mask_phone,
    parse_iso,
)

EVENT_KINDS = {
    "NegotiationCreatedV4": "negotiation.created",
    "MessageCreatedV4": "message.created",
}
ID_FIELDS = {"negotiation.created": "negotiationID", "message.created": "messageID"}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _str(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


def _first(source: dict[str, Any], *names: str) -> str:
    for name in names:
        if value := _str(source.get(name)):
            return value
    return ""


def _envelope(body: dict[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(eventType, event metadata, event data) from the wrapped or the flat shape."""
    event = _dict(body.get("event"))
    event_type = _first(event, "eventType", "type") or _first(body, "eventType", "event_type", "type")
    if not event_type and isinstance(body.get("event"), str):
        event_type = body["event"].strip()
    data = _dict(body.get("data")) or body
    return event_type, event, data


def _customer(data: dict[str, Any]) -> dict[str, str]:
    customer = _dict(data.get("customer"))
    return {
        "first_name": _first(customer, "firstName", "first_name"),
        "last_name": _first(customer, "lastName", "last_name"),
        "full_name": _first(customer, "name", "fullName", "displayName"),
        "phone": _first(customer, "phone", "phoneNumber", "phone_number"),
        "email": _first(customer, "email", "emailAddress"),
    }


def _category(request: dict[str, Any]) -> str:
    category = request.get("category")
    if isinstance(category, dict):
        return _first(category, "name", "categoryName")
    return _str(category) or _first(request, "categoryName", "title")


class ThumbtackAdapter(ProviderAdapter):
    key = "thumbtack"
    label = "Thumbtack"
    content_types = ("application/json",)
    credential_names = ("basic_username", "basic_password")

    def verify(self, request: InboundRequest, connection) -> None:
        scheme, _, encoded = request.header("authorization").strip().partition(" ")
        if scheme.lower() != "basic" or not encoded.strip():
            raise SignatureMissing("HTTP Basic Authorization header is required")
        expected_user = connection.secret("basic_username")
        expected_password = connection.secret("basic_password")
        try:
            username, separator, password = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, ValueError):  # not base64, or not UTF-8
            raise Forbidden("Unreadable HTTP Basic credentials") from None
        # Both compared, always: which half was wrong must not show in the timing.
        user_ok = constant_time_equals(username, expected_user)
        password_ok = constant_time_equals(password, expected_password)
        if not (separator and user_ok and password_ok):
            raise Forbidden("HTTP Basic credentials do not match")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        body = load_json(request.body, expect=dict)
        event_type, event, data = _envelope(body)
        kind = EVENT_KINDS.get(event_type, f"unknown:{event_type or 'none'}")
        occurred_at = parse_iso(_first(data, "createdAt", "sentAt", "createTimestamp") or _first(event, "triggeredAt"))
        if kind in ID_FIELDS:
            key = _first(data, ID_FIELDS[kind], ID_FIELDS[kind].replace("ID", "Id"))
            if not key:
                raise MalformedPayload(f"{event_type} without {ID_FIELDS[kind]}")
        else:
            # Other event types (reviews, status updates) share ids with negotiations: keep their
            # keys apart, and fall back to the bytes when they have no id we know.
            ref = _first(data, "negotiationID", "messageID", "reviewID") or hashlib.sha256(request.body).hexdigest()
            key = f"{event_type or 'none'}:{ref}"
        customer = _customer(data)
        who = mask_phone(customer["phone"]) if customer["phone"] else mask_email(customer["email"])
        if kind == "message.created":
            text = data.get("text") if isinstance(data.get("text"), str) else ""
            summary = (
                f"Thumbtack message from {_first(data, 'from') or 'unknown sender'} on negotiation "
                f"{_first(data, 'negotiationID')}, {len(text)} chars"
            )
        else:
            summary = f"Thumbtack {event_type or 'event'} {_first(data, 'negotiationID')} from {who}"
        return [ParsedEvent(idempotency_key=key, kind=kind, payload=body, summary=summary, occurred_at=occurred_at)]

    def normalize(self, raw) -> list[Normalized]:
        if raw.kind not in ID_FIELDS:
            return []  # unknown event types: stored, then ignored
        body = raw.payload if isinstance(raw.payload, dict) else {}
        _, _, data = _envelope(body)
        occurred_at = raw.occurred_at or raw.received_at or timezone.now()
        if raw.kind == "negotiation.created":
            return [self._negotiation(data, occurred_at)]
        return self._message(data, occurred_at)

    def _negotiation(self, data: dict[str, Any], occurred_at) -> Normalized:
        negotiation_id = _first(data, "negotiationID", "negotiationId")
        request = _dict(data.get("request"))
        location = _dict(request.get("location")) or _dict(data.get("location"))
        category = _category(request)
        customer = _customer(data)
        details = [
            {"question": _str(item.get("question"))[:200], "answer": _str(item.get("answer"))[:500]}
            for item in request.get("details") or []
            if isinstance(item, dict)
        ]
        summary = f"Thumbtack lead{f': {category}' if category else ''}"
        signal = LeadSignal(
            source="thumbtack",
            source_detail=f"negotiation {negotiation_id}",
            phone=customer["phone"],
            email=customer["email"],
            first_name=customer["first_name"],
            last_name=customer["last_name"],
            full_name=customer["full_name"],
            service_type=category,
            postal_code=_first(location, "zipCode", "zip", "postalCode"),
            city=_first(location, "city"),
            state_region=_first(location, "state"),
            occurred_at=occurred_at,
            summary=summary,
        )
        return Normalized(
            event_type="lead.captured",
            occurred_at=occurred_at,
            data={
                "provider_id": negotiation_id,
                "service": category,
                "description": _first(request, "description")[:2000],
                "details": details[:30],
                "lead_price": _first(data, "leadPrice"),
                "summary": summary,
            },
            signal=signal,
        )

    def _message(self, data: dict[str, Any], occurred_at) -> list[Normalized]:
        if _first(data, "from").lower() not in ("customer", ""):
            return []  # the pro's own replies (sent in Thumbtack's app) are not lead signals
        negotiation_id = _first(data, "negotiationID", "negotiationId")
        customer = _customer(data)
        # A message is mapped to lead.captured, not sms.received: it is not a text to a phone
        # number, and it may arrive before its negotiation. It carries a LeadSignal only when it
        # names a phone or email — the docs' message has just `displayName` ("Olivia Y."), and a
        # lead made from that could never merge with the negotiation's lead (which has the phone),
        # so it would become a second, contactless lead. Without contact points the event is
        # recorded (with its negotiation id, for linking) and the negotiation makes the one lead.
        signal = None
        if customer["phone"] or customer["email"]:
            signal = LeadSignal(
                source="thumbtack",
                source_detail=f"negotiation {negotiation_id}",
                phone=customer["phone"],
                email=customer["email"],
                first_name=customer["first_name"],
                last_name=customer["last_name"],
                full_name=customer["full_name"],
                occurred_at=occurred_at,
                summary="Thumbtack message",
            )
        return [
            Normalized(
                event_type="lead.captured",
                occurred_at=occurred_at,
                data={
                    "provider_id": _first(data, "messageID", "messageId"),
                    "negotiation_id": negotiation_id,
                    "phone": customer["phone"],
                    "email": customer["email"],
                    "body": _str(data.get("text"))[:5000],
                    "summary": "Thumbtack message",
                },
                signal=signal,
            )
        ]
