"""leads.reports: every number equals the one computed from the lead rows, from rollups only."""

import datetime
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from leads import rollups
from leads.models import Lead
from leads.reports import (
    PeriodNumbers,
    Report,
    histogram_median_seconds,
    histogram_p90_seconds,
    lead_report,
    lead_trend,
    report_period_default,
)
from leads.services import LeadSignal, activity_record, lead_set_status, lead_upsert
from portal.selectors import lead_stats
from tests import factories
from tests.leads.rollup_helpers import assert_within, brute, exact_median, exact_p90, make_leads, pct

pytestmark = pytest.mark.django_db

JOINED = datetime.date(2026, 4, 1)
START, END = datetime.date(2026, 5, 1), datetime.date(2026, 5, 30)  # baseline: Mar 2 to Mar 31


@pytest.fixture
def client_joined(db):
    return factories.ClientFactory(slug="joined", time_zone="America/New_York", joined_on=JOINED)


def assert_period_matches(numbers: PeriodNumbers, client, start, end):
    b = brute(client, start, end)
    assert (numbers.start, numbers.end) == (start, end)
    assert numbers.leads == b.leads
    assert numbers.responded == b.responded
    assert numbers.booked == b.booked
    assert numbers.booked_rate == pct(b.booked, b.leads)
    assert numbers.with_source_and_attribution == b.attributed
    assert numbers.source_coverage == pct(b.attributed, b.leads)
    assert numbers.lost_reasons == sorted(b.lost.items(), key=lambda x: (-x[1], x[0]))
    assert [(key, n) for key, _, n in numbers.by_source] == sorted(
        b.by_source.items(), key=lambda x: (-x[1], dict(Lead._meta.get_field("source").choices)[x[0]])
    )
    assert dict((label, n) for label, n in numbers.by_service) == dict(b.by_service)
    assert [n for _, n in numbers.by_service] == sorted((n for _, n in numbers.by_service), reverse=True)
    if b.responses:
        assert_within(numbers.response_median_minutes, exact_median(b.responses))
        assert_within(numbers.response_p90_minutes, exact_p90(b.responses))
    else:
        assert numbers.response_median_minutes is None and numbers.response_p90_minutes is None
    return b


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_every_number_equals_the_brute_force_one(client_joined, seed):
    c = client_joined
    make_leads(c, n=120, first_day=START - datetime.timedelta(days=2), days=34, seed=seed)  # spills over both ends
    make_leads(c, n=60, first_day=datetime.date(2026, 3, 1), days=31, seed=seed + 10)  # baseline and before it
    rollups.rollups_refresh(client=c)

    report = lead_report(client=c, start=START, end=END)

    assert isinstance(report, Report) and report.client == c
    b = assert_period_matches(report.current, c, START, END)
    base_start, base_end = datetime.date(2026, 3, 2), datetime.date(2026, 3, 31)
    assert report.baseline is not None
    assert_period_matches(report.baseline, c, base_start, base_end)
    assert [d for d, _, _ in report.daily] == [START + datetime.timedelta(days=i) for i in range(30)]
    assert [(leads, booked) for _, leads, booked in report.daily] == [
        (b.daily[d], b.daily_booked[d]) for d, _, _ in report.daily
    ]
    # The portal's own lead-by-lead statistics agree on everything they share.
    stats = lead_stats(client=c, start=START, end=END)
    assert stats.total == report.current.leads and stats.booked == report.current.booked
    assert stats.responded == report.current.responded
    assert stats.known_source_and_attribution == report.current.with_source_and_attribution
    assert dict(stats.lost_reasons) == dict(report.current.lost_reasons)
    assert dict(stats.by_source) == {label: n for _, label, n in report.current.by_source}
    assert dict(stats.by_service) == dict(report.current.by_service)
    assert stats.booked_rate == report.current.booked_rate and stats.source_coverage == report.current.source_coverage


