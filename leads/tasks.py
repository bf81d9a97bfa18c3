from celery import shared_task
from django.db import OperationalError

from . import rollups


# A deadlock or lock wait with lead writers is retried; the next beat run would redo the same
# work anyway (the watermark only moves when a run completes).
@shared_task(name="leads.tasks.refresh_rollups", autoretry_for=(OperationalError,), retry_backoff=5, max_retries=3)
def refresh_rollups() -> dict[str, int]:
    result = rollups.rollups_refresh_changed()
    return {"clients": result.clients, "full_clients": result.full_clients, "rows": result.rows}
