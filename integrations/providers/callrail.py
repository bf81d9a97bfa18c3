"""CallRail (call tracking): call, text and form webhooks, one connection per CallRail company.

What the payloads look like (CallRail's support pages "Webhooks" and "What data is sent with
Webhooks?", support.callrail.com): flat JSON, snake_case — `resource_id`, `answered`, `call_type`,
`duration`, `voicemail`, `customer_number`/`customer_name`/`customer_city`/`customer_state`,
`tracking_phone_number`, `source_name`, `start_time`, `direction`, …; "call modified" repeats the
call with a `changes` array (tags, note, value, transcription_text, recording_duration, scores);
texts carry `resource_id`, `source_number`, `destination_number`, `content`, `timestamp`;
form submissions carry `id`, `form_data`, `form_url`, `landing_page_url`, `referrer`,
`submitted_at`. The casing of a captured payload was not confirmed, so every field is read
case- and underscore-insensitively (`customer_number`, `customerNumber`, `Customer_number`).

Which webhook a delivery is: CallRail does not say in the body. Each webhook URL is configured
separately in CallRail, so we ask for `?kind=post_call` (pre_call, call_routing_complete,
post_call, call_modified, text_message_received, text_message_sent, form_submission) on each one.
Without it we infer from the body; inference cannot tell a call-routing-complete from a post-call,
so configure the parameter.

Signature: CallRail signs with a per-company secret; the exact scheme is unconfirmed (a secondary
source says header `Signature` = base64(HMAC-SHA1(secret, raw body))). The scheme is therefore a
per-connection setting, `config["signature_scheme"]`: "hmac_sha1_base64" (default) or
"hmac_sha256_hex".

Idempotency key: `resource_id:<webhook kind>` (form submissions: `id`). "Call modified" can fire
several times for one call (a tag, later a note), so its key also carries a digest of `changes`:
a retry of the same change dedupes, a different change is stored.

Only the post-call webhook makes business events for a call; pre-call and routing-complete are
stored and ignored so one call never makes two leads. Transcripts and recordings stay in the raw
payload (internal): they never reach normalized data or summaries.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.utils import timezone

from integrations.models import CredentialMissing
from leads.services import LeadSignal

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
    mask_email,
    mask_phone,
    parse_iso,
)

DEFAULT_SIGNATURE_SCHEME = "hmac_sha1_base64"
# scheme -> (digest constructor, encoder of the raw HMAC bytes)
SIGNATURE_SCHEMES: dict[str, tuple[Callable[..., Any], Callable[[bytes], str]]] = {
    "hmac_sha1_base64": (hashlib.sha1, lambda digest: base64.b64encode(digest).decode()),
    "hmac_sha256_hex": (hashlib.sha256, lambda digest: digest.hex()),
}

# CallRail webhook kind (as in ?kind=) -> our raw event kind.
WEBHOOK_KINDS = {
    "pre_call": "call.pre",
    "call_routing_complete": "call.routing_complete",
    "post_call": "call.post",
    "call_modified": "call.modified",
    "text_message_received": "text.received",
    "text_message_sent": "text.sent",
    "form_submission": "form.submitted",
}
# Spellings people type into a webhook URL.
KIND_ALIASES = {
    "precall": "pre_call",
    "routing_complete": "call_routing_complete",
    "call_routing": "call_routing_complete",
    "postcall": "post_call",
    "modified": "call_modified",
    "text": "text_message_received",
    "text_received": "text_message_received",
    "text_message": "text_message_received",
    "sms": "text_message_received",
    "text_sent": "text_message_sent",
    "form": "form_submission",
    "form_submitted": "form_submission",
}
MISSED_CALL_TYPES = frozenset({"missed", "abandoned", "voicemail"})
# The fields CallRail documents for the pre-call webhook: a body with nothing else is a pre-call.
PRE_CALL_FIELDS = frozenset(
    k.replace("_", "")
    for k in [
        "answered",
        "call_type",
        "formatted_call_type",
        "customer_city",
        "customer_country",
        "customer_name",
        "customer_number",
        "customer_state",
        "company_id",
        "company_name",
        "company_resource_id",
        "company_time_zone",
        "created_at",
        "direction",
        "duration",
        "formatted_duration",
        "first_call",
        "formatted_tracking_phone_number",
        "formatted_customer_number",
        "formatted_customer_location",
        "person_resource_id",
        "prior_calls",
        "resource_id",
        "source_name",
        "start_time",
        "total_calls",
        "tracker_resource_id",
        "tracking_phone_number",
        "voicemail",
        "id",
    ]
)
# Caller-ID names that are not a person's name.
PLACEHOLDER_NAMES = frozenset({"wireless caller", "unknown", "unknown caller", "anonymous", "private", "restricted"})


def _index(payload: dict[str, Any]) -> dict[str, Any]:
    """Keys folded so snake_case, camelCase and Title_case spellings meet."""
    return {str(k).replace("_", "").replace("-", "").lower(): v for k, v in payload.items()}


def _get(index: dict[str, Any], *names: str) -> str:
    """The first non-empty value among `names`, as a stripped string."""
    for name in names:
        value = index.get(name.replace("_", "").lower())
        if value is not None and not isinstance(value, dict | list) and str(value).strip():
            return str(value).strip()
    return ""


def _bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def _int(value: Any) -> int | None:
    try:
        return int(float(str(value)))
    except (TypeError, ValueError):
        return None


def _phone(value: str) -> str:
    """A usable caller number, or "" when withheld or not a number."""
    return value if sum(ch.isdigit() for ch in value) >= 7 else ""


def _name(value: str) -> str:
    return "" if value.strip().lower() in PLACEHOLDER_NAMES else value


def _url(value: str) -> str:
    # The leads service flags non-URL landing pages/referrers; CallRail sends bare domains too.
    return value if value.startswith(("http://", "https://")) else ""


def _attribution(index: dict[str, Any]) -> dict[str, str]:
    values = {
        "tracking_number": _get(index, "tracking_phone_number", "tracking_number"),
        "utm_source": _get(index, "utm_source") or _get(index, "source_name", "source"),
        "utm_medium": _get(index, "utm_medium", "medium"),
        "utm_campaign": _get(index, "utm_campaign", "campaign"),
        "utm_term": _get(index, "utm_term", "keywords"),
        "utm_content": _get(index, "utm_content"),
        "gclid": _get(index, "gclid"),
        "fbclid": _get(index, "fbclid"),
        "msclkid": _get(index, "msclkid"),
        "landing_page": _url(_get(index, "landing_page_url", "landing_page")),
        "referrer": _url(_get(index, "referring_url", "referrer_url", "referrer")),
    }
    return {k: v for k, v in values.items() if v}


def _form_fields(index: dict[str, Any]) -> dict[str, str]:
    """form_data as {lower-cased field name: value}; CallRail passes the site's own field names."""
    raw = index.get("formdata")
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            raw = {}
    fields: dict[str, str] = {}
    if isinstance(raw, dict):
        items = list(raw.items())
    elif isinstance(raw, list):  # [{"name"|"label": …, "value": …}, …]
        items = [
            (entry.get("name") or entry.get("label") or entry.get("key"), entry.get("value"))
            for entry in raw
            if isinstance(entry, dict)
        ]
    else:
        items = []
    for key, value in items:
        if key and value is not None and not isinstance(value, dict | list) and str(value).strip():
            fields[str(key).strip().lower()] = str(value).strip()
    return fields


