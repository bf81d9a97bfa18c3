"""Manual CSV lead imports: upload → ImportJob → one raw event per row through the pipeline.

How a file is read (streamed: memory does not grow with the number of rows):
- encoding from the first 64 KB: UTF-8 with BOM, UTF-8, UTF-16 with BOM (Excel "Unicode text"),
  else Windows-1252. Lines of a UTF-8 file that are not valid UTF-8 (a cp1252 line pasted into
  a UTF-8 export) are decoded as Windows-1252 one at a time and the row gets a warning;
- delimiter among `,` `;` and tab: the one that splits the sample into the most consistent,
  widest rows;
- `csv.reader` over the decoded lines, which keep their line endings, so quoted fields may
  contain newlines;
- row numbers are the file's line numbers (the header is row 1 when it is on the first line; a
  record spanning several lines has the number of its first line), as a text editor shows them.

What each row becomes (ImportJob counts; rows_total is their sum):
- ignored: blank (only delimiters/whitespace) or a repeated header line;
- failed: unreadable (bad quoting, wrong number of fields) or no usable contact point — neither
  a valid phone nor a valid email, because a lead nobody can call, email or dedupe is noise.
  A phone Excel rounded (`5.55E+09`) counts as unusable: with a valid email the row is
  imported with a warning and the lead keeps the phone as written with a data-quality flag;
  without one the row fails;
- duplicate: the same file was already imported (its raw key `<sha256>:<row>` exists), or the
  person was already touched by an earlier row of this file (same phone, email or lead);
  such a row is still merged into the lead, so no detail in it is lost;
- updated: merged into a lead that existed before the job; created: a new lead.
Rows imported with a warning (rounded phone, invalid email beside a valid phone, unreadable
date, cp1252 fallback) keep their outcome and are listed in the report too.

Each readable row goes through the same pipeline as a webhook (raw_events_store, then
raw_event_process inline), 500 rows per transaction; the job's counts, progress and report
commit with each batch, so a worker that dies resumes after the last committed batch.
"""

from __future__ import annotations

import codecs
import csv
import datetime
import hashlib
import io
import logging
import os
import random
import re
import sqlite3
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, BinaryIO

from django.core.files import File
from django.db import OperationalError, transaction
from django.db.models import Q
from django.utils import timezone

from adminops.services import action_record
from leads import normalize as norm
from leads.models import Client, Lead
from leads.services import ATTRIBUTION_FIELDS
from zartsalgo.errors import ApplicationError

from .models import Connection, NormalizedEvent, RawEvent, SyncError
from .models_imports import REPORT_PROBLEMS_CAP, ImportJob
from .providers import get_adapter
from .providers.csv_import import COUNT_FIELDS, CsvImportAdapter, row_key
from .services import connection_create, raw_event_process, raw_events_process_ids, raw_events_store

logger = logging.getLogger(__name__)

PROVIDER = "csv_import"
BATCH_SIZE = 500
SAMPLE_BYTES = 64 * 1024
# One physical line longer than this is not a lead: refuse the file rather than buffer it.
MAX_LINE_BYTES = 4 * 1024 * 1024
# A running job whose row was not touched for this long lost its worker; the task redelivered
# by Celery (acks_late) then resumes it. Batches commit every second or two, so this is ample.
STALE_RUNNING_AFTER = timedelta(minutes=10)
DEADLOCK_RETRIES = 5
MAX_VALUE_CHARS = 2000

IGNORE = "ignore"


class ImportFileError(Exception):
    """The file as a whole cannot be imported; the message is shown to staff as is."""


# --- header → lead field ------------------------------------------------------------------------

LEAD_FIELDS: tuple[str, ...] = (
    "full_name",
    "first_name",
    "last_name",
    "phone",
    "email",
    "service_type",
    "city",
    "postal_code",
    "state_region",
    "market",
    "urgency",
    "contact_method",
    "source",
    "notes",
    "occurred_at",
    *ATTRIBUTION_FIELDS,
)

_ALIASES: dict[str, tuple[str, ...]] = {
    "full_name": ("name", "full name", "customer", "customer name", "contact name", "client name", "lead name"),
    "first_name": ("first", "first name", "firstname", "given name", "fname"),
    "last_name": ("last", "last name", "lastname", "surname", "family name", "lname"),
    "phone": (
        "phone",
        "phone number",
        "phone no",
        "phone 1",
        "primary phone",
        "telephone",
        "tel",
        "mobile",
        "mobile phone",
        "mobile number",
        "cell",
        "cell phone",
        "cellphone",
    ),
    "email": ("email", "e mail", "email address", "e mail address"),
    "service_type": ("service", "service type", "services", "job type", "service requested", "service needed"),
    "city": ("city", "town"),
    "postal_code": ("zip", "zip code", "zipcode", "postal code", "postcode", "postal"),
    "state_region": ("state", "region", "province"),
    "market": ("market", "service area"),
    "urgency": ("urgency", "priority"),
    "contact_method": ("contact method", "preferred contact", "preferred contact method", "best way to contact"),
    "source": ("source", "lead source"),
    "notes": ("notes", "note", "comments", "comment", "message", "details", "description"),
    "occurred_at": (
        "date",
        "created",
        "created at",
        "created on",
        "created date",
        "date created",
        "date added",
        "submitted",
        "submitted at",
        "lead date",
        "received",
        "received at",
        "captured at",
        "timestamp",
    ),
    "landing_page": ("landing page", "landing page url", "landing url"),
    "referrer": ("referrer", "referer", "referring url"),
    "tracking_number": ("tracking number", "tracking phone"),
    "gclid": ("gclid", "google click id"),
    "fbclid": ("fbclid", "facebook click id", "meta click id"),
    "msclkid": ("msclkid", "microsoft click id", "bing click id"),
}


