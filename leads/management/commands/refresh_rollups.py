"""`manage.py refresh_rollups`: bring the daily report rollups up to date.

manage.py refresh_rollups                     # the days changed since the last run (as the beat task)
manage.py refresh_rollups --full              # every day of every client (after a lead purge, say)
manage.py refresh_rollups --client SLUG --full
"""

import time

from django.core.management.base import BaseCommand, CommandError

from leads import rollups
from leads.models import Client


class Command(BaseCommand):
    help = "Refresh the daily lead rollups behind the reports (changed days, or --full)."

    def add_arguments(self, parser):
        parser.add_argument("--client", help="Only this client (slug); needs --full.")
        parser.add_argument("--full", action="store_true", help="Recompute every day instead of the changed ones.")

    def handle(self, *args, **options):
        started = time.monotonic()
        if options["client"]:
            if not options["full"]:
                raise CommandError("--client refreshes a client in full: add --full.")
            client = Client.objects.filter(slug=options["client"]).first()
            if client is None:
                raise CommandError(f"No client with slug {options['client']!r}.")
            result = rollups.rollups_refresh(client=client)
        elif options["full"]:
            result = rollups.rollups_refresh()
        else:
            result = rollups.rollups_refresh_changed()
        self.stdout.write(
            f"Refreshed rollups: {result.clients} client(s) ({result.full_clients} in full), "
            f"{result.rows} row(s) in {time.monotonic() - started:.1f}s."
        )
