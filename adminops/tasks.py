from datetime import timedelta

from celery import shared_task
from django.conf import settings
from django.core.cache import cache
from django.utils import timezone

from . import services

BEAT_HEARTBEAT_KEY = "adminops:beat:heartbeat"


@shared_task(name="adminops.tasks.beat_heartbeat")
def beat_heartbeat() -> str:
    """Proves beat and a worker are alive; the ops status page reads the age of this key."""
    now = timezone.now().isoformat()
    cache.set(BEAT_HEARTBEAT_KEY, now, timeout=None)
    return now


@shared_task(name="adminops.tasks.sweep_stale_intended_actions")
def sweep_stale_intended_actions() -> int:
    return services.action_sweep_stale_intended(
        older_than=timedelta(seconds=settings.ADMIN_ACTION_UNKNOWN_AFTER_SECONDS)
    )
