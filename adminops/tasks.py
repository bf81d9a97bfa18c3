from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from . import services

BEAT_HEARTBEAT_KEY = "adminops:beat:heartbeat"
# The Heartbeat row's name; the ops status page (adminops.selectors.ops_status) reads its age.
BEAT_HEARTBEAT_NAME = "beat"


@shared_task(name="adminops.tasks.beat_heartbeat")
def beat_heartbeat() -> str:
    """Proves beat and a worker are alive. The database row is what the ops status page reads
    (it works without Redis); the cache key stays for callers that only have the cache."""
    now = timezone.now()
    services.heartbeat_record(name=BEAT_HEARTBEAT_NAME, at=now)
    cache.set(BEAT_HEARTBEAT_KEY, now.isoformat(), timeout=None)
    return now.isoformat()


@shared_task(name="adminops.tasks.sweep_stale_intended_actions")
def sweep_stale_intended_actions() -> int:
    return services.action_sweep_stale_intended(
        older_than=timedelta(seconds=settings.ADMIN_ACTION_UNKNOWN_AFTER_SECONDS)
    )