def test_percentiles_are_exact_when_values_sit_on_bucket_edges(acme):
    seconds = [0, 60, 60, 120, 540, 3540, 3600, 3900, 7200, 14_400, 16_200, 21_600, 100_800]
    for i, s in enumerate(seconds):
        at = timezone.make_aware(datetime.datetime(2026, 5, 3, 10, i), acme.tz)
        factories.LeadFactory(client=acme, captured_at=at, first_response_seconds=s)
    rollups.rollups_refresh(client=acme)

    numbers = lead_report(client=acme, start=datetime.date(2026, 5, 3), end=datetime.date(2026, 5, 3)).current

    exact_med, _ = exact_median(seconds)
    exact_90, _ = exact_p90(seconds)
    assert numbers.response_median_minutes == exact_med.quantize(Decimal("0.1")) == Decimal("60.0")
    assert numbers.response_p90_minutes == exact_90.quantize(Decimal("0.1"))


def test_percentiles_from_a_histogram():
    assert histogram_median_seconds({}) is None and histogram_p90_seconds({}) is None
    assert histogram_median_seconds({3: 1}) == 180 and histogram_p90_seconds({3: 1}) == 180
    assert histogram_median_seconds({1: 1, 3: 1}) == 120  # (60 + 180) / 2, as statistics.median
    # 10 values: position 0.9 * 9 = 8.1 → the 9th value plus a tenth of the way to the 10th.
    hist = {0: 8, 2: 1, 12: 1}
    assert histogram_p90_seconds(hist) == Decimal(120 * 9 + 720) / 10
    # Beyond 48 h the estimate is the 48 h floor.
    assert histogram_median_seconds({184: 3}) == 48 * 3600


def test_overflow_responses_report_the_48_hour_floor(acme):
    at = timezone.make_aware(datetime.datetime(2026, 5, 3, 10), acme.tz)
    for s in (200_000, 300_000, 400_000):
        factories.LeadFactory(client=acme, captured_at=at, first_response_seconds=s)
    rollups.rollups_refresh(client=acme)
    numbers = lead_report(client=acme, start=at.date(), end=at.date()).current
    assert numbers.response_median_minutes == numbers.response_p90_minutes == Decimal("2880.0")


def test_baseline_is_none_without_leads_before_joining(client_joined):
    make_leads(client_joined, n=20, first_day=START, days=10, seed=4)
    # A spam lead before joining is not a lead to compare with.
    factories.LeadFactory(
        client=client_joined,
        captured_at=timezone.make_aware(datetime.datetime(2026, 3, 20, 12), client_joined.tz),
        status=Lead.Status.LOST,
        lost_reason=Lead.LostReason.SPAM,
    )
    rollups.rollups_refresh(client=client_joined)

    report = lead_report(client=client_joined, start=START, end=END)

    assert report.baseline is None
    assert report.current.leads == brute(client_joined, START, END).leads > 0


def test_an_empty_period_reads_as_zeros_and_nones(client_joined):
    report = lead_report(client=client_joined, start=START, end=END)
    assert report.as_of is None and report.baseline is None
    assert report.current.leads == 0 and report.current.booked_rate is None and report.current.source_coverage is None
    assert report.current.response_median_minutes is None and report.current.lost_reasons == []
    assert len(report.daily) == 30 and all(n == 0 for _, n, _ in report.daily)
    with pytest.raises(ValueError):
        lead_report(client=client_joined, start=END, end=START)


def _queries(client, start=START, end=END) -> int:
    with CaptureQueriesContext(connection) as ctx:
        lead_report(client=client, start=start, end=end)
    return len(ctx.captured_queries)


def test_query_count_does_not_grow_with_the_leads(client_joined, django_assert_max_num_queries):
    small = factories.ClientFactory(slug="small", time_zone="America/New_York", joined_on=JOINED)
    make_leads(small, n=10, first_day=datetime.date(2026, 3, 10), days=80, seed=8)
    make_leads(client_joined, n=200, first_day=datetime.date(2026, 3, 10), days=80, seed=9)
    rollups.rollups_refresh()

    with django_assert_max_num_queries(3):
        lead_report(client=client_joined, start=START, end=END)
    assert _queries(small) == _queries(client_joined) == 3
    with django_assert_max_num_queries(1):
        lead_trend(client=client_joined, start=START, end=END, metric="response_median_minutes")


