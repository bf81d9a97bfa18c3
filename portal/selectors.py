"""Reads for the portal: who a portal user is, the numbers behind proof, and what a client may see."""

import datetime
import statistics
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from urllib.parse import urlencode

from django.core.exceptions import ImproperlyConfigured
from django.db.models import QuerySet
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, NormalizedEvent
from leads.models import Client, Lead, LeadSource

from .models import CheckRun, CheckStatus, MetricCard, ProofStatus, Summary


def portal_client_for_user(*, user) -> Client:
    """The one client a portal user belongs to; 404 for anyone else (no hint that it exists)."""
    link = getattr(user, "client_user", None) if user.is_authenticated else None
    if link is None or not user.is_active:
        raise Http404("No portal access")
    return link.client


# --- periods and the leads behind a number ------------------------------------------------------

# Leads already marked as spam or duplicates are not counted in any client-facing number.
EXCLUDED_LOST_REASONS = (Lead.LostReason.SPAM, Lead.LostReason.DUPLICATE)
# Marketplaces and referrals attribute themselves: the source *is* the attribution.
SELF_ATTRIBUTED_SOURCES = (LeadSource.THUMBTACK, LeadSource.ANGI, LeadSource.REFERRAL)
ATTRIBUTION_FIELDS = (
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "gclid",
    "fbclid",
    "msclkid",
    "tracking_number",
    "landing_page",
    "referrer",
)


def period_bounds(
    *, client: Client, start: datetime.date, end: datetime.date
) -> tuple[datetime.datetime, datetime.datetime]:
    """[start 00:00, the day after end 00:00) in the client's time zone: its calendar days, DST-correct."""
    tz = client.tz
    return (
        datetime.datetime.combine(start, datetime.time.min, tzinfo=tz),
        datetime.datetime.combine(end + datetime.timedelta(days=1), datetime.time.min, tzinfo=tz),
    )


def period_leads_all(*, client: Client, start: datetime.date, end: datetime.date) -> QuerySet[Lead]:
    """Every lead captured in the period (served by lead_client_captured_idx)."""
    lo, hi = period_bounds(client=client, start=start, end=end)
    return Lead.objects.filter(client=client, captured_at__gte=lo, captured_at__lt=hi)


def period_leads_counted(*, client: Client, start: datetime.date, end: datetime.date) -> QuerySet[Lead]:
    """The leads every client-facing number is computed from: the period's, minus spam and duplicates."""
    return period_leads_all(client=client, start=start, end=end).exclude(lost_reason__in=EXCLUDED_LOST_REASONS)


def period_events(*, client: Client, start: datetime.date, end: datetime.date) -> QuerySet[NormalizedEvent]:
    lo, hi = period_bounds(client=client, start=start, end=end)
    return NormalizedEvent.objects.filter(client=client, occurred_at__gte=lo, occurred_at__lt=hi)


def lead_is_attributed(lead: Lead) -> bool:
    return lead.source in SELF_ATTRIBUTED_SOURCES or any(getattr(lead, f) for f in ATTRIBUTION_FIELDS)


@dataclass
class LeadStats:
    """The numbers of one period, every one of them computed from lead records."""

    total: int = 0
    by_source: Counter = field(default_factory=Counter)
    by_service: Counter = field(default_factory=Counter)
    responded: int = 0
    median_response_minutes: Decimal | None = None
    booked: int = 0
    lost_reasons: Counter = field(default_factory=Counter)
    known_source_and_attribution: int = 0
    lead_ids: list[int] = field(default_factory=list)

    @property
    def booked_rate(self) -> Decimal | None:
        return None if not self.total else _pct(self.booked, self.total)

    @property
    def source_coverage(self) -> Decimal | None:
        return None if not self.total else _pct(self.known_source_and_attribution, self.total)


