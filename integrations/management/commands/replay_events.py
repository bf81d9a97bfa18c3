import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.dateparse import parse_datetime

from integrations.models import RawEvent
from integrations.services import raw_event_process, raw_events_replay


class Command(BaseCommand):
    help = "Replay raw provider events through normalization and the consumers (logged in the action log)."

    def add_arguments(self, parser):
        parser.add_argument("--provider")
        parser.add_argument("--client", help="client slug")
        parser.add_argument(
            "--status", action="append", choices=RawEvent.Status.values, help="repeatable; default dead and failed"
        )
        parser.add_argument("--since", help="ISO datetime (received at or after)")
        parser.add_argument("--until", help="ISO datetime (received before)")
        parser.add_argument("--id", dest="ids", action="append", type=int, default=[], help="repeatable raw event id")
        parser.add_argument("--dry-run", action="store_true", help="list what would be replayed, change nothing")
        parser.add_argument("--inline", action="store_true", help="process here instead of enqueueing for workers")
        parser.add_argument("--reason", default="replay_events command")

    def handle(self, *args, **opts):
        qs = RawEvent.objects.all()
        if opts["ids"]:
            qs = qs.filter(pk__in=opts["ids"])
        else:
            qs = qs.filter(status__in=opts["status"] or [RawEvent.Status.DEAD, RawEvent.Status.FAILED])
        if opts["provider"]:
            qs = qs.filter(provider=opts["provider"])
        if opts["client"]:
            qs = qs.filter(client__slug=opts["client"])
        for bound, lookup in (("since", "received_at__gte"), ("until", "received_at__lt")):
            if opts[bound]:
                value = parse_datetime(opts[bound])
                if value is None:
                    raise CommandError(f"--{bound}: not an ISO datetime: {opts[bound]!r}")
                qs = qs.filter(**{lookup: value})
        ids = list(qs.order_by("received_at", "id").values_list("pk", flat=True))
        self.stdout.write(f"{len(ids)} raw event(s) match.")
        if opts["dry_run"]:
            for raw in RawEvent.objects.filter(pk__in=ids[:50]).order_by("received_at", "id"):
                self.stdout.write(f"  #{raw.pk} {raw.provider} {raw.kind} [{raw.status}] {raw.summary}")
            if len(ids) > 50:
                self.stdout.write(f"  … and {len(ids) - 50} more")
            self.stdout.write("Dry run: nothing changed.")
            return
        done = 0
        batch = 200
        for start in range(0, len(ids), batch):
            chunk = ids[start : start + batch]
            done += raw_events_replay(
                raw_events=RawEvent.objects.filter(pk__in=chunk), actor="system:replay_events", reason=opts["reason"]
            )
            if opts["inline"]:
                for pk in chunk:
                    raw_event_process(raw_event_id=pk)
            self._progress(done, len(ids))
        sys.stderr.write("\n")
        statuses = dict.fromkeys(RawEvent.Status.values, 0)
        for status in RawEvent.objects.filter(pk__in=ids).values_list("status", flat=True):
            statuses[status] += 1
        self.stdout.write(f"Replayed {done}. Now: " + ", ".join(f"{k} {v}" for k, v in statuses.items() if v))

    def _progress(self, done: int, total: int) -> None:
        width = 30
        filled = int(width * done / total) if total else width
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
        sys.stderr.flush()
