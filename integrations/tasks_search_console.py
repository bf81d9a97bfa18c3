"""Celery tasks for Search Console pulls (imported by integrations.tasks so the worker registers
them). Beat runs `pull_search_console_due`; it sends one `pull_search_console` per connection
whose pull is due. Retries are rows (the SyncError's next_retry_at, read by the due check), not
Celery countdowns, so a Redis restart loses no schedule."""

from celery import shared_task

from zartsalgo.tasks import enqueue_on_commit


@shared_task(name="integrations.tasks.pull_search_console_due")
def pull_search_console_due() -> int:
    from .search_console import search_console_connections_due

    due = search_console_connections_due()
    for connection_id in due:
        enqueue_on_commit(pull_search_console, connection_id)
    return len(due)


@shared_task(name="integrations.tasks.pull_search_console")
def pull_search_console(connection_id: int) -> str:
    # Metric cards are not computed here: the rows become metric.observed later, in the drain
    # (another worker in production). `draft_summaries --cards` drafts them for a reporting
    # period (portal/search_console_cards.py), and card_display reads staleness live.
    from zartsalgo.errors import ApplicationError

    from .models import Connection
    from .search_console import SearchConsolePullError, search_console_pull

    connection = Connection.objects.filter(pk=connection_id).first()
    if connection is None or connection.status != Connection.Status.CONNECTED:
        return "skipped"  # deleted, paused or in error since it was found due
    try:
        result = search_console_pull(connection=connection)
    except SearchConsolePullError as exc:
        # Already recorded (failure review, connection status): nothing for Celery to retry.
        return f"failed: {exc.message}"[:200]
    except ApplicationError as exc:
        return f"refused: {exc.message}"[:200]
    return f"ok: {result.rows_fetched} rows, {result.new_raw_events} new"
