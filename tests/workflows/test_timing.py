"""Quiet hours and delays across DST. Expected instants are worked out by hand in UTC so a test cannot agree with a bug
just because it reuses the code's own conversion.

2026 transitions used below:
  America/Chicago   Mar 8 02:00 CST(-6) -> 03:00 CDT(-5) at 08:00Z; Nov 1 02:00 CDT -> 01:00 CST at 07:00Z
  Europe/London     Mar 29 01:00 GMT(+0) -> 02:00 BST(+1) at 01:00Z; Oct 25 02:00 BST -> 01:00 GMT at 01:00Z
  Australia/Sydney  Apr 5 03:00 AEDT(+11) -> 02:00 AEST(+10) at 16:00Z Apr 4;
                    Oct 4 02:00 AEST -> 03:00 AEDT at 16:00Z Oct 3
"""

import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from workflows.timing import add_delay, in_quiet_hours, next_send_time

UTC = datetime.UTC
CHICAGO = ZoneInfo("America/Chicago")
LONDON = ZoneInfo("Europe/London")
SYDNEY = ZoneInfo("Australia/Sydney")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")

NIGHT = (datetime.time(21, 0), datetime.time(8, 0))
LUNCH = (datetime.time(12, 0), datetime.time(13, 30))


def local(tz: ZoneInfo, *args: int, fold: int = 0) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=tz, fold=fold)


def utc(*args: int) -> datetime.datetime:
    return datetime.datetime(*args, tzinfo=UTC)


def send(due: datetime.datetime, window: tuple[datetime.time, datetime.time], tz: ZoneInfo = CHICAGO):
    return next_send_time(due=due, tz=tz, start=window[0], end=window[1])


# --- in_quiet_hours ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(20, 59, False), (21, 0, True), (23, 30, True), (0, 0, True), (7, 59, True), (8, 0, False), (12, 0, False)],
)
def test_wrapping_window_is_half_open(hour, minute, quiet):
    at = local(CHICAGO, 2026, 6, 10, hour, minute)
    assert in_quiet_hours(at=at, tz=CHICAGO, start=NIGHT[0], end=NIGHT[1]) is quiet


@pytest.mark.parametrize(
    ("hour", "minute", "quiet"),
    [(11, 59, False), (12, 0, True), (13, 29, True), (13, 30, False), (23, 0, False), (0, 30, False)],
)
def test_non_wrapping_window_is_half_open(hour, minute, quiet):
    at = local(CHICAGO, 2026, 6, 10, hour, minute)
    assert in_quiet_hours(at=at, tz=CHICAGO, start=LUNCH[0], end=LUNCH[1]) is quiet


def test_quiet_hours_use_the_clients_wall_clock_not_the_instants_zone():
    # 22:30 in New York is 21:30 in Chicago (quiet); 21:30 in Tokyo is 07:30 Chicago the same morning (quiet);
    # 13:30Z is 08:30 CDT, just after the window.
    assert in_quiet_hours(at=local(NEW_YORK, 2026, 6, 10, 22, 30), tz=CHICAGO, start=NIGHT[0], end=NIGHT[1])
    assert in_quiet_hours(at=local(TOKYO, 2026, 6, 10, 21, 30), tz=CHICAGO, start=NIGHT[0], end=NIGHT[1])
    assert not in_quiet_hours(at=utc(2026, 6, 10, 13, 30), tz=CHICAGO, start=NIGHT[0], end=NIGHT[1])


def test_both_occurrences_of_a_repeated_hour_are_quiet():
    window = (datetime.time(1, 0), datetime.time(2, 0))
    for fold in (0, 1):
        at = local(CHICAGO, 2026, 11, 1, 1, 30, fold=fold)
        assert in_quiet_hours(at=at, tz=CHICAGO, start=window[0], end=window[1])


# --- next_send_time: ordinary days --------------------------------------------------------------------------------


def test_wrapping_window_defers_to_its_end():
    # June 2026: Chicago is CDT, UTC-5, all day.
    assert send(local(CHICAGO, 2026, 6, 10, 23, 30), NIGHT) == utc(2026, 6, 11, 13, 0)  # 08:00 next local day
    assert send(local(CHICAGO, 2026, 6, 10, 7, 59), NIGHT) == utc(2026, 6, 10, 13, 0)  # 08:00 the same day
    assert send(local(CHICAGO, 2026, 6, 10, 21, 0), NIGHT) == utc(2026, 6, 11, 13, 0)


def test_due_outside_the_window_is_unchanged_but_returned_in_utc():
    result = send(local(CHICAGO, 2026, 6, 10, 8, 0), NIGHT)
    assert result == utc(2026, 6, 10, 13, 0)
    assert result.tzinfo is UTC
    # 20:59 CDT on Jun 10 is already Jun 11 in UTC.
    assert send(local(CHICAGO, 2026, 6, 10, 20, 59), NIGHT) == utc(2026, 6, 11, 1, 59)


