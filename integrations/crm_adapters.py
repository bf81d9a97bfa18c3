"""Outbound CRM adapters: put one contact into a client's CRM, as an upsert.

One small surface, `upsert_contact(*, connection, payload, idempotency_key) -> crm_id`, raising
CrmRejected (the CRM said no for good: do not retry) or CrmUnavailable (try again later).

Both adapters make a repeated call with the same handoff a no-op on the CRM's side, which is
what lets integrations.crm send again whenever it does not know whether a call landed (a worker
killed mid-call, a timeout):
- crm_webhook: the Standard Webhooks `webhook-id` is the handoff's idempotency key, the same on
  every attempt; the spec asks receivers to dedupe on it.
- hubspot: a batch *upsert* keyed by a unique contact property holding the lead's stable key,
  so a second call updates the contact the first one created.

`payload` is what integrations.crm prepares: {"lead_key": "<stable lead key>", "properties":
{crm_field: value, ...}}.

Each adapter is also registered as a provider (integrations.providers.ADAPTER_PATHS) so that a
CRM connection is created like any other (create_connection, the Connection admin). CRMs post
nothing to us: the inbound half refuses every webhook, like the CSV import adapter.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import requests
from django.conf import settings
from standardwebhooks.webhooks import Webhook

from .providers.base import Forbidden, InboundRequest, MalformedPayload, ParsedEvent, ProviderAdapter


class CrmError(Exception):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class CrmRejected(CrmError):
    """The CRM refused the contact for a reason a retry will not change (4xx)."""


class CrmUnavailable(CrmError):
    """The CRM could not be reached or asked us to come back (timeouts, 5xx, 408/409/429)."""


# 408 Request Timeout, 409 Conflict (a concurrent write on the CRM's side) and 429 Too Many
# Requests are "not now", not "no".
RETRYABLE_4XX = frozenset({408, 409, 429})


def _timeout() -> float:
    return float(settings.INTEGRATIONS_CRM_TIMEOUT_SECONDS)


def _post(url: str, *, body: bytes, headers: dict[str, str]) -> requests.Response:
    try:
        response = requests.post(url, data=body, headers=headers, timeout=_timeout())
    except requests.Timeout as exc:
        raise CrmUnavailable(f"Timed out after {_timeout():g} s: {exc.__class__.__name__}") from exc
    except requests.RequestException as exc:
        raise CrmUnavailable(f"Could not reach the CRM: {exc.__class__.__name__}: {exc}"[:500]) from exc
    status = response.status_code
    if status >= 500 or status in RETRYABLE_4XX:
        raise CrmUnavailable(f"HTTP {status}: {response.text[:300]}", status=status)
    if status >= 400:
        raise CrmRejected(f"HTTP {status}: {response.text[:300]}", status=status)
    if status >= 300:
        # requests follows redirects; one left over means the URL is wrong, not that it is busy.
        raise CrmRejected(f"HTTP {status} (redirect not followed)", status=status)
    return response


class _OutboundOnlyAdapter(ProviderAdapter):
    """The inbound half: a CRM connection has a webhook token like every connection, but nothing
    may arrive through it."""

    content_types = ("application/json",)

    def verify(self, request: InboundRequest, connection) -> None:
        raise Forbidden("CRM connections are outbound only")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        raise MalformedPayload("CRM connections are outbound only")

    def normalize(self, raw) -> list:
        return []

    def upsert_contact(self, *, connection, payload: dict[str, Any], idempotency_key: str) -> str:
        raise NotImplementedError


class CrmWebhookAdapter(_OutboundOnlyAdapter):
    """A generic JSON REST endpoint of the client's, signed with Standard Webhooks.

    config: {"url": "https://crm.example/hooks/leads"}; credentials: {"signing_secret": "env:…"}
    (a "whsec_…" secret, shared with the receiver). Body: {"type": "lead.handoff", "timestamp":
    ISO-8601, "data": payload}. The receiver's JSON answer may carry "id" (its record id).
    """

    key = "crm_webhook"
    label = "CRM webhook (Standard Webhooks, outbound)"
    credential_names = ("signing_secret",)

    def upsert_contact(self, *, connection, payload: dict[str, Any], idempotency_key: str) -> str:
        url = (connection.config or {}).get("url")
        if not url:
            raise CrmRejected('The connection has no config "url" to post to.')
        now = datetime.now(tz=UTC)
        body = json.dumps(
            {"type": "lead.handoff", "timestamp": now.isoformat(), "data": payload},
            separators=(",", ":"),
            ensure_ascii=False,
        )
        signature = Webhook(connection.secret("signing_secret")).sign(idempotency_key, now, body)
        headers = {
            "Content-Type": "application/json",
            # The same id on every attempt of this handoff: receivers dedupe on it (spec §
            # "Idempotency"), so a resend after an unknown outcome cannot create a second record.
            "webhook-id": idempotency_key,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signature,
        }
        response = _post(url, body=body.encode(), headers=headers)
        try:
            answer = response.json()
        except ValueError:
            answer = None
        crm_id = answer.get("id") if isinstance(answer, dict) else None
        # No id in the answer: the receiver dedupes on our key, so our key names the record.
        return str(crm_id) if crm_id not in (None, "") else idempotency_key


class HubSpotAdapter(_OutboundOnlyAdapter):
    """HubSpot CRM v3: POST /crm/v3/objects/contacts/batch/upsert with one input.

    config: {"base_url": "https://api.hubapi.com" (default), "id_property": "zartsalgo_lead_key"
    (default)}; credentials: {"access_token": "env:…"} (a private app token with
    crm.objects.contacts.write). The id property must be a *unique* custom contact property in
    the client's HubSpot account: the upsert matches on it, so a repeat updates the contact.
    """

    key = "hubspot"
    label = "HubSpot contacts (outbound)"
    credential_names = ("access_token",)
    DEFAULT_BASE_URL = "https://api.hubapi.com"
    DEFAULT_ID_PROPERTY = "zartsalgo_lead_key"

    def upsert_contact(self, *, connection, payload: dict[str, Any], idempotency_key: str) -> str:
        config = connection.config or {}
        base_url = str(config.get("base_url") or self.DEFAULT_BASE_URL).rstrip("/")
        id_property = str(config.get("id_property") or self.DEFAULT_ID_PROPERTY)
        lead_key = str(payload.get("lead_key") or "")
        if not lead_key:
            raise CrmRejected("The prepared payload has no lead_key to upsert on.")
        properties = {name: "" if value is None else str(value) for name, value in payload["properties"].items()}
        properties[id_property] = lead_key  # the new contact carries the key the next upsert matches
        body = json.dumps({"inputs": [{"idProperty": id_property, "id": lead_key, "properties": properties}]})
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {connection.secret('access_token')}",
        }
        response = _post(f"{base_url}/crm/v3/objects/contacts/batch/upsert", body=body.encode(), headers=headers)
        try:
            answer = response.json()
        except ValueError as exc:
            # A 2xx we cannot read: it may well have worked; the next upsert will tell.
            raise CrmUnavailable(f"HTTP {response.status_code} with a body that is not JSON") from exc
        results = answer.get("results") if isinstance(answer, dict) else None
        if results and isinstance(results[0], dict) and results[0].get("id"):
            return str(results[0]["id"])
        # 207 Multi-Status (or a 200 without results) carries per-input errors instead.
        errors = answer.get("errors") if isinstance(answer, dict) else None
        message = "; ".join(str(e.get("message", e)) for e in errors or [] if isinstance(e, dict))
        raise CrmRejected(f"HTTP {response.status_code}: {message or 'no contact in the answer'}"[:500])


# provider key → adapter. Explicit (no discovery): adding a CRM is one class and one line here
# plus its line in integrations.providers.ADAPTER_PATHS.
CRM_ADAPTERS: dict[str, _OutboundOnlyAdapter] = {
    CrmWebhookAdapter.key: CrmWebhookAdapter(),
    HubSpotAdapter.key: HubSpotAdapter(),
}
CRM_PROVIDERS = tuple(CRM_ADAPTERS)


def crm_adapter(provider: str) -> _OutboundOnlyAdapter:
    return CRM_ADAPTERS[provider]
