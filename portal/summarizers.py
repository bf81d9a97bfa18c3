"""Summarizers draft a period's summary. The one in settings (PORTAL_SUMMARIZER) is used.

The default is deterministic: plain sentences built only from lead records, so every number in
it can be traced to the leads behind it. An AI model can be plugged in through the same small
interface; its text is a *draft* and goes to `Summary.internal_draft` only (never the portal),
because a model can state numbers no record supports. A person writes or edits the client-safe
body, and the checks and a named approver stand between it and the client.
"""

import datetime
from dataclasses import dataclass, field
from typing import Any, Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from leads.models import Client

from .selectors import lead_stats


@dataclass
class SummaryDraft:
    title: str
    body: str
    internal_notes: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


class Summarizer(Protocol):
    key: str
    # True for a model's prose: the draft is kept internal and the client-safe body starts empty.
    is_generated: bool

    def summarize(self, client: Client, start: datetime.date, end: datetime.date) -> SummaryDraft: ...


def summarizer_get() -> Summarizer:
    return import_string(settings.PORTAL_SUMMARIZER)()


def _listing(counter, limit: int = 4) -> str:
    items = counter.most_common(limit)
    text = ", ".join(f"{name} {count}" for name, count in items)
    rest = sum(counter.values()) - sum(count for _, count in items)
    return f"{text} and {rest} from elsewhere" if rest else text


def _minutes(value) -> str:
    return f"{value.normalize():f}" if value == value.to_integral() else f"{value:.1f}"


class DeterministicSummarizer:
    key = "deterministic"
    is_generated = False

    def summarize(self, client: Client, start: datetime.date, end: datetime.date) -> SummaryDraft:
        stats = lead_stats(client=client, start=start, end=end)
        period = f"{start:%b %-d} to {end:%b %-d, %Y}"
        title = f"{client.name}: results for {period}"
        if not stats.total:
            body = f"No new leads were recorded between {start:%B %-d} and {end:%B %-d, %Y}."
        else:
            sentences = [
                f"Between {start:%B %-d} and {end:%B %-d, %Y} you received {stats.total} new "
                f"lead{'s' if stats.total != 1 else ''}: {_listing(stats.by_source)}.",
                f"By service: {_listing(stats.by_service)}.",
            ]
            if stats.median_response_minutes is not None:
                sentences.append(
                    f"Half of the {stats.responded} leads we responded to heard back within "
                    f"{_minutes(stats.median_response_minutes)} minutes (median first response)."
                )
            else:
                sentences.append("No first response has been recorded for these leads yet.")
            sentences.append(f"{stats.booked} of them booked a job ({stats.booked_rate}%).")
            if stats.lost_reasons:
                sentences.append(f"The most common reasons a lead did not go ahead: {_listing(stats.lost_reasons, 3)}.")
            body = "\n\n".join(sentences)
        evidence = {
            "lead_count": stats.total,
            "lead_ids": stats.lead_ids[: settings.PORTAL_CHECK_DETAIL_CAP * 20],
            "by_source": dict(stats.by_source),
            "by_service": dict(stats.by_service),
            "median_response_minutes": str(stats.median_response_minutes)
            if stats.median_response_minutes is not None
            else None,
            "responded": stats.responded,
            "booked": stats.booked,
            "lost_reasons": dict(stats.lost_reasons),
        }
        notes = "Built from lead records only (spam and duplicates excluded): see evidence."
        return SummaryDraft(title=title, body=body, internal_notes=notes, evidence=evidence)