def header_key(value: str) -> str:
    """ "E-mail", " e_mail " and "EMAIL:" all become "e mail" / "email": case, spacing and
    punctuation never decide a mapping."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", (value or "").casefold()).split())


_ALIAS_TO_FIELD: dict[str, str] = {}
for _field in LEAD_FIELDS:
    _ALIAS_TO_FIELD[header_key(_field)] = _field
for _field, _names in _ALIASES.items():
    for _name in _names:
        _ALIAS_TO_FIELD.setdefault(header_key(_name), _field)
_IGNORE_WORDS = {"ignore", "skip", "drop", "none", "-"}


def mapping_target(value: str) -> str | None:
    """The lead field (or IGNORE) a mapping value names, accepting the same aliases as headers."""
    raw = str(value or "").strip()
    if raw.casefold() in _IGNORE_WORDS:
        return IGNORE
    return _ALIAS_TO_FIELD.get(header_key(raw))


def mapping_normalize(mapping: dict[str, Any] | None) -> dict[str, str]:
    """Validate {"Cust Tel": "phone", "SSN": "ignore"} and return it with canonical field names."""
    if mapping in (None, ""):
        return {}
    if not isinstance(mapping, dict):
        raise ApplicationError('The mapping must be an object like {"Cust Tel": "phone"}.')
    result: dict[str, str] = {}
    for column, target in mapping.items():
        column = str(column).strip()
        if not header_key(column):
            raise ApplicationError(f"Mapping {column!r} → {target!r}: name the column.")
        resolved = mapping_target(str(target))
        if resolved is None:
            raise ApplicationError(
                f"Mapping for column {column!r}: {target!r} is not a lead field. "
                f"Use one of {', '.join(LEAD_FIELDS)} or 'ignore'.",
                {"column": column, "target": str(target)},
            )
        result[column] = resolved
    return result


def mapping_parse(text: str) -> dict[str, str]:
    """Parse "Cust Tel=phone, Zip=postal_code" (commas or new lines between pairs)."""
    pairs: dict[str, str] = {}
    for item in re.split(r"[,\n]", text or ""):
        if not item.strip():
            continue
        column, sep, target = item.partition("=")
        if not sep:
            raise ApplicationError(f"Mapping {item.strip()!r}: expected 'Column name=lead_field'.")
        pairs[column.strip()] = target.strip()
    return mapping_normalize(pairs)


@dataclass
class _Columns:
    names: list[str]  # header cells, made unique
    targets: list[str | None]  # lead field, IGNORE, or None (kept in "_extra")
    unused_mapping: list[str]

    @classmethod
    def build(cls, header: list[str], mapping: dict[str, str]) -> _Columns:
        names: list[str] = []
        for index, cell in enumerate(header):
            name = " ".join(cell.split()) or f"Column {index + 1}"
            candidate, n = name, 2
            while candidate in names:
                candidate, n = f"{name} ({n})", n + 1
            names.append(candidate)
        overrides = {header_key(column): target for column, target in mapping.items()}
        targets = [overrides.get(header_key(name)) or _ALIAS_TO_FIELD.get(header_key(name)) for name in names]
        used = {header_key(name) for name in names}
        unused = [column for column in mapping if header_key(column) not in used]
        return cls(names=names, targets=targets, unused_mapping=unused)

    def describe(self) -> dict[str, str | None]:
        return dict(zip(self.names, self.targets, strict=True))


# --- reading the file ---------------------------------------------------------------------------


@dataclass
class _Format:
    encoding: str  # "utf-8-sig", "utf-8", "utf-16" or "cp1252"
    delimiter: str
    line_sep: bytes  # b"\n" (also \r\n) or b"\r" (classic Mac)
    rows_estimated: int


def _detect_encoding(sample: bytes) -> str:
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if sample.startswith(b"PK\x03\x04") or sample.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportFileError(
            "This is an Excel workbook, not a CSV file. In Excel use File, Save As, 'CSV UTF-8' and upload that."
        )
    if b"\x00" in sample:
        raise ImportFileError("This is not a text file (it contains NUL bytes). Upload a CSV export.")
    try:
        # final=False: a multi-byte character cut at the 64 KB boundary is not an error.
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return "cp1252"
    return "utf-8"


def _sniff_delimiter(text: str) -> str:
    """The candidate that splits the sample's records most consistently into the most columns."""
    best, best_score = ",", (0.0, 0)
    for delimiter in (",", ";", "\t"):
        try:
            records = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=delimiter) if any(r)]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(1 for r in records if len(r) == width) / len(records)
        if (consistent, width) > best_score:
            best, best_score = delimiter, (consistent, width)
    return best


