"""Draft a summary (and metric cards) for one client or all active clients over the last N days.

    manage.py draft_summaries --client acme --period-days 30 [--cards] [--check]

--cards drafts the lead-based cards and, for each Search Console connection, its four cards.

Drafts only: approval and publishing stay with a named staff user in the admin.
"""

import datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from leads.models import Client
from portal import services
from portal.search_console_cards import search_console_cards_compute, search_console_connections_for_cards
from zartsalgo.errors import ApplicationError


class Command(BaseCommand):
    help = "Draft period summaries (and optionally metric cards) for review in the admin."

    def add_arguments(self, parser):
        parser.add_argument("--client", help="Client slug; default: every active client.")
        parser.add_argument("--period-days", type=int, default=30)
        parser.add_argument("--cards", action="store_true", help="Also compute draft metric cards.")
        parser.add_argument("--check", action="store_true", help="Also run the data-quality checks.")

    def handle(self, *args, client=None, period_days=30, cards=False, check=False, **options):
        if period_days < 1:
            raise CommandError("--period-days must be at least 1")
        clients = Client.objects.filter(slug=client) if client else Client.objects.filter(status=Client.Status.ACTIVE)
        if client and not clients.exists():
            raise CommandError(f"No client with slug {client!r}")
        actor = "system:draft_summaries"
        for c in clients:
            # Whole days that are over in the client's time zone: yesterday back period_days days.
            end = timezone.localtime(timezone.now(), c.tz).date() - datetime.timedelta(days=1)
            start = end - datetime.timedelta(days=period_days - 1)
            try:
                summary = services.summary_draft(client=c, period_start=start, period_end=end, actor=actor)
                made = [f"summary #{summary.pk}"]
                items = [summary]
                if cards:
                    new_cards = services.metric_cards_compute(client=c, period_start=start, period_end=end, actor=actor)
                    made.append(f"{len(new_cards)} card(s)")
                    items += new_cards
                    # Search Console cards are drafted here, not at the end of each pull: the
                    # pull's rows are normalized later by the drain, and a pull has no reporting
                    # period of its own (portal/search_console_cards.py).
                    for connection in search_console_connections_for_cards(client=c):
                        sc_cards = search_console_cards_compute(
                            client=c, connection=connection, period_start=start, period_end=end, actor=actor
                        )
                        made.append(f"{len(sc_cards)} Search Console card(s) ({connection})")
                        items += sc_cards
                if check:
                    statuses = [services.proof_check(item=item, actor=actor).status for item in items]
                    made.append("checks: " + ", ".join(statuses))
            except ApplicationError as exc:
                self.stderr.write(f"{c.slug}: {exc.message}")
                continue
            self.stdout.write(f"{c.slug} {start}..{end}: " + "; ".join(made))