def test_next_actions_open_and_overdue(acme):
    now = timezone.now()
    factories.LeadFactory(client=acme, next_action="Call back", next_action_due=now - datetime.timedelta(hours=1))
    factories.LeadFactory(client=acme, next_action="Call back", next_action_due=now + datetime.timedelta(hours=1))
    factories.LeadFactory(client=acme, next_action="Quote", status=Lead.Status.QUOTED)  # no due time
    factories.LeadFactory(
        client=acme, next_action="Call back", next_action_due=now - datetime.timedelta(days=1), status="booked"
    )
    # A due time without text is a next action too (so overdue is always part of outstanding).
    factories.LeadFactory(client=acme, next_action="", next_action_due=now - datetime.timedelta(days=1))
    factories.LeadFactory(client=acme, next_action="")  # nothing to do
    rollups.rollups_refresh(client=acme)

    start, end = report_period_default(client=acme)
    report = lead_report(client=acme, start=start, end=end)

    assert (report.next_actions_open, report.next_actions_overdue) == (4, 2)
    assert report.as_of is not None


def test_the_report_follows_the_services_after_an_incremental_refresh(acme):
    day = datetime.date(2026, 5, 4)
    at = timezone.make_aware(datetime.datetime(2026, 5, 4, 9), acme.tz)
    lead = lead_upsert(client=acme, signal=LeadSignal(source="thumbtack", phone="5125550177", occurred_at=at)).lead
    rollups.rollups_refresh_changed()
    before = lead_report(client=acme, start=day, end=day).current
    assert (before.leads, before.responded, before.booked, before.with_source_and_attribution) == (1, 0, 0, 1)

    activity_record(
        lead=lead, kind="call_outbound", summary="Called", actor="t", occurred_at=at + datetime.timedelta(minutes=42)
    )
    lead_set_status(lead=lead, status=Lead.Status.BOOKED, actor="system:test")
    rollups.rollups_refresh_changed()

    after = lead_report(client=acme, start=day, end=day).current
    assert (after.leads, after.responded, after.booked, after.booked_rate) == (1, 1, 1, Decimal("100.0"))
    assert after.response_median_minutes == after.response_p90_minutes == Decimal("42.0")


def test_trend_daily_and_weekly_points(client_joined):
    c = client_joined
    make_leads(c, n=150, first_day=datetime.date(2026, 2, 1), days=150, seed=12)
    rollups.rollups_refresh(client=c)

    daily = lead_trend(client=c, start=START, end=END, metric="leads")
    assert [d for d, _ in daily] == [START + datetime.timedelta(days=i) for i in range(30)]
    b = brute(c, START, END)
    assert [v for _, v in daily] == [Decimal(b.daily[d]) for d, _ in daily]

    start, end = datetime.date(2026, 2, 1), datetime.date(2026, 6, 20)  # 140 days: weekly
    for metric in ("leads", "booked", "booked_rate", "source_coverage", "response_median_minutes"):
        points = lead_trend(client=c, start=start, end=end, metric=metric)
        assert [d for d, _ in points] == [start + datetime.timedelta(days=7 * i) for i in range(20)]
        for first, value in points:
            week = brute(c, first, min(end, first + datetime.timedelta(days=6)))
            expected = {
                "leads": Decimal(week.leads),
                "booked": Decimal(week.booked),
                "booked_rate": pct(week.booked, week.leads),
                "source_coverage": pct(week.attributed, week.leads),
            }
            if metric == "response_median_minutes":
                if week.responses:
                    assert_within(value, exact_median(week.responses))
                else:
                    assert value is None
            else:
                assert value == expected[metric], (metric, first)
    with pytest.raises(ValueError):
        lead_trend(client=c, start=start, end=end, metric="revenue")


