"""QuickBooks Online webhooks: entity change notifications for invoices and payments.

Two payload shapes, both accepted (Intuit moves every app to CloudEvents in 2026, and an app can
be switched either way on its subscription page):

- legacy: {"eventNotifications": [{"realmId", "dataChangeEvent": {"entities": [{"name", "id",
  "operation", "lastUpdated"}]}}]} — one raw event per entity, keyed
  "realmId:name:id:operation:lastUpdated";
- CloudEvents: a JSON array of {"specversion": "1.0", "id", "source", "type":
  "qbo.invoice.updated.v1", "time", "intuitentityid", "intuitaccountid", "data"?} — one raw event
  per element, keyed on the CloudEvent `id`. `data` is often absent or {}.

Signature: `intuit-signature` = base64(HMAC-SHA256(verifier_token, raw body)), for both shapes.

Payloads are thin (ids and an operation, no amounts, balance or customer): whether an invoice is
paid or overdue has to be fetched from the Accounting API by realm and id. That fetch belongs to a
later QuickBooks API client, not to this adapter; here we only record what changed.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
import re
from typing import Any

from django.utils import timezone

from .base import (
    InboundRequest,
    MalformedPayload,
    Normalized,
    ParsedEvent,
    ProviderAdapter,
    SignatureInvalid,
    SignatureMissing,
    constant_time_equals,
    load_json,
    parse_iso,
)

SIGNATURE_HEADER = "intuit-signature"

# Our kind ("<entity>.<operation>", lower-case) -> normalized event type. Legacy operations are
# present tense ("Create"), CloudEvents types past tense ("created"): both spellings map.
EVENT_TYPES = {
    "invoice.create": "invoice.created",
    "invoice.created": "invoice.created",
    "invoice.update": "invoice.updated",
    "invoice.updated": "invoice.updated",
    "invoice.emailed": "invoice.updated",
    "payment.create": "invoice.paid",
    "payment.created": "invoice.paid",
}

# CloudEvents spell entities and operations in lower case, past tense; data uses the legacy
# spelling ("Invoice", "Create") so both formats read the same downstream.
ENTITY_NAMES = {"invoice": "Invoice", "payment": "Payment"}
OPERATION_NAMES = {
    "created": "Create",
    "updated": "Update",
    "deleted": "Delete",
    "merged": "Merge",
    "voided": "Void",
    "emailed": "Emailed",
}

_CLOUDEVENT_TYPE = re.compile(r"^qbo\.(?P<entity>[a-z0-9_]+)\.(?P<operation>[a-z0-9_]+)(?:\.v\d+)?$", re.IGNORECASE)
# Nanosecond fractions ("…25.179851517Z") are more digits than fromisoformat accepts.
_FRACTION = re.compile(r"(\.\d{6})\d+")


def _when(value: Any) -> datetime.datetime | None:
    return parse_iso(_FRACTION.sub(r"\1", value)) if isinstance(value, str) else None


def _fields(payload: dict[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """(realm_id/entity/entity_id/operation in QuickBooks' legacy spelling, CloudEvent data)."""
    if "dataChangeEvent" not in payload:  # stored CloudEvent
        match = _CLOUDEVENT_TYPE.match(_text(payload.get("type")))
        entity = match["entity"].lower() if match else ""
        operation = match["operation"].lower() if match else ""
        fields = {
            "realm_id": _text(payload.get("intuitaccountid")),
            "entity": ENTITY_NAMES.get(entity, entity),
            "entity_id": _text(payload.get("intuitentityid")),
            "operation": OPERATION_NAMES.get(operation, operation),
        }
        return fields, payload.get("data") if isinstance(payload.get("data"), dict) else {}
    entities = (payload.get("dataChangeEvent") or {}).get("entities") or [{}]
    entity = entities[0]
    fields = {
        "realm_id": _text(payload.get("realmId")),
        "entity": _text(entity.get("name")),
        "entity_id": _text(entity.get("id")),
        "operation": _text(entity.get("operation")),
    }
    return fields, {}


def _kind(name: str) -> str:
    return name if name in EVENT_TYPES else f"unknown:{name or 'none'}"


def _text(value: Any) -> str:
    return str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else ""


class QuickBooksAdapter(ProviderAdapter):
    key = "quickbooks"
    label = "QuickBooks Online"
    # CloudEvents batches may be labelled with the CloudEvents media types; the body is JSON either way.
    content_types = ("application/json", "application/cloudevents-batch+json", "application/cloudevents+json")
    credential_names = ("verifier_token",)

    def verify(self, request: InboundRequest, connection) -> None:
        signature = request.header(SIGNATURE_HEADER).strip()
        if not signature:
            raise SignatureMissing(f"{SIGNATURE_HEADER} header is required")
        token = connection.secret("verifier_token")
        expected = base64.b64encode(hmac.new(token.encode(), request.body, hashlib.sha256).digest()).decode()
        if not constant_time_equals(expected, signature):
            raise SignatureInvalid("intuit-signature does not match HMAC-SHA256 of the body")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        body = load_json(request.body)
        if isinstance(body, list):
            return [self._cloud_event(index, element) for index, element in enumerate(body)]
        if isinstance(body, dict) and "specversion" in body:  # a single structured-mode CloudEvent
            return [self._cloud_event(0, body)]
        if isinstance(body, dict) and isinstance(body.get("eventNotifications"), list):
            return self._legacy(body["eventNotifications"])
        raise MalformedPayload("Body is neither a CloudEvents array nor {'eventNotifications': [...]}")

    def _cloud_event(self, index: int, element: Any) -> ParsedEvent:
        if not isinstance(element, dict):
            raise MalformedPayload(f"CloudEvent {index} is not a JSON object")
        event_id, event_type = _text(element.get("id")), _text(element.get("type"))
        if not (event_id and event_type):
            raise MalformedPayload(f"CloudEvent {index} has no id or type")
        match = _CLOUDEVENT_TYPE.match(event_type)
        name = f"{match['entity']}.{match['operation']}".lower() if match else ""
        kind = _kind(name) if match else f"unknown:{event_type}"
        entity_id, realm_id = _text(element.get("intuitentityid")), _text(element.get("intuitaccountid"))
        return ParsedEvent(
            idempotency_key=event_id,
            kind=kind,
            payload=element,  # as received
            summary=f"QuickBooks {event_type} #{entity_id or '?'} (realm {realm_id or '?'})",
            occurred_at=_when(element.get("time")),
        )

    def _legacy(self, notifications: list) -> list[ParsedEvent]:
        parsed = []
        for n_index, notification in enumerate(notifications):
            if not isinstance(notification, dict):
                raise MalformedPayload(f"eventNotifications[{n_index}] is not a JSON object")
            realm_id = _text(notification.get("realmId"))
            change = notification.get("dataChangeEvent")
            entities = change.get("entities") if isinstance(change, dict) else None
            if not realm_id or not isinstance(entities, list):
                raise MalformedPayload(f"eventNotifications[{n_index}] has no realmId or dataChangeEvent.entities")
            for e_index, entity in enumerate(entities):
                if not isinstance(entity, dict):
                    raise MalformedPayload(f"eventNotifications[{n_index}].entities[{e_index}] is not a JSON object")
                name, entity_id = _text(entity.get("name")), _text(entity.get("id"))
                operation, last_updated = _text(entity.get("operation")), _text(entity.get("lastUpdated"))
                if not (name and entity_id and operation):
                    raise MalformedPayload(
                        f"eventNotifications[{n_index}].entities[{e_index}] needs name, id and operation"
                    )
                # A one-entity slice of the notification as received, so the realm stays with it.
                payload = {"realmId": realm_id, "dataChangeEvent": {"entities": [entity]}}
                parsed.append(
                    ParsedEvent(
                        # lastUpdated makes two real updates of one entity distinct and a retry identical.
                        idempotency_key=f"{realm_id}:{name}:{entity_id}:{operation}:{last_updated}",
                        kind=_kind(f"{name}.{operation}".lower()),
                        payload=payload,
                        summary=f"QuickBooks {name} {operation} #{entity_id} (realm {realm_id})",
                        occurred_at=_when(last_updated),
                    )
                )
        return parsed

    def normalize(self, raw) -> list[Normalized]:
        if raw.kind not in EVENT_TYPES:
            return []
        data, extra = _fields(raw.payload)
        bill_email = extra.get("BillEmail") if isinstance(extra.get("BillEmail"), dict) else {}
        if email := _text(extra.get("customer_email") or bill_email.get("Address")):
            data["customer_email"] = email
        # No LeadSignal: the notification does not say who the customer is or what was paid.
        # Matching an invoice to a lead, and telling paid/overdue, needs the entity fetched
        # through the Accounting API (a later QuickBooks client). Until then the leads consumer
        # finds no lead for these events and does nothing, which is intended.
        return [
            Normalized(
                event_type=EVENT_TYPES[raw.kind],
                occurred_at=raw.occurred_at or raw.received_at or timezone.now(),
                data=data,
            )
        ]
