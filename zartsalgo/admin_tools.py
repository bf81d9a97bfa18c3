"""Admin pieces: list pages that stay fast on tables with millions of rows, history inlines."""

import datetime

from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db.models import Max, Min
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html


class CappedCountPaginator(Paginator):
    """Counts at most ADMIN_COUNT_CAP + 1 rows instead of an exact COUNT(*) over the table.

    InnoDB has no cheap exact count: a plain COUNT(*) reads a whole index on every page view.
    A LIMITed subquery stops early; the page says "10,000+" and filters narrow the list.
    """

    @cached_property
    def cap(self) -> int:
        return settings.ADMIN_COUNT_CAP

    @cached_property
    def count(self) -> int:
        qs = self.object_list
        if hasattr(qs, "order_by"):
            return qs.order_by()[: self.cap + 1].count()
        return len(qs)

    @property
    def is_capped(self) -> bool:
        return self.count > self.cap


def _truncate(value: datetime.datetime, kind: str) -> datetime.datetime:
    value = timezone.localtime(value) if timezone.is_aware(value) else value
    if kind == "year":
        return value.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    if kind == "month":
        return value.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return value.replace(hour=0, minute=0, second=0, microsecond=0)


def _step(value: datetime.datetime, kind: str) -> datetime.datetime:
    if kind == "year":
        return value.replace(year=value.year + 1)
    if kind == "month":
        return value.replace(year=value.year + value.month // 12, month=value.month % 12 + 1)
    return value + datetime.timedelta(days=1)


class RangeDatesMixin:
    """`datetimes()` for the date hierarchy from MIN/MAX (two index probes) instead of DISTINCT.

    Django's date hierarchy asks for the distinct years/months/days in the filtered rows, which
    reads every row's date. Listing every period between the first and the last row costs two
    index lookups; a period without rows just shows an empty page when clicked.
    """

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        if not (bounds["first"] and bounds["last"]) or kind not in ("year", "month", "day"):
            return []
        current, last = _truncate(bounds["first"], kind), bounds["last"]
        last = timezone.localtime(last) if timezone.is_aware(last) else last
        periods = []
        while current <= last and len(periods) < 400:
            periods.append(current)
            current = _step(current, kind)
        return periods if order == "ASC" else periods[::-1]


class FastChangeList(ChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        qs = super().get_queryset(request, exclude_parameters)
        if not isinstance(qs, RangeDatesMixin):
            qs.__class__ = type(f"Range{qs.__class__.__name__}", (RangeDatesMixin, qs.__class__), {})
        return qs


class FastListAdminMixin:
    """Use on ModelAdmins of big tables: capped counts, cheap date hierarchy, no facet counts."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    list_per_page = 50

    def get_changelist(self, request, **kwargs):
        return FastChangeList


def change_link(admin_name: str, pk, text=None) -> str:
    """A link to an object's admin change page ("leads_lead", 42) for list columns and fields."""
    if not pk:
        return ""
    return format_html('<a href="{}">{}</a>', reverse(f"admin:{admin_name}_change", args=[pk]), text or f"#{pk}")


class ReadOnlyInline(admin.TabularInline):
    """A history inline: rows made by the system (or through services), shown, never edited here."""

    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


def add_lead_inlines(*inlines) -> None:
    """Append inlines to the Lead admin's page from an app above leads.

    Explicit wiring: leads must not import the apps above it (DESIGN.md layering), so each of
    them adds what it knows about a lead — enrollments and their steps, messages, tasks, CRM
    handoffs — to the lead's page from its own admin module.
    """
    from leads.models import Lead

    lead_admin = admin.site._registry.get(Lead)
    if lead_admin is not None:
        lead_admin.inlines = (*lead_admin.inlines, *(i for i in inlines if i not in lead_admin.inlines))
