"""The small surface every provider adapter implements (after django-anymail's webhooks/base.py).

An adapter never touches the database or the Django request: it gets an `InboundRequest`
(bytes, headers, form) and a `Connection` for secrets and config, and returns plain data. The
receiving view and the pipeline services do the storing, so every adapter is tested the same way.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from leads.services import LeadSignal

if TYPE_CHECKING:
    from integrations.models import Connection, RawEvent


class WebhookError(Exception):
    """Base for answers other than 2xx. `status` is the HTTP status to return."""

    status = 400
    outcome = "rejected_malformed"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SignatureInvalid(WebhookError):
    status = 401
    outcome = "rejected_signature"
    signature = "invalid"


class SignatureMissing(SignatureInvalid):
    signature = "missing"


class Forbidden(SignatureInvalid):
    """Credentials were presented but do not match (HTTP Basic, API keys)."""

    status = 403


class MalformedPayload(WebhookError, ValueError):
    status = 400
    outcome = "rejected_malformed"


class UnsupportedContentType(WebhookError):
    status = 415
    outcome = "rejected_content_type"


@dataclass(frozen=True)
class InboundRequest:
    # The full URL the provider called (scheme, host, path, query), or a function that builds it:
    # only Twilio's and CallRail's adapters read it, and building it is a cost on every delivery.
    location: str | Callable[[], str]
    method: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    content_type: str  # without parameters, lower-cased
    form: dict[str, str] = field(default_factory=dict)  # form-encoded params (last value wins)

    @functools.cached_property
    def url(self) -> str:
        return self.location() if callable(self.location) else self.location

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


@dataclass
class ParsedEvent:
    """One provider event inside a delivery (SendGrid sends many per POST)."""

    idempotency_key: str
    kind: str  # the provider's kind in our spelling, e.g. "sms.inbound", "unknown:foo"
    payload: dict[str, Any]
    summary: str  # redacted: "SMS from +1•••0143, 42 chars" — never a full phone, email or body
    occurred_at: datetime.datetime | None = None


@dataclass
class Normalized:
    """A business event the pipeline stores and hands to the consumers."""

    event_type: str  # integrations.models.EventType value
    occurred_at: datetime.datetime
    data: dict[str, Any] = field(default_factory=dict)  # JSON-safe normalized fields
    signal: LeadSignal | None = None  # who it is about, for the leads consumer to upsert
    key_suffix: str = ""  # distinguishes several normalized events from one raw event


class ProviderAdapter:
    key: ClassVar[str]
    label: ClassVar[str]
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    # Names of the secrets this adapter reads through connection.secret(name).
    credential_names: ClassVar[tuple[str, ...]] = ()

    def verify(self, request: InboundRequest, connection: Connection) -> None:
        """Raise SignatureMissing / SignatureInvalid / Forbidden; return None when authentic.

        May raise integrations.models.CredentialMissing when a secret is not configured."""
        raise NotImplementedError

    def parse(self, request: InboundRequest, connection: Connection) -> list[ParsedEvent]:
        """Split a verified delivery into events. Raise MalformedPayload for bodies it cannot read.
        Unknown kinds are returned with kind "unknown:<name>" (stored, then ignored)."""
        raise NotImplementedError

    def normalize(self, raw: RawEvent) -> list[Normalized]:
        """Turn one stored raw event into business events. [] means "ignored" (e.g. unknown kinds)."""
        raise NotImplementedError

    def response(self, *, accepted: bool) -> tuple[bytes, str]:
        """Body and content type of the 2xx answer."""
        return b'{"ok": true}', "application/json"


# --- helpers adapters share -------------------------------------------------------------------


def load_json(body: bytes, *, expect: type | tuple[type, ...] | None = None) -> Any:
    """The body as JSON, or MalformedPayload saying why (and which shape was expected)."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedPayload(f"Body is not JSON: {exc}") from exc
    if expect is dict and not isinstance(value, dict):
        raise MalformedPayload("Body must be a JSON object")
    if expect is list and not isinstance(value, list):
        raise MalformedPayload("Body must be a JSON array of events")
    return value


def constant_time_equals(a: str | bytes, b: str | bytes) -> bool:
    a = a.encode() if isinstance(a, str) else a
    b = b.encode() if isinstance(b, str) else b
    return hmac.compare_digest(a, b)


def body_sha256(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def mask_phone(value: str) -> str:
    digits = "".join(ch for ch in value or "" if ch.isdigit())
    if len(digits) < 4:
        return "•••"
    prefix = "+" + digits[0] if (value or "").startswith("+") else ""
    return f"{prefix}•••{digits[-4:]}"


def mask_email(value: str) -> str:
    local, _, domain = (value or "").partition("@")
    if not domain:
        return "•••"
    return f"{local[:1]}•••@{domain}"


def from_unix(value: Any) -> datetime.datetime | None:
    try:
        return datetime.datetime.fromtimestamp(int(value), tz=datetime.UTC)
    except (TypeError, ValueError, OverflowError, OSError):
        return None


def parse_iso(value: Any) -> datetime.datetime | None:
    if not value or not isinstance(value, str):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=datetime.UTC)