def _detect_format(sample: bytes, size: int) -> _Format:
    if not sample.strip(b"\xef\xbb\xbf\r\n\t ,;"):
        raise ImportFileError("The file is empty.")
    encoding = _detect_encoding(sample)
    if encoding == "utf-16":
        text = sample.decode("utf-16", errors="replace")
        line_sep = b"\n"
        lines_in_sample = text.count("\n")
    else:
        line_sep = b"\n" if b"\n" in sample or b"\r" not in sample else b"\r"
        text = sample.decode("utf-8" if encoding.startswith("utf-8") else "cp1252", errors="replace")
        text = text.removeprefix("\ufeff")
        lines_in_sample = sample.count(line_sep)
    if size > len(sample):
        # Sniff whole lines only: a record cut in half would look inconsistent.
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut > 0 else text
        rows_estimated = max(0, int(size / (len(sample) / max(1, lines_in_sample))) - 1)
    else:
        rows_estimated = max(0, lines_in_sample - (0 if sample.endswith(line_sep) else -1) - 1)
    return _Format(encoding, _sniff_delimiter(text), line_sep, rows_estimated)


@dataclass
class _Record:
    number: int  # line number of the record's first line
    fields: list[str] | None  # None: csv could not read it
    error: str = ""
    decode_note: str = ""


class _RecordReader:
    """Streams records out of a binary file: bytes → decoded lines → csv.reader."""

    def __init__(self, stream: BinaryIO, fmt: _Format):
        self.stream = stream
        self.fmt = fmt
        self._fallback_lines: deque[int] = deque()

    def _binary_lines(self) -> Iterator[bytes]:
        if self.fmt.line_sep == b"\n":
            while line := self.stream.readline(MAX_LINE_BYTES + 1):
                if len(line) > MAX_LINE_BYTES:
                    raise ImportFileError(f"A line is longer than {MAX_LINE_BYTES // 1024 // 1024} MB: not a CSV file.")
                yield line
            return
        pending = b""
        while chunk := self.stream.read(SAMPLE_BYTES):
            pending += chunk
            *lines, pending = pending.split(b"\r")
            for line in lines:
                yield line + b"\r"
            if len(pending) > MAX_LINE_BYTES:
                raise ImportFileError(f"A line is longer than {MAX_LINE_BYTES // 1024 // 1024} MB: not a CSV file.")
        if pending:
            yield pending

    def _text_lines(self) -> Iterator[str]:
        if self.fmt.encoding == "utf-16":
            # Excel's "Unicode text": no cp1252 fallback applies; undecodable bytes become U+FFFD.
            wrapper = io.TextIOWrapper(self.stream, encoding="utf-16", errors="replace", newline="")
            try:
                yield from wrapper
            finally:
                wrapper.detach()  # the caller owns and closes the file
            return
        primary = "utf-8" if self.fmt.encoding.startswith("utf-8") else "cp1252"
        for number, line in enumerate(self._binary_lines(), start=1):
            if number == 1:
                line = line.removeprefix(codecs.BOM_UTF8)
            try:
                yield line.decode(primary)
            except UnicodeDecodeError:
                # Per line, not per file: one bad line in a big UTF-8 export must not garble
                # the rest. cp1252 leaves 5 bytes undefined; those become U+FFFD.
                self._fallback_lines.append(number)
                yield line.decode("cp1252", errors="replace")

    def records(self) -> Iterator[_Record]:
        reader = csv.reader(self._text_lines(), delimiter=self.fmt.delimiter)
        consumed = 0
        while True:
            try:
                fields = next(reader)
                error = ""
            except StopIteration:
                return
            except csv.Error as exc:
                fields, error = None, f"Unreadable row ({exc}); check for a stray or unclosed quote"
            start, consumed = consumed + 1, reader.line_num
            note = ""
            while self._fallback_lines and self._fallback_lines[0] <= consumed:
                line = self._fallback_lines.popleft()
                note = note or f"line {line} is not valid UTF-8: read as Windows-1252"
            yield _Record(number=start, fields=fields, error=error, decode_note=note)


# --- one row --------------------------------------------------------------------------------------

_SCIENTIFIC = re.compile(r"^\+?(\d)(?:\.(\d+))?[eE]\+?(\d{1,2})$")
_FLOAT_INT = re.compile(r"^(\d{7,15})\.0+$")


