"""Our own web forms and quote requests, signed with Standard Webhooks (standardwebhooks.com).

Body: {"type": "form.submitted" | "quote.requested", "form": "...", "submitted_at": ISO-8601,
"contact": {"name" | "first_name"/"last_name", "phone", "email"}, "service", "market", "city",
"postal_code", "urgency", "contact_method", "message", "consent": {"sms": bool, "email": bool,
"text": "the wording shown"}, "attribution": {"utm_source", …, "gclid", "landing_page", "referrer"}}.
Idempotency key: the `webhook-id` header.
"""

from __future__ import annotations

from django.utils import timezone
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from leads.services import ATTRIBUTION_FIELDS, LeadSignal

from .base import (
    InboundRequest,
    Normalized,
    ParsedEvent,
    ProviderAdapter,
    SignatureInvalid,
    SignatureMissing,
    load_json,
    mask_email,
    mask_phone,
    parse_iso,
)

EVENT_TYPES = {
    "form.submitted": "lead.captured",
    "lead.captured": "lead.captured",
    "quote.requested": "quote.requested",
}


class WebFormAdapter(ProviderAdapter):
    key = "webform"
    label = "Web forms (Standard Webhooks)"
    content_types = ("application/json",)
    credential_names = ("signing_secret",)

    def verify(self, request: InboundRequest, connection) -> None:
        if not (
            request.header("webhook-id") and request.header("webhook-timestamp") and request.header("webhook-signature")
        ):
            raise SignatureMissing("webhook-id, webhook-timestamp and webhook-signature headers are required")
        secret = connection.secret("signing_secret")
        try:
            Webhook(secret).verify(request.body, request.headers, json_parse=False)
        except WebhookVerificationError as exc:
            raise SignatureInvalid(f"Standard Webhooks: {exc}") from exc
        except (ValueError, UnicodeDecodeError) as exc:  # malformed signature header or body bytes
            raise SignatureInvalid(f"Standard Webhooks: unreadable signature ({exc.__class__.__name__})") from exc

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        body = load_json(request.body, expect=dict)
        event_type = str(body.get("type") or "")
        contact = body.get("contact") if isinstance(body.get("contact"), dict) else {}
        kind = event_type if event_type in EVENT_TYPES else f"unknown:{event_type or 'none'}"
        who = (
            mask_phone(str(contact.get("phone", "")))
            if contact.get("phone")
            else mask_email(str(contact.get("email", "")))
        )
        summary = f"{body.get('form') or 'Web form'} ({event_type or 'no type'}) from {who}"
        return [
            ParsedEvent(
                idempotency_key=request.header("webhook-id"),
                kind=kind,
                payload=body,
                summary=summary,
                occurred_at=parse_iso(body.get("submitted_at")),
            )
        ]

    def normalize(self, raw) -> list[Normalized]:
        if raw.kind not in EVENT_TYPES:
            return []
        body = raw.payload
        contact = body.get("contact") or {}
        consent = body.get("consent") or {}
        attribution = {k: str(v) for k, v in (body.get("attribution") or {}).items() if k in ATTRIBUTION_FIELDS and v}
        evidence = f"{body.get('form') or 'web form'}: {consent.get('text') or 'consent checkbox'}"
        signal = LeadSignal(
            source="quote_request" if raw.kind == "quote.requested" else "web_form",
            phone=str(contact.get("phone") or ""),
            email=str(contact.get("email") or ""),
            first_name=str(contact.get("first_name") or ""),
            last_name=str(contact.get("last_name") or ""),
            full_name=str(contact.get("name") or ""),
            source_detail=str(body.get("form") or "")[:200],
            service_type=str(body.get("service") or ""),
            contact_method=str(body.get("contact_method") or ""),
            market=str(body.get("market") or ""),
            urgency=str(body.get("urgency") or ""),
            postal_code=str(body.get("postal_code") or ""),
            city=str(body.get("city") or ""),
            attribution=attribution,
            occurred_at=raw.occurred_at or raw.received_at,
            consent={ch: (bool(consent[ch]), evidence) for ch in ("sms", "email") if isinstance(consent.get(ch), bool)},
            summary=f"{'Quote request' if raw.kind == 'quote.requested' else 'Web form'}: {body.get('form') or ''}",
        )
        return [
            Normalized(
                event_type=EVENT_TYPES[raw.kind],
                occurred_at=raw.occurred_at or raw.received_at or timezone.now(),
                data={
                    "form": body.get("form", ""),
                    "service": body.get("service", ""),
                    "has_message": bool(body.get("message")),
                },
                signal=signal,
            )
        ]
