"""A local stand-in for Twilio's and SendGrid's HTTP APIs, so tests can run the providers' real SDKs.

Only the network peer is fake: the SDKs build, sign and send real HTTP requests over a real socket,
and parse real responses. That keeps the tests honest about what the SDKs actually send and which
exceptions they actually raise (the part a mocked SDK would silently get wrong).

Usage::

    def test_x(fake_provider):
        fake_provider.respond(400, {"code": 21211, "message": "Invalid 'To' Phone Number"})
        ...  # point an SDK at fake_provider.url
        method, path, headers, body = fake_provider.requests[0]
"""

from __future__ import annotations

import contextlib
import json
import secrets
import socket
import struct
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal, NamedTuple
from urllib.parse import parse_qs

import pytest
from requests.structures import CaseInsensitiveDict

Drop = Literal["before_response", "mid_body"]


class RecordedRequest(NamedTuple):
    """One request as the server saw it; a tuple, so `method, path, headers, body = req` works."""

    method: str
    path: str
    headers: CaseInsensitiveDict[str]  # header names are case-insensitive on the wire, so here too
    body: bytes

    def form(self) -> dict[str, list[str]]:
        """The body parsed as application/x-www-form-urlencoded (how Twilio's SDK posts)."""
        return parse_qs(self.body.decode(), keep_blank_values=True)

    def json(self) -> Any:
        """The body parsed as JSON (how SendGrid's SDK posts)."""
        return json.loads(self.body)


@dataclass
class _Planned:
    status: int
    json_body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    drop: Drop | None = None


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    # HTTP/1.0: one request per connection, so a dropped or delayed exchange never leaks into the next.
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line; `.requests` is the log tests look at."""

    def _handle(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = RecordedRequest(self.command, self.path, CaseInsensitiveDict(self.headers.items()), body)
        # Recorded before any delay or drop: a test of "timed out" still wants to assert that the
        # request reached the provider, which is exactly why its outcome is unknown.
        plan = fake._take(request)
        if plan.delay:
            # An Event rather than sleep(): close() wakes delayed handlers instead of leaving them behind.
            fake._closing.wait(plan.delay)
        if plan.drop == "before_response":
            self._reset()
            return
        payload = b"" if plan.json_body is None else json.dumps(plan.json_body).encode()
        self.send_response(plan.status)
        headers = {"Content-Type": "application/json", **plan.headers} if payload else dict(plan.headers)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if plan.drop == "mid_body":
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self._reset()
            return
        self.wfile.write(payload)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), like a crashed peer or a load balancer."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeProviderServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout tests) makes our late write fail; that is expected, not news."""


def _twilio_message(path: str, form: dict[str, list[str]]) -> dict[str, Any]:
    """A Message resource shaped like Twilio's 201 answer to POST .../Messages.json."""
    account_sid = path.split("/")[3] if path.count("/") >= 4 else "AC" + "0" * 32
    sid = "SM" + secrets.token_hex(16)
    now = formatdate(usegmt=True)

    def first(name: str) -> str | None:
        return form.get(name, [None])[0]

    uri = f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}"
    return {
        "account_sid": account_sid,
        "api_version": "2010-04-01",
        "body": first("Body"),
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": first("From"),
        "messaging_service_sid": first("MessagingServiceSid"),
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "queued",
        "subresource_uris": {"media": f"{uri}/Media.json"},
        "to": first("To"),
        "uri": f"{uri}.json",
    }


class FakeProviderServer:
    """A threaded HTTP server on 127.0.0.1 answering like Twilio and SendGrid (see module docstring).

    With nothing queued it answers a plausible success for the path hit: Twilio's
    `.../Messages.json` gets 201 with a Message body (`"sid": "SM" + 32 hex`, `"status": "queued"`),
    SendGrid's `/v3/mail/send` gets 202 with an `X-Message-Id` header, anything else 404.
    """

    def __init__(self) -> None:
        self.requests: list[RecordedRequest] = []
        self._queue: deque[_Planned] = deque()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._started = False

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeProviderServer:
        if not self._started:
            self._thread.start()
            self._started = True
        return self

    def respond(
        self,
        status: int,
        json_body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
        *,
        drop: Drop | None = None,
    ) -> None:
        """Queue the answer to the next request (calls queue in order; each answers one request).

        A 2xx without `json_body` gets the path's default success body and headers (given headers
        win), so `respond(201, delay=2)` is "a normal success, but slow". `drop` aborts the
        connection with a RST either before the status line or halfway through the body.
        """
        with self._lock:
            self._queue.append(_Planned(status, json_body, dict(headers or {}), delay, drop))

    def close(self) -> None:
        self._closing.set()
        if self._started:
            self._server.shutdown()
            self._thread.join(timeout=5)
        self._server.server_close()

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _take(self, request: RecordedRequest) -> _Planned:
        with self._lock:
            self.requests.append(request)
            planned = self._queue.popleft() if self._queue else None
        default = self._default(request)
        if planned is None:
            return default
        if 200 <= planned.status < 300 and planned.json_body is None:
            planned.json_body = default.json_body
            planned.headers = {**default.headers, **planned.headers}
        return planned

    @staticmethod
    def _default(request: RecordedRequest) -> _Planned:
        path = request.path.split("?", 1)[0]
        if request.method == "POST" and path.startswith("/2010-04-01/Accounts/") and path.endswith("/Messages.json"):
            return _Planned(201, _twilio_message(path, request.form()))
        if request.method == "POST" and path == "/v3/mail/send":
            # SendGrid's ids are 22 url-safe base64 characters; a 202 has no body.
            return _Planned(202, None, {"X-Message-Id": secrets.token_urlsafe(16)[:22]})
        return _Planned(404, {"code": 20404, "message": f"The requested resource {path} was not found"})


@pytest.fixture
def fake_provider() -> Iterator[FakeProviderServer]:
    """A started FakeProviderServer, closed after the test."""
    server = FakeProviderServer().start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.close()
