"""A local stand-in for Google's Search Console API (searchAnalytics.query) and OAuth token URI.

A real HTTP server on a thread: the code under test sends real requests over a real socket, so
the URL encoding of the property, the Bearer header, the JSON body and paging are checked the
way Google would check them. What it does:

- POST /webmasters/v3/sites/{siteUrl, percent-encoded as ONE path segment}/searchAnalytics/query
  401 without the expected `Authorization: Bearer <token>`; 403 for a property this token may
  not read (any other site, or a site whose ":" or "/" was left unencoded); 400 for a body
  Google would refuse (dates, dimensions, rowLimit 1..25000, startRow, type, dataState);
  else the rows in [startDate, endDate] ordered by clicks (as Google does), keys in the order of
  the requested dimensions, `rowLimit` of them from `startRow`. No "rows" key when there are none.
- POST /token: the JWT-bearer grant; checks the RS256 signature against `public_key`, the
  audience and the scope, answers {"access_token": token, "expires_in": 3599}.
- `fail_next(status)` / `malformed_next()` / `delay_next(seconds)`: the next request fails so.

Usage::

    def test_x(fake_search_console):
        fake_search_console.add_row("2026-11-20", "https://acme.example/", "plumber", clicks=3, impressions=40)
        ...  # connection.config["api_base_url"] = fake_search_console.api_base_url
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple
from urllib.parse import parse_qs, quote

import pytest

SITE = "sc-domain:acme.example"
TOKEN = "ya29.test-access-token"
DIMENSIONS = {"date", "page", "query", "country", "device", "searchAppearance"}


class Recorded(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Planned:
    status: int = 200
    raw: bytes | None = None  # sent as is (malformed JSON)
    json_body: Any = None
    delay: float = 0.0


def _error(status: int, message: str, reason: str) -> dict:
    return {"error": {"code": status, "message": message, "status": reason}}


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Recorded("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
        with fake.lock:
            fake.requests.append(request)
            planned = fake.queue.popleft() if fake.queue else None
        if planned and planned.delay:
            fake.closing.wait(planned.delay)
        if planned and planned.status != 200:
            self._send(planned.status, planned.json_body or _error(planned.status, "planned failure", "PLANNED"))
            return
        if planned and planned.raw is not None:
            self._send(200, raw=planned.raw)
            return
        if self.path == "/token":
            status, answer = fake.token_answer(request)
        else:
            status, answer = fake.query_answer(request)
        self._send(status, answer)

    def _send(self, status: int, json_body: Any = None, *, raw: bytes | None = None) -> None:
        payload = raw if raw is not None else json.dumps(json_body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=UTF-8")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeSearchConsole

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that timed out makes our late write fail: expected."""


