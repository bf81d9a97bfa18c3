"""Delete workflow execution history (step runs) older than a cut-off, in batches.

manage.py purge_step_runs --older-than-days 90 [--client SLUG] [--dry-run]
"""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from leads.models import Client
from workflows.models import StepRun
from workflows.services import step_runs_purge


class Command(BaseCommand):
    help = "Purge workflow step runs (execution history) older than N days."

    def add_arguments(self, parser):
        parser.add_argument("--older-than-days", type=int, required=True)
        parser.add_argument("--client", help="client slug (default: all clients)")
        parser.add_argument("--dry-run", action="store_true", help="count only")

    def handle(self, *args, **options):
        days = options["older_than_days"]
        if days < 1:
            raise CommandError("--older-than-days must be at least 1")
        before = timezone.now() - timedelta(days=days)
        client = None
        if options["client"]:
            client = Client.objects.filter(slug=options["client"]).first()
            if client is None:
                raise CommandError(f"No client with slug {options['client']!r}")
        rows = StepRun.objects.filter(started_at__lt=before)
        if client is not None:
            rows = rows.filter(client=client)
        if options["dry_run"]:
            self.stdout.write(f"{rows.count()} step run(s) started before {before:%Y-%m-%d %H:%M} UTC would be purged.")
            return
        deleted = step_runs_purge(before=before, client=client, actor="system:purge_step_runs")
        self.stdout.write(f"Purged {deleted} step run(s) started before {before:%Y-%m-%d %H:%M} UTC.")
