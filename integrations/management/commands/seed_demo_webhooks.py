"""Demo deliveries through the real webhook path, so the embedded run shows receipts, raw and
normalized events, a rejected signature, a duplicate and held events in the admin."""

import base64
import datetime
import hashlib
import hmac
import json
import os
import time
import uuid

from django.core.management.base import BaseCommand
from django.db import transaction
from django.urls import reverse

from integrations.models import Connection
from integrations.providers.base import InboundRequest
from integrations.services import connection_create, raw_events_requeue_due, webhook_receive
from leads.models import Client

SECRET_ENV = "DEMO_WEBFORM_SIGNING_SECRET"  # noqa: S105 - the variable name, not a secret
# Demo-only signing secret (also exported by `make run`); never a production value.
DEMO_SECRET = "whsec_" + base64.b64encode(b"zartsalgo-demo-webform-secret-1").decode()

FORMS = [
    {"name": "Carla Mendez", "phone": "(512) 555-0171", "service": "leak repair", "urgency": "water everywhere ASAP"},
    {"name": "DEREK OWENS", "phone": "512.555.0172", "email": "Derek.Owens@Example.com", "service": "Water heater"},
    {"name": "priya shah", "email": "priya.shah@example.org", "service": "drain cleaning", "urgency": "this week"},
    {"name": "Tom Becker", "phone": "+1 512 555 0174", "service": "repiping", "urgency": "no rush"},
]


def _signed(body: bytes, msg_id: str, secret: str) -> dict[str, str]:
    ts = str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    sig = base64.b64encode(hmac.new(key, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()).decode()
    return {"webhook-id": msg_id, "webhook-timestamp": ts, "webhook-signature": f"v1,{sig}"}


class Command(BaseCommand):
    help = "Create a demo web-form connection and send signed deliveries through the real endpoint code."

    def handle(self, *args, **options):
        os.environ.setdefault(SECRET_ENV, DEMO_SECRET)
        client = Client.objects.filter(slug="rapid-rooter").first()
        if client is None:
            self.stdout.write("Run seed_demo first (no rapid-rooter client).")
            return
        if Connection.objects.filter(client=client, provider="webform").exists():
            self.stdout.write("Demo webhooks already exist; nothing changed.")
            return
        connection = connection_create(
            client=client,
            provider="webform",
            reason="Quote form on rapidrooter.example (demo)",
            actor="system:demo",
            credentials={"signing_secret": f"env:{SECRET_ENV}"},
            expected_freshness=datetime.timedelta(hours=12),
        )
        path = reverse("integrations:webhook", args=["webform", connection.webhook_token])
        outcomes = []
        for n, form in enumerate(FORMS):
            body = json.dumps(
                {
                    "type": "quote.requested" if n % 2 else "form.submitted",
                    "form": "Free estimate",
                    "contact": {k: form[k] for k in ("name", "phone", "email") if k in form},
                    "service": form["service"],
                    "urgency": form.get("urgency", ""),
                    "market": "Austin",
                    "consent": {"sms": True, "text": "Text me about my request"},
                    "attribution": {
                        "utm_source": "google",
                        "utm_medium": "cpc",
                        "landing_page": "https://rapidrooter.example/quote",
                    },
                }
            ).encode()
            msg_id = f"msg_demo_{n}"
            outcomes.append(self._send(path, connection, body, _signed(body, msg_id, DEMO_SECRET)))
            if n == 0:  # the form plugin retries: a duplicate, answered 2xx and recorded
                outcomes.append(self._send(path, connection, body, _signed(body, msg_id, DEMO_SECRET)))
        forged = json.dumps({"type": "quote.requested", "contact": {"phone": "5125550199"}}).encode()
        outcomes.append(
            self._send(path, connection, forged, _signed(forged, f"msg_{uuid.uuid4().hex}", "whsec_" + "A" * 40))
        )
        # Anything whose queue message was lost (none in-process) would be picked up here.
        raw_events_requeue_due(stuck_after=datetime.timedelta(seconds=0))
        self.stdout.write(f"Demo web-form connection #{connection.pk}; deliveries: {', '.join(outcomes)}")
        self.stdout.write(f"  webhook URL: http://127.0.0.1:8000{path}")
        self.stdout.write(f"  to post more signed demo forms, start the server with {SECRET_ENV}={DEMO_SECRET}")

    def _send(self, path, connection, body, headers) -> str:
        request = InboundRequest(
            location=f"http://127.0.0.1:8000{path}",
            method="POST",
            headers={k.lower(): v for k, v in headers.items()},
            body=body,
            content_type="application/json",
        )
        with transaction.atomic():
            result = webhook_receive(
                provider="webform", token=connection.webhook_token, request=request, remote_addr="127.0.0.1"
            )
        return f"{result.status} {result.receipt.outcome}"
