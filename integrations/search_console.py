"""Google Search Console as a metric source: client, pull service, due-ness, card selector.

    connection (provider "search_console", config {"site_url": "sc-domain:acme.example"})
      → SearchConsoleClient.query(): POST {api_base}/sites/{siteUrl}/searchAnalytics/query,
        dimensions date/page/query, startRow paging (rowLimit ≤ 25,000) until a short page
      → one raw event per row (raw_events_store, receipt None), one transaction per page
      → the drain normalizes each into `metric.observed` (adapter: providers/search_console.py)
      → search_console_metrics(): totals + per-date series for metric cards

See docs/search_console.md for the decisions (window, revisions, errors, freshness).
"""

from __future__ import annotations

import base64
import datetime
import json
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from zartsalgo.errors import ApplicationError

from .models import Connection, CredentialMissing, EventType, NormalizedEvent, SyncError
from .providers import get_adapter
from .providers.search_console import DIMENSIONS, SearchConsoleAdapter
from .services import connection_set_status, raw_events_store, retry_delay

logger = logging.getLogger(__name__)

PROVIDER = "search_console"
ACTOR = "system:search_console"
DEFAULT_API_BASE_URL = "https://www.googleapis.com/webmasters/v3"
SCOPE = "https://www.googleapis.com/auth/webmasters.readonly"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
MAX_ROW_LIMIT = 25_000  # Google's cap per request
# A server that keeps answering full pages would page forever: stop there (5M rows at the cap).
MAX_PAGES = 200


# --- errors -----------------------------------------------------------------------------------


class SearchConsoleError(Exception):
    """A pull failed. `retryable`: try again later (429, 5xx, timeouts); otherwise a person has
    to act (credentials, permissions, a body we cannot read)."""

    retryable = False
    auth = False

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.message = message
        self.status = status


class SearchConsoleAuthError(SearchConsoleError):
    """401/403, or no usable credential: the connection goes to `error` until someone fixes it."""

    auth = True


class SearchConsoleUnavailable(SearchConsoleError):
    retryable = True


class SearchConsoleMalformed(SearchConsoleError, ValueError):
    """The answer is not the JSON we expect. Retried (a proxy's error page is usually brief);
    nothing of that page is stored."""

    retryable = True


class SearchConsolePullError(ApplicationError):
    """Raised by search_console_pull after the failure is recorded (SyncError, connection)."""

    code = "search_console_pull_failed"

    def __init__(self, message: str, *, cause: SearchConsoleError, sync_error: SyncError | None):
        super().__init__(message, {"retryable": cause.retryable, "status": cause.status})
        self.cause = cause
        self.sync_error = sync_error


# --- the HTTP client --------------------------------------------------------------------------


def _timeout() -> float:
    return float(settings.SEARCH_CONSOLE_TIMEOUT_SECONDS)


def _post(url: str, **kwargs) -> requests.Response:
    try:
        response = requests.post(url, timeout=_timeout(), allow_redirects=False, **kwargs)
    except requests.Timeout as exc:
        raise SearchConsoleUnavailable(f"Timed out after {_timeout():g} s ({exc.__class__.__name__})") from exc
    except requests.RequestException as exc:
        raise SearchConsoleUnavailable(f"Could not reach Google: {exc.__class__.__name__}: {exc}"[:500]) from exc
    status = response.status_code
    if status in (401, 403):
        raise SearchConsoleAuthError(f"HTTP {status}: {_google_message(response)}", status=status)
    if status == 429 or status >= 500 or status == 408:
        raise SearchConsoleUnavailable(f"HTTP {status}: {_google_message(response)}", status=status)
    if status != 200:
        # 400 (bad dates, unknown dimension), 404 (no such site for this account): retrying the
        # same request will not help; it is a configuration problem for a person.
        raise SearchConsoleError(f"HTTP {status}: {_google_message(response)}", status=status)
    return response


def _google_message(response: requests.Response) -> str:
    """Google's {"error": {"code", "message", "status"}} message, or the start of the body."""
    try:
        error = response.json().get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])[:300]
    except (ValueError, AttributeError):
        pass
    return response.text[:300]