def test_default_period_is_the_last_30_full_local_days(acme):
    assert report_period_default(client=acme, today=datetime.date(2026, 5, 31)) == (START, END)
    today = timezone.now().astimezone(acme.tz).date()
    start, end = report_period_default(client=acme)
    assert end == today - datetime.timedelta(days=1) and (end - start).days == 29


# --- long periods: day totals plus one grouped breakdown, checked against the lead rows ----------

LONG_JOINED = datetime.date(2025, 9, 1)


@pytest.fixture
def long_client(db):
    return factories.ClientFactory(slug="long", time_zone="America/Los_Angeles", joined_on=LONG_JOINED)


@pytest.mark.parametrize("seed", [21, 22])
def test_a_multi_month_report_equals_the_lead_rows(long_client, seed):
    """Eight months (a DST change inside) and the baseline before joining: every number of
    lead_report — read from the day totals and the SQL breakdown — equals the brute-force one."""
    c = long_client
    start, end = datetime.date(2025, 9, 10), datetime.date(2026, 5, 9)
    make_leads(c, n=400, first_day=datetime.date(2025, 8, 25), days=270, seed=seed)  # both ends spill over
    make_leads(c, n=200, first_day=datetime.date(2024, 12, 1), days=280, seed=seed + 1)  # the baseline
    rollups.rollups_refresh(client=c)

    report = lead_report(client=c, start=start, end=end)

    b = assert_period_matches(report.current, c, start, end)
    assert len(report.current.by_source) > 2 and len(report.current.by_service) > 2
    assert len({d.month for d, n in b.daily.items() if n}) >= 8
    assert report.baseline is not None
    base_start, base_end = report.baseline.start, report.baseline.end
    assert base_end == LONG_JOINED - datetime.timedelta(days=1)
    assert (base_end - base_start) == (end - start)
    assert_period_matches(report.baseline, c, base_start, base_end)
    assert [(d, leads, booked) for d, leads, booked in report.daily] == [
        (d, b.daily[d], b.daily_booked[d])
        for d in (start + datetime.timedelta(days=i) for i in range((end - start).days + 1))
    ]
    # The trend reads the same day totals: its 7-day points add up to the period's numbers.
    trend = lead_trend(client=c, start=start, end=end, metric="leads")
    assert sum(v for _, v in trend) == report.current.leads
    booked = lead_trend(client=c, start=start, end=end, metric="booked")
    assert sum(v for _, v in booked) == report.current.booked


def test_a_period_reaching_back_before_joining_counts_the_overlap_in_both(long_client):
    c = long_client
    make_leads(c, n=150, first_day=datetime.date(2025, 6, 1), days=150, seed=31)
    rollups.rollups_refresh(client=c)
    start, end = datetime.date(2025, 8, 1), datetime.date(2025, 9, 30)  # joined Sep 1
    report = lead_report(client=c, start=start, end=end)
    assert_period_matches(report.current, c, start, end)
    assert report.baseline is not None
    assert_period_matches(report.baseline, c, report.baseline.start, report.baseline.end)


def test_a_year_costs_the_queries_of_a_month(long_client, django_assert_max_num_queries):
    c = long_client
    make_leads(c, n=300, first_day=datetime.date(2024, 9, 1), days=640, seed=41)
    rollups.rollups_refresh(client=c)
    month = _queries(c, datetime.date(2026, 4, 1), datetime.date(2026, 4, 30))
    year = _queries(c, datetime.date(2025, 5, 1), datetime.date(2026, 4, 30))
    two_years = _queries(c, datetime.date(2024, 5, 1), datetime.date(2026, 4, 30))
    assert month == year == two_years == 3
    with django_assert_max_num_queries(1):
        lead_trend(client=c, start=datetime.date(2025, 5, 1), end=datetime.date(2026, 4, 30), metric="leads")