def excel_phone(raw: str) -> tuple[str, bool]:
    """Undo what Excel does to a phone column stored as a number. Returns (value, digits_lost).

    `5.125550143E+09` carries all ten digits: it is 5125550143. `5.55E+09` was rounded for
    display and the real digits are gone; it is returned as written, with digits_lost=True, so
    it is never turned into a wrong number that would dedupe onto somebody else.
    """
    value = raw.strip()
    match = _SCIENTIFIC.match(value)
    if match:
        first, fraction, exponent = match.group(1), match.group(2) or "", int(match.group(3))
        if exponent == len(fraction):
            return first + fraction, False
        return value, True
    match = _FLOAT_INT.match(value)  # 5125550143.0 from a tool that read the column as float
    return (match.group(1), False) if match else (value, False)


_DATE_FORMATS_MDY = (
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%Y %H:%M",
    "%m/%d/%Y %I:%M:%S %p",
    "%m/%d/%Y %I:%M %p",
    "%m/%d/%Y",
    "%m/%d/%y %H:%M",
    "%m/%d/%y %I:%M %p",
    "%m/%d/%y",
)
_DATE_FORMATS_DMY = tuple(f.replace("%m/%d", "%d/%m") for f in _DATE_FORMATS_MDY)
_MONTH_FIRST_REGIONS = {"US", "CA"}


def parse_date(raw: str, client: Client) -> datetime.datetime | None:
    """ISO-8601, the region's slash dates, or an Excel serial day; naive values are the client's
    local time."""
    value = raw.strip()
    if not value:
        return None
    parsed: datetime.datetime | None = None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        formats = _DATE_FORMATS_MDY if client.phone_region in _MONTH_FIRST_REGIONS else _DATE_FORMATS_DMY
        for fmt in formats:
            try:
                parsed = datetime.datetime.strptime(value.upper(), fmt)
                break
            except ValueError:
                continue
        if parsed is None and re.fullmatch(r"\d{5}(\.\d+)?", value) and 20000 < float(value) < 80000:
            parsed = datetime.datetime(1899, 12, 30) + timedelta(days=float(value))  # Excel's day zero
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=client.tz)


@dataclass
class _Row:
    number: int
    outcome: str = ""  # preset "failed" / "ignored"; otherwise classified against the database
    reason: str = ""
    payload: dict[str, Any] = field(default_factory=dict)
    occurred_at: datetime.datetime | None = None
    phone_e164: str = ""
    email: str = ""
    warnings: list[str] = field(default_factory=list)


@dataclass
class _RowContext:
    client: Client
    columns: _Columns
    file_name: str
    job_id: int
    header_key: tuple[str, ...]
    now: datetime.datetime


def _prepare_row(record: _Record, ctx: _RowContext) -> _Row:
    """Read one record into lead fields. Pure: no database access."""
    row = _Row(number=record.number)
    if record.fields is None:
        row.outcome, row.reason = "failed", record.error
        return row
    cells = [c.strip() for c in record.fields]
    if not any(cells):
        row.outcome = "ignored"
        return row
    width = len(ctx.columns.names)
    if len(cells) > width and not any(cells[width:]):
        cells = cells[:width]  # trailing delimiters some exports add
    if len(cells) != width:
        row.outcome, row.reason = "failed", f"Row has {len(cells)} fields; the header has {width}"
        return row
    if tuple(header_key(c) for c in cells) == ctx.header_key:
        row.outcome, row.reason = "ignored", "Repeated header line"
        return row

    payload: dict[str, Any] = {}
    extra: dict[str, str] = {}
    for name, target, value in zip(ctx.columns.names, ctx.columns.targets, cells, strict=True):
        value = value[:MAX_VALUE_CHARS]
        if target == IGNORE or not value:
            continue
        if target is None or target in payload:
            # Unknown columns, and a second column for a field already filled, are kept as is.
            extra[name] = value
            continue
        payload[target] = value
    if record.decode_note:
        row.warnings.append(record.decode_note)

    phone_digits_lost = False
    if payload.get("phone"):
        phone, phone_digits_lost = excel_phone(payload["phone"])
        if phone != payload["phone"]:
            payload["_phone_as_written"] = payload["phone"]
            payload["phone"] = phone
    postal = payload.get("postal_code", "")
    if ctx.client.phone_region == "US" and re.fullmatch(r"\d{3,4}", postal):
        payload["postal_code"] = postal.zfill(5)  # Excel drops the leading zeros of 02134

    if payload.get("occurred_at"):
        row.occurred_at = parse_date(payload["occurred_at"], ctx.client)
        if row.occurred_at is None:
            row.warnings.append(f"date {payload['occurred_at']!r} not read: the import time is used")
        elif row.occurred_at > ctx.now + timedelta(days=1):
            row.warnings.append(f"date {payload['occurred_at']!r} is in the future: the import time is used")
            row.occurred_at = None

    phone_raw, email_raw = payload.get("phone", ""), payload.get("email", "")
    if phone_digits_lost:
        phone_e164, phone_flag = None, None
    else:
        phone_e164, phone_flag = norm.normalize_phone(phone_raw, ctx.client.phone_region)
    email, email_flag = norm.normalize_email(email_raw)
    row.phone_e164, row.email = phone_e164 or "", email or ""
    if phone_digits_lost:
        phone_problem = f"phone {phone_raw} was rounded by Excel (digits lost)"
    elif phone_flag:
        phone_problem = f"phone {phone_raw!r} is not a valid number"
    else:
        phone_problem = ""
    email_problem = f"email {email_raw!r} is not valid" if email_flag else ""
    if not (phone_e164 or email):
        problems = [p for p in (phone_problem, email_problem) if p]
        row.outcome = "failed"
        row.reason = ("No usable phone or email: " + " and ".join(problems)) if problems else "No phone or email"
        return row
    row.warnings += [f"{p}: kept as written and flagged on the lead" for p in (phone_problem, email_problem) if p]

    payload.update(_extra=extra, _row=record.number, _file=ctx.file_name, _job=ctx.job_id)
    row.payload = payload
    return row


