"""Manual CSV lead imports: one row per uploaded file and what became of each of its rows."""

from __future__ import annotations

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models

from zartsalgo.models import TimeStampedModel

# Problem rows kept on the job; past this the report only counts them (a 1M-row file full of
# errors must not become a 100 MB JSON column).
REPORT_PROBLEMS_CAP = 5000


def import_storage() -> FileSystemStorage:
    """Where uploaded CSV files live (MEDIA_ROOT). No base_url: the files hold client personal
    data and are never served over HTTP."""
    return FileSystemStorage(location=settings.MEDIA_ROOT, base_url=None)


class ImportJob(TimeStampedModel):
    """One uploaded CSV file and the outcome of each of its rows (counts + problem rows)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        COMPLETED = "completed", "Completed"
        FAILED = "failed", "Failed"

    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="import_jobs")
    connection = models.ForeignKey("integrations.Connection", on_delete=models.PROTECT, related_name="import_jobs")
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    file = models.FileField(upload_to="imports/%Y/%m/", storage=import_storage, max_length=255)
    original_name = models.CharField(max_length=255)
    sha256 = models.CharField(max_length=64, db_index=True)
    size = models.PositiveBigIntegerField(default=0)
    mapping = models.JSONField(
        default=dict, blank=True, help_text='Header → lead field overrides, e.g. {"Cust Tel": "phone"}.'
    )
    dry_run = models.BooleanField(default=False, help_text="Read and classify every row, write no leads.")
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.QUEUED)
    # What the reader found: encoding, delimiter, header row, column → field mapping.
    detected = models.JSONField(default=dict, blank=True)
    rows_estimated = models.PositiveIntegerField(default=0, help_text="From the file size; for the progress bar.")
    rows_total = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    duplicate = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    ignored = models.PositiveIntegerField(default=0)
    warnings = models.PositiveIntegerField(default=0, help_text="Rows imported with a data-quality warning.")
    progress_rows = models.PositiveIntegerField(default=0)
    # Only problem rows: {"problems": [{"row", "outcome", "reason"}], "more": N}.
    report = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        db_table = "integration_import_jobs"
        ordering = ("-created_at", "-id")
        indexes = [
            models.Index(fields=["client", "created_at"], name="import_job_client_idx"),
            models.Index(fields=["status", "created_at"], name="import_job_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(status__in=["queued", "running", "completed", "failed"]),
                name="import_job_status_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.original_name} ({self.get_status_display().lower()})"

    @property
    def is_active(self) -> bool:
        return self.status in (self.Status.QUEUED, self.Status.RUNNING)

    @property
    def counts(self) -> dict[str, int]:
        return {
            "rows_total": self.rows_total,
            "created": self.created,
            "updated": self.updated,
            "duplicate": self.duplicate,
            "failed": self.failed,
            "ignored": self.ignored,
            "warnings": self.warnings,
        }
