"""Daily rollups: what they hold equals the lead rows, and they follow the leads as they change."""

import datetime
from collections import Counter
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.utils import timezone

from leads import rollups
from leads.models import Activity, Lead, LeadDailyRollup, LeadRollupClientState, LeadRollupWatermark
from leads.models_rollups import RESPONSE_BUCKET_EDGES, LeadDailyTotal, response_bucket
from leads.services import LeadSignal, activity_record, lead_set_status, lead_update, lead_upsert
from leads.tasks import rebuild_rollups, refresh_rollups
from tests import factories
from tests.leads.rollup_helpers import make_leads
from zartsalgo.db import columns, update_changed

pytestmark = pytest.mark.django_db

CHICAGO_DAY = datetime.date(2026, 3, 2)


def _at(client, day, hour, minute=0):
    return datetime.datetime.combine(day, datetime.time(hour, minute), tzinfo=client.tz)


def _rows(client):
    return {(r.day, r.source, r.service_type): r for r in LeadDailyRollup.objects.filter(client=client)}


def _total(client, name, **filters):
    return sum(getattr(r, name) for r in LeadDailyRollup.objects.filter(client=client, **filters))


_SUMMED = (
    "leads",
    "excluded",
    "responded",
    "response_seconds_sum",
    "booked",
    "with_source_and_attribution",
    "next_actions_open",
)


def assert_day_totals_are_the_rows_sums(client) -> None:
    """LeadDailyTotal holds, per day, exactly the sum of the day's LeadDailyRollup rows."""
    expected: dict[datetime.date, Counter] = {}
    for r in LeadDailyRollup.objects.filter(client=client):
        c = expected.setdefault(r.day, Counter())
        for name in _SUMMED:
            c[name] += getattr(r, name)
        c.update({f"lost:{k}": v for k, v in r.lost_by_reason.items()})
        c.update({f"bucket:{int(k)}": v for k, v in r.response_histogram.items()})
        c[f"source:{r.source}"] += r.leads
        c[f"service:{r.service_type}"] += r.leads
    got: dict[datetime.date, Counter] = {}
    for t in LeadDailyTotal.objects.filter(client=client):
        c = got[t.day] = Counter({name: getattr(t, name) for name in _SUMMED})
        c.update({f"lost:{k}": v for k, v in t.lost_by_reason.items()})
        assert not t.response_histogram or t.response_histogram[-1], "dense, trailing zeros cut"
        c.update({f"bucket:{i}": v for i, v in enumerate(t.response_histogram)})
        c.update({f"source:{k}": v for k, v in t.leads_by_source.items()})
        c.update({f"service:{k}": v for k, v in t.leads_by_service.items()})
    assert {d: +c for d, c in got.items()} == {d: +c for d, c in expected.items()}


def test_the_rules_match_the_portal_selectors():
    # leads sits below portal and keeps its own copy of what is counted; they must not drift.
    from portal import selectors

    assert rollups.EXCLUDED_LOST_REASONS == selectors.EXCLUDED_LOST_REASONS
    assert rollups.SELF_ATTRIBUTED_SOURCES == selectors.SELF_ATTRIBUTED_SOURCES
    assert rollups.ATTRIBUTION_FIELDS == selectors.ATTRIBUTION_FIELDS


def test_bucket_edges_are_the_documented_ones():
    edges = RESPONSE_BUCKET_EDGES
    assert len(edges) == 185
    assert edges[:3] == (0, 60, 120) and edges[59] == 3540 and edges[60] == 3600
    assert edges[61] - edges[60] == 300 and edges[96] == 4 * 3600 and edges[97] - edges[96] == 1800
    assert edges[-1] == 48 * 3600
    for i, edge in enumerate(edges):
        assert response_bucket(edge) == i
        if i:
            assert response_bucket(edge - 1) == i - 1


