"""Precomputed lead numbers: one row per client, local day, source and service, and their sum
per client and local day (leads.rollups writes both, leads.reports reads the day totals).

Why rollups: a report over a period must not read every lead of the period (with a million leads
a client's year is tens of thousands of rows, plus a percentile that needs every value). A day's
row holds what every report number is a sum of, and a response-time histogram from which median
and p90 are read to a stated precision (RESPONSE_BUCKET_EDGES below).
"""

from __future__ import annotations

from django.db import models

from zartsalgo.models import TimeStampedModel


def _edges() -> tuple[int, ...]:
    edges = list(range(0, 3600, 60))  # 1-minute buckets below 60 min
    edges += range(3600, 4 * 3600, 300)  # 5-minute buckets from 1 h to 4 h
    edges += range(4 * 3600, 48 * 3600, 1800)  # 30-minute buckets from 4 h to 48 h
    edges.append(48 * 3600)  # one overflow bucket: 48 h and later
    return tuple(edges)


# Lower edge (seconds from capture to first response) of each histogram bucket; bucket i holds
# [edge[i], edge[i + 1]), the last one [48 h, ∞). 60 + 36 + 88 + 1 = 185 buckets.
# Precision: a percentile is read as the lower edge of the bucket its rank falls in, so the
# estimate is never above the true value and is less than one bucket width below it (under 1 min
# for responses below 60 min, 5 min up to 4 h, 30 min up to 48 h), and exact when the values sit
# on bucket edges. Beyond 48 h it is reported as 48 h (2880 min), a lower bound.
RESPONSE_BUCKET_EDGES: tuple[int, ...] = _edges()
RESPONSE_OVERFLOW_BUCKET = len(RESPONSE_BUCKET_EDGES) - 1


def response_bucket(seconds: int) -> int:
    """The histogram bucket of a response time (Python twin of leads.rollups' SQL expression)."""
    if seconds < 3600:
        return seconds // 60
    if seconds < 4 * 3600:
        return 60 + (seconds - 3600) // 300
    if seconds < 48 * 3600:
        return 96 + (seconds - 4 * 3600) // 1800
    return RESPONSE_OVERFLOW_BUCKET


class _DayCounts(models.Model):
    """The counters both rollup tables keep for one client's local day (and, in LeadDailyRollup,
    one source and service): a period's numbers are sums of these."""

    client = models.ForeignKey("leads.Client", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="Capture day in the client's time zone.")
    leads = models.PositiveIntegerField(default=0, help_text="Counted leads (spam/duplicate excluded).")
    excluded = models.PositiveIntegerField(default=0, help_text="Leads marked lost as spam or duplicate.")
    responded = models.PositiveIntegerField(default=0)
    response_seconds_sum = models.BigIntegerField(default=0)
    booked = models.PositiveIntegerField(default=0)
    lost_by_reason = models.JSONField(default=dict, blank=True, help_text='{"price": 2, …}: counted lost leads.')
    with_source_and_attribution = models.PositiveIntegerField(default=0)

    class Meta:
        abstract = True


class LeadDailyRollup(_DayCounts):
    """The counted leads (spam and duplicates excluded) captured on one local day of one client,
    from one source for one service: every report number is a sum of these rows."""

    source = models.CharField(max_length=24)
    service_type = models.CharField(max_length=100, blank=True)
    next_actions_open = models.PositiveIntegerField(
        default=0, help_text="Open leads with a next action (text or due time)."
    )
    # Sparse: {"bucket index": count}, bucket indexes as in RESPONSE_BUCKET_EDGES.
    response_histogram = models.JSONField(default=dict, blank=True)
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["client", "day", "source", "service_type"], name="lead_rollup_unique_client_day_key"
            ),
        ]
        # The unique key's index serves (client, day) range reads: every report is one of them.

    def __str__(self) -> str:
        return f"{self.client_id} {self.day} {self.source}/{self.service_type or '-'}: {self.leads}"


class LeadDailyTotal(_DayCounts):
    """One client's counted leads of one local day over every source and service: the sum of its
    LeadDailyRollup rows, written by the same refresh (leads.rollups) from the same grouped rows.

    Why a second table: every number of a report is a sum over days, and a year of a busy client
    is ~30,000 daily rollup rows (merged in Python: ~500 ms at 1M leads) but at most 366 of these.
    The by-source and by-service breakdowns are small per-day maps here too: a SQL SUM … GROUP BY
    source, service_type over LeadDailyRollup (measured: 64-80 ms for 12-24 months of the big
    client, warm, index-only) costs more than merging 366-730 maps of ~20 keys (~3 ms).
    Why per day and not per month: any period (the admin's free from/to, the baseline ending the
    day before joining) is then one range of ≤ 3 x 366 rows, with no month-edge stitching and
    no second level to keep in step on every incremental refresh.
    The histogram is dense (a list indexed by bucket, trailing zeros cut) so a period's is the
    element-wise sum of its days' lists, a C-level map(add) per day instead of a dict merge.
    """

    next_actions_open = models.PositiveIntegerField(default=0)
    # Dense: [count of bucket 0, count of bucket 1, …] up to the last non-empty bucket
    # (RESPONSE_BUCKET_EDGES); [] when nobody was answered.
    response_histogram = models.JSONField(default=list, blank=True)
    leads_by_source = models.JSONField(default=dict, blank=True, help_text='{"web_form": 12, …}: counted leads.')
    leads_by_service = models.JSONField(
        default=dict, blank=True, help_text='{"Drain cleaning": 3, "": 1, …}: counted leads ("" = not stated).'
    )
    refreshed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["client", "day"], name="lead_total_unique_client_day"),
        ]
        # The unique key's index serves every read: one client's range of days.

    def __str__(self) -> str:
        return f"{self.client_id} {self.day}: {self.leads}"


class LeadRollupClientState(TimeStampedModel):
    """Per client: when its rollups were last refreshed, for the time zone they were made in,
    and the totals that are not per day."""

    client = models.OneToOneField("leads.Client", on_delete=models.CASCADE, related_name="+")
    refreshed_at = models.DateTimeField(null=True, blank=True)
    full_refreshed_at = models.DateTimeField(null=True, blank=True)
    # Days are the client's local days: a time zone change invalidates every row of the client.
    time_zone = models.CharField(max_length=64, blank=True)
    next_actions_open = models.PositiveIntegerField(default=0)
    # False for clients rolled up before LeadDailyTotal existed (leads/0004): the next
    # rollups_refresh_changed refreshes them in full, which fills their totals.
    has_day_totals = models.BooleanField(default=False)

    def __str__(self) -> str:
        return f"rollups of client {self.client_id} as of {self.refreshed_at}"


class LeadRollupWatermark(models.Model):
    """The single row saying up to when lead changes (Lead.updated_at) have been rolled up."""

    name = models.CharField(max_length=32, unique=True, default="leads")
    scanned_through = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.name}: {self.scanned_through}"


__all__ = [
    "RESPONSE_BUCKET_EDGES",
    "RESPONSE_OVERFLOW_BUCKET",
    "LeadDailyRollup",
    "LeadDailyTotal",
    "LeadRollupClientState",
    "LeadRollupWatermark",
    "response_bucket",
]
