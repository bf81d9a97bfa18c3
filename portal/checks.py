"""Data-quality checks that run before anything becomes client-facing proof.

Each check is a small class: a `key`, a human `name` and `run(client, start, end, subject=None)`
returning a CheckOutcome. Heuristics, not a black box: every flagged lead or connection comes
with the reasons a person can read and verify. Thresholds live in settings (docs/proof.md).
"""

import datetime
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Protocol

import phonenumbers
from django.conf import settings
from django.utils import timezone
from django.utils.module_loading import import_string

from integrations.models import Connection
from leads.models import Activity, Client, Lead, LeadSource

from .models import CheckStatus
from .selectors import lead_is_attributed, period_bounds, period_leads_all, period_leads_counted

PASS, WARN, FAIL = CheckStatus.PASS, CheckStatus.WARN, CheckStatus.FAIL
_SEVERITY = {PASS: 0, WARN: 1, FAIL: 2}


@dataclass
class CheckOutcome:
    status: str
    summary: str
    details: dict[str, Any] = field(default_factory=dict)


class Check(Protocol):
    key: str
    name: str

    def run(self, client: Client, start: datetime.date, end: datetime.date, subject=None) -> CheckOutcome: ...


def worst(statuses) -> str:
    return max(statuses, key=lambda s: _SEVERITY[s], default=PASS)


def checks_configured() -> list[Check]:
    return [import_string(path)() for path in settings.PORTAL_CHECKS]


def _cap(items: list) -> list:
    return items[: settings.PORTAL_CHECK_DETAIL_CAP]


# --- duplicates ------------------------------------------------------------------------------------


class DuplicateLeadsCheck:
    """The same person counted twice: same phone, same email, or same name + postal code.

    Phone and email are UNIQUE per client once normalized, so the usual duplicate is a person
    whose number was unreadable on one signal, or who used another number and email: name +
    postal code catches those. Leads already marked lost as duplicates are not counted.
    """

    key = "duplicates"
    name = "Duplicate leads"

    def run(self, client, start, end, subject=None) -> CheckOutcome:
        leads = list(
            period_leads_counted(client=client, start=start, end=end).only(
                "id",
                "first_name",
                "last_name",
                "full_name",
                "phone_raw",
                "phone_e164",
                "email_normalized",
                "postal_code",
            )
        )
        groups: dict[tuple[str, str], list[int]] = defaultdict(list)
        for lead in leads:
            phone = lead.phone_e164 or _digits(lead.phone_raw)
            if phone:
                groups[("phone", phone)].append(lead.pk)
            if lead.email_normalized:
                groups[("email", lead.email_normalized)].append(lead.pk)
            name = " ".join(lead.full_name.casefold().split())
            postal = lead.postal_code.strip().upper()
            if name and postal:
                groups[("name and postal code", f"{name} / {postal}")].append(lead.pk)
        pairs = []
        flagged: set[int] = set()
        for (kind, value), ids in sorted(groups.items()):
            if len(ids) > 1:
                flagged.update(ids)
                pairs.append({"lead_ids": sorted(ids), "reason": f"same {kind}: {value}"})
        if not pairs:
            return CheckOutcome(PASS, f"No duplicates among {len(leads)} counted leads.", {"checked": len(leads)})
        return CheckOutcome(
            FAIL,
            f"{len(flagged)} counted leads look like {len(pairs)} duplicate group(s): they would be counted twice. "
            "Merge them or mark the extra ones lost (duplicate).",
            {"checked": len(leads), "total_flagged": len(flagged), "groups": _cap(pairs)},
        )


def _digits(raw: str) -> str:
    digits = re.sub(r"\D", "", raw or "")
    return digits if len(digits) >= 7 else ""


# --- spam -------------------------------------------------------------------------------------------

_URL = re.compile(r"(?:https?://|www\.)\S+|\b[a-z0-9-]+\.(?:com|net|org|info|biz|ru|xyz|top|io|co)(?:/\S*)?\b", re.I)
_WORD = re.compile(r"[^\W\d_]+")
_VOWELS = set("aeiouyàáâäèéêëìíîïòóôöùúûü")
_INBOUND_KINDS = (
    Activity.Kind.LEAD_CAPTURED,
    Activity.Kind.SMS_INBOUND,
    Activity.Kind.EMAIL_INBOUND,
    Activity.Kind.MERGE,
)