def test_the_sql_bucket_is_the_python_bucket(acme):
    seconds = [0, 1, 59, 60, 3599, 3600, 3601, 3899, 3900, 14_399, 14_400, 16_199, 16_200, 172_799, 172_800, 10**6]
    for s in seconds:
        factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 12), first_response_seconds=s)

    rollups.rollups_refresh(client=acme)

    histogram = Counter()
    for row in LeadDailyRollup.objects.filter(client=acme):
        histogram.update({int(k): v for k, v in row.response_histogram.items()})
    assert histogram == Counter(response_bucket(s) for s in seconds)


def test_rows_equal_a_group_by_of_the_lead_rows(acme):
    make_leads(acme, n=150, first_day=CHICAGO_DAY, days=20, seed=3)

    result = rollups.rollups_refresh(client=acme)

    expected: dict[tuple, Counter] = {}
    for lead in Lead.objects.filter(client=acme):
        key = (lead.captured_at.astimezone(acme.tz).date(), lead.source, lead.service_type)
        c = expected.setdefault(key, Counter())
        if lead.lost_reason in ("spam", "duplicate"):
            c["excluded"] += 1
            continue
        c["leads"] += 1
        c["responded"] += lead.first_response_seconds is not None
        c["response_seconds_sum"] += lead.first_response_seconds or 0
        c["booked"] += lead.status == "booked"
        has_next = bool(lead.next_action) or lead.next_action_due is not None
        c["next_actions_open"] += lead.status in ("new", "contacted", "quoted") and has_next
        if lead.status == "lost":
            c[f"lost:{lead.lost_reason}"] += 1
        if lead.first_response_seconds is not None:
            c[f"bucket:{response_bucket(lead.first_response_seconds)}"] += 1
    rows = _rows(acme)
    assert set(rows) == set(expected) and result.rows == len(expected)
    for key, c in expected.items():
        row = rows[key]
        got = Counter(
            {
                "excluded": row.excluded,
                "leads": row.leads,
                "responded": row.responded,
                "response_seconds_sum": row.response_seconds_sum,
                "booked": row.booked,
                "next_actions_open": row.next_actions_open,
                **{f"lost:{k}": v for k, v in row.lost_by_reason.items()},
                **{f"bucket:{k}": v for k, v in row.response_histogram.items()},
            }
        )
        assert +got == +c, key
    state = LeadRollupClientState.objects.get(client=acme)
    assert state.next_actions_open == sum(c["next_actions_open"] for c in expected.values())
    assert state.time_zone == "America/Chicago" and state.full_refreshed_at is not None
    assert_day_totals_are_the_rows_sums(acme)
    assert LeadDailyTotal.objects.filter(client=acme).count() == len({day for day, _, _ in expected})
    assert state.has_day_totals


def test_refresh_is_idempotent_and_a_full_refresh_drops_days_without_leads(acme):
    leads = make_leads(acme, n=40, first_day=CHICAGO_DAY, days=5, seed=5)
    rollups.rollups_refresh(client=acme)
    before = {k: (r.leads, r.excluded, r.booked, r.response_histogram) for k, r in _rows(acme).items()}
    rollups.rollups_refresh(client=acme)
    assert {k: (r.leads, r.excluded, r.booked, r.response_histogram) for k, r in _rows(acme).items()} == before

    # A lead removed behind the rollups' back (a privacy purge): the full refresh forgets it.
    last_day = max(lead.captured_at.astimezone(acme.tz).date() for lead in leads)
    Lead.objects.filter(client=acme, captured_at__gte=_at(acme, last_day, 0)).delete()
    rollups.rollups_refresh(client=acme)
    assert not LeadDailyRollup.objects.filter(client=acme, day=last_day).exists()
    assert not LeadDailyTotal.objects.filter(client=acme, day=last_day).exists()
    assert_day_totals_are_the_rows_sums(acme)


