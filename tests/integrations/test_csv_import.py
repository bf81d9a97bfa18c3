"""Manual CSV lead imports: the file reader, the per-row outcomes, the pipeline effects, the
command, the admin upload and the memory bound.

Row numbers everywhere are the file's LINE numbers and the header is row 1 (it is on the first
line in every fixture): a record whose quoted notes span three lines takes the number of its
first line, and the next record's number skips the two continuation lines.
"""

import io
import time
import tracemalloc
from pathlib import Path

import pytest
from django.contrib import admin
from django.core.files import File
from django.core.files.storage import FileSystemStorage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from adminops.models import AdminAction
from integrations.imports import excel_phone, import_job_create, import_job_run, mapping_parse
from integrations.management.commands.import_leads import Command as ImportLeadsCommand
from integrations.models import Connection, NormalizedEvent, RawEvent, SyncError, WebhookEvent
from integrations.models_imports import ImportJob
from leads.models import Activity, Lead
from leads.services import LeadSignal, lead_upsert
from zartsalgo.errors import ApplicationError

pytestmark = pytest.mark.django_db

PAYLOADS = Path(__file__).parent / "payloads" / "csv"
COUNTS = ("rows_total", "created", "updated", "duplicate", "failed", "ignored", "warnings")


@pytest.fixture(autouse=True)
def media(tmp_path, monkeypatch):
    """Uploaded files go to a temporary directory, not the repository's var/media."""
    storage = FileSystemStorage(location=tmp_path / "media")
    monkeypatch.setattr(ImportJob._meta.get_field("file"), "storage", storage)
    return storage


def upload(name: str, content: bytes | None = None) -> SimpleUploadedFile:
    data = (PAYLOADS / name).read_bytes() if content is None else content
    return SimpleUploadedFile(name, data, content_type="text/csv")


@pytest.fixture
def run_import(acme, engineer):
    def run(name: str, content: bytes | None = None, *, client=None, batch_size: int = 500, **options) -> ImportJob:
        job = import_job_create(client=client or acme, uploaded_file=upload(name, content), actor=engineer, **options)
        return import_job_run(job_id=job.pk, batch_size=batch_size)

    return run


def counts(job: ImportJob) -> dict[str, int]:
    return {name: getattr(job, name) for name in COUNTS}


def problems(job: ImportJob) -> dict[int, tuple[str, str]]:
    return {p["row"]: (p["outcome"], p["reason"]) for p in job.report["problems"]}


# --- end to end ---------------------------------------------------------------------------------