def _form_value(fields: dict[str, str], *, include: tuple[str, ...], exclude: tuple[str, ...] = ()) -> str:
    for key, value in fields.items():
        if any(word in key for word in include) and not any(word in key for word in exclude):
            return value
    return ""


class CallRailAdapter(ProviderAdapter):
    key = "callrail"
    label = "CallRail"
    content_types = ("application/json",)
    credential_names = ("signing_secret",)

    # --- verify ---------------------------------------------------------------------------

    def signature_scheme(self, connection) -> str:
        return str((connection.config or {}).get("signature_scheme") or DEFAULT_SIGNATURE_SCHEME)

    def expected_signature(self, scheme: str, secret: str, body: bytes) -> str:
        digestmod, encode = SIGNATURE_SCHEMES[scheme]
        return encode(hmac.new(secret.encode(), body, digestmod).digest())

    def verify(self, request: InboundRequest, connection) -> None:
        supplied = (request.header("signature") or request.header("x-callrail-signature")).strip()
        if not supplied:
            raise SignatureMissing("Signature header is required")
        scheme = self.signature_scheme(connection)
        if scheme not in SIGNATURE_SCHEMES:
            # A configuration mistake, not a forgery: we cannot tell, so hold rather than reject.
            raise CredentialMissing(f"Unsupported CallRail signature_scheme {scheme!r}")
        expected = self.expected_signature(scheme, connection.secret("signing_secret"), request.body)
        supplied = supplied.split("=", 1)[1] if supplied.lower().startswith(("sha1=", "sha256=")) else supplied
        if scheme.endswith("_hex"):
            supplied = supplied.lower()
        if not constant_time_equals(supplied, expected):
            raise SignatureInvalid(f"CallRail signature does not match ({scheme})")

    # --- parse ----------------------------------------------------------------------------

    def _declared_kind(self, request: InboundRequest) -> str | None:
        values = parse_qs(urlsplit(request.url).query).get("kind")
        if not values or not values[-1].strip():
            return None
        kind = values[-1].strip().lower().replace("-", "_").replace(" ", "_")
        return KIND_ALIASES.get(kind, kind)

    def _inferred_kind(self, body: dict[str, Any], index: dict[str, Any]) -> str:
        if "changes" in index:
            return "call_modified"
        if "formdata" in index:
            return "form_submission"
        if "content" in index and ("sourcenumber" in index or "destinationnumber" in index):
            direction = _get(index, "direction").lower()
            if direction in ("inbound", "incoming", "received"):
                return "text_message_received"
            if direction in ("outbound", "outgoing", "sent"):
                return "text_message_sent"
            return "unknown:text_message"  # a business's own text must never become a lead
        if "answered" in index or "duration" in index:
            return "pre_call" if set(index) <= PRE_CALL_FIELDS else "post_call"
        return "unknown:none"

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        body = load_json(request.body, expect=dict)
        index = _index(body)
        webhook_kind = self._declared_kind(request) or self._inferred_kind(body, index)
        kind = WEBHOOK_KINDS.get(webhook_kind) or (
            webhook_kind if webhook_kind.startswith("unknown:") else f"unknown:{webhook_kind}"
        )
        resource_id = _get(index, "resource_id", "id")
        if not resource_id and not kind.startswith("unknown:"):
            raise MalformedPayload("resource_id is required")
        # An unknown body without an id is still stored (then ignored); its bytes are its identity.
        resource_id = resource_id or "sha256-" + hashlib.sha256(request.body).hexdigest()[:32]
        key = f"{resource_id}:{webhook_kind.removeprefix('unknown:')}"
        if webhook_kind == "call_modified" and index.get("changes"):
            changes = json.dumps(index["changes"], sort_keys=True, default=str).encode()
            key += ":" + hashlib.sha256(changes).hexdigest()[:16]
        return [
            ParsedEvent(
                idempotency_key=key,
                kind=kind,
                payload=body,
                summary=self._summary(webhook_kind, index),
                occurred_at=parse_iso(_get(index, "start_time", "submitted_at", "timestamp", "created_at")),
            )
        ]

    def _summary(self, webhook_kind: str, index: dict[str, Any]) -> str:
        if webhook_kind.startswith(("text_message", "unknown:text")):
            content = index.get("content")
            return (
                f"CallRail {webhook_kind} from {mask_phone(_get(index, 'source_number'))}, "
                f"{len(content) if isinstance(content, str) else 0} chars"
            )
        if webhook_kind == "form_submission":
            fields = _form_fields(index)
            email = _get(index, "customer_email", "email") or _form_value(fields, include=("email",))
            phone = _get(index, "customer_phone_number") or _form_value(fields, include=("phone", "tel"))
            return f"CallRail form_submission from {mask_phone(phone) if phone else mask_email(email)}"
        answered = _bool(index.get("answered"))
        state = "answered" if answered else "missed" if answered is False else "call"
        return (
            f"CallRail {webhook_kind}: {state} "
            f"{_get(index, 'direction') or 'inbound'} call from "
            f"{mask_phone(_get(index, 'customer_number', 'customer_phone_number', 'caller_number'))}, "
            f"{_int(index.get('duration')) or 0} s"
        )

    # --- normalize ------------------------------------------------------------------------

    def normalize(self, raw) -> list[Normalized]:
        payload = raw.payload if isinstance(raw.payload, dict) else {}
        index = _index(payload)
        occurred_at = raw.occurred_at or raw.received_at or timezone.now()
        if raw.kind == "call.post":
            return self._post_call(index, occurred_at)
        if raw.kind == "text.received":
            return self._text_received(index, occurred_at)
        if raw.kind == "form.submitted":
            return self._form(index, occurred_at)
        # call.pre, call.routing_complete: the post-call for the same call is the one that counts,
        # so a call never makes two leads. call.modified: later tags/notes/transcripts of a call we
        # already have; stored for the record — #4/#6 may read its `changes` (e.g. a "booked"
        # tag) later. text.sent: our client's own outbound text, not a lead signal. Unknown kinds
        # are stored and ignored.
        return []

    def _post_call(self, index: dict[str, Any], occurred_at) -> list[Normalized]:
        direction = _get(index, "direction").lower()
        if direction.startswith("outbound"):
            # The business calling out is neither a missed call nor a new lead, and there is no
            # outbound-call event type yet (the leads consumer records call.completed as inbound).
            return []
        answered = _bool(index.get("answered"))
        call_type = _get(index, "call_type").lower()
        missed = answered is False or call_type in MISSED_CALL_TYPES or _bool(index.get("voicemail")) is True
        phone = _phone(_get(index, "customer_number", "customer_phone_number", "caller_number"))
        duration = _int(index.get("duration")) or 0
        source = _get(index, "source_name", "source")
        summary = f"{'Missed call' if missed else 'Call'}{f' ({source})' if source else ''}, {duration} s"
        signal = None
        if phone:  # a withheld number matches nobody: record the call, make no lead
            signal = LeadSignal(
                source="missed_call" if missed else "phone_call",
                phone=phone,
                full_name=_name(_get(index, "customer_name")),
                city=_get(index, "customer_city"),
                state_region=_get(index, "customer_state"),
                source_detail=f"CallRail {source}"[:200] if source else "CallRail",
                attribution=_attribution(index),
                occurred_at=occurred_at,
                summary=f"{summary} via CallRail",
            )
        return [
            Normalized(
                event_type="call.missed" if missed else "call.completed",
                occurred_at=occurred_at,
                data={
                    "provider_id": _get(index, "resource_id", "id"),
                    "phone": phone,
                    "summary": summary,
                    "duration": duration,
                    "call_type": call_type,
                    "answered": answered,
                    "voicemail": _bool(index.get("voicemail")),
                    "tracking_number": _get(index, "tracking_phone_number", "tracking_number"),
                    "source": source,
                },
                signal=signal,
            )
        ]

    def _text_received(self, index: dict[str, Any], occurred_at) -> list[Normalized]:
        phone = _phone(_get(index, "source_number", "customer_phone_number"))
        content = index.get("content") if isinstance(index.get("content"), str) else ""
        summary = f"Text message via CallRail, {len(content)} chars"
        signal = None
        if phone:
            signal = LeadSignal(
                source="sms",
                phone=phone,
                full_name=_name(_get(index, "customer_name")),
                source_detail="CallRail text",
                attribution={"tracking_number": _get(index, "destination_number", "tracking_phone_number")},
                occurred_at=occurred_at,
                summary=summary,
            )
        return [
            Normalized(
                event_type="sms.received",
                occurred_at=occurred_at,
                data={
                    "provider_id": _get(index, "resource_id", "id"),
                    "phone": phone,
                    "body": content,
                    "summary": summary,
                    "channel": "sms",
                },
                signal=signal,
            )
        ]

    def _form(self, index: dict[str, Any], occurred_at) -> list[Normalized]:
        fields = _form_fields(index)
        phone = _get(index, "customer_phone_number", "phone_number") or _form_value(
            fields, include=("phone", "tel", "mobile", "cell")
        )
        email = _get(index, "customer_email", "email") or _form_value(fields, include=("email", "e-mail"))
        first = _form_value(fields, include=("first",), exclude=("email",))
        last = _form_value(fields, include=("last", "surname"), exclude=("email",))
        full = _get(index, "customer_name") or _form_value(
            fields, include=("name",), exclude=("first", "last", "company", "business", "email", "user")
        )
        form_name = _get(index, "form_name") or _get(index, "form_url")
        summary = f"CallRail form{f': {form_name}' if form_name else ''}"
        signal = LeadSignal(
            source="web_form",
            phone=phone,
            email=email,
            first_name=first,
            last_name=last,
            full_name=full,
            source_detail=form_name[:200],
            service_type=_form_value(fields, include=("service",)),
            postal_code=_form_value(fields, include=("zip", "postal")),
            city=_form_value(fields, include=("city",)),
            attribution=_attribution(index),
            occurred_at=occurred_at,
            summary=summary[:300],
        )
        return [
            Normalized(
                event_type="lead.captured",
                occurred_at=occurred_at,
                data={
                    "provider_id": _get(index, "resource_id", "id"),
                    "form": form_name,
                    "has_message": bool(_form_value(fields, include=("message", "comment", "details"))),
                    "summary": summary,
                },
                signal=signal,
            )
        ]