def test_a_lead_at_2330_local_lands_on_its_local_day(acme, other_client):
    # 23:30 in Chicago is 05:30 UTC the next day; in Denver 06:30 UTC.
    late = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 23, 30))
    early = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 0, 0))
    denver = factories.LeadFactory(client=other_client, captured_at=_at(other_client, CHICAGO_DAY, 23, 59))
    assert late.captured_at.astimezone(datetime.UTC).date() == CHICAGO_DAY + datetime.timedelta(days=1)

    rollups.rollups_refresh()

    assert _total(acme, "leads", day=CHICAGO_DAY) == 2
    assert _total(acme, "leads") == 2
    assert _total(other_client, "leads", day=CHICAGO_DAY) == 1
    assert early.pk and denver.pk


@pytest.mark.parametrize(
    ("day", "times"),
    [
        # Fall back (CDT → CST at 02:00): 01:30 happens twice; the day is 25 hours long.
        (datetime.date(2025, 11, 2), [(0, 10, 0), (1, 30, 0), (1, 30, 1), (2, 30, 0), (23, 59, 0)]),
        # Spring forward (02:00 → 03:00): the day is 23 hours long.
        (datetime.date(2026, 3, 8), [(0, 10, 0), (1, 59, 0), (3, 0, 0), (23, 30, 0)]),
    ],
)
def test_days_around_a_daylight_saving_change_are_local_days(acme, day, times):
    tz = acme.tz
    for hour, minute, fold in times:
        at = datetime.datetime.combine(day, datetime.time(hour, minute, fold=fold), tzinfo=tz)
        factories.LeadFactory(client=acme, captured_at=at)
    for neighbour in (day - datetime.timedelta(days=1), day + datetime.timedelta(days=1)):
        factories.LeadFactory(client=acme, captured_at=_at(acme, neighbour, 23, 30))
        factories.LeadFactory(client=acme, captured_at=_at(acme, neighbour, 0, 30))

    rollups.rollups_refresh(client=acme)

    assert _total(acme, "leads", day=day) == len(times)
    assert _total(acme, "leads", day=day - datetime.timedelta(days=1)) == 2
    assert _total(acme, "leads", day=day + datetime.timedelta(days=1)) == 2


def test_changed_days_are_picked_up_through_the_real_services(acme, data_ops_user):
    upsert = lead_upsert(
        client=acme,
        signal=LeadSignal(
            source="web_form", phone="5125550101", service_type="Drain cleaning", occurred_at=_at(acme, CHICAGO_DAY, 9)
        ),
    )
    lead = upsert.lead
    untouched = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY - datetime.timedelta(days=9), 9))
    # Last changed long ago: outside the rescan overlap of later runs.
    Lead.objects.filter(pk=untouched.pk).update(updated_at=timezone.now() - datetime.timedelta(days=1))
    first = rollups.rollups_refresh_changed()
    assert first.full_clients == 1  # the first run builds everything
    assert _total(acme, "leads", day=CHICAGO_DAY) == 1 and _total(acme, "responded") == 0

    # A first response (through the timeline) and later a booking.
    activity_record(
        lead=lead,
        kind=Activity.Kind.SMS_OUTBOUND,
        summary="On our way",
        actor="system:test",
        occurred_at=_at(acme, CHICAGO_DAY, 9, 7),
    )
    second = rollups.rollups_refresh_changed()
    assert (second.full_clients, second.clients, second.ranges, second.rows) == (0, 1, 1, 1)  # the changed day
    row = LeadDailyRollup.objects.get(client=acme, day=CHICAGO_DAY)
    assert row.responded == 1 and row.response_histogram == {"7": 1}

    lead_set_status(lead=lead, status=Lead.Status.BOOKED, actor="system:test")
    lead_update(lead=untouched, data={"next_action": "Call back"}, actor=data_ops_user)
    rollups.rollups_refresh_changed()
    assert LeadDailyRollup.objects.get(client=acme, day=CHICAGO_DAY).booked == 1
    assert LeadRollupClientState.objects.get(client=acme).next_actions_open == 1

    # Marked as spam: no longer counted anywhere.
    lead_set_status(lead=lead, status=Lead.Status.LOST, lost_reason="spam", actor="system:test")
    rollups.rollups_refresh_changed()
    row = LeadDailyRollup.objects.get(client=acme, day=CHICAGO_DAY)
    assert (row.leads, row.excluded, row.booked, row.response_histogram) == (0, 1, 0, {})


