from datetime import timedelta

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(name="integrations.tasks.process_raw_event")
def process_raw_event(raw_event_id: int) -> dict[str, int]:
    # Retries are not Celery's: failures are recorded on the row with their next attempt time
    # and the sweeper re-enqueues them, so the schedule survives a Redis restart.
    return services.raw_events_process_batch(
        raw_event_id=raw_event_id, batch_size=settings.INTEGRATIONS_PROCESS_BATCH_SIZE
    )


@shared_task(name="integrations.tasks.drain_raw_events", bind=True)
def drain_raw_events(self) -> dict[str, int]:
    # Rung by deliveries (services.raw_events_ring): works through whatever is waiting.
    return services.raw_events_drain(
        batch_size=settings.INTEGRATIONS_PROCESS_BATCH_SIZE,
        max_seconds=settings.INTEGRATIONS_DRAIN_MAX_SECONDS,
        fan_out=not self.request.is_eager,
    )


@shared_task(name="integrations.tasks.sweep_raw_events")
def sweep_raw_events() -> int:
    return services.raw_events_requeue_due(stuck_after=timedelta(seconds=settings.INTEGRATIONS_STUCK_AFTER_SECONDS))


@shared_task(name="integrations.tasks.flag_stale_connections")
def flag_stale_connections() -> int:
    return services.connections_flag_stale()


from .tasks_crm import send_crm_handoff, sweep_crm_handoffs  # noqa: E402, F401
from .tasks_imports import run_import_job  # noqa: E402, F401
from .tasks_search_console import pull_search_console, pull_search_console_due  # noqa: E402, F401