def _json_object(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise SearchConsoleMalformed(
            f"{what}: the body is not JSON ({exc})"[:500], status=response.status_code
        ) from exc
    if not isinstance(body, dict):
        raise SearchConsoleMalformed(f"{what}: the body is not a JSON object", status=response.status_code)
    return body


# Access tokens minted from a service-account key, per key file, until a minute before expiry.
_TOKENS: dict[str, tuple[float, str]] = {}
_TOKENS_LOCK = threading.Lock()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def service_account_token(key_file: str) -> str:
    """An OAuth access token for a service account (JWT-bearer grant, RFC 7523, signed RS256).

    The key file is Google's JSON key ({"client_email", "private_key", "private_key_id",
    "token_uri"}); the service account must be added as a user of the Search Console property.
    """
    with _TOKENS_LOCK:
        cached = _TOKENS.get(key_file)
        if cached and cached[0] > time.time():
            return cached[1]
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import padding, rsa

    try:
        with open(key_file, encoding="utf-8") as handle:
            key = json.load(handle)
        client_email, token_uri = key["client_email"], key["token_uri"]
        private_key = serialization.load_pem_private_key(key["private_key"].encode(), password=None)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise SearchConsoleAuthError(
            f"Service-account key file unusable: {exc.__class__.__name__}: {exc}"[:500]
        ) from exc
    if not isinstance(private_key, rsa.RSAPrivateKey):
        raise SearchConsoleAuthError("Service-account key is not an RSA key")
    now = int(time.time())
    header = {"alg": "RS256", "typ": "JWT", **({"kid": key["private_key_id"]} if key.get("private_key_id") else {})}
    claims = {"iss": client_email, "scope": SCOPE, "aud": token_uri, "iat": now, "exp": now + 3600}
    signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
    signature = private_key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    try:
        response = _post(
            token_uri, data={"grant_type": JWT_BEARER_GRANT, "assertion": f"{signing_input}.{_b64url(signature)}"}
        )
    except SearchConsoleError as exc:
        if exc.retryable:
            raise
        # Google answers a refused grant with 400 invalid_grant / unauthorized_client.
        raise SearchConsoleAuthError(
            f"Token endpoint refused the service account: {exc.message}", status=exc.status
        ) from exc
    body = _json_object(response, "token endpoint")
    token = body.get("access_token")
    if not isinstance(token, str) or not token:
        raise SearchConsoleMalformed("token endpoint: no access_token in the answer")
    expires_in = body.get("expires_in") if isinstance(body.get("expires_in"), int) else 3600
    with _TOKENS_LOCK:
        _TOKENS[key_file] = (time.time() + max(expires_in - 60, 0), token)
    return token


def service_account_tokens_forget() -> None:
    with _TOKENS_LOCK:
        _TOKENS.clear()


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    start_row: int
    aggregation: str


class SearchConsoleClient:
    """`searchAnalytics.query` for one property. Tests point `api_base_url` at a local fake
    server; only that HTTP peer is fake."""

    def __init__(self, *, site_url: str, token: str, api_base_url: str = DEFAULT_API_BASE_URL):
        self.site_url = site_url
        self.token = token
        self.api_base_url = api_base_url.rstrip("/")

    @classmethod
    def for_connection(cls, connection: Connection) -> SearchConsoleClient:
        config = connection.config or {}
        site_url = str(config.get("site_url") or "").strip()
        if not site_url:
            raise SearchConsoleError('The connection has no config "site_url" (e.g. "sc-domain:example.com").')
        credentials = connection.credentials or {}
        try:
            if "access_token" in credentials:
                token = connection.secret("access_token")
            elif "service_account_file" in credentials:
                token = service_account_token(connection.secret("service_account_file"))
            else:
                raise SearchConsoleAuthError(
                    'The connection has no credential: set "access_token" or "service_account_file" (env:NAME).'
                )
        except CredentialMissing as exc:
            raise SearchConsoleAuthError(str(exc)) from exc
        return cls(site_url=site_url, token=token, api_base_url=str(config.get("api_base_url") or DEFAULT_API_BASE_URL))

    @property
    def query_url(self) -> str:
        # The property is one path segment: "sc-domain:x.com" and "https://x.com/" are encoded
        # whole (":" and "/" included), as Google's own clients do.
        return f"{self.api_base_url}/sites/{quote(self.site_url, safe='')}/searchAnalytics/query"

    def query_page(
        self,
        *,
        start: datetime.date,
        end: datetime.date,
        start_row: int,
        row_limit: int,
        data_state: str,
        search_type: str,
    ) -> Page:
        body = {
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "dimensions": list(DIMENSIONS),
            "type": search_type,
            "dataState": data_state,
            "rowLimit": row_limit,
            "startRow": start_row,
        }
        response = _post(self.query_url, json=body, headers={"Authorization": f"Bearer {self.token}"})
        answer = _json_object(response, f"searchAnalytics.query startRow={start_row}")
        rows = answer.get("rows", [])  # no "rows" at all when the window has no data
        if not isinstance(rows, list):
            raise SearchConsoleMalformed(f"searchAnalytics.query startRow={start_row}: 'rows' is not a list")
        return Page(rows=rows, start_row=start_row, aggregation=str(answer.get("responseAggregationType") or ""))

    def query(
        self,
        *,
        start: datetime.date,
        end: datetime.date,
        row_limit: int = MAX_ROW_LIMIT,
        data_state: str = "final",
        search_type: str = "web",
    ) -> Iterator[Page]:
        """Pages of rows, startRow 0, rowLimit, 2·rowLimit… until a page comes back short."""
        row_limit = max(1, min(int(row_limit), MAX_ROW_LIMIT))
        start_row = 0
        for _ in range(MAX_PAGES):
            page = self.query_page(
                start=start,
                end=end,
                start_row=start_row,
                row_limit=row_limit,
                data_state=data_state,
                search_type=search_type,
            )
            yield page
            if len(page.rows) < row_limit:
                return
            start_row += row_limit
        logger.warning("Search Console %s: stopped after %s full pages", self.site_url, MAX_PAGES)


# --- the pull ---------------------------------------------------------------------------------


@dataclass
class PullResult:
    connection_id: int
    start: datetime.date
    end: datetime.date
    rows_fetched: int = 0
    new_raw_events: int = 0
    duplicates: int = 0
    pages_requested: int = 0
    dry_run: bool = False
    warnings: list[str] = field(default_factory=list)


def default_window(today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    """The last SEARCH_CONSOLE_PULL_DAYS days, ending SEARCH_CONSOLE_LAG_DAYS ago.

    Search Console data lags two to three days (and its days are Pacific-time days): asking
    for yesterday returns nothing or partial numbers. Ending the window 3 days back reads
    settled ("final") data; pulling a week each time re-reads days already stored, which costs
    nothing (same keys) and picks up any late revision.
    """
    today = today or timezone.now().date()
    end = today - datetime.timedelta(days=settings.SEARCH_CONSOLE_LAG_DAYS)
    return end - datetime.timedelta(days=settings.SEARCH_CONSOLE_PULL_DAYS - 1), end


def search_console_pull(
    *,
    connection: Connection,
    start: datetime.date | None = None,
    end: datetime.date | None = None,
    dry_run: bool = False,
) -> PullResult:
    """Pull the connection's rows for [start, end] (dates inclusive) into raw events.

    Commits once per page (that page's raw events, all or none); the keys make a re-pull store
    only what is missing or revised, so a pull that fails on page 3 leaves pages 1 and 2 stored
    and complete, and the retry fills in the rest. Freshness (last_event_at) moves only when
    every page came back. On failure the error is recorded (SyncError stage "sync"; 401/403
    also put the connection in `error`) and SearchConsolePullError raised. A dry run requests
    every page and writes nothing at all.
    """
    connection = Connection.objects.select_related("client").get(pk=connection.pk)
    if connection.provider != PROVIDER:
        raise ApplicationError(f"Connection {connection.pk} is {connection.provider}, not {PROVIDER}.")
    if connection.status == Connection.Status.PAUSED:
        raise ApplicationError(f"Connection {connection.pk} is paused: resume it to pull.")
    if start is None or end is None:
        default_start, default_end = default_window()
        start, end = start or default_start, end or default_end
    if start > end:
        raise ApplicationError(f"Start {start} is after end {end}.")
    adapter = get_adapter(PROVIDER)
    assert isinstance(adapter, SearchConsoleAdapter)
    config = connection.config or {}
    data_state = str(config.get("data_state") or "final")
    search_type = str(config.get("search_type") or "web")
    result = PullResult(connection_id=connection.pk, start=start, end=end, dry_run=dry_run)
    try:
        client = SearchConsoleClient.for_connection(connection)
        pages = client.query(
            start=start,
            end=end,
            row_limit=int(config.get("row_limit") or settings.SEARCH_CONSOLE_ROW_LIMIT),
            data_state=data_state,
            search_type=search_type,
        )
        for page in pages:
            result.pages_requested += 1
            try:
                # Every row of the page is read before anything is stored: one bad row fails
                # the page, and nothing of it is written.
                events = [
                    adapter.row_event(site=client.site_url, data_state=data_state, search_type=search_type, row=row)
                    for row in page.rows
                ]
            except ValueError as exc:
                raise SearchConsoleMalformed(f"searchAnalytics.query startRow={page.start_row}: {exc}"[:500]) from exc
            result.rows_fetched += len(events)
            if dry_run or not events:
                continue
            with transaction.atomic():
                # Held (not processed) while the connection is uncertain, like webhook rows.
                created, duplicates = raw_events_store(
                    connection=connection, receipt=None, events=events, hold=connection.holds_processing
                )
            result.new_raw_events += len(created)
            result.duplicates += duplicates
        if result.pages_requested >= MAX_PAGES and result.rows_fetched:
            result.warnings.append(f"Stopped after {MAX_PAGES} pages; narrow the window to read the rest.")
    except SearchConsoleError as exc:
        if dry_run:
            raise SearchConsolePullError(exc.message, cause=exc, sync_error=None) from exc
        sync_error = _record_failure(connection, exc, window=(start, end))
        raise SearchConsolePullError(exc.message, cause=exc, sync_error=sync_error) from exc
    if not dry_run:
        _record_success(connection)
    return result


def _open_errors(connection_id: int):
    return _open_errors_for([connection_id])


def _record_failure(connection: Connection, exc: SearchConsoleError, *, window) -> SyncError:
    """One open sync error per connection, updated on each consecutive failure (attempt + 1):
    failure review shows one row per broken connection, not one per pull."""
    now = timezone.now()
    message = f"Search Console pull {window[0]}..{window[1]} failed: {exc.message}"[:2000]
    with transaction.atomic():
        error = _open_errors(connection.pk).select_for_update().order_by("-pk").first()
        attempt = (error.attempt + 1) if error is not None else 1
        delay = retry_delay(attempt) if exc.retryable else None
        fields = {
            "error": message,
            "attempt": attempt,
            "next_retry_at": now + delay if delay else None,
            "state": SyncError.State.RETRYING if delay else SyncError.State.DEAD,
        }
        if error is None:
            error = SyncError.objects.create(
                connection_id=connection.pk, client_id=connection.client_id, stage=SyncError.Stage.SYNC, **fields
            )
        else:
            for name, value in fields.items():
                setattr(error, name, value)
            error.save()
        Connection.objects.filter(pk=connection.pk).update(last_error_at=now, last_error=message)
    if exc.auth and connection.status != Connection.Status.ERROR:
        # The token expired, was revoked, or the account lost access to the property: pulling
        # again will not help until someone fixes it. `error` (not `uncertain`): nothing inbound
        # is held for a pulled source; the beat stops pulling it and the admin shows why.
        connection_set_status(
            connection=connection,
            status=Connection.Status.ERROR,
            actor=ACTOR,
            reason=f"Search Console refused the credential: {exc.message}"[:500],
        )
    logger.warning("Search Console pull for connection %s failed (attempt %s): %s", connection.pk, attempt, message)
    return error


def _record_success(connection: Connection) -> None:
    now = timezone.now()
    # Outside the page transactions: every raw insert holds a lock on the connection row (FK).
    Connection.objects.filter(pk=connection.pk).update(last_event_at=now, stale_since=None)
    _open_errors(connection.pk).update(
        state=SyncError.State.RESOLVED, resolved_at=now, resolution="A later pull succeeded", next_retry_at=None
    )
    if connection.status == Connection.Status.ERROR:
        connection_set_status(
            connection=connection,
            status=Connection.Status.CONNECTED,
            actor=ACTOR,
            reason="Search Console pull succeeded",
        )


def search_console_connections_due(*, now: datetime.datetime | None = None) -> list[int]:
    """Ids of connected search_console connections whose pull is due: never pulled, last pulled
    more than SEARCH_CONSOLE_PULL_EVERY_HOURS ago, or a failed pull whose retry time has come.
    A connection backing off after a failure (next_retry_at ahead) waits; one whose retries ran
    out is tried again at the normal cadence, counted from its last failure."""
    now = now or timezone.now()
    every = datetime.timedelta(hours=settings.SEARCH_CONSOLE_PULL_EVERY_HOURS)
    connections = list(
        Connection.objects.filter(provider=PROVIDER, status=Connection.Status.CONNECTED)
        .order_by("pk")
        .values_list("pk", "last_event_at")
    )
    errors: dict[int, SyncError] = {}
    for error in _open_errors_for([pk for pk, _ in connections]).order_by("pk"):
        errors[error.connection_id] = error  # the newest open one wins
    due = []
    for pk, last_pulled in connections:
        error = errors.get(pk)
        if error is not None and error.state == SyncError.State.RETRYING:
            ready = error.next_retry_at is None or error.next_retry_at <= now
        elif error is not None:
            ready = error.updated_at <= now - every
        else:
            ready = last_pulled is None or last_pulled <= now - every
        if ready:
            due.append(pk)
    return due


def _open_errors_for(connection_ids: list[int]):
    return SyncError.objects.filter(
        connection_id__in=connection_ids,
        stage=SyncError.Stage.SYNC,
        raw_event__isnull=True,
        crm_handoff__isnull=True,
        state__in=[SyncError.State.RETRYING, SyncError.State.DEAD],
    )


# --- the selector for metric cards ------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def search_console_metrics(*, client, start: datetime.date, end: datetime.date) -> dict[str, Any]:
    """Search Console totals for the client's dates start..end (inclusive), for metric cards.

    {"source", "start", "end", "clicks", "impressions",
     "ctr" (clicks / impressions, so weighted by impressions; None without impressions),
     "position" (average position weighted by impressions; None without impressions),
     "rows" (distinct date/page/query rows counted),
     "series": [{"date", "clicks", "impressions", "ctr", "position"}, …] (dates with data only),
     "connected", "stale", "last_pulled_at"}

    Reads metric.observed events of source search_console through the (client, event_type,
    occurred_at) index, so its cost follows the client's rows in the period. Aggregated here
    rather than in SQL: only the newest observation of each row identity counts (a revision
    replaces its earlier numbers), and JSON paths differ between MariaDB and SQLite.
    Totals are sums over date/page/query rows: Google leaves out rare (anonymized) queries from
    such rows, so they are lower than the property totals Search Console's own chart shows.
    """
    lower = datetime.datetime.combine(start, datetime.time.min, tzinfo=datetime.UTC)
    upper = datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min, tzinfo=datetime.UTC)
    latest: dict[str, tuple[int, dict[str, Any]]] = {}
    events = NormalizedEvent.objects.filter(
        client=client, event_type=EventType.METRIC_OBSERVED, occurred_at__gte=lower, occurred_at__lt=upper
    ).values_list("pk", "data")
    for pk, data in events.iterator(chunk_size=2000):
        if not isinstance(data, dict) or data.get("source") != PROVIDER:
            continue
        identity = str(data.get("row") or "")
        previous = latest.get(identity)
        if previous is None or pk > previous[0]:
            latest[identity] = (pk, data)
    by_date: dict[str, list[float]] = {}
    for _, data in latest.values():
        impressions = float(data.get("impressions") or 0)
        totals = by_date.setdefault(str(data.get("date")), [0.0, 0.0, 0.0])
        totals[0] += float(data.get("clicks") or 0)
        totals[1] += impressions
        totals[2] += float(data.get("position") or 0) * impressions
    series = [
        {
            "date": date,
            "clicks": int(clicks),
            "impressions": int(impressions),
            "ctr": _ratio(clicks, impressions),
            "position": _ratio(weighted, impressions),
        }
        for date, (clicks, impressions, weighted) in sorted(by_date.items())
    ]
    clicks = sum(t[0] for t in by_date.values())
    impressions = sum(t[1] for t in by_date.values())
    weighted = sum(t[2] for t in by_date.values())
    connections = list(
        Connection.objects.filter(client=client, provider=PROVIDER).exclude(status=Connection.Status.PAUSED)
    )
    live = [c for c in connections if c.status in (Connection.Status.CONNECTED, Connection.Status.UNCERTAIN)]
    pulled = [c.last_event_at for c in connections if c.last_event_at]
    return {
        "source": PROVIDER,
        "start": start,
        "end": end,
        "clicks": int(clicks),
        "impressions": int(impressions),
        "ctr": _ratio(clicks, impressions),
        "position": _ratio(weighted, impressions),
        "rows": len(latest),
        "series": series,
        "connected": bool(live),
        # Stale when nothing pulls (no live connection: none, or in error) or any live one
        # is past its expected freshness: the card says "data may be out of date".
        "stale": not live or any(c.is_stale or c.stale_since is not None for c in live),
        # The oldest of the last successful pulls: the card's numbers are at least this fresh.
        "last_pulled_at": min(pulled) if pulled else None,
    }


__all__ = [
    "PullResult",
    "SearchConsoleClient",
    "SearchConsoleError",
    "SearchConsolePullError",
    "default_window",
    "search_console_connections_due",
    "search_console_metrics",
    "search_console_pull",
    "service_account_token",
]