def test_a_merge_that_moves_capture_earlier_leaves_its_former_day(acme):
    later = CHICAGO_DAY + datetime.timedelta(days=3)
    lead_upsert(client=acme, signal=LeadSignal(source="sms", phone="5125550102", occurred_at=_at(acme, later, 10)))
    rollups.rollups_refresh_changed()
    assert _total(acme, "leads", day=later) == 1

    # An import brings an older signal from the same person: captured_at becomes the older time.
    lead_upsert(client=acme, signal=LeadSignal(source="csv", phone="5125550102", occurred_at=_at(acme, CHICAGO_DAY, 8)))
    rollups.rollups_refresh_changed()

    assert _total(acme, "leads", day=later) == 0
    assert _total(acme, "leads", day=CHICAGO_DAY) == 1


def test_changes_that_do_not_bump_updated_at_are_not_seen_until_a_full_refresh(acme):
    # The change signal is updated_at: this documents why every lead writer must set it.
    lead = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 10))
    rollups.rollups_refresh_changed()
    Lead.objects.filter(pk=lead.pk).update(
        status=Lead.Status.BOOKED, updated_at=timezone.now() - datetime.timedelta(days=1)
    )
    rollups.rollups_refresh_changed()
    assert _total(acme, "booked") == 0
    call_command("refresh_rollups", "--full", stdout=StringIO())
    assert _total(acme, "booked") == 1


def test_the_batch_writers_helper_bumps_updated_at(acme):
    # zartsalgo.db.update_changed is how the leads batch consumer and the workflow engine write
    # leads: it must move updated_at, or the rollups would miss those changes.
    lead = factories.LeadFactory(client=acme)
    Lead.objects.filter(pk=lead.pk).update(updated_at=timezone.now() - datetime.timedelta(days=1))
    lead.refresh_from_db()
    before = columns(lead)
    lead.status = Lead.Status.QUOTED
    now = timezone.now()
    update_changed([(lead, before)], now=now)
    lead.refresh_from_db()
    assert lead.status == "quoted" and lead.updated_at == now


def test_a_time_zone_change_rebuilds_the_client(acme, data_ops_user):
    factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 23, 30))
    rollups.rollups_refresh_changed()
    assert _total(acme, "leads", day=CHICAGO_DAY) == 1

    acme.time_zone = "America/Los_Angeles"  # 23:30 Chicago is 21:30 there: same day
    acme.save()
    acme.time_zone = "Europe/Berlin"  # 06:30 the next day there
    acme.save()
    result = rollups.rollups_refresh_changed()

    assert result.full_clients == 1
    assert _total(acme, "leads", day=CHICAGO_DAY) == 0
    assert _total(acme, "leads", day=CHICAGO_DAY + datetime.timedelta(days=1)) == 1
    assert LeadRollupClientState.objects.get(client=acme).time_zone == "Europe/Berlin"
    assert list(LeadDailyTotal.objects.filter(client=acme).values_list("day", "leads")) == [
        (CHICAGO_DAY + datetime.timedelta(days=1), 1)
    ]


def test_a_run_that_finds_nothing_still_moves_as_of_and_the_watermark(acme):
    lead = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 10))
    Lead.objects.filter(pk=lead.pk).update(updated_at=timezone.now() - datetime.timedelta(days=2))
    assert rollups.rollups_refresh_changed().full_clients == 1
    # Nothing changed since (nor within the rescan overlap before the last run).
    later = timezone.now() + datetime.timedelta(hours=1)
    result = rollups.rollups_refresh_changed(now=later)
    assert result.clients == 0
    assert LeadRollupClientState.objects.get(client=acme).refreshed_at == later
    assert LeadRollupWatermark.objects.get().scanned_through == later


