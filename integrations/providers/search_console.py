"""Google Search Console: a metric source we pull, never a webhook (docs/search_console.md).

integrations.search_console pulls `searchAnalytics.query` rows (dimensions date, page, query)
and stores one raw event per row, kind "search_analytics.row", whose payload is the row as
Google returned it plus the context needed to read it on its own:

    {"site": "sc-domain:acme.example", "data_state": "final", "search_type": "web",
     "dimensions": ["date", "page", "query"],
     "row": {"keys": ["2026-11-20", "https://acme.example/", "plumber near me"],
             "clicks": 3, "impressions": 120, "ctr": 0.025, "position": 4.2}}

This adapter turns such a row into one `metric.observed` event. Google posts nothing to us: the
connection's webhook URL refuses every delivery (403), like the CSV import and CRM adapters.
"""

from __future__ import annotations

import datetime
import hashlib
import math
from typing import Any

from .base import Forbidden, InboundRequest, MalformedPayload, Normalized, ParsedEvent, ProviderAdapter

ROW_KIND = "search_analytics.row"
DIMENSIONS = ("date", "page", "query")
SOURCE = "search_console"
# Metric values in the idempotency key are rounded so float noise in Google's JSON never makes
# an unchanged row look revised.
_VALUE_DIGITS = 6


def row_identity(*, site: str, date: str, page: str, query: str) -> str:
    """What one row is about, whatever its numbers or data state: the selector keeps the latest
    observation per identity (a revision replaces, never adds)."""
    return hashlib.sha256("\x1f".join((site, date, page, query)).encode()).hexdigest()[:32]


def row_idempotency_key(
    *, site: str, date: str, page: str, query: str, data_state: str, values: tuple[float, ...]
) -> str:
    """sha(site, date, page, query, dataState) + a short hash of the metric values.

    Re-pulling a window whose numbers did not change stores nothing (same key). When Google
    revised a row (fresh "all" data filling in, or "final" arriving after "all"), the values
    part differs, so the revision is a new raw event and a new metric.observed; the selector
    then counts only the newest observation of each row identity.
    """
    base = hashlib.sha256("\x1f".join((site, date, page, query, data_state)).encode()).hexdigest()[:32]
    fingerprint = "|".join(f"{round(float(v), _VALUE_DIGITS):.{_VALUE_DIGITS}f}" for v in values)
    return f"sc:{base}:{hashlib.sha256(fingerprint.encode()).hexdigest()[:12]}"


def _number(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} is not a number: {value!r}")
    return float(value)


def read_row(row: Any) -> dict[str, Any]:
    """Validate one response row (keys in DIMENSIONS order). Raises ValueError saying why."""
    if not isinstance(row, dict):
        raise ValueError("row is not a JSON object")
    keys = row.get("keys")
    if not isinstance(keys, list) or len(keys) != len(DIMENSIONS) or not all(isinstance(k, str) for k in keys):
        raise ValueError(f"row keys must be [date, page, query] strings, got {keys!r}")
    date, page, query = keys
    try:
        datetime.date.fromisoformat(date)
    except ValueError as exc:
        raise ValueError(f"row date {date!r} is not YYYY-MM-DD") from exc
    clicks = _number(row.get("clicks", 0), "clicks")
    impressions = _number(row.get("impressions", 0), "impressions")
    ctr = _number(row.get("ctr", 0), "ctr")
    position = _number(row.get("position", 0), "position")
    if clicks < 0 or impressions < 0:
        raise ValueError("clicks and impressions cannot be negative")
    return {
        "date": date,
        "page": page,
        "query": query,
        "clicks": round(clicks),
        "impressions": round(impressions),
        "ctr": ctr,
        "position": position,
    }


class SearchConsoleAdapter(ProviderAdapter):
    key = "search_console"
    label = "Google Search Console (pulled metrics)"
    content_types = ("application/json",)
    # One of the two: an OAuth access token, or the path of a service-account JSON key file
    # (integrations.search_console mints tokens from it).
    credential_names = ("access_token", "service_account_file")

    def verify(self, request: InboundRequest, connection) -> None:
        # Metrics are pulled on a schedule; the webhook URL every connection has must not become
        # a way to inject numbers into client reports.
        raise Forbidden("Search Console connections are pulled, not posted to")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        # Never reached (verify always refuses).
        raise MalformedPayload("Search Console connections are pulled, not posted to")

    # --- used by integrations.search_console ---------------------------------------------------

    def row_event(self, *, site: str, data_state: str, search_type: str, row: dict[str, Any]) -> ParsedEvent:
        """One raw event for one response row (raises ValueError for a row it cannot read)."""
        values = read_row(row)
        key = row_idempotency_key(
            site=site,
            date=values["date"],
            page=values["page"],
            query=values["query"],
            data_state=data_state,
            values=(values["clicks"], values["impressions"], values["ctr"], values["position"]),
        )
        return ParsedEvent(
            idempotency_key=key,
            kind=ROW_KIND,
            payload={
                "site": site,
                "data_state": data_state,
                "search_type": search_type,
                "dimensions": list(DIMENSIONS),
                "row": row,
            },
            # No query text in the summary: search terms can carry names or addresses.
            summary=(
                f"Search Console {site} {values['date']}: {values['clicks']} clicks, "
                f"{values['impressions']} impressions"
            ),
            occurred_at=occurred_at_for(values["date"]),
        )

    def normalize(self, raw) -> list[Normalized]:
        if raw.kind != ROW_KIND:
            return []
        payload = raw.payload if isinstance(raw.payload, dict) else {}
        site = str(payload.get("site") or "")
        values = read_row(payload.get("row"))  # a stored row that no longer reads is a failure
        data = {
            "source": SOURCE,
            "site": site,
            **values,
            "data_state": str(payload.get("data_state") or ""),
            "row": row_identity(site=site, date=values["date"], page=values["page"], query=values["query"]),
        }
        return [Normalized(event_type="metric.observed", occurred_at=occurred_at_for(values["date"]), data=data)]


def occurred_at_for(date: str) -> datetime.datetime:
    """Noon UTC of the row's date. Search Console days are Pacific-time days; noon UTC keeps the
    same calendar date in every US time zone, so a client's display never shifts it a day, and a
    [start 00:00 UTC, end + 1 day 00:00 UTC) range selects exactly the dates start..end."""
    day = datetime.date.fromisoformat(date)
    return datetime.datetime(day.year, day.month, day.day, 12, tzinfo=datetime.UTC)