# --- "seen" keys across the whole file, off the Python heap -----------------------------------------


class _SeenStore:
    """Contact keys and lead ids claimed by earlier rows of this file.

    In a temporary SQLite file rather than a Python set: a million-row file must not need a
    million entries in memory. Transactions follow the batch's, so a batch retried after a
    deadlock sees exactly what it saw the first time.
    """

    def __init__(self) -> None:
        # "" = SQLite's private temporary database: on disk, outside Python's heap, removed by
        # SQLite itself even when the worker is killed.
        self.db = sqlite3.connect("", isolation_level=None)
        self.db.execute("PRAGMA journal_mode=MEMORY")
        self.db.execute("PRAGMA synchronous=OFF")
        self.db.execute("PRAGMA cache_size=-2048")  # 2 MB page cache, the rest stays on disk
        self.db.execute("CREATE TABLE seen (k TEXT PRIMARY KEY) WITHOUT ROWID")

    def begin(self) -> None:
        self.db.execute("BEGIN")

    def commit(self) -> None:
        self.db.execute("COMMIT")

    def rollback(self) -> None:
        self.db.execute("ROLLBACK")

    def claim(self, keys: list[str]) -> bool:
        """Record the keys; True when any of them was already claimed."""
        placeholders = ",".join("?" * len(keys))
        seen = self.db.execute(f"SELECT 1 FROM seen WHERE k IN ({placeholders}) LIMIT 1", keys).fetchone()  # noqa: S608 - placeholders only
        self.db.executemany("INSERT OR IGNORE INTO seen (k) VALUES (?)", [(k,) for k in keys])
        return seen is not None

    def close(self) -> None:
        self.db.close()


# --- totals ---------------------------------------------------------------------------------------


@dataclass
class _Totals:
    counts: dict[str, int]
    problems: list[dict[str, Any]]
    more: int

    @classmethod
    def of(cls, job: ImportJob) -> _Totals:
        report = job.report or {}
        return cls(
            counts={name: getattr(job, name) for name in COUNT_FIELDS},
            problems=list(report.get("problems") or []),
            more=int(report.get("more") or 0),
        )

    def plus(self, outcomes: list[tuple[int, str, str, bool]]) -> _Totals:
        counts, problems, more = dict(self.counts), list(self.problems), self.more
        for number, outcome, reason, warned in outcomes:
            counts[outcome] += 1
            counts["rows_total"] += 1
            counts["warnings"] += int(warned)
            if reason:
                if len(problems) < REPORT_PROBLEMS_CAP:
                    problems.append({"row": number, "outcome": outcome, "reason": reason[:500]})
                else:
                    more += 1
        return _Totals(counts, problems, more)

    def report(self) -> dict[str, Any]:
        return {"problems": self.problems, "more": self.more}


# --- the service --------------------------------------------------------------------------------


class _HashingFile(File):
    """Hands the upload to the storage chunk by chunk, hashing it on the way (one read).

    Deliberately without temporary_file_path(): a storage would move a large temporary
    upload into place without reading it, and the hash would be skipped."""

    def __init__(self, source):
        super().__init__(source, name=getattr(source, "name", None))
        self.source = source
        self.digest = hashlib.sha256()
        self.hashed_size = 0

    def chunks(self, chunk_size: int | None = None):
        if hasattr(self.source, "seek"):
            self.source.seek(0)
        if hasattr(self.source, "chunks"):
            parts = self.source.chunks(chunk_size)
        else:
            parts = iter(lambda: self.source.read(chunk_size or SAMPLE_BYTES), b"")
        for chunk in parts:
            self.digest.update(chunk)
            self.hashed_size += len(chunk)
            yield chunk


def _is_user(actor) -> bool:
    return actor is not None and not isinstance(actor, str)


def import_connection(*, client: Client, actor) -> Connection:
    """The client's csv_import connection, created on first use. Manual imports have no cadence,
    so the freshness window is a year (the stale check must not flag a quiet spreadsheet)."""
    Client.objects.select_for_update().filter(pk=client.pk).first()  # serialize concurrent first uploads
    connection = Connection.objects.filter(client=client, provider=PROVIDER).order_by("pk").first()
    if connection is not None:
        return connection
    return connection_create(
        client=client,
        provider=PROVIDER,
        reason="Manual CSV import",
        actor=actor,
        owner=actor if _is_user(actor) else None,
        name="Manual CSV import",
        expected_freshness=timedelta(days=365),
        status=Connection.Status.CONNECTED,
    )


