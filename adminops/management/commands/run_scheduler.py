"""The embedded default's beat: run the periodic tasks of CELERY_BEAT_SCHEDULE in this process.

With Redis and a real `celery beat` this is not needed (and must not run beside it). Without
Redis, tasks run in-process, and something still has to wake delayed workflow steps, re-enqueue
stuck raw events and flag stale connections: `make run` starts this next to runserver.

    manage.py run_scheduler            # loop until stopped
    manage.py run_scheduler --once     # each task once, then exit
"""

import time

from celery.schedules import crontab
from django.conf import settings
from django.core.management.base import BaseCommand

from zartsalgo.celery import app


def _seconds(schedule) -> float:
    if isinstance(schedule, int | float):
        return float(schedule)
    if isinstance(schedule, crontab):
        return 60.0 * 5  # the crontab entries here are every 5-10 minutes; close enough for a demo
    return 60.0


class Command(BaseCommand):
    help = "Run the beat schedule in-process (embedded mode, no Redis)."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true")

    def handle(self, *args, **options):
        app.loader.import_default_modules()  # registers every app's tasks (autodiscovery is lazy)
        entries = {
            name: (spec["task"], _seconds(spec["schedule"])) for name, spec in settings.CELERY_BEAT_SCHEDULE.items()
        }
        due = dict.fromkeys(entries, 0.0)
        self.stdout.write(f"Scheduler: {', '.join(entries)} (Ctrl-C stops it)")
        while True:
            now = time.monotonic()
            for name, (task, every) in entries.items():
                if now < due[name]:
                    continue
                due[name] = now + every
                try:
                    app.tasks[task].apply()  # in this process, whatever the broker
                except Exception as exc:  # a failing task must not stop the others
                    self.stderr.write(f"{name}: {exc.__class__.__name__}: {exc}")
            if options["once"]:
                return
            time.sleep(1.0)