def gibberish_reason(text: str) -> str:
    """Why `text` reads as keyboard mashing, or "" when it does not."""
    min_word = settings.PORTAL_SPAM_GIBBERISH_MIN_WORD
    for word in _WORD.findall(text or ""):
        lower = word.casefold()
        repeat = settings.PORTAL_SPAM_GIBBERISH_REPEAT_RUN
        if re.search(rf"(.)\1{{{repeat - 1},}}", lower):
            return f'"{word[:40]}" repeats one letter {repeat}+ times in a row'
        run = settings.PORTAL_SPAM_GIBBERISH_CONSONANT_RUN
        if re.search(rf"[^aeiouyàáâäèéêëìíîïòóôöùúûü]{{{run},}}", lower):
            return f'"{word[:40]}" has {run}+ consonants in a row'
        if len(lower) >= min_word:
            ratio = sum(ch in _VOWELS for ch in lower) / len(lower)
            if ratio < settings.PORTAL_SPAM_GIBBERISH_VOWEL_RATIO:
                return f'"{word[:40]}" has only {ratio:.0%} vowels'
    return ""


def impossible_phone_reason(lead: Lead, region: str) -> str:
    raw = (lead.phone_raw or "").strip()
    if not raw:
        return ""
    try:
        parsed = phonenumbers.parse(raw, region or "US")
    except phonenumbers.NumberParseException as exc:
        return f'phone "{raw[:30]}" is not a phone number ({exc})'
    if not phonenumbers.is_possible_number(parsed):
        return f'phone "{raw[:30]}" has an impossible length for its country'
    if not phonenumbers.is_valid_number(parsed):
        return f'phone "{raw[:30]}" is not a valid number (no such area code/exchange, or no area code)'
    return ""


def disposable_email_reason(lead: Lead) -> str:
    email = lead.email_normalized or (lead.email_raw or "").strip().casefold()
    domain = email.rpartition("@")[2]
    if not domain:
        return ""
    for listed in settings.PORTAL_DISPOSABLE_EMAIL_DOMAINS:
        if domain == listed or domain.endswith(f".{listed}"):
            return f"email domain {domain} is a disposable-mailbox service"
    return ""


class SpamCheck:
    """Gibberish, link-stuffed bodies, disposable email domains, impossible phone numbers.

    Bodies come from the lead's inbound timeline in the period (capture, SMS, email) and the
    `body`/`message` of its normalized events. Leads already marked lost as spam are reported
    but do not fail the check: they are not counted.
    """

    key = "spam"
    name = "Spam heuristics"

    def run(self, client, start, end, subject=None) -> CheckOutcome:
        leads = list(period_leads_all(client=client, start=start, end=end))
        bodies = self._bodies(client, start, end, [lead.pk for lead in leads])
        max_links = settings.PORTAL_SPAM_MAX_LINKS
        flagged, excluded = [], 0
        for lead in leads:
            reasons = []
            name_reason = gibberish_reason(f"{lead.first_name} {lead.last_name}")
            if name_reason:
                reasons.append(f"name: {name_reason}")
            for source, text in bodies.get(lead.pk, []):
                links = len(_URL.findall(text))
                if links >= max_links:
                    reasons.append(f"{source} has {links} links (limit {max_links - 1})")
                body_reason = gibberish_reason(_URL.sub(" ", text))  # URLs are counted above, not read as words
                if body_reason:
                    reasons.append(f"{source}: {body_reason}")
            for reason in (disposable_email_reason(lead), impossible_phone_reason(lead, client.phone_region)):
                if reason:
                    reasons.append(reason)
            if not reasons:
                continue
            if lead.lost_reason == Lead.LostReason.SPAM:
                excluded += 1
                continue
            flagged.append({"lead_id": lead.pk, "reasons": sorted(set(reasons))})
        details = {"checked": len(leads), "total_flagged": len(flagged), "already_marked_spam": excluded}
        if not flagged:
            note = f" ({excluded} already marked spam, not counted)" if excluded else ""
            return CheckOutcome(PASS, f"No spam signs among {len(leads)} leads{note}.", details)
        details["leads"] = _cap(flagged)
        return CheckOutcome(
            FAIL,
            f"{len(flagged)} counted lead(s) look like spam. Mark them lost (spam) or override with a reason.",
            details,
        )

    @staticmethod
    def _bodies(client, start, end, lead_ids: list[int]) -> dict[int, list[tuple[str, str]]]:
        lo, hi = period_bounds(client=client, start=start, end=end)
        found: dict[int, list[tuple[str, str]]] = defaultdict(list)
        if not lead_ids:
            return found
        activities = Activity.objects.filter(
            lead_id__in=lead_ids, kind__in=_INBOUND_KINDS, occurred_at__gte=lo, occurred_at__lt=hi
        ).exclude(body="")
        for activity in activities.only("id", "lead_id", "kind", "body"):
            found[activity.lead_id].append((f"{activity.get_kind_display()} #{activity.pk}", activity.body))
        from integrations.models import NormalizedEvent

        events = NormalizedEvent.objects.filter(lead_id__in=lead_ids, occurred_at__gte=lo, occurred_at__lt=hi)
        for event in events.only("id", "lead_id", "event_type", "data"):
            data = event.data if isinstance(event.data, dict) else {}
            for key in ("body", "message"):
                if isinstance(data.get(key), str) and data[key]:
                    found[event.lead_id].append((f"{event.event_type} event #{event.pk} {key}", data[key]))
        return found