def import_job_create(
    *, client: Client, uploaded_file, actor, mapping: dict[str, Any] | None = None, dry_run: bool = False
) -> ImportJob:
    """Store an uploaded CSV (hashing it while it is written) and queue nothing: the caller runs
    it (the admin enqueues run_import_job on commit, the command runs it inline)."""
    mapping = mapping_normalize(mapping)
    original_name = os.path.basename(str(getattr(uploaded_file, "name", "") or "")).strip()[:255] or "upload.csv"
    if getattr(uploaded_file, "size", None) == 0:
        raise ApplicationError(f"{original_name} is empty.")
    content = _HashingFile(uploaded_file)
    with transaction.atomic():
        connection = import_connection(client=client, actor=actor)
        job = ImportJob(
            client=client,
            connection=connection,
            uploaded_by=actor if _is_user(actor) else None,
            original_name=original_name,
            mapping=mapping,
            dry_run=dry_run,
        )
        # A generated name: the original may hold PII or path tricks; it is kept in original_name.
        job.file.save(f"{uuid.uuid4().hex}.csv", content, save=False)
        job.sha256 = content.digest.hexdigest()
        job.size = content.hashed_size
        job.save()
        previous = (
            ImportJob.objects.filter(client=client, sha256=job.sha256, dry_run=False)
            .exclude(pk=job.pk)
            .order_by("pk")
            .first()
        )
        action_record(
            verb="import.upload",
            actor=actor,
            client=client,
            target=job,
            summary=f"Uploaded {original_name} ({job.size:,} bytes)" + (" for a dry run" if dry_run else ""),
            detail={
                "sha256": job.sha256,
                "mapping": mapping,
                "dry_run": dry_run,
                "same_file_as_job": previous.pk if previous else None,
            },
        )
    return job


def _claim(job_id: int) -> tuple[ImportJob | None, bool]:
    """Take the job for this worker. Returns (job or None when another run owns it, resuming)."""
    with transaction.atomic():
        job = ImportJob.objects.select_for_update().get(pk=job_id)
        now = timezone.now()
        if job.status in (ImportJob.Status.COMPLETED, ImportJob.Status.FAILED):
            return None, False
        if job.status == ImportJob.Status.RUNNING and job.updated_at > now - STALE_RUNNING_AFTER:
            return None, False  # a live worker is on it (a duplicate delivery of the task)
        # A dry run keeps its "seen" keys in a temporary file that died with the worker: redo it.
        resuming = job.status == ImportJob.Status.RUNNING and not job.dry_run and job.progress_rows > 0
        if not resuming:
            for name in (*COUNT_FIELDS, "progress_rows"):
                setattr(job, name, 0)
            job.report, job.error = {}, ""
        job.status = ImportJob.Status.RUNNING
        job.started_at = job.started_at or now
        job.save()
    return job, resuming


def import_job_run(
    *, job_id: int, progress: Callable[[ImportJob], None] | None = None, batch_size: int = BATCH_SIZE
) -> ImportJob:
    """Read the job's file and import (or, for a dry run, classify) every row.

    Safe to call twice: a completed, failed or live-running job is returned untouched; a job
    left `running` by a dead worker resumes after its last committed batch."""
    job, resuming = _claim(job_id)
    if job is None:
        return ImportJob.objects.get(pk=job_id)
    try:
        _run(job, progress=progress, batch_size=batch_size, resuming=resuming)
    except ImportFileError as exc:
        _fail(job, str(exc))
    except Exception as exc:
        logger.exception("import job %s failed", job.pk)
        _fail(job, f"{exc.__class__.__name__}: {exc}", trace="".join(traceback.format_exception(exc))[-20000:])
    job.refresh_from_db()
    return job