def test_excel_utf8_bom_file_becomes_leads_through_the_pipeline(run_import, acme, engineer):
    job = run_import("excel_utf8_bom.csv")

    assert job.status == "completed", job.error
    assert job.detected["encoding"] == "utf-8-sig" and job.detected["delimiter"] == ","
    assert next(iter(job.detected["columns"])) == "Name"  # the BOM is not part of the first header
    assert job.detected["columns"]["Referral Code"] is None  # unknown column: kept, not mapped
    assert counts(job) == {**dict.fromkeys(COUNTS, 0), "rows_total": 2, "created": 2}
    assert job.report == {"problems": [], "more": 0}
    assert job.sha256 and job.size == len((PAYLOADS / "excel_utf8_bom.csv").read_bytes())

    connection = Connection.objects.get(client=acme, provider="csv_import")
    assert (connection.status, connection.reason, connection.owner) == ("connected", "Manual CSV import", engineer)
    assert connection.credentials == {} and connection.last_event_at is not None
    raws = {r.idempotency_key: r for r in RawEvent.objects.filter(connection=connection)}
    assert set(raws) == {f"{job.sha256}:2", f"{job.sha256}:3", f"{job.sha256}:completed"}
    row = raws[f"{job.sha256}:2"]
    assert (row.kind, row.status, row.receipt) == ("csv.row", "normalized", None)
    assert row.payload["_extra"] == {"Referral Code": "RC-1001"} and row.payload["_row"] == 2
    assert "0143" in row.summary and "555" not in row.summary and "maria" not in row.summary.lower()

    maria = Lead.objects.get(client=acme, phone_e164="+15125550143")
    assert (maria.first_name, maria.last_name, maria.email_normalized) == (
        "Maria",
        "Garcia",
        "maria.garcia@example.com",
    )
    assert (maria.source, maria.source_detail) == ("csv_import", "excel_utf8_bom.csv")
    assert (maria.service_type, maria.city, maria.postal_code) == ("Water heater", "Austin", "78701")
    # 11/18/2026 9:15 AM is the client's local time (America/Chicago, UTC-6 in November).
    assert maria.captured_at.isoformat() == "2026-11-18T15:15:00+00:00"
    capture = maria.activities.get(kind=Activity.Kind.LEAD_CAPTURED)
    assert capture.summary == "Imported from excel_utf8_bom.csv, row 2: Tank leaking in garage"
    assert not maria.consents.exists()  # a spreadsheet is no consent evidence
    tom = Lead.objects.get(client=acme, phone_e164="+15125550144")
    assert tom.postal_code == "02134"  # Excel dropped the leading zero

    event = NormalizedEvent.objects.get(raw_event=row)
    assert (event.event_type, event.lead) == ("lead.captured", maria)
    assert event.data["file"] == "excel_utf8_bom.csv" and event.data["source_column"] == "Google"
    assert "phone" not in event.data and "email" not in event.data

    verbs = list(
        AdminAction.objects.filter(target_type="integrations.importjob", target_id=str(job.pk))
        .order_by("id")
        .values_list("verb", flat=True)
    )
    assert verbs == ["import.upload", "import.completed"]


def test_import_completed_event_carries_the_counts(run_import, acme):
    job = run_import("messy.csv")

    event = NormalizedEvent.objects.get(client=acme, event_type="import.completed")
    assert event.raw_event.idempotency_key == f"{job.sha256}:completed" and event.lead is None
    assert {k: event.data[k] for k in COUNTS} == counts(job)
    assert (event.data["file"], event.data["job_id"], event.data["sha256"]) == ("messy.csv", job.pk, job.sha256)


@pytest.mark.parametrize(
    ("name", "delimiter", "phones"),
    [
        ("semicolon.csv", ";", {"+15125550151", "+15125550152"}),
        ("crm_export.tsv", "tab", {"+15125550161", "+15125550162"}),
    ],
)
def test_semicolon_and_tab_delimiters_are_sniffed(run_import, acme, name, delimiter, phones):
    job = run_import(name)

    assert job.status == "completed" and job.detected["delimiter"] == delimiter
    assert (job.created, job.failed) == (2, 0)
    assert set(Lead.objects.filter(client=acme).values_list("phone_e164", flat=True)) == phones


def test_semicolon_file_keeps_decimal_commas_in_extra_columns(run_import):
    job = run_import("semicolon.csv")
    raw = RawEvent.objects.get(idempotency_key=f"{job.sha256}:2")
    assert raw.payload["_extra"] == {"Budget": "1,5k"} and raw.payload["full_name"] == "Lena Vogel"


def test_tab_export_maps_names_and_attribution(run_import, acme):
    run_import("crm_export.tsv")
    rita = Lead.objects.get(client=acme, phone_e164="+15125550161")
    assert (rita.first_name, rita.last_name, rita.utm_source, rita.gclid) == ("Rita", "Moreno", "google", "Cj0KCQiA")


def test_windows_1252_file_is_decoded(run_import, acme):
    job = run_import("windows1252.csv")

    assert job.detected["encoding"] == "cp1252" and job.created == 2
    jose = Lead.objects.get(client=acme, phone_e164="+15125550121")
    assert (jose.first_name, jose.last_name, jose.city) == ("José", "Núñez", "San Antonio")
    assert "Señor — prefers “café” hours" in jose.activities.get(kind=Activity.Kind.LEAD_CAPTURED).summary
    assert Lead.objects.get(client=acme, phone_e164="+15125550122").first_name == "Zoë"


