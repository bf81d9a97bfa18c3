"""manage.py import_leads FILE --client SLUG [--mapping "Cust Tel=phone,Zip=postal_code"] [--dry-run]

Runs the same service as the admin upload, synchronously, with a progress line on stderr.
Exit codes: 0 the job completed (even with failed rows: they are listed), 1 bad arguments
(unknown client, unreadable file, bad mapping), 2 the job failed (e.g. not a CSV file).
"""

from __future__ import annotations

import time

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from integrations.imports import import_job_create, import_job_run, mapping_parse
from integrations.models_imports import ImportJob
from leads.models import Client
from zartsalgo.errors import ApplicationError

SHOW_PROBLEMS = 20


class Command(BaseCommand):
    help = "Import leads from a CSV file for one client (the same pipeline as the admin upload)."

    def add_arguments(self, parser):
        parser.add_argument("file", help="path to the CSV file")
        parser.add_argument("--client", required=True, help="client slug")
        parser.add_argument(
            "--mapping",
            action="append",
            default=[],
            metavar='"Column=field,…"',
            help='header overrides, e.g. "Cust Tel=phone,Zip=postal_code" (repeatable; field "ignore" drops a column)',
        )
        parser.add_argument("--dry-run", action="store_true", help="read and classify every row, write no leads")

    def handle(self, *args, **opts):
        try:
            client = Client.objects.get(slug=opts["client"])
        except Client.DoesNotExist as exc:
            known = ", ".join(Client.objects.order_by("slug").values_list("slug", flat=True)[:20])
            raise CommandError(f"No client with slug {opts['client']!r}. Known: {known or 'none'}") from exc
        try:
            mapping = mapping_parse(",".join(opts["mapping"]))
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        path = opts["file"]
        try:
            handle = open(path, "rb")  # noqa: SIM115 - closed below, after the copy into storage
        except OSError as exc:
            raise CommandError(f"Cannot read {path}: {exc.strerror or exc}") from exc
        try:
            job = import_job_create(
                client=client,
                uploaded_file=File(handle, name=path),
                actor="system:import_leads",
                mapping=mapping,
                dry_run=opts["dry_run"],
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        finally:
            handle.close()

        started = time.monotonic()
        self.stderr.write(f"Job #{job.pk}: {job.original_name} ({job.size:,} bytes, sha256 {job.sha256[:12]}…)")
        job = import_job_run(job_id=job.pk, progress=lambda j: self._progress(j, started))
        self.stderr.write("")
        self._print_result(job, time.monotonic() - started)
        if job.status != ImportJob.Status.COMPLETED:
            raise CommandError(f"Import failed: {job.error}", returncode=2)

    def _progress(self, job: ImportJob, started: float) -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        done, total = job.progress_rows, job.rows_estimated
        rate = f"{done / elapsed:,.0f} rows/s"
        if total:
            share = min(done / total, 1.0)
            bar = "#" * int(share * 30)
            line = f"\r[{bar:<30}] {share:4.0%} {done:,}/~{total:,} rows · {rate}"
        else:
            line = f"\r{done:,} rows · {rate}"
        self.stderr.write(line, ending="")
        self.stderr.flush()

    def _print_result(self, job: ImportJob, elapsed: float) -> None:
        detected = job.detected or {}
        if detected:
            self.stdout.write(
                f"Read as {detected.get('encoding')}, delimiter {detected.get('delimiter')!r}, "
                f"header on row {detected.get('header_row')}"
            )
            unmapped = [name for name, target in (detected.get("columns") or {}).items() if target is None]
            if unmapped:
                self.stdout.write(f"Kept unmapped: {', '.join(unmapped)}")
            if detected.get("unused_mapping"):
                self.stdout.write(f"Mapping matched no column: {', '.join(detected['unused_mapping'])}")
            if detected.get("same_file_as_job"):
                self.stdout.write(f"This file was already imported by job #{detected['same_file_as_job']}.")
        prefix = "Dry run (nothing written): " if job.dry_run else ""
        self.stdout.write(
            f"{prefix}{job.rows_total} rows: {job.created} created, {job.updated} updated, "
            f"{job.duplicate} duplicate, {job.failed} failed, {job.ignored} ignored "
            f"({job.warnings} with warnings) in {elapsed:.1f} s"
        )
        problems = (job.report or {}).get("problems") or []
        if problems:
            self.stdout.write("Problem rows:")
            for problem in problems[:SHOW_PROBLEMS]:
                self.stdout.write(f"  row {problem['row']}: {problem['outcome']}: {problem['reason']}")
            hidden = len(problems) - SHOW_PROBLEMS + int((job.report or {}).get("more") or 0)
            if hidden > 0:
                self.stdout.write(f"  … and {hidden} more (see the job in the admin)")