def _run(job: ImportJob, *, progress, batch_size: int, resuming: bool) -> None:
    adapter = get_adapter(PROVIDER)
    assert isinstance(adapter, CsvImportAdapter)
    connection = Connection.objects.get(pk=job.connection_id)
    client = Client.objects.get(pk=job.client_id)
    if connection.holds_processing and not job.dry_run:
        raise ImportFileError(
            f"The client's CSV import connection is {connection.get_status_display().lower()}"
            f"{': ' + connection.status_reason if connection.status_reason else ''}. Resume it, then import again."
        )
    previous = (
        ImportJob.objects.filter(client=client, sha256=job.sha256, dry_run=False, pk__lt=job.pk)
        .order_by("pk")
        .values_list("pk", flat=True)
        .first()
    )
    store = _SeenStore()
    try:
        with job.file.storage.open(job.file.name, "rb") as handle:
            stream = getattr(handle, "file", handle)
            sample = stream.read(SAMPLE_BYTES)
            stream.seek(0)
            fmt = _detect_format(sample, job.size)
            records = _RecordReader(stream, fmt).records()
            header = next((r for r in records if r.fields and any(c.strip() for c in r.fields)), None)
            if header is None:
                raise ImportFileError("The file has no header line.")
            columns = _Columns.build(header.fields or [], job.mapping or {})
            if not {"phone", "email"} & set(columns.targets):
                raise ImportFileError(
                    f"No phone or email column among: {', '.join(columns.names)[:400]}. "
                    'Map one, e.g. {"Cust Tel": "phone"}.'
                )
            job.detected = {
                "encoding": fmt.encoding,
                "delimiter": {"\t": "tab"}.get(fmt.delimiter, fmt.delimiter),
                "header_row": header.number,
                "columns": columns.describe(),
                "unused_mapping": columns.unused_mapping,
                "same_file_as_job": previous,
            }
            job.rows_estimated = fmt.rows_estimated
            ImportJob.objects.filter(pk=job.pk).update(
                detected=job.detected, rows_estimated=job.rows_estimated, updated_at=timezone.now()
            )
            ctx = _RowContext(
                client=client,
                columns=columns,
                file_name=job.original_name,
                job_id=job.pk,
                header_key=tuple(header_key(c) for c in header.fields or []),
                now=timezone.now(),
            )
            totals = _Totals.of(job)
            skip = job.progress_rows if resuming else 0
            batch: list[_Record] = []
            for record in records:
                if skip:
                    skip -= 1
                    continue
                batch.append(record)
                if len(batch) >= batch_size:
                    totals = _commit_batch(job, batch, ctx, store, totals, adapter, connection)
                    batch = []
                    if progress:
                        progress(job)
            if batch:
                totals = _commit_batch(job, batch, ctx, store, totals, adapter, connection)
                if progress:
                    progress(job)
    finally:
        store.close()
    _complete(job, totals, adapter, connection)


def _commit_batch(
    job: ImportJob,
    batch: list[_Record],
    ctx: _RowContext,
    store: _SeenStore,
    totals: _Totals,
    adapter: CsvImportAdapter,
    connection: Connection,
) -> _Totals:
    rows = [_prepare_row(record, ctx) for record in batch]
    for attempt in range(1, DEADLOCK_RETRIES + 1):
        store.begin()
        try:
            with transaction.atomic():
                outcomes = _apply_rows(job, rows, store, adapter, connection)
                new_totals = totals.plus(outcomes)
                job.progress_rows = new_totals.counts["rows_total"]
                ImportJob.objects.filter(pk=job.pk).update(
                    **new_totals.counts,
                    progress_rows=job.progress_rows,
                    report=new_totals.report(),
                    updated_at=timezone.now(),
                )
        except OperationalError as exc:
            store.rollback()
            # InnoDB rolled the whole batch back (a webhook locked the same lead): run it again.
            if exc.args and exc.args[0] in (1205, 1213) and attempt < DEADLOCK_RETRIES:
                time.sleep(random.uniform(0.05, 0.2) * attempt)
                continue
            raise
        except BaseException:
            store.rollback()
            raise
        store.commit()
        for name, value in new_totals.counts.items():
            setattr(job, name, value)
        job.report = new_totals.report()
        return new_totals
    raise AssertionError("unreachable")


