"""manage.py pull_search_console --client SLUG [--days N] [--dry-run]

Pulls Search Console rows for the client's search_console connection(s) now, through the same
service as the beat task (integrations.search_console.search_console_pull). --days N reads the
last N days ending SEARCH_CONSOLE_LAG_DAYS ago (default SEARCH_CONSOLE_PULL_DAYS); --dry-run
requests every page and writes nothing. A connection in `error` may be pulled by hand (after
fixing its credential): a successful pull puts it back to `connected`.
Exit codes: 0 every pull succeeded, 1 bad arguments, 2 a pull failed (recorded in failure review).
"""

from __future__ import annotations

import datetime

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from integrations.models import Connection
from integrations.search_console import PROVIDER, SearchConsolePullError, default_window, search_console_pull
from leads.models import Client
from zartsalgo.errors import ApplicationError


class Command(BaseCommand):
    help = "Pull Google Search Console metrics for one client now."

    def add_arguments(self, parser):
        parser.add_argument("--client", required=True, help="client slug")
        parser.add_argument("--days", type=int, default=None, help="days to read (default SEARCH_CONSOLE_PULL_DAYS)")
        parser.add_argument("--dry-run", action="store_true", help="request every page, store nothing")

    def handle(self, *args, **opts):
        try:
            client = Client.objects.get(slug=opts["client"])
        except Client.DoesNotExist as exc:
            raise CommandError(f"No client with slug {opts['client']!r}.") from exc
        days = opts["days"] if opts["days"] is not None else settings.SEARCH_CONSOLE_PULL_DAYS
        if days < 1:
            raise CommandError("--days must be at least 1.")
        _, end = default_window()
        start = end - datetime.timedelta(days=days - 1)
        connections = list(
            Connection.objects.filter(client=client, provider=PROVIDER)
            .exclude(status=Connection.Status.PAUSED)
            .order_by("pk")
        )
        if not connections:
            raise CommandError(f"{client.slug} has no {PROVIDER} connection that is not paused.")
        failed = 0
        for connection in connections:
            label = f"connection #{connection.pk} ({(connection.config or {}).get('site_url', '?')})"
            try:
                result = search_console_pull(connection=connection, start=start, end=end, dry_run=opts["dry_run"])
            except SearchConsolePullError as exc:
                failed += 1
                retry = " (will be retried)" if exc.cause.retryable else ""
                self.stderr.write(f"{label}: FAILED{retry}: {exc.message}")
                continue
            except ApplicationError as exc:
                raise CommandError(f"{label}: {exc.message}") from exc
            self.stdout.write(
                f"{label} {start}..{end}{' [dry run]' if result.dry_run else ''}: "
                f"{result.pages_requested} page(s), {result.rows_fetched} row(s) fetched, "
                f"{result.new_raw_events} new, {result.duplicates} duplicate"
            )
            for warning in result.warnings:
                self.stderr.write(f"{label}: {warning}")
        if failed:
            raise CommandError(f"{failed} pull(s) failed; see Integrations → Sync errors.", returncode=2)
