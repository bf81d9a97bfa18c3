"""Manual CSV lead imports (staff upload a client's spreadsheet; see integrations/imports.py).

Nothing is ever POSTed: integrations.imports reads the file and stores one raw event per row,
kind "csv.row", key "<file sha256>:<row number>", whose payload is the row's mapped lead fields
plus "_extra" (the columns that map to no lead field), "_row", "_file" and "_job". A last raw
event per file, kind "csv.completed", key "<sha256>:completed", carries the counts. This
adapter turns those into `lead.captured` and `import.completed`.
"""

from __future__ import annotations

import datetime
from typing import Any

from django.utils import timezone

from leads.services import ATTRIBUTION_FIELDS, LeadSignal

from .base import (
    Forbidden,
    InboundRequest,
    MalformedPayload,
    Normalized,
    ParsedEvent,
    ProviderAdapter,
    mask_email,
    mask_phone,
)

ROW_KIND = "csv.row"
COMPLETED_KIND = "csv.completed"
EVENT_TYPES = {ROW_KIND: "lead.captured", COMPLETED_KIND: "import.completed"}
COUNT_FIELDS = ("rows_total", "created", "updated", "duplicate", "failed", "ignored", "warnings")


def row_key(sha256: str, row_number: int) -> str:
    return f"{sha256}:{row_number}"


def completed_key(sha256: str) -> str:
    return f"{sha256}:completed"


class CsvImportAdapter(ProviderAdapter):
    key = "csv_import"
    label = "Manual CSV import"
    content_types = ("text/csv",)
    credential_names = ()

    def verify(self, request: InboundRequest, connection) -> None:
        # The connection exists only to own the raw events of uploaded files; its webhook URL
        # must not become a way to inject leads.
        raise Forbidden("CSV imports are uploaded, not posted")

    def parse(self, request: InboundRequest, connection) -> list[ParsedEvent]:
        # Never reached (verify always refuses). MalformedPayload rather than Forbidden because
        # it is the one error the receiving view maps to a 4xx when raised from parse().
        raise MalformedPayload("CSV imports are uploaded, not posted")

    # --- used by integrations.imports ---------------------------------------------------------

    def row_event(
        self, *, sha256: str, row_number: int, payload: dict[str, Any], occurred_at: datetime.datetime | None
    ) -> ParsedEvent:
        phone, email = str(payload.get("phone") or ""), str(payload.get("email") or "")
        who = mask_phone(phone) if phone else mask_email(email)
        return ParsedEvent(
            idempotency_key=row_key(sha256, row_number),
            kind=ROW_KIND,
            payload=payload,
            summary=f"CSV row {row_number} of {payload.get('_file') or 'upload'}: {who}",
            occurred_at=occurred_at,
        )

    def completed_event(self, *, sha256: str, payload: dict[str, Any]) -> ParsedEvent:
        return ParsedEvent(
            idempotency_key=completed_key(sha256),
            kind=COMPLETED_KIND,
            payload=payload,
            summary=(
                f"Import of {payload.get('file') or 'upload'} completed: {payload.get('rows_total', 0)} rows, "
                f"{payload.get('created', 0)} created, {payload.get('updated', 0)} updated, "
                f"{payload.get('failed', 0)} failed"
            ),
            occurred_at=timezone.now(),
        )

    def normalize(self, raw) -> list[Normalized]:
        occurred_at = raw.occurred_at or raw.received_at or timezone.now()
        body = raw.payload if isinstance(raw.payload, dict) else {}
        if raw.kind == COMPLETED_KIND:
            data = {name: int(body.get(name) or 0) for name in COUNT_FIELDS}
            data.update(file=str(body.get("file") or ""), job_id=body.get("job_id"), sha256=body.get("sha256", ""))
            return [Normalized(event_type=EVENT_TYPES[raw.kind], occurred_at=occurred_at, data=data)]
        if raw.kind != ROW_KIND:
            return []

        def text(name: str) -> str:
            value = body.get(name)
            return str(value).strip() if value not in (None, "") else ""

        file_name, row = text("_file"), body.get("_row")
        notes = " ".join(text("notes").split())
        summary = f"Imported from {file_name or 'a CSV file'}, row {row}" + (f": {notes}" if notes else "")
        signal = LeadSignal(
            # The channel that told us about the person; a "source" column is kept in the raw
            # payload and on the timeline summary, not trusted as the lead's source.
            source="csv_import",
            phone=text("phone"),
            email=text("email"),
            first_name=text("first_name"),
            last_name=text("last_name"),
            full_name=text("full_name"),
            source_detail=file_name[:200],
            service_type=text("service_type"),
            contact_method=text("contact_method"),
            market=text("market"),
            urgency=text("urgency"),
            postal_code=text("postal_code"),
            city=text("city"),
            state_region=text("state_region"),
            attribution={k: text(k) for k in ATTRIBUTION_FIELDS if text(k)},
            occurred_at=occurred_at,
            # No consent from spreadsheets: a column saying "yes" is not evidence of how and
            # when consent was given, so imported leads start with unknown consent.
            summary=summary[:300],
        )
        data = {
            # Lets later consumers (workflows) tell a backfilled spreadsheet row from a person
            # asking for work right now: an import must not start a speed-to-lead sequence.
            "bulk_import": True,
            "file": file_name,
            "row": row,
            "job_id": body.get("_job"),
            "source_column": text("source")[:100],
            "has_notes": bool(notes),
            "extra_columns": sorted((body.get("_extra") or {}).keys())[:50],
        }
        return [Normalized(event_type=EVENT_TYPES[raw.kind], occurred_at=occurred_at, data=data, signal=signal)]
