"""A local stand-in for a client's CRM: a Standard Webhooks receiver and HubSpot's contacts batch
upsert, on a real HTTP server on a thread.

Only the network peer is fake. It behaves as a careful real receiver would, because the crash
safety of CRM handoffs rests on that behaviour:
- POST /hooks/lead verifies the Standard Webhooks signature with the real `standardwebhooks`
  library (401 when it does not verify) and dedupes on `webhook-id`, as the spec asks receivers
  to: a repeated id answers the first record's id and creates nothing;
- POST /crm/v3/objects/contacts/batch/upsert checks the Bearer token and upserts each input on
  (idProperty, id): an unknown value creates a contact ("new": true), a known one updates it.

Faults for tests: `fail(n, status)` answers the next n requests with an error without touching
any contact; `hang(seconds)` applies the next request and then sits on the answer (the CRM did
the work, the caller never hears: the "unknown outcome" case); `respond(status, body)` queues
one arbitrary answer. `on_request` (set by a test) runs in the server thread for every request,
before it is applied.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import secrets
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from requests.structures import CaseInsensitiveDict
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.fakes.provider_server import RecordedRequest

WEBHOOK_PATH = "/hooks/lead"
HUBSPOT_UPSERT_PATH = "/crm/v3/objects/contacts/batch/upsert"


@dataclass
class _Plan:
    status: int | None = None  # None: answer as the CRM normally would
    body: Any = None
    delay: float = 0.0
    apply: bool = False  # with a status: apply the request anyway before answering


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(self.command, self.path, CaseInsensitiveDict(self.headers.items()), body)
        status, answer = fake._handle(request)
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: `.requests` is the log tests read."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeCrmServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A caller that timed out (or was killed) makes our late write fail: expected."""


class FakeCrmServer:
    def __init__(self, *, signing_secret: str = "", access_token: str = "") -> None:
        self.signing_secret = signing_secret
        self.access_token = access_token
        self.requests: list[RecordedRequest] = []
        # crm id → {"properties": {...}, "key": webhook-id or (idProperty, value), "writes": n}
        self.contacts: dict[str, dict[str, Any]] = {}
        self.on_request: Callable[[RecordedRequest], None] | None = None
        self._by_key: dict[Any, str] = {}
        self._ids = itertools.count(501)
        self._plans: deque[_Plan] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def webhook_url(self) -> str:
        return self.url + WEBHOOK_PATH

    # --- faults ---------------------------------------------------------------------------------

    def fail(self, times: int = 1, status: int = 503, body: Any = None) -> None:
        with self._lock:
            for _ in range(times):
                self._plans.append(_Plan(status=status, body=body or {"message": "Service Unavailable"}))

    def hang(self, seconds: float) -> None:
        """Apply the next request, then hold the answer for `seconds` (or until close())."""
        with self._lock:
            self._plans.append(_Plan(delay=seconds))

    def respond(self, status: int, body: Any = None) -> None:
        with self._lock:
            self._plans.append(_Plan(status=status, body=body if body is not None else {}))

    def close(self) -> None:
        self._closing.set()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    # --- behaviour ------------------------------------------------------------------------------

    def _handle(self, request: RecordedRequest) -> tuple[int, Any]:
        with self._lock:
            self.requests.append(request)
            plan = self._plans.popleft() if self._plans else _Plan()
        if self.on_request is not None:
            self.on_request(request)
        if plan.status is not None and not plan.apply:
            return plan.status, plan.body
        path = request.path.split("?", 1)[0]
        if path == WEBHOOK_PATH:
            status, answer = self._webhook(request)
        elif path == HUBSPOT_UPSERT_PATH:
            status, answer = self._hubspot_upsert(request)
        else:
            status, answer = 404, {"message": f"No route {path}"}
        if plan.delay:
            self._closing.wait(plan.delay)
        return status, answer

    def _upsert(self, key: Any, properties: dict[str, Any]) -> tuple[str, bool]:
        with self._lock:
            crm_id = self._by_key.get(key)
            if crm_id is None:
                crm_id = str(next(self._ids))
                self._by_key[key] = crm_id
                self.contacts[crm_id] = {"key": key, "properties": dict(properties), "writes": 1}
                return crm_id, True
            self.contacts[crm_id]["properties"].update(properties)
            self.contacts[crm_id]["writes"] += 1
            return crm_id, False

    def _webhook(self, request: RecordedRequest) -> tuple[int, Any]:
        try:
            event = Webhook(self.signing_secret).verify(request.body, dict(request.headers.items()))
        except WebhookVerificationError as exc:
            return 401, {"message": f"Signature: {exc}"}
        msg_id = request.headers["webhook-id"]
        with self._lock:
            known = self._by_key.get(("webhook-id", msg_id))
        if known is not None:
            # Standard Webhooks: the same id is the same message, already processed.
            return 200, {"id": known, "duplicate": True}
        data = event.get("data") or {}
        crm_id, _ = self._upsert(("webhook-id", msg_id), data.get("properties") or {})
        return 200, {"id": crm_id, "duplicate": False}

    def _hubspot_upsert(self, request: RecordedRequest) -> tuple[int, Any]:
        if request.headers.get("Authorization") != f"Bearer {self.access_token}":
            return 401, {
                "status": "error",
                "message": "Authentication credentials not found.",
                "category": "INVALID_AUTHENTICATION",
            }
        try:
            inputs = json.loads(request.body)["inputs"]
        except (ValueError, KeyError, TypeError):
            return 400, {"status": "error", "message": "Invalid input JSON", "category": "VALIDATION_ERROR"}
        started = datetime.now(tz=UTC).isoformat()
        results = []
        for item in inputs:
            if not item.get("idProperty") or not item.get("id"):
                return 400, {
                    "status": "error",
                    "message": "idProperty and id are required for an upsert",
                    "category": "VALIDATION_ERROR",
                }
            properties = item.get("properties") or {}
            crm_id, new = self._upsert((item["idProperty"], item["id"]), properties)
            now = datetime.now(tz=UTC).isoformat()
            results.append(
                {
                    "id": crm_id,
                    "new": new,
                    "archived": False,
                    "createdAt": now,
                    "updatedAt": now,
                    "properties": {k: str(v) for k, v in self.contacts[crm_id]["properties"].items()},
                }
            )
        return 200, {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": datetime.now(tz=UTC).isoformat(),
        }


@contextlib.contextmanager
def running_fake_crm() -> Iterator[FakeCrmServer]:
    """A started FakeCrmServer with fresh secrets (put them in the connection's env variables),
    closed on exit. Test modules wrap it in a `fake_crm` fixture."""
    server = FakeCrmServer(
        signing_secret="whsec_" + base64.b64encode(secrets.token_bytes(24)).decode(),
        access_token="pat-na1-" + secrets.token_hex(16),
    )
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.close()