def test_non_wrapping_window():
    assert send(local(CHICAGO, 2026, 6, 10, 11, 59), LUNCH) == utc(2026, 6, 10, 16, 59)
    assert send(local(CHICAGO, 2026, 6, 10, 12, 0), LUNCH) == utc(2026, 6, 10, 18, 30)  # 13:30 CDT
    assert send(local(CHICAGO, 2026, 6, 10, 13, 29, 59), LUNCH) == utc(2026, 6, 10, 18, 30)
    assert send(local(CHICAGO, 2026, 6, 10, 13, 30), LUNCH) == utc(2026, 6, 10, 18, 30)
    assert send(local(CHICAGO, 2026, 6, 10, 23, 0), LUNCH) == utc(2026, 6, 11, 4, 0)


def test_equal_start_and_end_means_no_quiet_hours():
    window = (datetime.time(9, 0), datetime.time(9, 0))
    for hour in (0, 8, 9, 21):
        due = local(CHICAGO, 2026, 6, 10, hour, 0)
        assert not in_quiet_hours(at=due, tz=CHICAGO, start=window[0], end=window[1])
        assert send(due, window) == due


def test_due_in_another_zone_is_judged_by_the_clients_local_date():
    # 08:30 EDT = 12:30Z = 07:30 CDT: quiet in Chicago though not by New York's clock -> 08:00 CDT = 13:00Z.
    assert send(local(NEW_YORK, 2026, 6, 10, 8, 30), NIGHT) == utc(2026, 6, 10, 13, 0)
    # 12:30 JST on Jun 11 = 03:30Z Jun 11 = 22:30 CDT on Jun 10: the window ends 08:00 CDT Jun 11 = 13:00Z, not Jun 12
    # (Tokyo's date plus one) nor earlier than due.
    assert send(local(TOKYO, 2026, 6, 11, 12, 30), NIGHT) == utc(2026, 6, 11, 13, 0)


# --- next_send_time: DST ----------------------------------------------------------------------------------------------


def test_chicago_spring_forward_overnight():
    # 23:30 CST Mar 7 = 05:30Z Mar 8. The window ends at 08:00 CDT (UTC-5) = 13:00Z: only 7.5 real hours later.
    # Naively adding 8.5 hours, or reusing the evening's CST offset, would give 14:00Z = 09:00 CDT.
    assert send(local(CHICAGO, 2026, 3, 7, 23, 30), NIGHT) == utc(2026, 3, 8, 13, 0)


def test_chicago_fall_back_overnight():
    # 23:30 CDT Oct 31 = 04:30Z Nov 1. The window ends at 08:00 CST (UTC-6) = 14:00Z: 9.5 real hours later.
    assert send(local(CHICAGO, 2026, 10, 31, 23, 30), NIGHT) == utc(2026, 11, 1, 14, 0)


def test_window_end_inside_the_spring_forward_gap_moves_to_the_end_of_the_gap():
    # 02:30 does not exist on Mar 8 (02:00 CST jumps to 03:00 CDT at 08:00Z). 01:15 CST = 07:15Z is quiet;
    # the send goes at 03:00 CDT = 08:00Z, not 03:30 CDT (08:30Z) that fold=0 arithmetic would give.
    window = (datetime.time(1, 0), datetime.time(2, 30))
    result = send(local(CHICAGO, 2026, 3, 8, 1, 15), window)
    assert result == utc(2026, 3, 8, 8, 0)
    assert result.astimezone(CHICAGO).time() == datetime.time(3, 0)


def test_window_end_in_the_repeated_hour_takes_the_first_occurrence_unless_already_past():
    window = (datetime.time(0, 0), datetime.time(1, 30))
    # 00:45 CDT = 05:45Z -> first 01:30 (CDT) = 06:30Z.
    assert send(local(CHICAGO, 2026, 11, 1, 0, 45), window) == utc(2026, 11, 1, 6, 30)
    # First 01:15 (CDT) = 06:15Z -> first 01:30 (CDT) = 06:30Z.
    assert send(local(CHICAGO, 2026, 11, 1, 1, 15, fold=0), window) == utc(2026, 11, 1, 6, 30)
    # Second 01:15 (CST) = 07:15Z: the first 01:30 (06:30Z) is already past, so the second one, 01:30 CST = 07:30Z.
    assert send(local(CHICAGO, 2026, 11, 1, 1, 15, fold=1), window) == utc(2026, 11, 1, 7, 30)