def test_a_cp1252_line_in_a_utf8_file_falls_back_for_that_row_only(run_import, acme):
    # 70 KB of UTF-8 first, so the 64 KB sample says "UTF-8"; then one Windows-1252 line.
    notes = "Ünïcode ok" + " (long notes keep the filler short)" * 3
    lines = ["Name,Phone,Notes"] + [f"Filler {i},+1512555{i:04d},{notes}" for i in range(1000, 1600)]
    body = ("\n".join(lines) + "\n").encode("utf-8")
    assert len(body) > 64 * 1024
    body += "José Pérez,5125559999,café\n".encode("cp1252") + "Last Row,5125559998,naïve\n".encode()

    job = run_import("mixed.csv", body)

    assert job.detected["encoding"] == "utf-8" and job.created == 602 and job.failed == 0
    bad_row = len(lines) + 1
    assert problems(job) == {bad_row: ("created", f"line {bad_row} is not valid UTF-8: read as Windows-1252")}
    assert job.warnings == 1
    assert Lead.objects.get(client=acme, phone_e164="+15125559999").first_name == "José"
    # The lines around it are still read as UTF-8.
    assert RawEvent.objects.get(idempotency_key=f"{job.sha256}:{bad_row + 1}").payload["notes"] == "naïve"
    assert RawEvent.objects.get(idempotency_key=f"{job.sha256}:2").payload["notes"] == notes


def test_utf16_unicode_text_export_is_read(run_import, acme):
    body = "Name\tPhone\nÅsa Berg\t5125550181\n".encode("utf-16")  # with BOM, as Excel writes it

    job = run_import("unicode.txt", body)

    assert (job.status, job.detected["encoding"], job.detected["delimiter"], job.created) == (
        "completed",
        "utf-16",
        "tab",
        1,
    )
    assert Lead.objects.get(client=acme, phone_e164="+15125550181").first_name == "Åsa"


def test_quoted_newlines_and_line_based_row_numbers(run_import, acme):
    job = run_import("quoted_newlines.csv")

    # Records start on lines 2, 4, 5 and 8 (header = row 1; rows 2 and 5 span 2 and 3 lines).
    assert (job.rows_total, job.created, job.failed) == (4, 3, 1)
    assert problems(job) == {8: ("failed", "No usable phone or email: phone 'not a phone' is not a valid number")}
    keys = set(RawEvent.objects.filter(kind="csv.row").values_list("idempotency_key", flat=True))
    assert keys == {f"{job.sha256}:{n}" for n in (2, 4, 5)}
    fay = Lead.objects.get(client=acme, phone_e164="+15125550113")
    assert fay.activities.get(kind="lead_captured").summary.endswith("row 5: Line one line two line three")
    raw = RawEvent.objects.get(idempotency_key=f"{job.sha256}:2")
    assert raw.payload["notes"] == "Gate code 1234\nside door please"


def test_excel_scientific_phones(run_import, acme):
    job = run_import("excel_phones.csv")

    assert (job.created, job.failed, job.warnings) == (2, 1, 1)
    # 5.125550143E+09 still has all ten digits: recovered exactly.
    hal = Lead.objects.get(client=acme, first_name="Hal")
    assert hal.phone_e164 == "+15125550143" and not hal.has_data_quality_issues
    assert RawEvent.objects.get(idempotency_key=f"{job.sha256}:2").payload["_phone_as_written"] == "5.125550143E+09"
    # 5.55E+09 lost its digits: imported on the email, phone kept as written and flagged.
    ivy = Lead.objects.get(client=acme, first_name="Ivy")
    assert (ivy.phone_e164, ivy.phone_raw, ivy.email_normalized) == (None, "5.55E+09", "ivy@example.com")
    assert [f["field"] for f in ivy.data_quality_flags] == ["phone"]
    assert problems(job) == {
        3: ("created", "phone 5.55E+09 was rounded by Excel (digits lost): kept as written and flagged on the lead"),
        4: ("failed", "No usable phone or email: phone 5.55E+09 was rounded by Excel (digits lost)"),
    }
    assert not Lead.objects.filter(client=acme, first_name="Jon").exists()


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("5.125550143E+09", ("5125550143", False)),
        ("5.125550143e9", ("5125550143", False)),
        ("5.55E+09", ("5.55E+09", True)),
        ("5.1255501E+09", ("5.1255501E+09", True)),  # trailing zeros or rounding: cannot tell
        ("5E+09", ("5E+09", True)),
        ("5125550143.0", ("5125550143", False)),
        ("(512) 555-0143", ("(512) 555-0143", False)),
    ],
)
def test_excel_phone_recovery_rules(raw, expected):
    assert excel_phone(raw) == expected


