"""Precomputed lead numbers: one row per client, local day, source and service (leads.rollups
writes them, leads.reports reads them).

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


class LeadDailyRollup(models.Model):
    """The counted leads (spam and duplicates excluded) captured on one local day of one client,
    from one source for one service: every report number is a sum of these rows."""

    client = models.ForeignKey("leads.Client", on_delete=models.CASCADE, related_name="+")
    day = models.DateField(help_text="Capture day in the client's time zone.")
    source = models.CharField(max_length=24)
    service_type = models.CharField(max_length=100, blank=True)

    leads = models.PositiveIntegerField(default=0, help_text="Counted leads (spam/duplicate excluded).")
    excluded = models.PositiveIntegerField(default=0, help_text="Leads marked lost as spam or duplicate.")
    responded = models.PositiveIntegerField(default=0)
    response_seconds_sum = models.BigIntegerField(default=0)
    booked = models.PositiveIntegerField(default=0)
    lost_by_reason = models.JSONField(default=dict, blank=True, help_text='{"price": 2, …}: counted lost leads.')
    with_source_and_attribution = models.PositiveIntegerField(default=0)
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


class LeadRollupClientState(TimeStampedModel):
    """Per client: when its rollups were last refreshed, for the time zone they were made in,
    and the totals that are not per day."""

    client = models.OneToOneField("leads.Client", on_delete=models.CASCADE, related_name="+")
    refreshed_at = models.DateTimeField(null=True, blank=True)
    full_refreshed_at = models.DateTimeField(null=True, blank=True)
    # Days are the client's local days: a time zone change invalidates every row of the client.
    time_zone = models.CharField(max_length=64, blank=True)
    next_actions_open = models.PositiveIntegerField(default=0)

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
    "LeadRollupClientState",
    "LeadRollupWatermark",
    "response_bucket",
]