def test_allowed_part_of_the_day_lost_in_the_gap_waits_a_day_rather_than_send_during_quiet_hours():
    # Quiet 02:45-02:30 allows only 02:30-02:45, none of which exists on Mar 8. The end of the gap (03:00 CDT) is
    # itself quiet, so the send waits for 02:30 CDT on Mar 9 = 07:30Z.
    window = (datetime.time(2, 45), datetime.time(2, 30))
    assert send(local(CHICAGO, 2026, 3, 7, 23, 0), window) == utc(2026, 3, 9, 7, 30)


def test_london_spring_forward_and_fall_back():
    # 22:00 GMT Mar 28 = 22:00Z -> 08:00 BST Mar 29 = 07:00Z.
    assert send(local(LONDON, 2026, 3, 28, 22, 0), NIGHT, LONDON) == utc(2026, 3, 29, 7, 0)
    # 22:00 BST Oct 24 = 21:00Z -> 08:00 GMT Oct 25 = 08:00Z.
    assert send(local(LONDON, 2026, 10, 24, 22, 0), NIGHT, LONDON) == utc(2026, 10, 25, 8, 0)


def test_sydney_southern_hemisphere_dst():
    # April ends DST: 23:00 AEDT Apr 4 = 12:00Z -> 08:00 AEST (+10) Apr 5 = 22:00Z Apr 4.
    assert send(local(SYDNEY, 2026, 4, 4, 23, 0), NIGHT, SYDNEY) == utc(2026, 4, 4, 22, 0)
    # October starts DST: 23:00 AEST Oct 3 = 13:00Z -> 08:00 AEDT (+11) Oct 4 = 21:00Z Oct 3.
    assert send(local(SYDNEY, 2026, 10, 3, 23, 0), NIGHT, SYDNEY) == utc(2026, 10, 3, 21, 0)
    # 02:30 does not exist on Oct 4: 01:30 AEST = 15:30Z Oct 3 -> end of gap, 03:00 AEDT = 16:00Z Oct 3.
    window = (datetime.time(1, 0), datetime.time(2, 30))
    assert send(local(SYDNEY, 2026, 10, 4, 1, 30), window, SYDNEY) == utc(2026, 10, 3, 16, 0)


# --- add_delay --------------------------------------------------------------------------------------------------------


def test_days_keep_local_wall_time_but_hours_are_elapsed_across_spring_forward():
    start = local(CHICAGO, 2026, 3, 7, 10, 0)  # 10:00 CST = 16:00Z
    # 1 day: 10:00 CDT Mar 8 = 15:00Z (only 23 real hours). 24 hours: 16:00Z = 11:00 CDT.
    assert add_delay(start=start, amount=1, unit="days", tz=CHICAGO) == utc(2026, 3, 8, 15, 0)
    assert add_delay(start=start, amount=24, unit="hours", tz=CHICAGO) == utc(2026, 3, 8, 16, 0)
    assert add_delay(start=start, amount=24 * 60, unit="minutes", tz=CHICAGO) == utc(2026, 3, 8, 16, 0)


def test_days_keep_local_wall_time_but_hours_are_elapsed_across_fall_back():
    start = local(CHICAGO, 2026, 10, 31, 10, 0)  # 10:00 CDT = 15:00Z
    # 1 day: 10:00 CST Nov 1 = 16:00Z (25 real hours). 24 hours: 15:00Z = 09:00 CST.
    assert add_delay(start=start, amount=1, unit="days", tz=CHICAGO) == utc(2026, 11, 1, 16, 0)
    assert add_delay(start=start, amount=24, unit="hours", tz=CHICAGO) == utc(2026, 11, 1, 15, 0)


def test_weeks_are_calendar_weeks():
    # 10:00 CST Mon Mar 2 = 16:00Z -> 10:00 CDT Mon Mar 9 = 15:00Z (7 days minus the lost hour).
    assert add_delay(start=local(CHICAGO, 2026, 3, 2, 10, 0), amount=1, unit="weeks", tz=CHICAGO) == utc(
        2026, 3, 9, 15, 0
    )


def test_days_landing_in_the_gap_or_the_repeated_hour():
    # 02:30 CST Mar 7 = 08:30Z; 02:30 Mar 8 does not exist -> 03:00 CDT = 08:00Z.
    assert add_delay(start=local(CHICAGO, 2026, 3, 7, 2, 30), amount=1, unit="days", tz=CHICAGO) == utc(
        2026, 3, 8, 8, 0
    )
    # 01:30 CDT Oct 31 = 06:30Z; Nov 1 01:30 happens twice -> the first, CDT, 06:30Z (not 07:30Z).
    assert add_delay(start=local(CHICAGO, 2026, 10, 31, 1, 30), amount=1, unit="days", tz=CHICAGO) == utc(
        2026, 11, 1, 6, 30
    )