def test_messy_sheet_outcomes_per_row(run_import, acme):
    existing = lead_upsert(client=acme, signal=LeadSignal(source="web_form", phone="512 555 0199")).lead

    job = run_import("messy.csv")

    # Lines: 1 header · 2 Ann (created) · 3 blank · 4 Bob (created) · 5 Ann again, other phone
    # format (duplicate) · 6 five fields · 7 only commas · 8 existing lead (updated) · 9 no
    # contact · 10 bad phone · 11 Carl, bad email (created with warning) · 12 blank.
    assert counts(job) == {
        "rows_total": 11,
        "created": 3,
        "updated": 1,
        "duplicate": 1,
        "failed": 3,
        "ignored": 3,
        "warnings": 1,
    }
    assert problems(job) == {
        5: ("duplicate", "Same person as an earlier row of this file: merged into that lead"),
        6: ("failed", "Row has 5 fields; the header has 4"),
        9: ("failed", "No phone or email"),
        10: ("failed", "No usable phone or email: phone '555-01' is not a valid number"),
        11: ("created", "email 'carl@' is not valid: kept as written and flagged on the lead"),
    }
    assert Lead.objects.filter(client=acme).count() == 4  # Ann, Bob, Carl + the existing one
    ann = Lead.objects.get(client=acme, phone_e164="+15125550101")
    assert ann.normalized_events.filter(event_type="lead.captured").count() == 2  # row 5 merged, not lost
    existing.refresh_from_db()
    assert existing.source == "web_form" and existing.first_name == "Existing"  # merged, first source kept
    assert existing.activities.filter(kind=Activity.Kind.MERGE).count() == 1
    carl = Lead.objects.get(client=acme, phone_e164="+15125550103")
    assert [f["code"] for f in carl.data_quality_flags] == ["email_invalid"]


def test_reimporting_the_same_file_is_all_duplicates(run_import, acme):
    first = run_import("excel_utf8_bom.csv")
    leads, raws, events = Lead.objects.count(), RawEvent.objects.count(), NormalizedEvent.objects.count()

    second = run_import("excel_utf8_bom.csv")

    assert second.sha256 == first.sha256 and second.pk != first.pk
    assert counts(second) == {**dict.fromkeys(COUNTS, 0), "rows_total": 2, "duplicate": 2}
    assert second.report["problems"] == []  # said once, not per row:
    assert second.detected["same_file_as_job"] == first.pk
    assert second.detected["completed_event_recorded"] is False
    assert (Lead.objects.count(), RawEvent.objects.count(), NormalizedEvent.objects.count()) == (leads, raws, events)


def test_dry_run_writes_nothing_and_predicts_the_real_run(run_import, acme):
    lead_upsert(client=acme, signal=LeadSignal(source="web_form", phone="512 555 0199"))
    before = (Lead.objects.count(), RawEvent.objects.count(), NormalizedEvent.objects.count(), Activity.objects.count())

    dry = run_import("messy.csv", dry_run=True)

    assert dry.status == "completed" and dry.dry_run
    after = (Lead.objects.count(), RawEvent.objects.count(), NormalizedEvent.objects.count(), Activity.objects.count())
    assert after == before
    assert AdminAction.objects.filter(
        verb="import.dry_run", target_type="integrations.importjob", target_id=str(dry.pk)
    ).exists()

    real = run_import("messy.csv")
    assert counts(real) == counts(dry) and real.report == dry.report


