"""Reads for adminops: the action log, incidents, and the two ops pages (failure review, status).

The ops reads look at every app's tables (DESIGN.md: "adminops' views may read every app"). Only
adminops' views and admin import this module; adminops.models and adminops.services never do, so
the action log stays a leaf the lower layers can import without pulling workflows in.

Every read here is bounded: each section is capped (FAILURE_REVIEW_LIMIT rows shown, counts
stop at COUNT_CAP) and served by an index, so the pages cost the same with a million rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Min, QuerySet
from django.utils import timezone

from .models import AdminAction, Heartbeat, Incident

FAILURE_REVIEW_LIMIT = 50
COUNT_CAP = 1000
CONNECTIONS_CAP = 1000
HEARTBEAT_STALE_FACTOR = 3


def action_list_for_lead(*, lead) -> QuerySet[AdminAction]:
    return AdminAction.objects.filter(lead=lead).select_related("actor_user").order_by("-created_at", "-id")


def action_list_needing_review() -> QuerySet[AdminAction]:
    return AdminAction.objects.filter(state=AdminAction.State.UNKNOWN).order_by("created_at")


def incident_list_open() -> QuerySet[Incident]:
    return Incident.objects.exclude(status=Incident.Status.CLOSED).select_related("owner").order_by("-opened_at")


def _capped_count(queryset: QuerySet, cap: int = COUNT_CAP) -> int:
    """COUNT over at most cap + 1 rows (a LIMITed subquery stops early on InnoDB)."""
    return queryset.order_by()[: cap + 1].count()


# --- failure review ------------------------------------------------------------------------------


@dataclass
class Section:
    key: str
    title: str
    rows: list
    total: int
    note: str = ""
    cap: int = COUNT_CAP

    @property
    def total_label(self) -> str:
        return f"{self.cap}+" if self.total > self.cap else str(self.total)

    @property
    def truncated(self) -> bool:
        return self.total > len(self.rows)


@dataclass
class FailureReview:
    sections: list[Section] = field(default_factory=list)
    unknown_actions: int = 0

    def section(self, key: str) -> Section:
        return next(s for s in self.sections if s.key == key)


def _stale_or_uncertain(connection) -> str:
    """Why a connection needs a look, or "" when it does not."""
    from integrations.models import Connection

    if connection.status == Connection.Status.UNCERTAIN:
        return "uncertain"
    if connection.status == Connection.Status.ERROR:
        return "error"
    if connection.stale_since or connection.is_stale:
        return "stale"
    return ""


def failure_review(
    *, client_id: int | None = None, provider: str = "", limit: int = FAILURE_REVIEW_LIMIT
) -> FailureReview:
    """Everything a person has to settle, newest first, each section capped at `limit` rows."""
    from integrations.models import Connection, CrmHandoff, SyncError
    from workflows.models import Enrollment, OutboundMessage

    review = FailureReview()

    errors = SyncError.objects.filter(state__in=[SyncError.State.RETRYING, SyncError.State.DEAD])
    if client_id:
        errors = errors.filter(client_id=client_id)
    if provider:
        errors = errors.filter(connection__provider=provider)
    review.sections.append(
        Section(
            key="sync_errors",
            title="Sync errors (dead and retrying)",
            rows=list(errors.select_related("connection", "client").order_by("-created_at", "-id")[:limit]),
            total=_capped_count(errors),
        )
    )

    messages = OutboundMessage.objects.filter(status=OutboundMessage.Status.UNKNOWN)
    if client_id:
        messages = messages.filter(client_id=client_id)
    if provider:
        messages = messages.filter(provider=provider)
    review.sections.append(
        Section(
            key="unknown_sends",
            title="Sends with an unknown outcome",
            rows=list(messages.select_related("client", "lead", "enrollment").order_by("-created_at", "-id")[:limit]),
            total=_capped_count(messages),
            note="Check the provider's log, then say whether it went out: "
            "sent (the workflow goes on) or not sent (the step sends again under a new key).",
        )
    )

    # Enrollments held for an unknown send are settled through their message above.
    held = Enrollment.objects.filter(state=Enrollment.State.HELD).exclude(hold_kind="send_unknown")
    if client_id:
        held = held.filter(client_id=client_id)
    review.sections.append(
        Section(
            key="held_enrollments",
            title="Held enrollments",
            rows=list(held.select_related("client", "lead", "workflow").order_by("held_at", "id")[:limit]),
            total=_capped_count(held),
            note="Not filtered by provider (a hold belongs to a client or workflow switch or a channel)."
            if provider
            else "",
        )
    )

    handoffs = CrmHandoff.objects.filter(status__in=[CrmHandoff.Status.RETRYING, CrmHandoff.Status.DEAD])
    if client_id:
        handoffs = handoffs.filter(client_id=client_id)
    if provider:
        handoffs = handoffs.filter(connection__provider=provider)
    review.sections.append(
        Section(
            key="crm_handoffs",
            title="CRM handoffs (dead and retrying)",
            rows=list(handoffs.select_related("client", "lead", "connection").order_by("-updated_at", "-id")[:limit]),
            total=_capped_count(handoffs),
        )
    )

    # Connections are few (a handful per client): one bounded read, the staleness test in Python
    # (expected_freshness differs per row, which an index cannot answer).
    connections = Connection.objects.filter(
        status__in=[Connection.Status.CONNECTED, Connection.Status.UNCERTAIN, Connection.Status.ERROR]
    )
    if client_id:
        connections = connections.filter(client_id=client_id)
    if provider:
        connections = connections.filter(provider=provider)
    flagged = []
    for connection in connections.select_related("client", "owner").order_by("pk")[:CONNECTIONS_CAP]:
        why = _stale_or_uncertain(connection)
        if why:
            connection.review_reason = why
            flagged.append(connection)
    review.sections.append(
        Section(
            key="connections",
            title="Stale or uncertain connections",
            rows=flagged[:limit],
            total=len(flagged),
            note="Clearing marks the connection connected and releases its held events, oldest first.",
        )
    )

    unknown = AdminAction.objects.filter(state=AdminAction.State.UNKNOWN)
    if client_id:
        unknown = unknown.filter(client_id=client_id)
    review.unknown_actions = _capped_count(unknown)
    return review


def failure_review_filters() -> dict[str, list]:
    """Choices for the client and provider filters (connections are few; clients too)."""
    from integrations.models import Connection
    from leads.models import Client

    return {
        "clients": list(Client.objects.order_by("name").values_list("pk", "name")[:500]),
        "providers": sorted(set(Connection.objects.order_by().values_list("provider", flat=True).distinct()[:100])),
    }


# --- ops status ------------------------------------------------------------------------------------


def _count_by(queryset, field: str) -> dict[str, int]:
    """{value of `field`: rows} for the queryset: one GROUP BY, no ordering (values absent: none)."""
    return dict(queryset.order_by().values_list(field).annotate(n=Count("id")))


def _age(now: datetime, then: datetime | None) -> float | None:
    return round((now - then).total_seconds(), 1) if then else None


def _freshness(connection, now: datetime) -> str:
    if connection.last_event_at is None:
        return "never"
    return "stale" if now - connection.last_event_at > connection.expected_freshness else "fresh"


def _beat_interval() -> float | None:
    entry = settings.CELERY_BEAT_SCHEDULE.get("beat-heartbeat")
    schedule = entry and entry["schedule"]
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, timedelta):
        return schedule.total_seconds()
    return None


_redis_client = None


def _redis():
    global _redis_client
    if _redis_client is None:
        import redis

        _redis_client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    return _redis_client


def queue_depths() -> dict[str, Any]:
    """Messages waiting in each Celery queue (Redis LLEN), or "n/a" without a broker to ask.

    kombu keeps one Redis list per priority step ("ingest", "ingest\\x06\\x163", …) under the
    deployment's key prefix (CELERY_KEY_PREFIX); the depth is their sum. Named keys only, no SCAN.
    """
    names = [q.name for q in settings.CELERY_TASK_QUEUES]
    if not settings.REDIS_URL or settings.CELERY_TASK_ALWAYS_EAGER:
        return {
            "available": False,
            "reason": "no Redis broker (tasks run in-process)",
            "queues": dict.fromkeys(names, "n/a"),
        }
    from kombu.transport.redis import PRIORITY_STEPS, Channel

    prefix = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", "")
    keys = {
        name: [f"{prefix}{name}" + (f"{Channel.sep}{pri}" if pri else "") for pri in PRIORITY_STEPS] for name in names
    }
    try:
        pipe = _redis().pipeline(transaction=False)
        for name in names:
            for key in keys[name]:
                pipe.llen(key)
        lengths = iter(pipe.execute())
        return {
            "available": True,
            "reason": "",
            "queues": {name: sum(next(lengths) for _ in keys[name]) for name in names},
        }
    except Exception as exc:
        return {"available": False, "reason": f"Redis: {exc.__class__.__name__}", "queues": dict.fromkeys(names, "n/a")}


def ops_status(*, now: datetime | None = None) -> dict[str, Any]:
    """The numbers behind /ops/status/ and /ops/status.json (shape in docs/operations.md)."""
    from integrations.models import Connection, CrmHandoff, RawEvent, SyncError
    from workflows.models import Enrollment, OutboundMessage

    now = now or timezone.now()
    reasons: list[str] = []

    connections = []
    counts = {"stale": 0, "uncertain": 0, "error": 0, "never": 0}
    rows = Connection.objects.select_related("client").order_by("client__name", "provider", "pk")[:CONNECTIONS_CAP]
    for c in rows:
        freshness = _freshness(c, now)
        watched = c.status in (Connection.Status.CONNECTED, Connection.Status.UNCERTAIN)
        stale = watched and (c.is_stale or c.stale_since is not None)
        connections.append(
            {
                "id": c.pk,
                "client_id": c.client_id,
                "client": c.client.name,
                "provider": c.provider,
                "name": c.name,
                "status": c.status,
                "last_event_at": c.last_event_at.isoformat() if c.last_event_at else None,
                "last_event_age_seconds": _age(now, c.last_event_at),
                "expected_within_seconds": c.expected_freshness.total_seconds(),
                "freshness": freshness,
                "stale": stale,
                "stale_since": c.stale_since.isoformat() if c.stale_since else None,
                "last_error_at": c.last_error_at.isoformat() if c.last_error_at else None,
            }
        )
        counts["stale"] += stale
        counts["uncertain"] += c.status == Connection.Status.UNCERTAIN
        counts["error"] += c.status == Connection.Status.ERROR
        counts["never"] += watched and c.last_event_at is None
    if counts["stale"]:
        reasons.append(f"{counts['stale']} stale connection(s)")
    if counts["uncertain"]:
        reasons.append(f"{counts['uncertain']} uncertain connection(s) (processing held)")
    if counts["error"]:
        reasons.append(f"{counts['error']} connection(s) in error")

    by_state = _count_by(SyncError.objects.filter(state__in=[SyncError.State.RETRYING, SyncError.State.DEAD]), "state")
    sync_errors = {"retrying": by_state.get("retrying", 0), "dead": by_state.get("dead", 0)}
    if sync_errors["dead"]:
        reasons.append(f"{sync_errors['dead']} dead sync error(s)")

    raw_rows = (
        RawEvent.objects.filter(
            status__in=[RawEvent.Status.RECEIVED, RawEvent.Status.HELD, RawEvent.Status.FAILED, RawEvent.Status.DEAD]
        )
        .order_by()
        .values("status")
        .annotate(n=Count("id"), oldest=Min("received_at"))
    )
    raw = {row["status"]: row for row in raw_rows}
    waiting_oldest = raw.get("received", {}).get("oldest")
    raw_events = {
        "waiting": raw.get("received", {}).get("n", 0),
        "oldest_waiting_age_seconds": _age(now, waiting_oldest),
        "held": raw.get("held", {}).get("n", 0),
        "failed": raw.get("failed", {}).get("n", 0),
        "dead": raw.get("dead", {}).get("n", 0),
    }
    backlog_limit = settings.OPS_RAW_BACKLOG_WARN_SECONDS
    if waiting_oldest and (now - waiting_oldest).total_seconds() > backlog_limit:
        reasons.append(f"raw events waiting longer than {backlog_limit} s")

    handoff_rows = _count_by(
        CrmHandoff.objects.filter(status__in=[CrmHandoff.Status.RETRYING, CrmHandoff.Status.DEAD]), "status"
    )
    crm_handoffs = {"retrying": handoff_rows.get("retrying", 0), "dead": handoff_rows.get("dead", 0)}
    if crm_handoffs["dead"]:
        reasons.append(f"{crm_handoffs['dead']} dead CRM handoff(s)")

    # Scheduler lag: the oldest enrollment that is due and not yet run. Served by the
    # (state, next_run_at) index the scheduler itself claims from.
    due = Enrollment.objects.filter(state=Enrollment.State.ACTIVE, next_run_at__lte=now)
    oldest_due = due.order_by("next_run_at").values_list("next_run_at", flat=True).first()
    lag = _age(now, oldest_due) or 0.0
    scheduler = {
        "oldest_due_at": oldest_due.isoformat() if oldest_due else None,
        "lag_seconds": lag,
        "due": _capped_count(due),
        "warn_after_seconds": settings.OPS_SCHEDULER_LAG_WARN_SECONDS,
    }
    if lag > settings.OPS_SCHEDULER_LAG_WARN_SECONDS:
        reasons.append(f"scheduler lag {int(lag)} s")

    from .tasks import BEAT_HEARTBEAT_NAME

    beat = Heartbeat.objects.filter(name=BEAT_HEARTBEAT_NAME).values_list("beat_at", flat=True).first()
    interval = _beat_interval()
    beat_age = _age(now, beat)
    beat_stale = beat is None or (interval is not None and beat_age > HEARTBEAT_STALE_FACTOR * interval)
    heartbeat = {
        "last_beat_at": beat.isoformat() if beat else None,
        "age_seconds": beat_age,
        "interval_seconds": interval,
        "stale_after_seconds": HEARTBEAT_STALE_FACTOR * interval if interval else None,
        "stale": beat_stale,
    }
    if beat is None:
        reasons.append("no beat heartbeat recorded (is celery beat / run_scheduler running?)")
    elif beat_stale:
        reasons.append(f"beat heartbeat {int(beat_age)} s old")

    held_rows = _count_by(Enrollment.objects.filter(state=Enrollment.State.HELD), "hold_kind")
    held = {
        "total": sum(held_rows.values()),
        "switch": held_rows.get("switch", 0),
        "channel": held_rows.get("channel", 0),
        "send_unknown": held_rows.get("send_unknown", 0),
        "other": sum(n for kind, n in held_rows.items() if kind not in ("switch", "channel", "send_unknown")),
    }
    unknown = {
        "messages": _capped_count(OutboundMessage.objects.filter(status=OutboundMessage.Status.UNKNOWN)),
        "actions": _capped_count(AdminAction.objects.filter(state=AdminAction.State.UNKNOWN)),
    }
    if held["send_unknown"] or unknown["messages"] or unknown["actions"]:
        reasons.append("unknown outcomes waiting for a person")
    if held["channel"]:
        reasons.append(f"{held['channel']} enrollment(s) held: channel not usable")

    incidents = [
        {
            "id": i.pk,
            "title": i.title,
            "severity": i.severity,
            "status": i.status,
            "owner": i.owner.get_username(),
            "sends_held": i.sends_held,
            "opened_at": i.opened_at.isoformat(),
            "rollback_path": i.rollback_path,
        }
        for i in incident_list_open()[:20]
    ]
    serious = [i for i in incidents if i["severity"] in ("sev1", "sev2")]
    if serious:
        reasons.append(f"{len(serious)} open SEV1/SEV2 incident(s)")

    return {
        "status": "degraded" if reasons else "ok",
        "reasons": reasons,
        "generated_at": now.isoformat(),
        "connections": connections,
        "connection_counts": counts,
        "sync_errors": sync_errors,
        "raw_events": raw_events,
        "crm_handoffs": crm_handoffs,
        "queues": queue_depths(),
        "scheduler": scheduler,
        "beat_heartbeat": heartbeat,
        "held_enrollments": held,
        "unknown_outcomes": unknown,
        "open_incidents": incidents,
    }