def test_command_and_task(acme, other_client):
    factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 10))
    factories.LeadFactory(client=other_client, captured_at=_at(other_client, CHICAGO_DAY, 10))

    out = StringIO()
    call_command("refresh_rollups", "--client", "acme", "--full", stdout=out)
    assert "1 client(s) (1 in full)" in out.getvalue()
    assert LeadDailyRollup.objects.filter(client=acme).exists()
    assert not LeadDailyRollup.objects.filter(client=other_client).exists()

    with pytest.raises(CommandError):
        call_command("refresh_rollups", "--client", "nobody", "--full")
    with pytest.raises(CommandError):
        call_command("refresh_rollups", "--client", "acme")

    assert refresh_rollups.apply().get()["clients"] == 2  # first run: every client in full
    assert LeadDailyRollup.objects.filter(client=other_client).exists()
    entry = settings.CELERY_BEAT_SCHEDULE["refresh-lead-rollups"]
    assert entry["task"] == refresh_rollups.name and entry["schedule"] == 60.0


def test_the_nightly_rebuild_counts_out_a_deleted_lead(acme):
    kept = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY, 10))
    # Another day: a refresh of `kept`'s day (its row is still inside the scan's overlap) would
    # recount that whole day and hide what this test is about.
    gone = factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY - datetime.timedelta(days=3), 11))
    refresh_rollups.apply().get()
    Lead.objects.filter(pk=kept.pk).update(updated_at=timezone.now() - datetime.timedelta(days=1))
    assert sum(LeadDailyRollup.objects.filter(client=acme).values_list("leads", flat=True)) == 2
    Lead.objects.filter(pk=gone.pk).delete()  # an engineer's delete: no updated_at left to follow
    refresh_rollups.apply().get()
    assert sum(LeadDailyRollup.objects.filter(client=acme).values_list("leads", flat=True)) == 2
    assert rebuild_rollups.apply().get()["clients"] >= 1
    assert sum(LeadDailyRollup.objects.filter(client=acme).values_list("leads", flat=True)) == 1
    assert list(LeadDailyTotal.objects.filter(client=acme).values_list("leads", flat=True)) == [1]
    assert settings.CELERY_BEAT_SCHEDULE["rebuild-lead-rollups"]["task"] == rebuild_rollups.name


def test_incremental_refreshes_keep_the_day_totals_equal_to_the_rows(acme, data_ops_user):
    leads = make_leads(acme, n=80, first_day=CHICAGO_DAY, days=10, seed=17)
    rollups.rollups_refresh_changed()  # first run: in full
    assert_day_totals_are_the_rows_sums(acme)
    lead_set_status(lead=leads[0], status=Lead.Status.BOOKED, actor=data_ops_user)
    lead_set_status(lead=leads[1], status=Lead.Status.LOST, lost_reason=Lead.LostReason.SPAM, actor=data_ops_user)
    factories.LeadFactory(client=acme, captured_at=_at(acme, CHICAGO_DAY + datetime.timedelta(days=30), 9))
    result = rollups.rollups_refresh_changed()
    assert result.full_clients == 0 and result.clients == 1
    assert_day_totals_are_the_rows_sums(acme)
    assert LeadDailyTotal.objects.get(client=acme, day=CHICAGO_DAY + datetime.timedelta(days=30)).leads == 1


def test_clients_rolled_up_before_the_day_totals_are_refreshed_in_full_once(acme, other_client):
    make_leads(acme, n=30, first_day=CHICAGO_DAY, days=5, seed=19)
    rollups.rollups_refresh_changed()
    # As leads/0004 leaves a client rolled up before it: rows, no totals, has_day_totals False.
    LeadDailyTotal.objects.all().delete()
    LeadRollupClientState.objects.update(has_day_totals=False)

    result = rollups.rollups_refresh_changed()
    assert result.full_clients == 2
    assert LeadDailyTotal.objects.filter(client=acme).exists()
    assert_day_totals_are_the_rows_sums(acme)
    assert rollups.rollups_refresh_changed().full_clients == 0
