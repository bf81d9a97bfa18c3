"""Angi (formerly HomeAdvisor / Angie's List): leads posted in real time as JSON.

Angi's "Lead Integration API" partner page (intercom.help/angi, "Angi Lead Integration API"):
`POST` with `Content-Type: application/json`; the only authentication is an optional `x-api-key`
header (at most 160 characters) that Angi sends only when the partner gave them a key; answer
200 with a JSON body. The legacy HomeAdvisor feed retries a lead 3 times, 15 minutes apart, on a
non-200 or a timeout, so the same lead arrives more than once: it is keyed on its own id.

The lead fields of the current feed are not in the part of the docs we could read. The legacy
HomeAdvisor JSON is flat camelCase (`firstName`, `lastName`, `primaryPhone`, `phone`, `email`,
`address`, `city`, `stateProvince`, `postalCode`, `srOid`/`leadOid`/`serviceRequestId`,
`taskName`); the adapter reads that, and tolerantly a nested shape (`lead`/`data` wrapper,
`customer`/`contact` and `address`/`location` objects, `category`/`task` objects) in case the
newer feed groups them.

Idempotency key: the lead id (`leadOid`/`leadId`), else the service-request id
(`srOid`/`serviceRequestId`), else `id`; a body with none of them is keyed on its bytes (Angi's
retries resend the same body), so a lead is never refused just for lacking an id.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.utils import timezone

from leads.services import LeadSignal

from .base import (
    Forbidden,
    InboundRequest,
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

API_KEY_MAX_LENGTH = 160
LEAD_ID_FIELDS = ("leadOid", "leadId", "lead_id", "srOid", "serviceRequestId", "serviceRequestOid", "srId", "id")
# An explicit event name, when a newer payload carries one. The legacy feed has none: every post is a lead.
LEAD_EVENTS = frozenset({"lead", "newlead", "new_lead", "lead.created", "leadcreated", "lead_created"})


def _str(value: Any) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value).strip()


def _first(sources: list[dict[str, Any]], *names: str) -> str:
    """The first non-empty value of any of `names` (case-insensitive) in any of `sources`."""
    for source in sources:
        folded = {str(k).lower(): v for k, v in source.items()}
        for name in names:
            if value := _str(folded.get(name.lower())):
                return value
    return ""


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _lead(body: dict[str, Any]) -> dict[str, Any]:
    return _dict(body.get("lead")) or _dict(body.get("data")) or body


def _sources(lead: dict[str, Any]) -> list[dict[str, Any]]:
    """Where contact and location fields may sit: the lead itself, then its nested objects."""
    nested = [_dict(lead.get(name)) for name in ("customer", "contact", "consumer", "homeowner")]
    location = [_dict(lead.get(name)) for name in ("address", "location", "serviceAddress")]
    return [lead, *nested, *location]


def _event_name(body: dict[str, Any], lead: dict[str, Any]) -> str:
    return _first([body, lead], "eventType", "event_type", "event")


def _lead_id(lead: dict[str, Any]) -> str:
    return _first([lead], *LEAD_ID_FIELDS)


def _task(lead: dict[str, Any]) -> str:
    for name in ("task", "category", "service"):
        if value := _first([_dict(lead.get(name))], "name", "taskName", "categoryName"):
            return value
    return _first([lead], "taskName", "categoryName", "category", "serviceName", "service", "taskDescription")


class AngiAdapter(ProviderAdapter):
    key = "angi"
    label = "Angi (Leads / HomeAdvisor)"
    content_types = ("application/json",)
    credential_names = ("api_key",)

    def verify(self, request: InboundRequest, connection) -> None:
        if "api_key" not in (connection.credentials or {}):
            # The key is optional on Angi's side; without one the secret webhook token in the
            # URL is the only protection, which staff chose when they left the key out.
            return
        supplied = request.header("x-api-key")
        if not supplied:
            raise SignatureMissing("x-api-key header is required")
        if len(supplied) > API_KEY_MAX_LENGTH:
            raise Forbidden(f"x-api-key longer than {API_KEY_MAX_LENGTH} characters")
        if not constant_time_equals(supplied, connection.secret("api_key")):
            raise Forbidden("x-api-key does not match")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        body = load_json(request.body, expect=dict)
        lead = _lead(body)
        sources = _sources(lead)
        lead_id = _lead_id(lead)
        phone = _first(sources, "primaryPhone", "phone", "phoneNumber", "mobilePhone", "secondaryPhone")
        email = _first(sources, "email", "emailAddress")
        name = _first(sources, "firstName", "lastName", "name", "fullName")
        event = _event_name(body, lead)
        if event and event.lower() not in LEAD_EVENTS:
            kind = f"unknown:{event}"
        elif not (lead_id or phone or email or name):
            kind = "unknown:no_lead"  # e.g. a connectivity test post: nothing to make a lead from
        else:
            kind = "lead"
        key = lead_id or "sha256-" + hashlib.sha256(request.body).hexdigest()
        if kind.startswith("unknown:"):
            key = f"{kind}:{key}"
        summary = (
            f"Angi lead {lead_id or '(no id)'}: {_task(lead) or 'no task'} from "
            f"{mask_phone(phone) if phone else mask_email(email)}"
        )
        occurred_at = parse_iso(_first([lead], "createDate", "createdDate", "createdAt", "leadDate", "dateTime"))
        return [ParsedEvent(idempotency_key=key, kind=kind, payload=body, summary=summary, occurred_at=occurred_at)]

    def normalize(self, raw) -> list[Normalized]:
        if raw.kind != "lead":
            return []
        body = raw.payload if isinstance(raw.payload, dict) else {}
        lead = _lead(body)
        sources = _sources(lead)
        lead_id = _lead_id(lead)
        sr_id = _first([lead], "srOid", "serviceRequestId", "serviceRequestOid")
        task = _task(lead)
        comments = _first([lead], "comments", "description", "jobDescription", "leadDescription", "notes")
        occurred_at = raw.occurred_at or raw.received_at or timezone.now()
        summary = f"Angi lead{f': {task}' if task else ''}"
        signal = LeadSignal(
            source="angi",
            source_detail=(f"Angi lead {lead_id}" + (f" (SR {sr_id})" if sr_id and sr_id != lead_id else ""))[:200],
            phone=_first(sources, "primaryPhone", "phone", "phoneNumber", "mobilePhone", "secondaryPhone"),
            email=_first(sources, "email", "emailAddress"),
            first_name=_first(sources, "firstName", "first_name"),
            last_name=_first(sources, "lastName", "last_name"),
            # A bare "name" is read only inside a customer/contact object: at the top it may name the task.
            full_name=_first(sources, "fullName", "customerName", "consumerName") or _first(sources[1:5], "name"),
            service_type=task,
            urgency=_first([lead], "timeFrame", "timeframe", "urgency"),
            postal_code=_first(sources, "postalCode", "zip", "zipCode", "postal_code"),
            city=_first(sources, "city"),
            state_region=_first(sources, "stateProvince", "state", "stateCode"),
            occurred_at=occurred_at,
            summary=summary,
        )
        return [
            Normalized(
                event_type="lead.captured",
                occurred_at=occurred_at,
                data={
                    "provider_id": lead_id,
                    "service_request_id": sr_id,
                    "service": task,
                    "has_comments": bool(comments),
                    "summary": summary,
                },
                signal=signal,
            )
        ]

    def response(self, *, accepted: bool) -> tuple[bytes, str]:
        # Angi requires a 200 with a JSON body (duplicates included, or it retries).
        return b'{"status": "success", "ok": true}', "application/json"