def test_zero_days_never_moves_back_in_time():
    # The second 01:30 (CST, 07:30Z): re-resolving its wall time as fold=0 would give 06:30Z, an hour in the past.
    start = local(CHICAGO, 2026, 11, 1, 1, 30, fold=1)
    assert add_delay(start=start, amount=0, unit="days", tz=CHICAGO) == utc(2026, 11, 1, 7, 30)
    assert add_delay(start=start, amount=0, unit="hours", tz=CHICAGO) == utc(2026, 11, 1, 7, 30)


def test_days_use_the_clients_date_and_london_and_sydney_rules():
    # 09:00 GMT Mar 28 -> 09:00 BST Mar 29 = 08:00Z; 24 hours -> 09:00Z = 10:00 BST.
    assert add_delay(start=utc(2026, 3, 28, 9, 0), amount=1, unit="days", tz=LONDON) == utc(2026, 3, 29, 8, 0)
    assert add_delay(start=utc(2026, 3, 28, 9, 0), amount=24, unit="hours", tz=LONDON) == utc(2026, 3, 29, 9, 0)
    # 00:00Z Oct 3 is 10:00 AEST in Sydney -> 10:00 AEDT Oct 4 = 23:00Z Oct 3; 24 hours -> 00:00Z Oct 4 = 11:00 AEDT.
    assert add_delay(start=utc(2026, 10, 3, 0, 0), amount=1, unit="days", tz=SYDNEY) == utc(2026, 10, 3, 23, 0)
    assert add_delay(start=utc(2026, 10, 3, 0, 0), amount=24, unit="hours", tz=SYDNEY) == utc(2026, 10, 4, 0, 0)
    # 10:00 AEDT Apr 4 = 23:00Z Apr 3 -> 10:00 AEST Apr 5 = 00:00Z Apr 5 (25 real hours).
    assert add_delay(start=local(SYDNEY, 2026, 4, 4, 10, 0), amount=1, unit="days", tz=SYDNEY) == utc(2026, 4, 5, 0, 0)


# --- errors -----------------------------------------------------------------------------------------------------------


def test_negative_amount_is_rejected():
    with pytest.raises(ValueError, match=">= 0"):
        add_delay(start=utc(2026, 6, 10, 12, 0), amount=-1, unit="days", tz=CHICAGO)


def test_unknown_unit_is_rejected():
    with pytest.raises(ValueError, match="months"):
        add_delay(start=utc(2026, 6, 10, 12, 0), amount=1, unit="months", tz=CHICAGO)  # type: ignore[arg-type]


def test_naive_datetimes_are_rejected():
    naive = datetime.datetime(2026, 6, 10, 12, 0)
    with pytest.raises(ValueError, match="aware"):
        in_quiet_hours(at=naive, tz=CHICAGO, start=NIGHT[0], end=NIGHT[1])
    with pytest.raises(ValueError, match="aware"):
        send(naive, NIGHT)
    with pytest.raises(ValueError, match="aware"):
        add_delay(start=naive, amount=1, unit="hours", tz=CHICAGO)


# --- property ---------------------------------------------------------------------------------------------------------

ZONES = [CHICAGO, LONDON, SYDNEY, NEW_YORK, TOKYO, ZoneInfo("Australia/Lord_Howe"), UTC]


@settings(deadline=None, database=None)
@given(
    instant=st.datetimes(min_value=datetime.datetime(2026, 1, 1), max_value=datetime.datetime(2026, 12, 31, 23, 59)),
    client_tz=st.sampled_from(ZONES[:-1]),
    due_tz=st.sampled_from(ZONES),
    start=st.times(),
    end=st.times(),
)
def test_next_send_time_is_soon_after_due_and_outside_quiet_hours(instant, client_tz, due_tz, start, end):
    due = instant.replace(tzinfo=UTC).astimezone(due_tz)
    result = next_send_time(due=due, tz=client_tz, start=start, end=end)

    assert result.tzinfo is UTC
    assert result >= due.astimezone(UTC)
    assert not in_quiet_hours(at=result, tz=client_tz, start=start, end=end)
    # A quiet window is under 24 wall-clock hours and a fall-back adds at most one. The exception is a window whose
    # allowed part (end..start) is no longer than a DST gap and can vanish inside it; then the send waits a day.
    allowed = (
        datetime.datetime.combine(datetime.date.min, start) - datetime.datetime.combine(datetime.date.min, end)
    ) % (datetime.timedelta(days=1))
    limit = datetime.timedelta(hours=25) if allowed > datetime.timedelta(hours=1) else datetime.timedelta(hours=49)
    assert result < due.astimezone(UTC) + limit
