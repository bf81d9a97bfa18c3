"""Lead reports for a client and period against its baseline, read from the daily rollups.

Every function here reads LeadDailyTotal rows (one per client and day: the unique key's index)
plus at most one small indexed query on leads (overdue next actions), so its query count and
cost grow neither with the number of leads nor, beyond one row per day, with the period's length.
The numbers are the rollups' as of `Report.as_of` (the last
refresh, at most about a minute old with the beat task running).

Response-time percentiles come from the rollups' histogram: see models_rollups
RESPONSE_BUCKET_EDGES for the precision (never above the true value, less than one bucket width
below it: under 1 minute for responses below 60 minutes, 5 minutes to 4 h, 30 minutes to 48 h;
exact when values sit on bucket edges; plus the 0.1-minute rounding of the result).
"""

from __future__ import annotations

import datetime
import json
from collections import Counter
from dataclasses import dataclass
from decimal import Decimal
from operator import add

from django.db.models import Q, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from .models import Client, Lead, LeadSource
from .models_rollups import RESPONSE_BUCKET_EDGES, LeadDailyTotal, LeadRollupClientState
from .rollups import OPEN_STATUSES

NOT_STATED = "Not stated"
TREND_METRICS = ("leads", "booked", "booked_rate", "response_median_minutes", "source_coverage")
# Periods up to this many days get one trend point per day; longer ones one per 7 days.
TREND_DAILY_MAX_DAYS = 92

_SOURCE_LABELS = dict(LeadSource.choices)
_LOST_LABELS = dict(Lead.LostReason.choices)


@dataclass(frozen=True)
class PeriodNumbers:
    start: datetime.date
    end: datetime.date
    leads: int
    responded: int
    response_median_minutes: Decimal | None
    response_p90_minutes: Decimal | None
    booked: int
    booked_rate: Decimal | None  # percent, 1 decimal
    lost_reasons: list[tuple[str, int]]  # (label, count), most first
    with_source_and_attribution: int
    source_coverage: Decimal | None  # percent, 1 decimal
    by_source: list[tuple[str, str, int]]  # (key, label, count), most first
    by_service: list[tuple[str, int]]  # ("Not stated" for blank), most first


@dataclass(frozen=True)
class Report:
    client: Client
    current: PeriodNumbers
    baseline: PeriodNumbers | None  # same length, ending the day before client.joined_on; None if no leads then
    next_actions_open: int  # open leads with a next action (text or due time), as of the last refresh
    next_actions_overdue: int  # open leads with a due time before now (live)
    as_of: datetime.datetime | None  # when the rollups were last refreshed for this client
    daily: list[tuple[datetime.date, int, int]]  # (day, leads, booked) for each day of current period


# --- percentiles from the histogram ------------------------------------------------------------


def _order_statistic(cumulative: list[tuple[int, int]], k: int) -> int:
    """Lower edge (seconds) of the bucket holding the k-th smallest value (0-based)."""
    for upto, bucket in cumulative:
        if k < upto:
            return RESPONSE_BUCKET_EDGES[bucket]
    raise IndexError(k)


def _cumulative(histogram: Counter) -> tuple[list[tuple[int, int]], int]:
    running, cumulative = 0, []
    for bucket in sorted(histogram):
        if histogram[bucket]:
            running += histogram[bucket]
            cumulative.append((running, bucket))
    return cumulative, running