# --- provider freshness ------------------------------------------------------------------------------


class ProviderFreshnessCheck:
    """The connections that feed the proof must be delivering now: a stale, uncertain or failing
    source means the period's numbers may be missing events. A card with its own source connection
    is checked against that one; a summary against every inbound connection of the client."""

    key = "freshness"
    name = "Provider freshness"

    def run(self, client, start, end, subject=None) -> CheckOutcome:
        connection = getattr(subject, "connection", None)
        if connection is not None:
            connections = [connection]
        else:
            connections = list(
                Connection.objects.filter(client=client)
                .exclude(provider__in=settings.PORTAL_FRESHNESS_IGNORE_PROVIDERS)
                .exclude(status=Connection.Status.PENDING)
            )
        if not connections:
            return CheckOutcome(PASS, "No provider connection feeds this client's numbers.", {"connections": []})
        rows, statuses = [], []
        for conn in connections:
            status, reason = self._judge(conn)
            statuses.append(status)
            rows.append(
                {
                    "connection_id": conn.pk,
                    "provider": conn.provider,
                    "status": status,
                    "reason": reason,
                    "last_event_at": conn.last_event_at.isoformat() if conn.last_event_at else None,
                }
            )
        overall = worst(statuses)
        bad = [r for r in rows if r["status"] != PASS]
        if not bad:
            return CheckOutcome(PASS, f"All {len(rows)} source connection(s) are delivering.", {"connections": rows})
        text = "; ".join(f"{r['provider']} #{r['connection_id']}: {r['reason']}" for r in bad)
        return CheckOutcome(overall, text[:500], {"connections": rows})

    @staticmethod
    def _judge(conn: Connection) -> tuple[str, str]:
        last = (
            f"last event {timezone.localtime(conn.last_event_at):%Y-%m-%d %H:%M}"
            if conn.last_event_at
            else "no events yet"
        )
        if conn.status == Connection.Status.UNCERTAIN:
            return FAIL, f"uncertain ({conn.status_reason or 'processing held'}); {last}"
        if conn.status == Connection.Status.ERROR:
            return FAIL, f"in error ({conn.last_error[:120] or conn.status_reason or 'see connection'}); {last}"
        if conn.stale_since or conn.is_stale:
            return FAIL, f"stale (silent longer than {conn.expected_freshness}); {last}"
        if conn.status == Connection.Status.PAUSED:
            return WARN, f"paused ({conn.status_reason or 'no reason given'}); events may be missing; {last}"
        return PASS, f"delivering; {last}"


# --- field completeness -------------------------------------------------------------------------------


class FieldCompletenessCheck:
    """Share of counted leads with a known source, a service type and attribution. A summary that
    says "most leads came from Google" is only as good as the share of leads that say so."""

    key = "completeness"
    name = "Field completeness"

    FIELDS = {
        "source": ("known source", lambda lead: lead.source != LeadSource.OTHER),
        "service_type": ("service type", lambda lead: bool(lead.service_type.strip())),
        "attribution": ("attribution (UTM, click id, tracking number, landing page)", lead_is_attributed),
    }

    def run(self, client, start, end, subject=None) -> CheckOutcome:
        leads = list(period_leads_counted(client=client, start=start, end=end))
        if not leads:
            return CheckOutcome(WARN, "No counted leads in the period: there is nothing to prove yet.", {"checked": 0})
        warn_below, fail_below = settings.PORTAL_COMPLETENESS_WARN_BELOW, settings.PORTAL_COMPLETENESS_FAIL_BELOW
        shares, missing, statuses, parts = {}, {}, [], []
        for key, (label, known) in self.FIELDS.items():
            lacking = [lead.pk for lead in leads if not known(lead)]
            share = 1 - len(lacking) / len(leads)
            shares[key] = round(share, 3)
            missing[key] = _cap(lacking)
            status = FAIL if share < fail_below else WARN if share < warn_below else PASS
            statuses.append(status)
            parts.append(f"{label} {share:.0%}")
        overall = worst(statuses)
        verdict = {PASS: "complete enough", WARN: f"below {warn_below:.0%}", FAIL: f"below {fail_below:.0%}"}[overall]
        return CheckOutcome(
            overall,
            f"Of {len(leads)} counted leads: {', '.join(parts)} ({verdict}).",
            {"checked": len(leads), "shares": shares, "missing_lead_ids": missing},
        )