def _apply_rows(
    job: ImportJob, rows: list[_Row], store: _SeenStore, adapter: CsvImportAdapter, connection: Connection
) -> list[tuple[int, str, str, bool]]:
    """Classify one batch (and, unless a dry run, push it through the pipeline), in file order.
    Returns (row number, outcome, reason for the report or "", imported with a warning?)."""
    readable = [r for r in rows if not r.outcome]
    keys = {r.number: row_key(job.sha256, r.number) for r in readable}
    already = set(
        RawEvent.objects.filter(connection=connection, idempotency_key__in=list(keys.values())).values_list(
            "idempotency_key", flat=True
        )
    )
    phones = {r.phone_e164 for r in readable if r.phone_e164}
    emails = {r.email for r in readable if r.email}
    by_phone: dict[str, int] = {}
    by_email: dict[str, int] = {}
    if phones or emails:
        match = Q(phone_e164__in=phones) if phones else Q()
        match = (match | Q(email_normalized__in=emails)) if emails else match
        for lead_id, phone, email in Lead.objects.filter(match, client_id=job.client_id).values_list(
            "id", "phone_e164", "email_normalized"
        ):
            if phone in phones:
                by_phone[phone] = lead_id
            if email in emails:
                by_email[email] = lead_id
    # Leads this file's earlier batches (or an interrupted run of the same file) already touched.
    prefix = f"{PROVIDER}:{connection.pk}:{job.sha256}:"
    existing_ids = set(by_phone.values()) | set(by_email.values())
    touched = set(
        NormalizedEvent.objects.filter(lead_id__in=existing_ids, idempotency_key__startswith=prefix).values_list(
            "lead_id", flat=True
        )
        if existing_ids
        else ()
    )

    decided: dict[int, tuple[str, str]] = {}
    to_store: list[_Row] = []
    for row in readable:
        if keys[row.number] in already:
            # The whole file was imported before: the job says so once (detected.same_file_as_job)
            # instead of listing every row.
            decided[row.number] = ("duplicate", "")
            continue
        lead_ids = {i for i in (by_phone.get(row.phone_e164), by_email.get(row.email)) if i}
        claim = [f"p:{row.phone_e164}"] if row.phone_e164 else []
        claim += [f"e:{row.email}"] if row.email else []
        claim += [f"l:{i}" for i in sorted(lead_ids)]
        if store.claim(claim) or lead_ids & touched:
            decided[row.number] = ("duplicate", "Same person as an earlier row of this file: merged into that lead")
        elif lead_ids:
            decided[row.number] = ("updated", "")
        else:
            decided[row.number] = ("created", "")
        to_store.append(row)

    if not job.dry_run and to_store:
        events = [
            adapter.row_event(sha256=job.sha256, row_number=r.number, payload=r.payload, occurred_at=r.occurred_at)
            for r in to_store
        ]
        # enqueue=False: no Celery task per row; the rows are processed right here, in order.
        created, _ = raw_events_store(connection=connection, receipt=None, events=events, enqueue=False)
        stored = {raw.idempotency_key: raw.pk for raw in created}
        # All of the chunk's rows in one batch (in file order), as the webhook drain does.
        statuses = raw_events_process_ids(ids=[raw.pk for raw in created])
        for row in to_store:
            raw_id = stored.get(keys[row.number])
            if raw_id is None:  # another run of the same file stored it a moment ago
                decided[row.number] = ("duplicate", "")
                continue
            status = statuses.get(raw_id, "locked")
            if status != RawEvent.Status.NORMALIZED:
                error = RawEvent.objects.filter(pk=raw_id).values_list("last_error", flat=True).first() or status
                decided[row.number] = ("failed", f"Not applied: {error} (raw event #{raw_id}; the pipeline retries it)")

    outcomes = []
    for row in rows:
        if row.outcome:
            reason = row.reason if row.outcome == "failed" else ""
            outcomes.append((row.number, row.outcome, reason, False))
            continue
        outcome, reason = decided[row.number]
        warned = bool(row.warnings) and outcome != "failed"
        if warned:
            reason = "; ".join([*([reason] if reason else []), *row.warnings])
        outcomes.append((row.number, outcome, reason, warned))
    return outcomes


def _actor(job: ImportJob):
    return job.uploaded_by or "system:csv_import"


def _complete(job: ImportJob, totals: _Totals, adapter: CsvImportAdapter, connection: Connection) -> None:
    counts = totals.counts
    summary = (
        f"{'Dry run of' if job.dry_run else 'Imported'} {job.original_name}: {counts['rows_total']} rows, "
        f"{counts['created']} created, {counts['updated']} updated, {counts['duplicate']} duplicate, "
        f"{counts['failed']} failed, {counts['ignored']} ignored"
    )
    with transaction.atomic():
        if not job.dry_run:
            # One business event per file, keyed on its hash: importing the same file again
            # does not report it twice (the job row still holds the second run's counts).
            event = adapter.completed_event(
                sha256=job.sha256,
                payload={**counts, "file": job.original_name, "job_id": job.pk, "sha256": job.sha256},
            )
            created, _ = raw_events_store(connection=connection, receipt=None, events=[event], enqueue=False)
            if created:
                raw_event_process(raw_event_id=created[0].pk)
            job.detected = {**(job.detected or {}), "completed_event_recorded": bool(created)}
        job.status = ImportJob.Status.COMPLETED
        job.finished_at = timezone.now()
        job.save(update_fields=["status", "finished_at", "detected", "updated_at"])
        action_record(
            verb="import.dry_run" if job.dry_run else "import.completed",
            actor=_actor(job),
            client=job.client,
            target=job,
            summary=summary,
            detail={**counts, "problems_listed": len(totals.problems), "problems_more": totals.more},
        )
    if not job.dry_run:
        # Outside the batch transactions: the connection row is FK-locked by every raw insert.
        Connection.objects.filter(pk=connection.pk).update(last_event_at=timezone.now(), stale_since=None)


def _fail(job: ImportJob, message: str, *, trace: str = "") -> None:
    now = timezone.now()
    with transaction.atomic():
        ImportJob.objects.filter(pk=job.pk).update(
            status=ImportJob.Status.FAILED, error=message[:5000], finished_at=now, updated_at=now
        )
        if trace:
            # An unexpected failure (not a bad file) is an ops incident: it joins the failure
            # review queue. Nothing retries an import by itself; staff re-run it after a fix.
            SyncError.objects.create(
                connection_id=job.connection_id,
                client_id=job.client_id,
                stage=SyncError.Stage.IMPORT,
                error=f"Import job {job.pk} ({job.original_name}): {message}"[:2000],
                traceback=trace,
                state=SyncError.State.DEAD,
            )
        action_record(
            verb="import.failed",
            actor=_actor(job),
            client=job.client,
            target=job,
            summary=f"Import of {job.original_name} failed: {message}"[:500],
            detail={"rows_done": job.progress_rows},
        )
