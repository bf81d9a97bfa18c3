from celery import shared_task
from django.db import OperationalError

from . import rollups


# A deadlock or lock wait with lead writers is retried; the next beat run would redo the same
# work anyway (the watermark only moves when a run completes).
@shared_task(name="leads.tasks.refresh_rollups", autoretry_for=(OperationalError,), retry_backoff=5, max_retries=3)
def refresh_rollups() -> dict[str, int]:
    result = rollups.rollups_refresh_changed()
    return {"clients": result.clients, "full_clients": result.full_clients, "rows": result.rows}


# Nightly rebuild of every client's days. The minute-by-minute run follows `updated_at`, which a
# deleted lead no longer has: an engineer's delete (data ops cannot delete leads) is counted out
# here at the latest. About 5-7 minutes for a million leads (bench/README.md), off-hours.
@shared_task(name="leads.tasks.rebuild_rollups", autoretry_for=(OperationalError,), retry_backoff=60, max_retries=3)
def rebuild_rollups() -> dict[str, int]:
    result = rollups.rollups_refresh()
    return {"clients": result.clients, "rows": result.rows}