def test_dry_run_across_batches_remembers_earlier_rows(run_import):
    body = b"Name,Phone\n" + b"".join(f"P{i},51255502{i % 50:02d}\n".encode() for i in range(120))
    dry = run_import("repeats.csv", body, dry_run=True, batch_size=7)
    real = run_import("repeats.csv", body, batch_size=7)
    assert (dry.created, dry.duplicate) == (real.created, real.duplicate) == (50, 70)


def test_mapping_overrides_and_extra_columns(run_import, acme):
    job = run_import(
        "custom_headers.csv",
        mapping={"cust  tel": "phone", "Cust Name": "name", "CUST ZIP": "zip", "SSN": "ignore", "Fax": "phone"},
    )

    assert job.created == 1 and job.detected["unused_mapping"] == ["Fax"]
    assert job.mapping == {
        "cust  tel": "phone",
        "Cust Name": "full_name",
        "CUST ZIP": "postal_code",
        "SSN": "ignore",
        "Fax": "phone",
    }
    lead = Lead.objects.get(client=acme)
    assert (lead.phone_e164, lead.first_name, lead.postal_code) == ("+15125550171", "Nina", "78704")
    raw = RawEvent.objects.get(kind="csv.row")
    assert raw.payload["_extra"] == {"Referral Code": "RC-77"}
    assert "123-45-6789" not in str(raw.payload)  # an ignored column is not stored at all


def test_file_without_a_contact_column_fails_with_a_clear_error(run_import):
    job = run_import("custom_headers.csv")  # no mapping: "Cust Tel" is not a known header
    assert job.status == "failed"
    assert job.error.startswith("No phone or email column among: Cust Name, Cust Tel, Cust Zip")
    assert not RawEvent.objects.exists() and not SyncError.objects.exists()  # a bad file is not an incident
    assert AdminAction.objects.filter(verb="import.failed", target_id=str(job.pk)).exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04\x14\x00\x06\x00" + b"\x00" * 64, "This is an Excel workbook"),
        (b"\n\n\r\n", "The file is empty."),
        (b"Name,Phone\x00\x01\x02", "This is not a text file"),
    ],
)
def test_unreadable_files_fail_the_job(run_import, content, message):
    job = run_import("upload.csv", content)
    assert job.status == "failed" and job.error.startswith(message) and job.finished_at


def test_bad_mapping_is_refused_before_anything_is_stored(acme, engineer):
    with pytest.raises(ApplicationError, match="'fone' is not a lead field"):
        import_job_create(client=acme, uploaded_file=upload("messy.csv"), actor=engineer, mapping={"Tel": "fone"})
    assert not ImportJob.objects.exists()
    assert mapping_parse("Cust Tel=phone, Zip = postal code\nSSN=-") == {
        "Cust Tel": "phone",
        "Zip": "postal_code",
        "SSN": "ignore",
    }


def test_a_dead_worker_run_resumes_after_the_last_committed_batch(acme, engineer):
    body = b"Name,Phone\n" + b"".join(f"R{i},5125553{i:03d}\n".encode() for i in range(10))
    job = import_job_create(client=acme, uploaded_file=upload("resume.csv", body), actor=engineer)

    class WorkerLost(BaseException):  # not an Exception: like a killed process, nothing records it
        pass

    def die_after_first_batch(j):
        raise WorkerLost

    with pytest.raises(WorkerLost):
        import_job_run(job_id=job.pk, progress=die_after_first_batch, batch_size=4)
    job.refresh_from_db()
    assert (job.status, job.progress_rows, job.created) == ("running", 4, 4)
    # A second delivery while the first worker still looks alive does nothing.
    assert import_job_run(job_id=job.pk).progress_rows == 4

    ImportJob.objects.filter(pk=job.pk).update(updated_at=job.updated_at.replace(year=2000))
    job = import_job_run(job_id=job.pk, batch_size=4)

    assert (job.status, job.rows_total, job.created, job.duplicate) == ("completed", 10, 10, 0)
    assert Lead.objects.filter(client=acme).count() == 10
    assert import_job_run(job_id=job.pk).status == "completed"  # finished jobs are left alone


