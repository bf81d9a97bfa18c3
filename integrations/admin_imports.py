"""Admin for CSV imports: an upload page (the add form) and a read-only job page with progress,
counts and problem rows. Imported by integrations/admin.py; registers itself."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from zartsalgo.errors import ApplicationError
from zartsalgo.tasks import enqueue_on_commit

from .imports import LEAD_FIELDS, import_job_create, mapping_parse
from .models_imports import ImportJob
from .tasks_imports import run_import_job

# The job page lists this many problem rows; the rest stay in the job's report.
PROBLEMS_SHOWN = 1000


class ImportUploadForm(forms.ModelForm):
    upload = forms.FileField(
        label="CSV file",
        help_text="UTF-8 (with or without BOM) or Windows-1252; comma, semicolon or tab separated; "
        "the first non-blank line is the header.",
    )
    mapping_text = forms.CharField(
        label="Column mapping",
        required=False,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": "Cust Tel=phone\nZip=postal_code"}),
        help_text="Only for headers that are not recognised: one 'Column name=lead field' per line. Fields: "
        + ", ".join(LEAD_FIELDS)
        + "; 'ignore' drops a column.",
    )

    class Meta:
        model = ImportJob
        fields = ("client", "dry_run")

    def clean_mapping_text(self) -> dict[str, str]:
        try:
            return mapping_parse(self.cleaned_data.get("mapping_text") or "")
        except ApplicationError as exc:
            raise forms.ValidationError(exc.message) from exc

    def clean_upload(self):
        upload = self.cleaned_data["upload"]
        if not upload.size:
            raise forms.ValidationError("The file is empty.")
        return upload


@admin.register(ImportJob)
class ImportJobAdmin(admin.ModelAdmin):
    list_display = (
        "created_at",
        "client",
        "original_name",
        "status",
        "dry_run",
        "rows_total",
        "created",
        "updated",
        "duplicate",
        "failed",
        "ignored",
        "uploaded_by",
    )
    list_filter = ("status", "dry_run", "client")
    list_select_related = ("client", "uploaded_by")
    search_fields = ("original_name", "=sha256")
    ordering = ("-created_at", "-id")
    date_hierarchy = "created_at"
    view_fieldsets = (
        (
            None,
            {
                "fields": (
                    "client",
                    "original_name",
                    "status",
                    "dry_run",
                    "progress_display",
                    "counts_display",
                    "error",
                )
            },
        ),
        ("Problem rows", {"fields": ("problems_display",)}),
        (
            "File",
            {
                "fields": (
                    "detected_display",
                    "mapping",
                    "size",
                    "sha256",
                    "uploaded_by",
                    "connection",
                    "created_at",
                    "started_at",
                    "finished_at",
                )
            },
        ),
    )
    add_fieldsets = (
        (
            None,
            {
                "fields": ("client", "upload", "mapping_text", "dry_run"),
                "description": "Every row goes through the same pipeline as a webhook: duplicates are merged into "
                "the existing lead, never created twice. Run a dry run first on an unfamiliar file.",
            },
        ),
    )

    def get_fieldsets(self, request, obj=None):
        return self.add_fieldsets if obj is None else self.view_fieldsets

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ImportUploadForm
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        return [name for _, options in self.view_fieldsets for name in options["fields"]]

    # A job is a record of what happened: created by an upload, never edited or deleted here.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        job = import_job_create(
            client=data["client"],
            uploaded_file=data["upload"],
            actor=request.user,
            mapping=data["mapping_text"],
            dry_run=data["dry_run"],
        )
        enqueue_on_commit(run_import_job, job.pk)
        # The admin logs the addition and redirects with `obj`: make it the job the service stored.
        for model_field in ImportJob._meta.concrete_fields:
            setattr(obj, model_field.attname, getattr(job, model_field.attname))
        obj._state = job._state

    def response_add(self, request, obj, post_url_continue=None):
        self.message_user(
            request,
            f"{obj.original_name} uploaded; the {'dry run' if obj.dry_run else 'import'} runs in the background.",
            messages.SUCCESS,
        )
        return HttpResponseRedirect(reverse("admin:integrations_importjob_change", args=[obj.pk]))

    @admin.display(description="progress")
    def progress_display(self, obj: ImportJob):
        done = obj.progress_rows
        if obj.status == ImportJob.Status.COMPLETED:
            total = max(done, 1)
            label = f"{done:,} rows read"
        else:
            total = max(obj.rows_estimated, done, 1)
            label = f"{done:,} of ~{obj.rows_estimated:,} rows" if obj.rows_estimated else f"{done:,} rows"
        return format_html(
            '<progress value="{}" max="{}" style="width: 24em"></progress> {} ({}%)',
            done if obj.status != ImportJob.Status.COMPLETED else total,
            total,
            label,
            100 if obj.status == ImportJob.Status.COMPLETED else min(100, done * 100 // total),
        )

    @admin.display(description="counts")
    def counts_display(self, obj: ImportJob):
        return format_html(
            "<table><tr>{}</tr><tr>{}</tr></table>",
            format_html_join("", "<th>{}</th>", ((name.replace("_", " "),) for name in obj.counts)),
            format_html_join("", "<td>{}</td>", ((f"{value:,}",) for value in obj.counts.values())),
        )

    @admin.display(description="problem rows")
    def problems_display(self, obj: ImportJob):
        report = obj.report or {}
        problems = report.get("problems") or []
        if not problems:
            return "None" if obj.status == ImportJob.Status.COMPLETED else "—"
        hidden = len(problems) - PROBLEMS_SHOWN + int(report.get("more") or 0)
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((p.get("row"), p.get("outcome"), p.get("reason")) for p in problems[:PROBLEMS_SHOWN]),
        )
        more = format_html("<p>… and {} more.</p>", f"{hidden:,}") if hidden > 0 else ""
        return format_html(
            "<table><thead><tr><th>row</th><th>outcome</th><th>reason</th></tr></thead><tbody>{}</tbody></table>{}"
            "<p>Row numbers are the file's line numbers; the header is the row shown under 'detected'.</p>",
            rows,
            more,
        )

    @admin.display(description="detected")
    def detected_display(self, obj: ImportJob):
        detected = obj.detected or {}
        if not detected:
            return "—"
        columns = detected.get("columns") or {}
        lines = [
            ("encoding", detected.get("encoding", "")),
            ("delimiter", detected.get("delimiter", "")),
            ("header row", detected.get("header_row", "")),
            ("columns", ", ".join(f"{name} → {target or 'kept as extra'}" for name, target in columns.items())),
        ]
        if detected.get("unused_mapping"):
            lines.append(("mapping matched no column", ", ".join(detected["unused_mapping"])))
        if detected.get("same_file_as_job"):
            lines.append(("same file imported by job", f"#{detected['same_file_as_job']}"))
        return format_html("<dl>{}</dl>", format_html_join("", "<dt>{}</dt><dd>{}</dd>", lines))
