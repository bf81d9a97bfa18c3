"""Pure functions that turn messy provider/CSV values into normalized lead fields.

Nothing here raises on bad input: each function returns the value it could read (or None) and,
when it could not, a data-quality flag saying why. The raw value is always kept by the caller.
"""

import re
from dataclasses import dataclass

import phonenumbers
from django.core.exceptions import ValidationError
from django.core.validators import validate_email

from .models import ContactMethod, LeadSource, Urgency


@dataclass(frozen=True)
class Flag:
    field: str
    code: str
    reason: str
    value: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "code": self.code, "reason": self.reason, "value": self.value[:200]}


def normalize_phone(raw: str, region: str) -> tuple[str | None, Flag | None]:
    """E.164 for a valid number in the client's region (or with a +country code)."""
    raw = (raw or "").strip()
    if not raw:
        return None, None
    try:
        parsed = phonenumbers.parse(raw, region or "US")
    except phonenumbers.NumberParseException as exc:
        return None, Flag("phone", "phone_unparseable", f"Not a phone number: {exc}", raw)
    if not phonenumbers.is_valid_number(parsed):
        return None, Flag("phone", "phone_invalid", "Not a valid number for its country", raw)
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164), None


def normalize_email(raw: str) -> tuple[str | None, Flag | None]:
    raw = (raw or "").strip()
    if not raw:
        return None, None
    # Some forms wrap addresses as "Name <a@b.c>" or add mailto:.
    match = re.search(r"<([^>]+)>", raw)
    candidate = (match.group(1) if match else raw).removeprefix("mailto:").strip()
    folded = candidate.casefold()
    try:
        validate_email(folded)
    except ValidationError:
        return None, Flag("email", "email_invalid", "Not a valid email address", raw)
    return folded, None


_SPACES = re.compile(r"\s+")


def clean_name(raw: str) -> str:
    name = _SPACES.sub(" ", (raw or "").strip())
    # "JOHN SMITH" and "john smith" come from forms that do not care; "McDonald" stays.
    if name and (name.isupper() or name.islower()):
        name = name.title()
    return name[:100]


def split_full_name(raw: str) -> tuple[str, str]:
    name = clean_name(raw)
    if not name:
        return "", ""
    if "," in name:  # "Smith, John"
        last, _, first = name.partition(",")
        return first.strip(), last.strip()
    first, _, last = name.partition(" ")
    return first, last


_SOURCE_ALIASES = {
    "webform": LeadSource.WEB_FORM,
    "web": LeadSource.WEB_FORM,
    "website": LeadSource.WEB_FORM,
    "form": LeadSource.WEB_FORM,
    "contact form": LeadSource.WEB_FORM,
    "quote": LeadSource.QUOTE_REQUEST,
    "quote request": LeadSource.QUOTE_REQUEST,
    "estimate": LeadSource.QUOTE_REQUEST,
    "missed call": LeadSource.MISSED_CALL,
    "missed": LeadSource.MISSED_CALL,
    "call": LeadSource.PHONE_CALL,
    "phone": LeadSource.PHONE_CALL,
    "text": LeadSource.SMS,
    "sms": LeadSource.SMS,
    "thumbtack": LeadSource.THUMBTACK,
    "angi": LeadSource.ANGI,
    "angies list": LeadSource.ANGI,
    "homeadvisor": LeadSource.ANGI,
    "csv": LeadSource.CSV_IMPORT,
    "import": LeadSource.CSV_IMPORT,
    "referral": LeadSource.REFERRAL,
    "manual": LeadSource.MANUAL,
}


def _key(raw: str) -> str:
    return re.sub(r"[^a-z0-9]+", " ", (raw or "").casefold()).strip()


def normalize_source(raw: str) -> tuple[str, Flag | None]:
    key = _key(raw)
    if not key:
        return LeadSource.OTHER, Flag("source", "source_missing", "No lead source given")
    if key.replace(" ", "_") in LeadSource.values:
        return key.replace(" ", "_"), None
    if key in _SOURCE_ALIASES:
        return _SOURCE_ALIASES[key], None
    return LeadSource.OTHER, Flag("source", "source_unknown", "Source not recognised", raw)


# Checked in this order, as whole words: a negated urgency ("not urgent", "nothing urgent")
# is low before "urgent" can make it an emergency, and "no ac" never matches inside "no access".
_URGENCY_PATTERNS = (
    (Urgency.LOW, r"(not|no|nothing|isn t|is not)( an?| too| very| that| really)? (urgent|emergency|rush)"),
    (Urgency.LOW, r"low|flexible|next month|just looking|planning|whenever"),
    (Urgency.EMERGENCY, r"emergency|asap|urgent|urgently|flood(ing|ed)?|burst|leak now|no heat|no ac|24 7"),
    (Urgency.HIGH, r"high|soon|today|this week"),
    (Urgency.NORMAL, r"normal|medium|standard"),
)
URGENCY_RANK = {Urgency.LOW: 0, Urgency.NORMAL: 1, Urgency.HIGH: 2, Urgency.EMERGENCY: 3}


def normalize_urgency(raw: str) -> str | None:
    key = _key(raw)
    if not key:
        return None
    for urgency, pattern in _URGENCY_PATTERNS:
        if re.search(rf"\b({pattern})\b", key):
            return urgency
    return None


def normalize_contact_method(raw: str) -> str | None:
    key = _key(raw)
    if not key:
        return None
    if "text" in key or "sms" in key:
        return ContactMethod.SMS
    if "mail" in key:
        return ContactMethod.EMAIL
    if "call" in key or "phone" in key:
        return ContactMethod.CALL
    if key in {"any", "either", "no preference"}:
        return ContactMethod.ANY
    return None


def match_catalog(raw: str, catalog: list[str], field: str) -> tuple[str, Flag | None]:
    """The catalog's own spelling when the value matches one entry, else the cleaned raw value."""
    cleaned = _SPACES.sub(" ", (raw or "").strip())[:100]
    if not cleaned:
        return "", None
    # Compared without spaces so "A/C repair" (→ "a c repair") matches "AC repair".
    key = _key(cleaned).replace(" ", "")
    for entry in catalog or []:
        if _key(entry).replace(" ", "") == key:
            return entry, None
    if catalog:
        return cleaned, Flag(
            field, f"{field}_not_in_catalog", f"Not one of the client's {field.replace('_', ' ')}s", raw
        )
    return cleaned, None