def test_paused_connection_holds_real_imports(run_import, acme, engineer):
    from integrations.imports import import_connection
    from integrations.services import connection_set_status

    connection = import_connection(client=acme, actor=engineer)
    connection_set_status(connection=connection, status="paused", actor=engineer, reason="client audit")

    job = run_import("messy.csv")

    assert job.status == "failed" and "paused: client audit" in job.error and not RawEvent.objects.exists()


# --- the adapter ----------------------------------------------------------------------------------


def test_csv_import_webhook_url_refuses_posts(deliver, acme, engineer):
    from integrations.imports import import_connection

    connection = import_connection(client=acme, actor=engineer)
    response = deliver("csv_import", connection, b"Name,Phone\nA,5125550100\n", content_type="text/csv")

    assert response.status_code == 403
    receipt = WebhookEvent.objects.get()
    assert (receipt.outcome, receipt.reason) == ("rejected_signature", "CSV imports are uploaded, not posted")
    assert not RawEvent.objects.exists()


# --- management command ---------------------------------------------------------------------------


def test_command_imports_and_reports(acme):
    out, err = io.StringIO(), io.StringIO()
    call_command("import_leads", str(PAYLOADS / "messy.csv"), client="acme", stdout=out, stderr=err)

    text = out.getvalue()
    assert "11 rows: 4 created, 0 updated, 1 duplicate, 3 failed, 3 ignored (1 with warnings)" in text
    assert "  row 6: failed: Row has 5 fields; the header has 4" in text
    assert "Read as utf-8, delimiter ',', header on row 1" in text
    assert "rows/s" in err.getvalue() and "11/~11 rows" in err.getvalue()
    job = ImportJob.objects.get()
    assert (job.status, job.uploaded_by, job.original_name) == ("completed", None, "messy.csv")
    assert Lead.objects.filter(client=acme).count() == 4


def test_command_dry_run_with_mapping(acme):
    out = io.StringIO()
    call_command(
        "import_leads",
        str(PAYLOADS / "custom_headers.csv"),
        "--client=acme",
        "--mapping",
        "Cust Tel=phone,Cust Zip=postal_code",
        "--dry-run",
        stdout=out,
        stderr=io.StringIO(),
    )
    assert "Dry run (nothing written): 1 rows: 1 created" in out.getvalue()
    assert "Kept unmapped: Cust Name, Referral Code, SSN" in out.getvalue()
    assert not Lead.objects.exists()


@pytest.mark.parametrize(
    ("argv", "message", "code"),
    [
        (["messy.csv", "--client", "nope"], "No client with slug 'nope'. Known: acme", 1),
        (["missing.csv", "--client", "acme"], "Cannot read", 1),
        (["messy.csv", "--client", "acme", "--mapping", "Tel=fone"], "'fone' is not a lead field", 1),
    ],
)
def test_command_exits_nonzero_on_bad_arguments(acme, argv, message, code, capsys, monkeypatch):
    argv = [str(PAYLOADS / argv[0]), *argv[1:]]
    # run_from_argv is what manage.py calls (it turns CommandError into sys.exit(returncode));
    # it also closes every DB connection afterwards, which would end the test's transaction.
    monkeypatch.setattr("django.core.management.base.connections.close_all", lambda: None)
    with pytest.raises(SystemExit) as exited:
        ImportLeadsCommand().run_from_argv(["manage.py", "import_leads", *argv])
    assert exited.value.code == code
    assert message in capsys.readouterr().err
    assert not ImportJob.objects.exists()