def histogram_median_seconds(histogram: Counter) -> Decimal | None:
    """The median as statistics.median defines it (mean of the two middle values when even)."""
    cumulative, n = _cumulative(histogram)
    if not n:
        return None
    if n % 2:
        return Decimal(_order_statistic(cumulative, n // 2))
    return Decimal(_order_statistic(cumulative, n // 2 - 1) + _order_statistic(cumulative, n // 2)) / 2


def histogram_p90_seconds(histogram: Counter) -> Decimal | None:
    """The 90th percentile, linear between order statistics: statistics.quantiles(n=10,
    method="inclusive")[8], i.e. position 0.9 * (n - 1); the single value when n is 1."""
    cumulative, n = _cumulative(histogram)
    if not n:
        return None
    position = 9 * (n - 1)  # tenths
    j, delta = divmod(position, 10)
    low = _order_statistic(cumulative, j)
    if not delta:
        return Decimal(low)
    high = _order_statistic(cumulative, j + 1)
    return Decimal(low * (10 - delta) + high * delta) / 10


def _minutes(seconds: Decimal | None) -> Decimal | None:
    return None if seconds is None else (seconds / 60).quantize(Decimal("0.1"))


def _pct(part: int, whole: int) -> Decimal | None:
    # As portal.selectors computes it, so the numbers agree to the digit.
    return None if not whole else (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


# --- periods ----------------------------------------------------------------------------------


def report_period_default(*, client: Client, today: datetime.date | None = None) -> tuple[datetime.date, datetime.date]:
    """The last 30 full local days of the client (today excluded)."""
    today = today or timezone.now().astimezone(client.tz).date()
    end = today - datetime.timedelta(days=1)
    return end - datetime.timedelta(days=29), end


def baseline_period(*, client: Client, start: datetime.date, end: datetime.date) -> tuple[datetime.date, datetime.date]:
    """As long as start..end, ending the day before the client joined."""
    length = (end - start).days + 1
    baseline_end = client.joined_on - datetime.timedelta(days=1)
    return baseline_end - datetime.timedelta(days=length - 1), baseline_end


_TOTAL_FIELDS = ("day", "leads", "responded", "booked", "with_source_and_attribution")
_TOTAL_JSON = ("lost_by_reason", "response_histogram", "leads_by_source", "leads_by_service")


def _totals_with_json(rows, json_fields: tuple[str, ...] = _TOTAL_JSON) -> list[tuple]:
    """values_list rows of _TOTAL_FIELDS plus the JSON columns, parsed in one json.loads call.

    Why: Django decodes a JSONField value by value; one parse of all of them joined costs a
    fraction of that (a three-year report with its baseline is up to ~2,200 day rows).
    """
    texts = {f"{name}_text": Cast(name, TextField()) for name in json_fields}
    raw = list(rows.annotate(**texts).values_list(*_TOTAL_FIELDS, *texts).order_by())
    if not raw:
        return []
    k = len(json_fields)
    parsed = json.loads("[" + ",".join(text or "null" for r in raw for text in r[-k:]) + "]")
    return [(*r[:-k], *parsed[k * i : k * i + k]) for i, r in enumerate(raw)]


def _add_counts(into: dict, counts: dict | None) -> None:
    for key, n in (counts or {}).items():
        into[key] = into.get(key, 0) + n


class _Totals:
    def __init__(self) -> None:
        self.leads = self.responded = self.booked = self.attributed = 0
        self.lost: dict[str, int] = {}
        self.by_source: dict[str, int] = {}
        self.by_service: dict[str, int] = {}
        self.histogram: list[int] = []  # dense, index = bucket
        self.daily: Counter = Counter()
        self.daily_booked: Counter = Counter()

    def add_histogram(self, histogram: list[int] | None) -> None:
        if not histogram:
            return
        if len(histogram) > len(self.histogram):
            self.histogram.extend([0] * (len(histogram) - len(self.histogram)))
        head = list(map(add, self.histogram, histogram))  # map stops at the shorter list
        self.histogram[: len(head)] = head

    def add(self, row: tuple) -> None:
        """One LeadDailyTotal row (_totals_with_json)."""
        day, leads, responded, booked, attributed, lost, histogram, by_source, by_service = row
        self.leads += leads
        self.responded += responded
        self.booked += booked
        self.attributed += attributed
        _add_counts(self.lost, lost)
        _add_counts(self.by_source, by_source)
        _add_counts(self.by_service, by_service)
        self.add_histogram(histogram)
        self.daily[day] += leads
        self.daily_booked[day] += booked

    def counter(self) -> Counter:
        return Counter({bucket: n for bucket, n in enumerate(self.histogram) if n})

    def numbers(self, start: datetime.date, end: datetime.date) -> PeriodNumbers:
        histogram = self.counter()
        lost = sorted(((_LOST_LABELS.get(k, k), n) for k, n in self.lost.items() if n), key=lambda x: (-x[1], x[0]))
        by_source = sorted(
            ((k, _SOURCE_LABELS.get(k, k), n) for k, n in self.by_source.items() if n), key=lambda x: (-x[2], x[1])
        )
        by_service = sorted(
            ((k or NOT_STATED, n) for k, n in self.by_service.items() if n), key=lambda x: (-x[1], x[0])
        )
        return PeriodNumbers(
            start=start,
            end=end,
            leads=self.leads,
            responded=self.responded,
            response_median_minutes=_minutes(histogram_median_seconds(histogram)),
            response_p90_minutes=_minutes(histogram_p90_seconds(histogram)),
            booked=self.booked,
            booked_rate=_pct(self.booked, self.leads),
            lost_reasons=lost,
            with_source_and_attribution=self.attributed,
            source_coverage=_pct(self.attributed, self.leads),
            by_source=by_source,
            by_service=by_service,
        )


def _days(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    return [start + datetime.timedelta(days=i) for i in range((end - start).days + 1)]


def next_actions_overdue(*, client: Client, now: datetime.datetime | None = None) -> int:
    """Open leads whose next action was due before now: counted from lead_client_status_due_idx
    alone (three short range reads, one per open status), live rather than as of the rollups."""
    return Lead.objects.filter(
        client=client, status__in=OPEN_STATUSES, next_action_due__lt=now or timezone.now()
    ).count()


def lead_report(*, client: Client, start: datetime.date, end: datetime.date) -> Report:
    """Three queries whatever the number of leads or the period's length: the client's refresh
    state, the day totals of the period and of its baseline (≤ 366 rows a year each), and the
    overdue next actions."""
    if end < start:
        raise ValueError("The period ends before it starts.")
    base_start, base_end = baseline_period(client=client, start=start, end=end)
    state = LeadRollupClientState.objects.filter(client=client).values_list("refreshed_at", "next_actions_open").first()
    rows = LeadDailyTotal.objects.filter(
        Q(day__gte=start, day__lte=end) | Q(day__gte=base_start, day__lte=base_end), client=client
    )
    current, baseline = _Totals(), _Totals()
    for row in _totals_with_json(rows):
        day = row[0]
        if start <= day <= end:
            current.add(row)
        if base_start <= day <= base_end:  # both, if the period reaches back before joining
            baseline.add(row)
    return Report(
        client=client,
        current=current.numbers(start, end),
        baseline=baseline.numbers(base_start, base_end) if baseline.leads else None,
        next_actions_open=state[1] if state else 0,
        next_actions_overdue=next_actions_overdue(client=client),
        as_of=state[0] if state else None,
        daily=[(day, current.daily[day], current.daily_booked[day]) for day in _days(start, end)],
    )


def trend_buckets(*, start: datetime.date, end: datetime.date) -> list[tuple[datetime.date, datetime.date]]:
    """Daily up to TREND_DAILY_MAX_DAYS days, else 7-day buckets from `start` (the last one may
    be shorter); each point is labelled with its first day."""
    step = 1 if (end - start).days + 1 <= TREND_DAILY_MAX_DAYS else 7
    buckets = []
    first = start
    while first <= end:
        last = min(end, first + datetime.timedelta(days=step - 1))
        buckets.append((first, last))
        first = last + datetime.timedelta(days=1)
    return buckets


def lead_trend(
    *, client: Client, start: datetime.date, end: datetime.date, metric: str
) -> list[tuple[datetime.date, Decimal | None]]:
    """One point per day (periods up to 92 days) or per 7 days from `start` (longer periods):
    (first day of the bucket, value). Counts are Decimals too; rates and the median are None for
    a bucket without leads (responses). One query."""
    if metric not in TREND_METRICS:
        raise ValueError(f"Unknown metric {metric!r}; one of {', '.join(TREND_METRICS)}")
    buckets = trend_buckets(start=start, end=end)
    first_of = {}
    for first, last in buckets:
        for day in _days(first, last):
            first_of[day] = first
    rows = LeadDailyTotal.objects.filter(client=client, day__gte=start, day__lte=end).order_by()
    totals: dict[datetime.date, _Totals] = {first: _Totals() for first, _ in buckets}
    if metric == "response_median_minutes":
        for row in _totals_with_json(rows.filter(responded__gt=0), ("response_histogram",)):
            totals[first_of[row[0]]].add_histogram(row[-1])
        return [(first, _minutes(histogram_median_seconds(totals[first].counter()))) for first, _ in buckets]
    sums = rows.values_list("day", "leads", "booked", "with_source_and_attribution")
    for day, n_leads, n_booked, n_attributed in sums:
        t = totals[first_of[day]]
        t.leads += n_leads
        t.booked += n_booked
        t.attributed += n_attributed
    values = {
        "leads": lambda t: Decimal(t.leads),
        "booked": lambda t: Decimal(t.booked),
        "booked_rate": lambda t: _pct(t.booked, t.leads),
        "source_coverage": lambda t: _pct(t.attributed, t.leads),
    }[metric]
    return [(first, values(totals[first])) for first, _ in buckets]