def _pct(part: int, whole: int) -> Decimal:
    return (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


_STATS_FIELDS = (
    "id",
    "source",
    "service_type",
    "status",
    "lost_reason",
    "first_response_seconds",
    *ATTRIBUTION_FIELDS,
)


def lead_stats(*, client: Client, start: datetime.date, end: datetime.date) -> LeadStats:
    """One pass over the counted leads of the period (only the columns the numbers need)."""
    stats = LeadStats()
    responses: list[int] = []
    for lead in period_leads_counted(client=client, start=start, end=end).only(*_STATS_FIELDS).order_by("id"):
        stats.total += 1
        stats.lead_ids.append(lead.pk)
        stats.by_source[lead.get_source_display()] += 1
        stats.by_service[lead.service_type or "Not stated"] += 1
        if lead.first_response_seconds is not None:
            responses.append(lead.first_response_seconds)
        if lead.status == Lead.Status.BOOKED:
            stats.booked += 1
        if lead.status == Lead.Status.LOST and lead.lost_reason:
            stats.lost_reasons[lead.get_lost_reason_display()] += 1
        if lead.source != LeadSource.OTHER and lead_is_attributed(lead):
            stats.known_source_and_attribution += 1
    stats.responded = len(responses)
    if responses:
        stats.median_response_minutes = (Decimal(statistics.median(responses)) / 60).quantize(Decimal("0.1"))
    return stats


# --- check runs -----------------------------------------------------------------------------------


def check_run_latest(*, item: Summary | MetricCard) -> CheckRun | None:
    runs = item.check_runs.order_by("-ran_at", "-id")
    return runs.prefetch_related("results").first()


def check_run_failures(*, run: CheckRun) -> list[str]:
    return [f"{r.name}: {r.summary}" for r in run.results.all() if r.status == CheckStatus.FAIL]


# --- traceability ---------------------------------------------------------------------------------


def _utc(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat()


def proof_leads_url(*, item: Summary | MetricCard) -> str:
    """The Lead admin list of exactly the leads behind an item (the counted leads of its period).

    Only lookups the Lead admin accepts: a client filter, a captured_at range (local fields are
    always allowed) and lost_reason__in listing every reason except spam/duplicate — the empty
    reason (not lost) included — since the admin cannot exclude.
    """
    lo, hi = period_bounds(client=item.client, start=item.period_start, end=item.period_end)
    counted_reasons = ["", *(r for r in Lead.LostReason.values if r not in EXCLUDED_LOST_REASONS)]
    query = {
        "client__id__exact": item.client_id,
        "captured_at__gte": _utc(lo),
        "captured_at__lt": _utc(hi),
        "lost_reason__in": ",".join(counted_reasons),
    }
    return f"{reverse('admin:leads_lead_changelist')}?{urlencode(query)}"


def proof_events_url(*, item: Summary | MetricCard) -> str:
    """The normalized-events admin list of the client's events in the item's period."""
    lo, hi = period_bounds(client=item.client, start=item.period_start, end=item.period_end)
    query = {"client__id__exact": item.client_id, "occurred_at__gte": _utc(lo), "occurred_at__lt": _utc(hi)}
    return f"{reverse('admin:integrations_normalizedevent_changelist')}?{urlencode(query)}"


def proof_trace_counts(*, item: Summary | MetricCard) -> tuple[int, int]:
    leads = period_leads_counted(client=item.client, start=item.period_start, end=item.period_end).count()
    events = period_events(client=item.client, start=item.period_start, end=item.period_end).count()
    return leads, events


# --- what a metric card shows -----------------------------------------------------------------------


@dataclass(frozen=True)
class CardDisplay:
    value_text: str
    baseline_text: str
    status_label: str
    is_stale: bool
    stale_note: str = ""


def _fmt(value: Decimal | None, unit: str) -> str:
    if value is None:
        return "—"
    number = f"{value.normalize():f}" if value == value.to_integral() else f"{value:.1f}"
    if unit == MetricCard.Unit.PERCENT:
        return f"{number}%"
    if unit == MetricCard.Unit.POSITION:
        return f"#{number}"  # an average rank in Google's results: "#4.6", not "4.6 position"
    return f"{number} {unit}"


def connection_staleness(connection: Connection | None) -> tuple[bool, str]:
    """(stale?, why) for a card's source NOW. Uncertain or failing sources count as stale too."""
    if connection is None:
        return False, ""
    since: datetime.datetime | None = None
    if connection.status in (Connection.Status.UNCERTAIN, Connection.Status.ERROR):
        since = connection.stale_since or connection.last_error_at or connection.updated_at
        return True, f"{connection.get_status_display()} since {timezone.localtime(since):%b %-d, %Y %H:%M}"
    if connection.stale_since or connection.is_stale:
        reference = connection.last_event_at or connection.created_at
        since = connection.stale_since or (reference + connection.expected_freshness)
        return True, f"Stale since {timezone.localtime(since):%b %-d, %Y %H:%M}"
    return False, ""


def card_display(card: MetricCard) -> CardDisplay:
    """How a card reads right now. A stale source replaces the number with a "stale since" status:
    a figure from a provider that stopped sending must not look current (portal and admin alike)."""
    stale, why = connection_staleness(card.connection)
    baseline_text = _fmt(card.baseline_value, card.unit) if card.baseline_value is not None else "No baseline"
    if stale:
        return CardDisplay(
            value_text="—",
            baseline_text=baseline_text,
            status_label=why,
            is_stale=True,
            stale_note=f"Data from {card.source_label} has not been arriving; this number will return when it does.",
        )
    return CardDisplay(
        value_text=_fmt(card.current_value, card.unit),
        baseline_text=baseline_text,
        status_label=card.get_health_display(),
        is_stale=False,
    )


# --- what the portal may read -------------------------------------------------------------------------

# Client-safe columns only: internal drafts, notes, evidence and check details are never loaded.
_SUMMARY_PORTAL_FIELDS = ("id", "client_id", "period_start", "period_end", "title", "body", "published_at")
_CARD_PORTAL_FIELDS = (
    "id",
    "client_id",
    "period_start",
    "period_end",
    "source_label",
    "connection",
    "metric_key",
    "metric_label",
    "unit",
    "baseline_value",
    "current_value",
    "health",
    "next_action",
    "meaning",
    "published_at",
)


_CONNECTION_FRESHNESS_FIELDS = (
    "status",
    "stale_since",
    "last_event_at",
    "last_error_at",
    "expected_freshness",
    "created_at",
    "updated_at",
)


def published_summaries() -> QuerySet[Summary]:
    """Every client's published summaries, client-safe columns only: the portal's pages and its
    API both start here (and narrow it to one client)."""
    return Summary.objects.filter(status=ProofStatus.PUBLISHED).only(*_SUMMARY_PORTAL_FIELDS)


def published_cards() -> QuerySet[MetricCard]:
    """Every client's published metric cards, client-safe columns only, with what card_display
    reads of the card's connection (its freshness)."""
    return (
        MetricCard.objects.filter(status=ProofStatus.PUBLISHED)
        .select_related("connection")
        .only(*_CARD_PORTAL_FIELDS, *(f"connection__{f}" for f in _CONNECTION_FRESHNESS_FIELDS))
    )


def portal_summaries(*, client: Client, limit: int = 12) -> QuerySet[Summary]:
    return published_summaries().filter(client=client).order_by("-period_end", "-id")[:limit]


def portal_cards(*, client: Client, limit: int = 24) -> list[tuple[MetricCard, CardDisplay]]:
    cards = published_cards().filter(client=client).order_by("-period_end", "metric_key", "-id")[:limit]
    return [(card, card_display(card)) for card in cards]


# --- portal pages: report periods, trends and CSV rows ------------------------------------------------
#
# "The approved version" (docs/portal.md): a client sees numbers only for periods our team has
# published proof for. Report pages exist for exactly the periods of this client's published
# metric cards and summaries; on such a page the published cards are the headline, and the
# aggregate breakdown (leads.reports.lead_report: counts only, never a lead's name or phone) is
# computed for that same period. A period nobody checked, approved and published has no page, so
# a number our checks never vouched for (spam not yet marked, a half-imported CSV) never reaches
# the client. Lead-level rows, AI drafts, internal notes and evidence are never read here.

PORTAL_PERIODS_LIMIT = 24

# metric card key → the leads.reports.lead_trend metric that draws its daily trend.
LEAD_TREND_METRICS = {
    "leads_captured": "leads",
    "median_response_minutes": "response_median_minutes",
    "booked_rate": "booked_rate",
    "source_coverage": "source_coverage",
}


@dataclass(frozen=True)
class ReportPeriod:
    start: datetime.date
    end: datetime.date

    @property
    def slug(self) -> str:
        return f"{self.start:%Y-%m-%d}--{self.end:%Y-%m-%d}"

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1


def report_period_from_slug(slug: str) -> ReportPeriod:
    """Parse "YYYY-MM-DD--YYYY-MM-DD"; anything else is a 404 (the URL converter already limits the shape)."""
    try:
        start_text, end_text = slug.split("--")
        period = ReportPeriod(datetime.date.fromisoformat(start_text), datetime.date.fromisoformat(end_text))
    except ValueError as exc:
        raise Http404("No such report") from exc
    if period.end < period.start:
        raise Http404("No such report")
    return period


def portal_report_periods(*, client: Client, limit: int = PORTAL_PERIODS_LIMIT) -> list[ReportPeriod]:
    """The periods this client has published proof for, newest first (two indexed queries)."""
    found: set[tuple[datetime.date, datetime.date]] = set()
    for model in (MetricCard, Summary):
        rows = (
            model.objects.filter(client=client, status=ProofStatus.PUBLISHED)
            .order_by("-period_end", "-period_start")
            .values_list("period_start", "period_end")
            .distinct()[:limit]
        )
        found.update(rows)
    ordered = sorted(found, key=lambda p: (p[1], p[0]), reverse=True)[:limit]
    return [ReportPeriod(start, end) for start, end in ordered]


def portal_report_period(*, client: Client, slug: str) -> ReportPeriod:
    """A period the client may open: one of its published periods, or 404 (another client's
    period, a draft's period and a made-up range all read the same)."""
    period = report_period_from_slug(slug)
    for model in (MetricCard, Summary):
        published = model.objects.filter(
            client=client, status=ProofStatus.PUBLISHED, period_start=period.start, period_end=period.end
        )
        if published.exists():
            return period
    raise Http404("No such report")


def portal_period_cards(
    *, client: Client, period: ReportPeriod, limit: int = 48
) -> list[tuple[MetricCard, CardDisplay]]:
    cards = (
        published_cards()
        .filter(client=client, period_start=period.start, period_end=period.end)
        .order_by("metric_key", "-id")[:limit]
    )
    return [(card, card_display(card)) for card in cards]


def portal_period_summaries(*, client: Client, period: ReportPeriod, limit: int = 12) -> QuerySet[Summary]:
    return (
        published_summaries()
        .filter(client=client, period_start=period.start, period_end=period.end)
        .order_by("-id")[:limit]
    )


def _reports_module():
    # leads.reports is the one place report numbers are computed; imported here, not at module
    # load, so the portal's other pages keep working while it is missing or being deployed.
    try:
        from leads import reports
    except ImportError as exc:  # pragma: no cover - only while leads/reports.py is not deployed
        raise ImproperlyConfigured(
            "The portal's report pages need leads/reports.py (leads.reports.lead_report)."
        ) from exc
    return reports


def _number(value) -> float | int | None:
    if value is None:
        return None
    if isinstance(value, int):
        return value
    return float(value)


@dataclass(frozen=True)
class Chart:
    """What charts.js draws and what the fallback table lists: the same numbers, twice."""

    id: str
    title: str
    kind: str  # "line" | "bar"
    labels: list[str]
    series: list[tuple[str, list[float | int | None]]]
    unit: str = ""
    note: str = ""

    @property
    def data(self) -> dict:
        return {
            "type": self.kind,
            "title": self.title,
            "unit": self.unit,
            "labels": self.labels,
            "datasets": [{"label": label, "data": values} for label, values in self.series],
        }

    @property
    def data_id(self) -> str:
        return f"{self.id}-data"

    @property
    def rows(self) -> list[tuple[str, list[str]]]:
        def cell(v):
            if v is None:
                return "—"
            return f"{v:g}" if isinstance(v, float) else str(v)

        return [(label, [cell(values[i]) for _, values in self.series]) for i, label in enumerate(self.labels)]


def portal_lead_trends(*, client: Client, cards: list[tuple[MetricCard, CardDisplay]]) -> list[Chart]:
    """One daily trend per lead metric, over the newest published card's period for that metric.

    Queries follow the number of lead metrics (at most four), never the number of cards. A card
    whose source is stale gets no chart: a trend ending in empty days would look like a collapse.
    """
    newest: dict[str, MetricCard | None] = {}
    for card, shown in cards:  # cards come newest period first
        if card.metric_key in LEAD_TREND_METRICS and card.metric_key not in newest:
            newest[card.metric_key] = None if shown.is_stale else card
    reports = _reports_module() if any(newest.values()) else None
    charts = []
    for key in LEAD_TREND_METRICS:
        card = newest.get(key)
        if card is None:
            continue
        points = reports.lead_trend(
            client=client, start=card.period_start, end=card.period_end, metric=LEAD_TREND_METRICS[key]
        )
        charts.append(
            Chart(
                id=f"trend-{key}",
                title=f"{card.metric_label}, day by day ({card.period_start:%b %-d} to {card.period_end:%b %-d, %Y})",
                kind="bar" if key == "leads_captured" else "line",
                labels=[f"{day:%b %-d}" for day, _ in points],
                series=[(card.metric_label, [_number(v) for _, v in points])],
                unit="%" if card.unit == MetricCard.Unit.PERCENT else card.unit,
            )
        )
    return charts


@dataclass(frozen=True)
class PortalReport:
    period: ReportPeriod
    report: object  # leads.reports.Report
    daily_chart: Chart | None
    search_chart: Chart | None
    search_note: str


def portal_report(*, client: Client, period: ReportPeriod) -> PortalReport:
    """The aggregate numbers of one published period (no lead-level data), with its charts."""
    report = _reports_module().lead_report(client=client, start=period.start, end=period.end)
    daily_chart = None
    if report.daily:
        daily_chart = Chart(
            id="daily-leads",
            title=f"Leads and bookings per day ({period.start:%b %-d} to {period.end:%b %-d, %Y})",
            kind="bar",
            labels=[f"{day:%b %-d}" for day, _, _ in report.daily],
            series=[("Leads", [n for _, n, _ in report.daily]), ("Booked", [b for _, _, b in report.daily])],
        )
    search_chart, search_note = portal_search_console_chart(client=client, period=period)
    return PortalReport(
        period=period, report=report, daily_chart=daily_chart, search_chart=search_chart, search_note=search_note
    )


def portal_search_console_chart(*, client: Client, period: ReportPeriod) -> tuple[Chart | None, str]:
    """Clicks and impressions per day when the client has a Search Console connection."""
    from integrations.search_console import PROVIDER, search_console_metrics

    has_connection = (
        Connection.objects.filter(client=client, provider=PROVIDER).exclude(status=Connection.Status.PAUSED).exists()
    )
    if not has_connection:
        return None, ""
    metrics = search_console_metrics(client=client, start=period.start, end=period.end)
    note = ""
    if metrics["stale"]:
        pulled = metrics["last_pulled_at"]
        when = f" (last updated {timezone.localtime(pulled):%b %-d, %Y})" if pulled else ""
        note = f"Search data may be out of date{when}."
    if not metrics["series"]:
        return None, note or "No search data for this period yet."
    series = metrics["series"]
    chart = Chart(
        id="search-console",
        title=f"Google Search: clicks and impressions per day ({period.start:%b %-d} to {period.end:%b %-d, %Y})",
        kind="line",
        labels=[datetime.date.fromisoformat(str(row["date"])).strftime("%b %-d") for row in series],
        series=[("Clicks", [row["clicks"] for row in series]), ("Impressions", [row["impressions"] for row in series])],
        note=f"Totals: {metrics['clicks']} clicks, {metrics['impressions']} impressions.",
    )
    return chart, note
