"""When a workflow step may actually send: quiet hours and delays in the client's own time zone.

Quiet hours and "Day 3 at 10:00" are promises made in the client's local wall-clock time, while the scheduler stores and
compares instants in UTC. These helpers are the one place that translates between the two, so the DST edge cases
(a local time that does not exist, or exists twice) are decided once, here, and never silently drop or advance a send
into quiet hours.

Pure functions: no models, no DB, standard library only, so they can be tested exhaustively.
"""

import datetime
from typing import Literal
from zoneinfo import ZoneInfo

UTC = datetime.UTC

DelayUnit = Literal["minutes", "hours", "days", "weeks"]

_ELAPSED_UNITS = {"minutes": datetime.timedelta(minutes=1), "hours": datetime.timedelta(hours=1)}
_CALENDAR_UNITS = {"days": 1, "weeks": 7}

# Once the window's end is reached, the next quiet window starts at least one day later; a few more days only matter
# for pathological windows whose allowed part vanishes inside a DST gap (see next_send_time).
_MAX_DAYS_TO_SEARCH = 7


def in_quiet_hours(*, at: datetime.datetime, tz: ZoneInfo, start: datetime.time, end: datetime.time) -> bool:
    """Whether `at` falls in the quiet window [start, end) of the client's local wall-clock time.

    The window may wrap midnight (21:00-08:00). start == end means the client has no quiet hours.
    """
    _require_aware(at, name="at")
    if start == end:
        return False
    # Wall time is what the client promised its leads, so both 01:30s of a fall-back night are equally quiet.
    local = at.astimezone(tz).time()
    if start < end:
        return start <= local < end
    return local >= start or local < end


def next_send_time(
    *, due: datetime.datetime, tz: ZoneInfo, start: datetime.time, end: datetime.time
) -> datetime.datetime:
    """The earliest instant at or after `due` that is outside quiet hours, as an aware UTC datetime.

    A send due inside the window is deferred to the instant the window ends, never dropped and never moved earlier.
    A window end that does not exist locally (spring-forward gap) becomes the first instant after the gap; one that
    exists twice (fall-back) is its first occurrence unless that is already before `due`.
    """
    _require_aware(due, name="due")
    if not in_quiet_hours(at=due, tz=tz, start=start, end=end):
        return due.astimezone(UTC)

    local = due.astimezone(tz)
    end_date = local.date()
    # A wrapping window entered in the evening ends tomorrow morning; in its morning part (or for a window that does
    # not wrap) it ends today.
    if start > end and local.time() >= start:
        end_date += datetime.timedelta(days=1)

    for _ in range(_MAX_DAYS_TO_SEARCH):
        candidate = _resolve_local(date=end_date, time=end, tz=tz, not_before=due)
        # Re-checked because a window end in a DST gap resolves to a later wall time, which can itself be quiet when
        # the allowed part of the day lies entirely inside the gap (e.g. quiet 02:45-02:30 on a 02:00->03:00 night).
        # Sending a day late is acceptable; sending during quiet hours is not.
        if not in_quiet_hours(at=candidate, tz=tz, start=start, end=end):
            return candidate
        end_date += datetime.timedelta(days=1)
    raise ValueError(f"No send time outside quiet hours {start}-{end} in {tz} within {_MAX_DAYS_TO_SEARCH} days")


def add_delay(*, start: datetime.datetime, amount: int, unit: DelayUnit, tz: ZoneInfo) -> datetime.datetime:
    """`start` plus a workflow delay, as an aware UTC datetime.

    Minutes and hours are elapsed time ("wait 24 hours" is 24 real hours even across a DST change). Days and weeks are
    calendar days in the client's zone, so "Day 3 at 10:00" stays 10:00 local when the clocks change in between.
    """
    _require_aware(start, name="start")
    if amount < 0:
        raise ValueError(f"Delay amount must be >= 0, got {amount}")
    if unit in _ELAPSED_UNITS:
        return start.astimezone(UTC) + amount * _ELAPSED_UNITS[unit]
    if unit in _CALENDAR_UNITS:
        local = start.astimezone(tz)
        target = local.date() + datetime.timedelta(days=amount * _CALENDAR_UNITS[unit])
        # not_before only matters for amount=0 from the second 01:30 of a fall-back night: the first 01:30 would move
        # the step an hour into the past.
        return _resolve_local(date=target, time=local.time(), tz=tz, not_before=start)
    raise ValueError(f"Unknown delay unit {unit!r}; expected one of {[*_ELAPSED_UNITS, *_CALENDAR_UNITS]}")


def _require_aware(value: datetime.datetime, *, name: str) -> None:
    # A naive datetime would be read as the *server's* local time by astimezone(): wrong by hours, silently.
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got naive {value!r}")


def _resolve_local(
    *, date: datetime.date, time: datetime.time, tz: ZoneInfo, not_before: datetime.datetime
) -> datetime.datetime:
    """The UTC instant of local wall time `date` `time` in `tz`, resolving DST gaps and overlaps."""
    first = datetime.datetime.combine(date, time, tzinfo=tz).replace(fold=0)
    wall = first.replace(tzinfo=None)
    if first.astimezone(UTC).astimezone(tz).replace(tzinfo=None) != wall:
        return _end_of_gap(wall=wall, tz=tz)
    second = first.replace(fold=1)
    # Compared in UTC on purpose: two datetimes sharing a tzinfo compare by wall time and ignore fold, so both 01:30s
    # would look equal to a 01:15 in the same zone.
    if first.utcoffset() != second.utcoffset() and first.astimezone(UTC) < not_before.astimezone(UTC):
        return second.astimezone(UTC)
    return first.astimezone(UTC)


def _end_of_gap(*, wall: datetime.datetime, tz: ZoneInfo) -> datetime.datetime:
    """The first instant after the DST gap that swallows the nonexistent naive local time `wall`, in UTC.

    zoneinfo exposes no transition table, but reading `wall` with the offsets before and after the change brackets the
    transition instant, and local wall time jumps past `wall` exactly there, so a binary search finds it. The search
    is over microseconds so it stays exact for historical offsets that are not whole minutes.
    """
    lo, hi = sorted(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC) for fold in (0, 1))
    # Invariant: the local wall time at `lo` is before `wall`, at `hi` it is after (the gap lies between them).
    while hi - lo > datetime.timedelta(microseconds=1):
        mid = lo + (hi - lo) / 2
        if mid.astimezone(tz).replace(tzinfo=None) > wall:
            hi = mid
        else:
            lo = mid
    return hi