def test_command_exits_2_when_the_job_fails(acme, tmp_path):
    workbook = tmp_path / "leads.xlsx"
    workbook.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
    with pytest.raises(CommandError, match="Import failed: This is an Excel workbook") as failed:
        call_command("import_leads", str(workbook), client="acme", stdout=io.StringIO(), stderr=io.StringIO())
    assert failed.value.returncode == 2


# --- admin ----------------------------------------------------------------------------------------


@pytest.fixture
def import_admin():
    """integrations/admin.py registers the import pages; fail clearly if that wiring is lost."""
    assert ImportJob in admin.site._registry
    return admin.site._registry[ImportJob]


def test_admin_upload_runs_the_import(import_admin, client, engineer, acme, django_capture_on_commit_callbacks):
    client.force_login(engineer)
    add_url = reverse("admin:integrations_importjob_add")
    assert client.get(add_url).status_code == 200

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            add_url,
            {"client": acme.pk, "upload": upload("messy.csv"), "mapping_text": "Service=service_type", "dry_run": ""},
        )

    job = ImportJob.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse(
        "admin:integrations_importjob_change", args=[job.pk]
    )
    assert (job.status, job.uploaded_by, job.created, job.failed) == ("completed", engineer, 4, 3)
    page = client.get(response["Location"]).content.decode()
    assert 'http-equiv="refresh"' not in page
    assert "<progress" in page and "Row has 5 fields; the header has 4" in page
    assert "11 rows read" in page
    changelist = client.get(reverse("admin:integrations_importjob_changelist")).content.decode()
    assert "messy.csv" in changelist


def test_admin_job_page_refreshes_while_running(import_admin, client, engineer, acme):
    job = import_job_create(client=acme, uploaded_file=upload("messy.csv"), actor=engineer)
    client.force_login(engineer)
    page = client.get(reverse("admin:integrations_importjob_change", args=[job.pk])).content.decode()
    assert '<meta http-equiv="refresh" content="3">' in page and "Queued" in page
    assert 'name="_save"' not in page  # read-only


def test_admin_rejects_a_bad_mapping(import_admin, client, engineer, acme):
    client.force_login(engineer)
    response = client.post(
        reverse("admin:integrations_importjob_add"),
        {"client": acme.pk, "upload": upload("messy.csv"), "mapping_text": "Tel"},
    )
    assert response.status_code == 200
    assert "Mapping &#x27;Tel&#x27;: expected &#x27;Column name=lead_field&#x27;." in response.content.decode()
    assert not ImportJob.objects.exists()


# --- streaming --------------------------------------------------------------------------------------


def test_dry_run_streams_a_50k_row_file(acme, engineer, tmp_path):
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("Name,Phone,Email,Service,Notes\n")
        for i in range(50_000):
            handle.write(
                f"Person {i},+1512{2000000 + i:07d},person{i}@example.com,Drain cleaning,"
                f"Customer {i} asked for a callback about the kitchen sink and the basement floor drain\n"
            )
    size = path.stat().st_size

    # Warm up first: imports, phone metadata and query caches loaded on first use are not the
    # import's working memory.
    import_job_run(job_id=import_job_create(client=acme, uploaded_file=upload("messy.csv"), actor=engineer).pk)
    with path.open("rb") as source:
        job = import_job_create(client=acme, uploaded_file=File(source, name="big.csv"), actor=engineer, dry_run=True)
    tracemalloc.start()
    started = time.monotonic()
    try:
        job = import_job_run(job_id=job.pk)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert job.status == "completed" and (job.rows_total, job.created) == (50_000, 50_000), job.error
    # The bound: a third of the file. Holding the file at all fails it (its bytes alone are
    # 1x, the decoded text another 1x, a list of parsed rows ~10x); batches of 500 rows and the
    # SQLite "seen" file (on disk, outside Python's heap) keep the real peak near 1 MB.
    assert peak < size / 3, f"peak {peak:,} bytes for a {size:,}-byte file"
    assert time.monotonic() - started < 120
