"""Varied leads for the report tests, and the numbers computed the slow, obvious way: straight
from the lead rows in Python, to hold the rollups and reports against."""

from __future__ import annotations

import datetime
import random
import statistics
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal

from leads.models import Lead, LeadSource
from leads.models_rollups import RESPONSE_BUCKET_EDGES, response_bucket
from tests import factories

SERVICES = ["Drain cleaning", "Water heater", ""]
# Response times that exercise every bucket width, the edges and the overflow.
RESPONSE_CHOICES = [0, 1, 59, 60, 61, 119, 300, 1799, 3599, 3600, 3601, 5000, 14399, 14400, 20000, 100_000, 172_799]


def make_leads(
    client, *, n: int, first_day: datetime.date, days: int, seed: int = 1, overflow: bool = False
) -> list[Lead]:
    """n leads of `client` captured over local days first_day.. first_day+days-1, with every
    source, blank and set services, each status and lost reason (spam and duplicates included),
    attribution or none, responses of every size (or none), next actions open or done."""
    rng = random.Random(seed)
    tz = client.tz
    leads = []
    for _ in range(n):
        day = first_day + datetime.timedelta(days=rng.randrange(days))
        # Near both ends of the local day too: the day boundary is the client's midnight.
        minute = rng.choice([0, 1, 30, 23 * 60 + 30, 23 * 60 + 59, rng.randrange(24 * 60)])
        captured = datetime.datetime.combine(day, datetime.time(minute // 60, minute % 60), tzinfo=tz)
        status = rng.choice(Lead.Status.values)
        lost_reason = rng.choice(Lead.LostReason.values) if status == Lead.Status.LOST else ""
        seconds = None
        if rng.random() < 0.75:
            seconds = rng.choice(RESPONSE_CHOICES) if rng.random() < 0.5 else rng.randrange(0, 40_000)
            if overflow and rng.random() < 0.1:
                seconds = 200_000
        attribution = {}
        if rng.random() < 0.3:
            name = rng.choice(["utm_source", "gclid", "tracking_number", "referrer"])
            attribution[name] = "https://example.com/" if name == "referrer" else "x"
        kwargs = {
            "client": client,
            "captured_at": captured,
            "source": rng.choice(LeadSource.values),
            "service_type": rng.choice(SERVICES),
            "status": status,
            "lost_reason": lost_reason,
            "first_response_seconds": seconds,
            "first_response_at": captured + datetime.timedelta(seconds=seconds) if seconds is not None else None,
            "next_action": rng.choice(["", "", "Call back", "Send estimate"]),
            "next_action_due": captured + datetime.timedelta(days=rng.randint(-2, 400)) if rng.random() < 0.7 else None,
            **attribution,
        }
        leads.append(factories.LeadFactory(**kwargs))
    return leads


def _attributed(lead: Lead) -> bool:
    self_attributed = lead.source in (LeadSource.THUMBTACK, LeadSource.ANGI, LeadSource.REFERRAL)
    fields = ("utm_source", "utm_medium", "utm_campaign", "gclid", "fbclid", "msclkid", "tracking_number")
    any_field = any(getattr(lead, f) for f in (*fields, "landing_page", "referrer"))
    return lead.source != LeadSource.OTHER and (self_attributed or any_field)


@dataclass
class Brute:
    leads: int = 0
    responded: int = 0
    booked: int = 0
    attributed: int = 0
    lost: Counter = field(default_factory=Counter)
    by_source: Counter = field(default_factory=Counter)
    by_service: Counter = field(default_factory=Counter)
    daily: Counter = field(default_factory=Counter)
    daily_booked: Counter = field(default_factory=Counter)
    responses: list[int] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)


def brute(client, start: datetime.date, end: datetime.date) -> Brute:
    """Every number from every lead row of the client, one by one."""
    result = Brute()
    for lead in Lead.objects.filter(client=client):
        day = lead.captured_at.astimezone(client.tz).date()
        if not (start <= day <= end) or lead.lost_reason in ("spam", "duplicate"):
            continue
        result.leads += 1
        result.ids.append(lead.pk)
        result.daily[day] += 1
        result.by_source[lead.source] += 1
        result.by_service[lead.service_type or "Not stated"] += 1
        if lead.first_response_seconds is not None:
            result.responded += 1
            result.responses.append(lead.first_response_seconds)
        if lead.status == Lead.Status.BOOKED:
            result.booked += 1
            result.daily_booked[day] += 1
        if lead.status == Lead.Status.LOST:
            result.lost[lead.get_lost_reason_display()] += 1
        result.attributed += _attributed(lead)
    return result


def pct(part: int, whole: int) -> Decimal | None:
    return None if not whole else (Decimal(part) * 100 / Decimal(whole)).quantize(Decimal("0.1"))


def bucket_width_minutes(seconds: int) -> Decimal:
    b = response_bucket(seconds)
    if b + 1 >= len(RESPONSE_BUCKET_EDGES):
        return Decimal("Infinity")
    return Decimal(RESPONSE_BUCKET_EDGES[b + 1] - RESPONSE_BUCKET_EDGES[b]) / 60


def exact_median(values: list[int]) -> tuple[Decimal, Decimal]:
    """(exact median in minutes, the tolerance the histogram promises for it)."""
    values = sorted(values)
    n = len(values)
    exact = Decimal(statistics.median(values)) / 60
    return exact, bucket_width_minutes(values[n // 2])


def exact_p90(values: list[int]) -> tuple[Decimal, Decimal]:
    values = sorted(values)
    n = len(values)
    if n == 1:
        return Decimal(values[0]) / 60, bucket_width_minutes(values[0])
    exact = Decimal(str(statistics.quantiles(values, n=10, method="inclusive")[8])) / 60
    j, delta = divmod(9 * (n - 1), 10)
    top = values[j + 1] if delta else values[j]
    return exact, bucket_width_minutes(top)


def assert_within(estimate: Decimal | None, exact_and_width: tuple[Decimal, Decimal]) -> None:
    """Never above the true value (up to the 0.1-minute rounding), less than a bucket below it."""
    exact, width = exact_and_width
    half_step = Decimal("0.05")
    assert estimate is not None
    assert estimate <= exact + half_step, (estimate, exact)
    assert exact - estimate < width + half_step, (estimate, exact, width)
