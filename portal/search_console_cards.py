"""Draft metric cards from Google Search Console: clicks, impressions, CTR and average position.

    search_console_pull (integrations/search_console.py) → raw events → drain → metric.observed
      → search_console_metrics(client, start, end)        totals of the newest observation per row
      → search_console_cards_compute(…)                    four draft cards, one per metric below

The cards follow metric_cards_compute (portal/services.py) exactly, reusing its pieces: a
baseline over the same number of days before the client joined (None when Search Console has no
rows then, rather than a fake zero), health against that baseline (metric_health), an unpublished
card for the same metric, period and connection refreshed through metric_card_draft (back to
draft when its numbers changed) instead of duplicated, and `metric_card.draft` in the action log
for a new one. `connection` is set on every card, so when pulls stop card_display shows "stale
since …" instead of the number.

Where it runs: `manage.py draft_summaries --cards` (one set per search_console connection of the
client) and the admin's "add metric card" form with a Search Console connection. Not in the pull
itself: the pull stores raw events, and normalization into metric.observed happens afterwards in
the drain (on commit, on another worker in production), so cards computed at the end of a pull
would read the previous pull's numbers; and a 12-hourly pull has no reporting period of its own.
A stale connection needs no recompute either: staleness is read when the card is displayed.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from integrations.models import Connection
from integrations.search_console import PROVIDER, search_console_metrics
from leads.models import Client
from zartsalgo.errors import ApplicationError

from .models import MetricCard
from .services import Actor, baseline_period, metric_card_draft, metric_health

H = MetricCard.Health
U = MetricCard.Unit
SOURCE_LABEL = "Google Search Console"

TENTH = Decimal("0.1")


def _number(value: float | int | None, *, scale: float = 1) -> Decimal | None:
    if value is None:
        return None
    return (Decimal(str(value)) * Decimal(str(scale))).quantize(TENTH)


# key → (label, unit, higher is better, value from search_console_metrics(), meaning for the client)
METRICS: dict[str, tuple[str, str, bool, Callable[[dict[str, Any]], Decimal | None], str]] = {
    "search_clicks": (
        "Clicks from Google Search",
        U.CLICKS,
        True,
        lambda m: _number(m["clicks"]),
        "How many times people clicked through to your site from Google search results "
        "(from tracked queries; Google reports with a delay of two to three days).",
    ),
    "search_impressions": (
        "Impressions in Google Search",
        U.IMPRESSIONS,
        True,
        lambda m: _number(m["impressions"]),
        "How many times your site appeared in Google search results (from tracked queries).",
    ),
    "search_ctr": (
        "Click-through rate (Google Search)",
        U.PERCENT,
        True,
        lambda m: _number(m["ctr"], scale=100),
        "The share of appearances in Google search results that people clicked.",
    ),
    "search_position": (
        "Average position in Google Search",
        U.POSITION,
        False,  # position 1 is the top result: lower is better
        lambda m: _number(m["position"]),
        "Where your site appears on average in Google search results; 1 is the top. Lower is better.",
    ),
}

NEXT_ACTIONS: dict[str, dict[str, str]] = {
    "search_clicks": {
        H.ON_TRACK: "Keep publishing and updating service pages.",
        H.WATCH: "We are reviewing which pages lost search traffic.",
        H.OFF_TRACK: "We will review search traffic with you and fix the pages that dropped.",
    },
    "search_impressions": {
        H.ON_TRACK: "No action needed.",
        H.WATCH: "We are checking which searches you stopped appearing for.",
        H.OFF_TRACK: "We will review your pages' visibility in Google with you.",
    },
    "search_ctr": {
        H.ON_TRACK: "No action needed.",
        H.WATCH: "We are reviewing page titles and descriptions shown in Google.",
        H.OFF_TRACK: "We are rewriting the titles and descriptions Google shows for your pages.",
    },
    "search_position": {
        H.ON_TRACK: "Keep current pages up to date.",
        H.WATCH: "We are reviewing the pages that moved down in Google.",
        H.OFF_TRACK: "We will work with you on the pages that dropped in Google results.",
    },
}


def _values(metrics: dict[str, Any] | None) -> dict[str, Decimal | None]:
    """Each metric's value, or None for all of them when Search Console returned no rows at all
    for the period (nothing pulled yet, or no data): "no number", never a fabricated zero."""
    if not metrics or not metrics["rows"]:
        return dict.fromkeys(METRICS)
    return {key: value(metrics) for key, (_, _, _, value, _) in METRICS.items()}


def search_console_cards_compute(
    *,
    client: Client,
    connection: Connection,
    period_start: datetime.date,
    period_end: datetime.date,
    actor: Actor,
) -> list[MetricCard]:
    """Draft (or refresh) the four Search Console cards of one client and period.

    Numbers come from search_console_metrics (every metric.observed row of source search_console
    of the client: with two properties connected, their rows add up); `connection` is the one
    whose freshness governs the cards.
    """
    if period_end < period_start:
        raise ApplicationError(
            "The period ends before it starts.", {"start": str(period_start), "end": str(period_end)}
        )
    if connection.client_id != client.pk:
        raise ApplicationError("That connection belongs to another client.", {"connection": connection.pk})
    if connection.provider != PROVIDER:
        raise ApplicationError(
            f"Connection {connection.pk} is {connection.provider}, not {PROVIDER}.", {"connection": connection.pk}
        )
    current = search_console_metrics(client=client, start=period_start, end=period_end)
    b_start, b_end = baseline_period(client=client, start=period_start, end=period_end)
    before = search_console_metrics(client=client, start=b_start, end=b_end)
    values, baselines = _values(current), _values(before)
    series = current["series"]
    evidence = {
        "source": PROVIDER,
        "rows": current["rows"],
        "clicks": current["clicks"],
        "impressions": current["impressions"],
        "dates_with_data": [series[0]["date"], series[-1]["date"]] if series else None,
        "baseline_period": [str(b_start), str(b_end)],
        "baseline_rows": before["rows"],
        "last_pulled_at": current["last_pulled_at"].isoformat() if current["last_pulled_at"] else None,
    }
    source_label = f"{SOURCE_LABEL} ({(connection.config or {}).get('site_url') or connection})"[:120]
    cards = []
    for key, (label, unit, higher, _, meaning) in METRICS.items():
        value, baseline = values[key], baselines[key]
        health = metric_health(current=value, baseline=baseline, higher_is_better=higher)
        content = {
            "source_label": source_label,
            "connection": connection,
            "metric_label": label,
            "unit": unit,
            "baseline_value": baseline,
            "current_value": value,
            "health": health,
            "next_action": NEXT_ACTIONS[key][health],
            "meaning": meaning,
        }
        cards.append(
            metric_card_draft(
                client=client,
                period_start=period_start,
                period_end=period_end,
                metric_key=key,
                content=content,
                evidence=evidence,
                actor=actor,
            )
        )
    return cards


def search_console_connections_for_cards(*, client: Client) -> list[Connection]:
    """The client's Search Console connections that cards are drafted for (paused ones are not)."""
    return list(
        Connection.objects.filter(client=client, provider=PROVIDER)
        .exclude(status=Connection.Status.PAUSED)
        .order_by("pk")
    )
