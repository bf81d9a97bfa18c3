import base64
import json
import secrets
import time
import uuid

import pytest

from integrations.models import Connection
from integrations.services import connection_create


@pytest.fixture
def make_connection(acme, monkeypatch):
    """A connected connection whose secrets are real values in real env variables."""

    def make(provider: str, client=None, **secrets_by_name) -> Connection:
        credentials = {}
        for name, value in secrets_by_name.items():
            var = f"TEST_{provider.upper()}_{name.upper()}_{uuid.uuid4().hex[:6]}"
            monkeypatch.setenv(var, value)
            credentials[name] = f"env:{var}"
        return connection_create(
            client=client or acme, provider=provider, reason="test", actor="system:test", credentials=credentials
        )

    return make


def webform_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def sign_standard_webhook(secret: str, body: bytes, *, msg_id: str | None = None, timestamp: int | None = None) -> dict:
    """Headers per the Standard Webhooks spec, computed independently of the library under test."""
    import hashlib
    import hmac

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "HTTP_WEBHOOK_ID": msg_id,
        "HTTP_WEBHOOK_TIMESTAMP": str(timestamp),
        "HTTP_WEBHOOK_SIGNATURE": f"v1,{base64.b64encode(signed).decode()}",
    }


def form_body(**overrides) -> bytes:
    body = {
        "type": "quote.requested",
        "form": "Free estimate",
        "submitted_at": "2026-11-20T15:04:05Z",
        "contact": {"name": "MARIA GARCIA", "phone": "(512) 555-0143", "email": "Maria.Garcia@Example.com"},
        "service": "water heater",
        "market": "austin",
        "urgency": "ASAP",
        "consent": {"sms": True, "text": "I agree to receive texts"},
        "attribution": {"utm_source": "google", "gclid": "Cj0KCQ", "landing_page": "https://acme.example/quote"},
    }
    body.update(overrides)
    return json.dumps(body).encode()


@pytest.fixture
def deliver(client, django_capture_on_commit_callbacks):
    """POST like a provider, then run what was enqueued on commit (the in-process Celery path)."""

    def send(
        provider: str, connection, body: bytes, headers: dict | None = None, content_type: str = "application/json"
    ):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                f"/api/webhooks/{provider}/{connection.webhook_token}/",
                data=body,
                content_type=content_type,
                **(headers or {}),
            )

    return send
