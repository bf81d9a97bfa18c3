"""Reads for leads. Anything a client user may see goes through the *_for_user functions."""

import re

import phonenumbers
from django.conf import settings
from django.db.models import Q, QuerySet

from . import normalize as norm
from .models import Activity, Client, Lead


def client_list_for_user(*, user) -> QuerySet[Client]:
    """Staff see every client; a portal user sees only the one client they belong to."""
    if not user.is_authenticated or not user.is_active:
        return Client.objects.none()
    if user.is_staff or user.is_superuser:
        return Client.objects.all()
    return Client.objects.filter(portal_users__user=user)


def lead_list_for_user(*, user) -> QuerySet[Lead]:
    return Lead.objects.filter(client__in=client_list_for_user(user=user))


def lead_timeline(*, lead: Lead, include_internal: bool) -> QuerySet[Activity]:
    qs = lead.activities.select_related("actor_user").order_by("-occurred_at", "-id")
    return qs if include_internal else qs.filter(is_internal=False)


_DIGITS = re.compile(r"\d")


def lead_search_name_prefix(term: str) -> str | None:
    """The name prefix lead_search_q looks for, or None when the term is empty, an email or a
    phone number (those are exact lookups)."""
    term = (term or "").strip()
    if not term or "@" in term:
        return None
    if len(_DIGITS.findall(term)) >= 7 and not re.search(r"[A-Za-z]{2,}", term):
        return None
    return term


def lead_name_prefix_ids(leads: QuerySet[Lead], prefix: str, *, limit: int) -> list[int]:
    """Ids of `leads` whose full name or last name starts with `prefix` (case-insensitive, as
    lead_search_q), newest first (captured_at DESC, id DESC), at most `limit`.

    Index-first: a UNION of two prefix ranges of lead_full_name_captured_idx and
    lead_last_name_captured_idx, each giving (captured_at, id) from the index alone (every
    secondary index carries the primary key), deduplicated, sorted and cut in the database.
    No lead row is read, so `limit` = count cap + 1 is also the capped count. (The OR of
    lead_search_q instead reads every matching row, twice: page and count.) With other filters
    on `leads` the matching rows are read to test them, as before.
    """
    parts = [
        leads.filter(**{f"{field}__istartswith": prefix})
        .order_by()
        .select_related(None)
        .prefetch_related(None)
        .values_list("captured_at", "id")
        for field in ("full_name", "last_name")
    ]
    newest_first = parts[0].union(parts[1]).order_by("-captured_at", "-id")[:limit]
    return [pk for _, pk in newest_first]


def lead_search_q(term: str, *, region: str | None = None) -> Q | None:
    """An index-friendly filter for a search box: phone in any format, email, or a name prefix.

    Returns None for an empty term. Never a `%term%` scan: phone and email are exact index
    lookups, names are prefix lookups on indexed columns.
    """
    term = (term or "").strip()
    if not term:
        return None
    if "@" in term:
        email, _ = norm.normalize_email(term)
        return Q(email_normalized=email) if email else Q(email_raw__iexact=term)
    if len(_DIGITS.findall(term)) >= 7 and not re.search(r"[A-Za-z]{2,}", term):
        phone, _ = norm.normalize_phone(term, region or settings.DEFAULT_PHONE_REGION)
        if phone:
            return Q(phone_e164=phone)
        try:
            digits = phonenumbers.normalize_digits_only(term)
        except Exception:
            digits = term
        return Q(phone_raw=term) | Q(phone_raw=digits)
    return Q(full_name__istartswith=term) | Q(last_name__istartswith=term)
