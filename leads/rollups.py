"""Keep the daily report rollups (leads.models_rollups) in step with the leads.

Two ways in:

- `rollups_refresh(client=…, days=…)` recomputes the rows of the given local days (or, without
  days, every day) of one client (or every client) from the lead rows: grouped SQL, two queries
  per run of days with one UTC offset, never a Python loop over leads. The per-day totals
  (LeadDailyTotal) are summed from the same grouped rows in Python, in the same transaction.
- `rollups_refresh_changed()` (a Celery beat task every minute) finds the (client, day) pairs
  whose leads changed since its last run and recomputes those.

The change signal is `Lead.updated_at`. Every writer of lead rows sets it: `save()` (auto_now),
`save(update_fields=[…, "updated_at"])` in leads.services, `bulk_create` (auto_now applies on
insert) and `zartsalgo.db.update_changed` (sets it explicitly) in the batch consumers and the
workflow engine. `zartsalgo.db.update_rows` does not set it by itself and is used on leads only
through update_changed. A new writer that bypasses updated_at must call rollups_refresh itself.

Known gaps, closed by `manage.py refresh_rollups --full`: deleting a lead (a superuser's privacy
purge) leaves its day counted until the next full refresh.
"""

from __future__ import annotations

import datetime
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import (
    Case,
    Count,
    DateField,
    DateTimeField,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Floor, TruncDate
from django.utils import timezone

from .models import Activity, Client, Lead, LeadSource
from .models_rollups import (
    RESPONSE_OVERFLOW_BUCKET,
    LeadDailyRollup,
    LeadDailyTotal,
    LeadRollupClientState,
    LeadRollupWatermark,
)

# --- what is counted: the same rules as portal.selectors (tests/leads/test_rollups.py checks) ----
# (Defined here, not imported: leads sits below portal and must not import it.)

# Leads marked as spam or duplicates are not counted in any client-facing number.
EXCLUDED_LOST_REASONS = (Lead.LostReason.SPAM, Lead.LostReason.DUPLICATE)
COUNTED_LOST_REASONS = tuple(r for r in Lead.LostReason.values if r not in EXCLUDED_LOST_REASONS)
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
# A next action is outstanding while the lead is still being worked.
OPEN_STATUSES = (Lead.Status.NEW, Lead.Status.CONTACTED, Lead.Status.QUOTED)

# Rows written in a transaction that commits after a scan are found by the next scans: each scan
# starts this long before the previous one's start. Recomputing a day twice is harmless.
RESCAN_OVERLAP = datetime.timedelta(minutes=10)
# Days refreshed together: dirty days closer than this share one range (and its two queries).
JOIN_GAP_DAYS = 3
# At most this many days per grouped query, so a full refresh of years stays in bounded memory.
MAX_RANGE_DAYS = 31


def counted_q() -> Q:
    return ~Q(lost_reason__in=EXCLUDED_LOST_REASONS)


def next_action_open_q() -> Q:
    """A lead still being worked with a next action: its text or its due time set. (A due time
    alone counts, so "overdue" — open, due before now — is a subset and an index-only count.)"""
    return Q(status__in=OPEN_STATUSES) & (~Q(next_action="") | Q(next_action_due__isnull=False))


def source_and_attribution_q() -> Q:
    """A known source (not "other") and attribution (self-attributed source or any field set)."""
    attributed = Q(source__in=SELF_ATTRIBUTED_SOURCES)
    for name in ATTRIBUTION_FIELDS:
        attributed |= ~Q(**{name: ""})
    return ~Q(source=LeadSource.OTHER) & attributed


def _bucket_expression():
    """SQL twin of models_rollups.response_bucket (the test suite compares them)."""
    s = F("first_response_seconds")
    return Case(
        When(first_response_seconds__lt=3600, then=Floor(s / 60)),
        When(first_response_seconds__lt=4 * 3600, then=60 + Floor((s - 3600) / 300)),
        When(first_response_seconds__lt=48 * 3600, then=96 + Floor((s - 4 * 3600) / 1800)),
        default=Value(RESPONSE_OVERFLOW_BUCKET),
        output_field=IntegerField(),
    )


# --- local days ---------------------------------------------------------------------------------


def local_day_start(tz: zoneinfo.ZoneInfo, day: datetime.date) -> datetime.datetime:
    """Local midnight of `day` (as portal.selectors.period_bounds computes it)."""
    return datetime.datetime.combine(day, datetime.time.min, tzinfo=tz)


def local_day(tz: zoneinfo.ZoneInfo, moment: datetime.datetime) -> datetime.date:
    return moment.astimezone(tz).date()


@dataclass(frozen=True)
class _Run:
    """Consecutive local days queried together. offset: the UTC offset over all of them, so
    `DATE(captured_at + offset)` is the local day; None for a DST-change day (one day, constant)."""

    first: datetime.date
    last: datetime.date
    offset: datetime.timedelta | None


def _runs(tz: zoneinfo.ZoneInfo, first: datetime.date, last: datetime.date) -> list[_Run]:
    # Why not TruncDate(tzinfo=client tz): on MariaDB that is CONVERT_TZ, which returns NULL
    # unless the server's time zone tables are loaded (they are not by default). A constant
    # offset is plain arithmetic on every database.
    runs: list[_Run] = []
    day = first
    one = datetime.timedelta(days=1)
    while day <= last:
        start = local_day_start(tz, day)
        end_instant = local_day_start(tz, day + one).astimezone(datetime.UTC) - datetime.timedelta(microseconds=1)
        offset = start.utcoffset()
        uniform = end_instant.astimezone(tz).utcoffset() == offset
        previous = runs[-1] if runs else None
        if (
            uniform
            and previous is not None
            and previous.offset == offset
            and previous.last == day - one
            and (day - previous.first).days < MAX_RANGE_DAYS
        ):
            runs[-1] = _Run(previous.first, day, offset)
        else:
            runs.append(_Run(day, day, offset if uniform else None))
        day += one
    return runs


def _day_ranges(days: Iterable[datetime.date]) -> list[tuple[datetime.date, datetime.date]]:
    """Sorted days → ranges; days at most JOIN_GAP_DAYS apart share a range."""
    ranges: list[list[datetime.date]] = []
    for day in sorted(set(days)):
        if ranges and (day - ranges[-1][1]).days <= JOIN_GAP_DAYS and (day - ranges[-1][0]).days < MAX_RANGE_DAYS:
            ranges[-1][1] = day
        else:
            ranges.append([day, day])
    return [(a, b) for a, b in ranges]


# --- recomputing ----------------------------------------------------------------------------------


def _counts(client: Client, run: _Run) -> tuple[list[dict], list[dict]]:
    """The grouped rows of one run: counts per (day, source, service), and the response-time
    histogram per (day, source, service, bucket). Both read lead_client_captured_idx's range."""
    tz = client.tz
    lo = local_day_start(tz, run.first)
    hi = local_day_start(tz, run.last + datetime.timedelta(days=1))
    leads = Lead.objects.filter(client_id=client.pk, captured_at__gte=lo, captured_at__lt=hi).order_by()
    if run.offset is None:
        day = Value(run.first, output_field=DateField())
    else:
        shifted = ExpressionWrapper(
            F("captured_at") + Value(run.offset, output_field=DurationField()), output_field=DateTimeField()
        )
        day = TruncDate(shifted, tzinfo=datetime.UTC)
    counted = counted_q()
    keys = ("day", "source", "service_type")
    lost = {
        f"lost_{reason}": Count("id", filter=counted & Q(status=Lead.Status.LOST, lost_reason=reason))
        for reason in COUNTED_LOST_REASONS
    }
    counts = list(
        leads.annotate(day=day)
        .values(*keys)
        .annotate(
            n_leads=Count("id", filter=counted),
            n_excluded=Count("id", filter=~counted),
            n_responded=Count("id", filter=counted & Q(first_response_seconds__isnull=False)),
            n_response_seconds=Sum("first_response_seconds", filter=counted),
            n_booked=Count("id", filter=counted & Q(status=Lead.Status.BOOKED)),
            n_attributed=Count("id", filter=counted & source_and_attribution_q()),
            n_next_open=Count("id", filter=counted & next_action_open_q()),
            **lost,
        )
    )
    histogram = list(
        leads.filter(counted, first_response_seconds__isnull=False)
        .annotate(day=day, bucket=_bucket_expression())
        .values(*keys, "bucket")
        .annotate(n=Count("id"))
    )
    return counts, histogram


def _as_date(value) -> datetime.date:
    # TruncDate gives a date; SQLite may hand back text for the constant-day Value.
    if isinstance(value, datetime.datetime):
        return value.date()
    if isinstance(value, str):
        return datetime.date.fromisoformat(value[:10])
    return value


def _refresh_range(client: Client, first: datetime.date, last: datetime.date, now: datetime.datetime) -> int:
    """Replace the client's rows for local days first..last with ones computed now."""
    rows: dict[tuple, LeadDailyRollup] = {}
    for run in _runs(client.tz, first, last):
        counts, histogram = _counts(client, run)
        for c in counts:
            key = (_as_date(c["day"]), c["source"], c["service_type"])
            rows[key] = LeadDailyRollup(
                client_id=client.pk,
                day=key[0],
                source=key[1],
                service_type=key[2],
                leads=c["n_leads"],
                excluded=c["n_excluded"],
                responded=c["n_responded"],
                response_seconds_sum=c["n_response_seconds"] or 0,
                booked=c["n_booked"],
                with_source_and_attribution=c["n_attributed"],
                next_actions_open=c["n_next_open"],
                lost_by_reason={r: c[f"lost_{r}"] for r in COUNTED_LOST_REASONS if c[f"lost_{r}"]},
                response_histogram={},
                refreshed_at=now,
            )
        for h in histogram:
            row = rows[(_as_date(h["day"]), h["source"], h["service_type"])]
            bucket = str(int(h["bucket"]))
            row.response_histogram[bucket] = row.response_histogram.get(bucket, 0) + h["n"]
    totals = _day_totals(client, rows.values(), now)
    with transaction.atomic():
        LeadDailyRollup.objects.filter(client_id=client.pk, day__gte=first, day__lte=last).delete()
        LeadDailyRollup.objects.bulk_create(list(rows.values()), batch_size=500)
        LeadDailyTotal.objects.filter(client_id=client.pk, day__gte=first, day__lte=last).delete()
        LeadDailyTotal.objects.bulk_create(totals, batch_size=500)
    return len(rows)


_TOTAL_COUNTS = (
    "leads",
    "excluded",
    "responded",
    "response_seconds_sum",
    "booked",
    "with_source_and_attribution",
    "next_actions_open",
)


def _day_totals(client: Client, rows: Iterable[LeadDailyRollup], now: datetime.datetime) -> list[LeadDailyTotal]:
    """The per-day sums of the day's (source, service) rows just computed: no further SQL."""
    totals: dict[datetime.date, LeadDailyTotal] = {}
    histograms: dict[datetime.date, list[int]] = {}
    for row in rows:
        total = totals.get(row.day)
        if total is None:
            total = totals[row.day] = LeadDailyTotal(
                client_id=client.pk,
                day=row.day,
                lost_by_reason={},
                leads_by_source={},
                leads_by_service={},
                refreshed_at=now,
            )
            histograms[row.day] = [0] * (RESPONSE_OVERFLOW_BUCKET + 1)
        for name in _TOTAL_COUNTS:
            setattr(total, name, getattr(total, name) + getattr(row, name))
        for key, n in row.lost_by_reason.items():
            total.lost_by_reason[key] = total.lost_by_reason.get(key, 0) + n
        if row.leads:
            total.leads_by_source[row.source] = total.leads_by_source.get(row.source, 0) + row.leads
            total.leads_by_service[row.service_type] = total.leads_by_service.get(row.service_type, 0) + row.leads
        histogram = histograms[row.day]
        for key, n in row.response_histogram.items():
            histogram[int(key)] += n
    for day, total in totals.items():
        histogram = histograms[day]
        while histogram and not histogram[-1]:  # dense up to the last non-empty bucket
            histogram.pop()
        total.response_histogram = histogram
    return [totals[day] for day in sorted(totals)]


def _client_state(client: Client) -> LeadRollupClientState:
    state, _ = LeadRollupClientState.objects.get_or_create(client=client)
    return state


def _client_days_full(client: Client) -> tuple[datetime.date, datetime.date] | None:
    bounds = Lead.objects.filter(client_id=client.pk).aggregate(first=Min("captured_at"), last=Max("captured_at"))
    if bounds["first"] is None:
        return None
    return local_day(client.tz, bounds["first"]), local_day(client.tz, bounds["last"])


@dataclass
class RefreshResult:
    clients: int = 0
    ranges: int = 0
    rows: int = 0
    full_clients: int = 0


def _refresh_client(
    client: Client, days: Iterable[datetime.date] | None, now: datetime.datetime, result: RefreshResult
) -> None:
    state = _client_state(client)
    if days is None:
        bounds = _client_days_full(client)
        ranges: list[tuple[datetime.date, datetime.date]] = []
        if bounds is not None:
            first, last = bounds
            while first <= last:
                chunk_end = min(last, first + datetime.timedelta(days=MAX_RANGE_DAYS - 1))
                ranges.append((first, chunk_end))
                first = chunk_end + datetime.timedelta(days=1)
        # Rows outside the leads' days (leads deleted, or made in another time zone) go.
        for model in (LeadDailyRollup, LeadDailyTotal):
            stale = model.objects.filter(client_id=client.pk)
            if bounds is not None:
                stale = stale.exclude(day__gte=bounds[0], day__lte=bounds[1])
            stale.delete()
        result.full_clients += 1
    else:
        ranges = _day_ranges(days)
    for first, last in ranges:
        result.rows += _refresh_range(client, first, last, now)
        result.ranges += 1
    result.clients += 1
    state.refreshed_at = now
    state.time_zone = client.time_zone
    if days is None:
        state.full_refreshed_at = now
        state.has_day_totals = True
    totals = LeadDailyTotal.objects.filter(client_id=client.pk).aggregate(open=Sum("next_actions_open"))
    state.next_actions_open = totals["open"] or 0
    state.save()


def rollups_refresh(
    *, client: Client | None = None, days: Iterable[datetime.date] | None = None, now: datetime.datetime | None = None
) -> RefreshResult:
    """Recompute the rollup rows of `days` (local days; None: every day) of `client` (None:
    every client) from the lead rows. Idempotent: run it again and the rows are the same."""
    now = now or timezone.now()
    result = RefreshResult()
    clients = [client] if client is not None else list(Client.objects.order_by("id"))
    day_list = None if days is None else list(days)
    for one in clients:
        _refresh_client(one, day_list, now, result)
    return result


def _changed_days(since: datetime.datetime, clients: dict[int, Client]) -> dict[int, set[datetime.date]]:
    """(client, local day) pairs touched by leads changed at or after `since` (lead_updated_idx).

    A merge can move a lead's captured_at earlier (the earliest signal wins): its former day
    must be recomputed too. Every captured_at a lead ever had is the time of its capture or of
    a merge on its timeline, so those days are included.
    """
    touched: dict[int, set[datetime.date]] = {}
    changed = Lead.objects.filter(updated_at__gte=since).order_by().values_list("id", "client_id", "captured_at")
    chunk: list[int] = []

    def add(client_id: int, moment: datetime.datetime) -> None:
        client = clients.get(client_id)
        if client is not None:
            touched.setdefault(client_id, set()).add(local_day(client.tz, moment))

    def flush() -> None:
        earlier = Activity.objects.filter(
            lead_id__in=chunk, kind__in=[Activity.Kind.LEAD_CAPTURED, Activity.Kind.MERGE]
        ).values_list("client_id", "occurred_at")
        for client_id, occurred_at in earlier.order_by():
            add(client_id, occurred_at)
        chunk.clear()

    for lead_id, client_id, captured_at in changed.iterator(chunk_size=2000):
        add(client_id, captured_at)
        chunk.append(lead_id)
        if len(chunk) >= 1000:
            flush()
    if chunk:
        flush()
    return touched


def rollups_refresh_changed(*, now: datetime.datetime | None = None) -> RefreshResult:
    """Recompute the days whose leads changed since the last run (the beat task, every minute).

    A client refreshed for the first time, or whose time zone changed since, is refreshed in
    full. One run at a time: a run that finds the watermark row locked returns at once.
    """
    now = now or timezone.now()
    result = RefreshResult()
    LeadRollupWatermark.objects.get_or_create(name="leads")
    with transaction.atomic():
        watermark = LeadRollupWatermark.objects.select_for_update(skip_locked=True).filter(name="leads").first()
        if watermark is None:  # another run holds it
            return result
        clients = {c.pk: c for c in Client.objects.order_by("id")}
        states = dict(LeadRollupClientState.objects.values_list("client_id", "time_zone"))
        # Rolled up before the day totals existed (leads/0004): refreshed in full once.
        without_totals = set(
            LeadRollupClientState.objects.filter(has_day_totals=False).values_list("client_id", flat=True)
        )
        if watermark.scanned_through is None:
            full = set(clients)
            touched: dict[int, set[datetime.date]] = {}
        else:
            touched = _changed_days(watermark.scanned_through - RESCAN_OVERLAP, clients)
            full = {pk for pk in touched if states.get(pk) != clients[pk].time_zone}
            # A time zone change alone touches no lead: every day of the client moves.
            full |= {pk for pk, tz in states.items() if pk in clients and tz != clients[pk].time_zone}
            full |= without_totals & set(clients)
        for pk in sorted(full):
            _refresh_client(clients[pk], None, now, result)
        for pk in sorted(set(touched) - full):
            _refresh_client(clients[pk], touched[pk], now, result)
        # The others' rows were current through this scan as well.
        LeadRollupClientState.objects.exclude(client_id__in=[*full, *touched]).update(refreshed_at=now)
        watermark.scanned_through = now
        watermark.save(update_fields=["scanned_through", "updated_at"])
    return result