class FakeSearchConsole:
    def __init__(self, *, site: str = SITE, token: str = TOKEN) -> None:
        self.site = site
        self.token = token
        self.rows: list[dict[str, Any]] = []  # {"date", "page", "query", "clicks", ...}
        self.requests: list[Recorded] = []
        self.queue: deque[_Planned] = deque()
        self.lock = threading.Lock()
        self.closing = threading.Event()
        self.public_key = None  # cryptography RSA public key, for the token endpoint
        self.token_requests = 0
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    # --- set up --------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def api_base_url(self) -> str:
        return f"{self.url}/webmasters/v3"

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def start(self) -> FakeSearchConsole:
        self._thread.start()
        return self

    def close(self) -> None:
        self.closing.set()
        self._server.shutdown()
        self._thread.join(timeout=5)
        self._server.server_close()

    def add_row(self, date: str, page: str, query: str, *, clicks: float, impressions: float, position: float) -> None:
        with self.lock:
            self.rows = [r for r in self.rows if (r["date"], r["page"], r["query"]) != (date, page, query)]
            self.rows.append(
                {
                    "date": date,
                    "page": page,
                    "query": query,
                    "clicks": clicks,
                    "impressions": impressions,
                    "ctr": clicks / impressions if impressions else 0.0,
                    "position": position,
                }
            )

    def fail_next(self, status: int, json_body: Any = None) -> None:
        with self.lock:
            self.queue.append(_Planned(status=status, json_body=json_body))

    def malformed_next(self, raw: bytes = b'{"rows": [{"keys": ["2026-') -> None:
        with self.lock:
            self.queue.append(_Planned(raw=raw))

    def delay_next(self, seconds: float) -> None:
        with self.lock:
            self.queue.append(_Planned(delay=seconds))

    @property
    def queries(self) -> list[Recorded]:
        return [r for r in self.requests if r.path != "/token"]

    # --- answers ---------------------------------------------------------------------------------

    def query_answer(self, request: Recorded) -> tuple[int, Any]:
        if request.headers.get("authorization") != f"Bearer {self.token}":
            return 401, _error(
                401,
                "Request is missing required authentication credential. Expected OAuth 2 access token.",
                "UNAUTHENTICATED",
            )
        prefix, suffix = "/webmasters/v3/sites/", "/searchAnalytics/query"
        if not (request.path.startswith(prefix) and request.path.endswith(suffix)):
            return 404, _error(404, f"Not found: {request.path}", "NOT_FOUND")
        segment = request.path[len(prefix) : -len(suffix)]
        if segment != quote(self.site, safe=""):
            return 403, _error(
                403, f"User does not have sufficient permission for site '{segment}'.", "PERMISSION_DENIED"
            )
        try:
            body = json.loads(request.body)
        except ValueError:
            return 400, _error(400, "Invalid JSON payload received.", "INVALID_ARGUMENT")
        problem = self._check_body(body)
        if problem:
            return 400, _error(400, problem, "INVALID_ARGUMENT")
        dimensions = body.get("dimensions") or []
        with self.lock:
            rows = [r for r in self.rows if body["startDate"] <= r["date"] <= body["endDate"]]
        rows.sort(key=lambda r: (-r["clicks"], r["date"], r["page"], r["query"]))
        start, limit = body.get("startRow", 0), body.get("rowLimit", 1000)
        chosen = rows[start : start + limit]
        answer: dict[str, Any] = {"responseAggregationType": "byPage"}
        if chosen:
            answer["rows"] = [
                {
                    "keys": [r[d] for d in dimensions],
                    **{m: r[m] for m in ("clicks", "impressions", "ctr", "position")},
                }
                for r in chosen
            ]
        return 200, answer

    @staticmethod
    def _check_body(body: Any) -> str:
        if not isinstance(body, dict):
            return "Body must be an object."
        for name in ("startDate", "endDate"):
            value = body.get(name)
            if not (isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-"):
                return f"{name} must be YYYY-MM-DD."
        if body["startDate"] > body["endDate"]:
            return "startDate must be before or equal to endDate."
        dimensions = body.get("dimensions", [])
        if not isinstance(dimensions, list) or not set(dimensions) <= DIMENSIONS:
            return f"Unknown dimension in {dimensions!r}."
        limit = body.get("rowLimit", 1000)
        if not isinstance(limit, int) or not 1 <= limit <= 25000:
            return "rowLimit must be between 1 and 25000."
        if not isinstance(body.get("startRow", 0), int) or body.get("startRow", 0) < 0:
            return "startRow must be >= 0."
        if body.get("type", "web") not in ("web", "image", "video", "news", "discover", "googleNews"):
            return f"Unknown type {body.get('type')!r}."
        if body.get("dataState", "final") not in ("final", "all", "hourly_all"):
            return f"Unknown dataState {body.get('dataState')!r}."
        return ""

    def token_answer(self, request: Recorded) -> tuple[int, Any]:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        self.token_requests += 1
        form = {k: v[0] for k, v in parse_qs(request.body.decode()).items()}
        refused = {"error": "invalid_grant", "error_description": "Invalid JWT Signature."}
        if form.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer" or self.public_key is None:
            return 400, {"error": "unsupported_grant_type"}
        try:
            header_b64, claims_b64, signature_b64 = form["assertion"].split(".")
            header = json.loads(_b64url_decode(header_b64))
            claims = json.loads(_b64url_decode(claims_b64))
            self.public_key.verify(
                _b64url_decode(signature_b64),
                f"{header_b64}.{claims_b64}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (KeyError, ValueError, InvalidSignature):
            return 400, refused
        if header.get("alg") != "RS256" or claims.get("aud") != self.token_uri:
            return 400, refused
        if "webmasters" not in claims.get("scope", "") or claims.get("exp", 0) <= claims.get("iat", 0):
            return 400, {"error": "invalid_scope"}
        return 200, {"access_token": self.token, "expires_in": 3599, "token_type": "Bearer"}


@pytest.fixture
def fake_search_console() -> Iterator[FakeSearchConsole]:
    server = FakeSearchConsole().start()
    try:
        yield server
    finally:
        with contextlib.suppress(Exception):
            server.close()
