"""Staff admin: a client's lead report (leads.reports) with every number linked to exactly the
leads behind it in the Lead admin list. Wired from leads/admin.py (ClientAdmin's mixin, the
Lead admin's attribution filter)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from .models import Client, Lead
from .reports import NOT_STATED, PeriodNumbers, lead_report, report_period_default
from .rollups import (
    COUNTED_LOST_REASONS,
    OPEN_STATUSES,
    local_day_start,
    next_action_open_q,
    source_and_attribution_q,
)

_LOST_KEYS = {label: key for key, label in Lead.LostReason.choices}


class SourceAttributionFilter(admin.SimpleListFilter):
    """The leads the reports count as having a known source and attribution (source coverage)."""

    title = "source & attribution"
    parameter_name = "attributed"

    def lookups(self, request, model_admin):
        return [("yes", "Known source and attribution"), ("no", "Source or attribution missing")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(source_and_attribution_q())
        if self.value() == "no":
            return queryset.exclude(source_and_attribution_q())
        return queryset


class NextActionFilter(admin.SimpleListFilter):
    """The leads behind the reports' "next actions outstanding" and "overdue" (now)."""

    title = "next action"
    parameter_name = "next_action_state"

    def lookups(self, request, model_admin):
        return [("open", "Outstanding"), ("overdue", "Overdue")]

    def queryset(self, request, queryset):
        if self.value() == "open":
            return queryset.filter(next_action_open_q())
        if self.value() == "overdue":
            return queryset.filter(status__in=OPEN_STATUSES, next_action_due__lt=timezone.now())
        return queryset


def _utc(value: datetime.datetime) -> str:
    return value.astimezone(datetime.UTC).isoformat()


def lead_list_url(*, client: Client, start: datetime.date, end: datetime.date, **lookups: str) -> str:
    """The Lead admin list of the client's counted leads (spam and duplicates left out) captured
    on local days start..end, narrowed by `lookups`. Only lookups the Lead admin accepts: its
    list filters (client, status, source, attributed) and its own fields' lookups."""
    query = {
        "client__id__exact": client.pk,
        "captured_at__gte": _utc(local_day_start(client.tz, start)),
        "captured_at__lt": _utc(local_day_start(client.tz, end + datetime.timedelta(days=1))),
        # The admin cannot exclude: list every counted reason, the empty one (not lost) included.
        "lost_reason__in": ",".join(["", *COUNTED_LOST_REASONS]),
        **lookups,
    }
    return f"{reverse('admin:leads_lead_changelist')}?{urlencode(query)}"


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if isinstance(value, Decimal) else f"{value:,}"


def _period_cells(client: Client, numbers: PeriodNumbers | None) -> dict[str, tuple[str, str]]:
    """metric → (text, drill-down url) for one period."""
    if numbers is None:
        return {}

    def url(**lookups):
        return lead_list_url(client=client, start=numbers.start, end=numbers.end, **lookups)

    responded = url(first_response_seconds__isnull="0")
    cells = {
        "leads": (_fmt(numbers.leads), url()),
        "responded": (_fmt(numbers.responded), responded),
        "median": (_fmt(numbers.response_median_minutes), responded),
        "p90": (_fmt(numbers.response_p90_minutes), responded),
        "booked": (_fmt(numbers.booked), url(status__exact=Lead.Status.BOOKED)),
        "booked_rate": (_fmt(numbers.booked_rate), url(status__exact=Lead.Status.BOOKED)),
        "attributed": (_fmt(numbers.with_source_and_attribution), url(attributed="yes")),
        "coverage": (_fmt(numbers.source_coverage), url(attributed="yes")),
    }
    for label, count in numbers.lost_reasons:
        key = _LOST_KEYS.get(label, label)
        cells[f"lost:{label}"] = (_fmt(count), url(status__exact=Lead.Status.LOST, lost_reason__exact=key))
    for key, _label, count in numbers.by_source:
        cells[f"source:{key}"] = (_fmt(count), url(source__exact=key))
    for label, count in numbers.by_service:
        cells[f"service:{label}"] = (_fmt(count), url(service_type__exact="" if label == NOT_STATED else label))
    return cells


def _rows(client, report) -> dict[str, list[dict]]:
    current = _period_cells(client, report.current)
    baseline = _period_cells(client, report.baseline)

    def row(key, label, unit=""):
        return {"label": label, "unit": unit, "current": current.get(key), "baseline": baseline.get(key)}

    headline = [
        row("leads", "Leads (spam and duplicates excluded)"),
        row("responded", "Responded"),
        row("median", "Response time, median", "min"),
        row("p90", "Response time, p90", "min"),
        row("booked", "Booked"),
        row("booked_rate", "Booked rate", "%"),
        row("attributed", "With known source and attribution"),
        row("coverage", "Source coverage", "%"),
    ]

    def listed(prefix, labels):
        return [row(f"{prefix}:{key}", label) for key, label in labels]

    lost = dict.fromkeys([label for label, _ in report.current.lost_reasons])
    sources = {key: label for key, label, _ in report.current.by_source}
    services = dict.fromkeys([label for label, _ in report.current.by_service])
    if report.baseline is not None:
        lost.update(dict.fromkeys(label for label, _ in report.baseline.lost_reasons))
        sources.update({key: label for key, label, _ in report.baseline.by_source})
        services.update(dict.fromkeys(label for label, _ in report.baseline.by_service))
    return {
        "headline": headline,
        "lost": listed("lost", ((label, label) for label in lost)),
        "sources": listed("source", sources.items()),
        "services": listed("service", ((label, label) for label in services)),
    }


def _parse_day(value: str | None) -> datetime.date | None:
    try:
        return datetime.date.fromisoformat(value) if value else None
    except ValueError:
        return None


class ClientReportAdminMixin:
    """Adds /admin/leads/client/<id>/report/ and a link to it on the client list and page."""

    def get_urls(self):
        return [
            path("<int:pk>/report/", self.admin_site.admin_view(self.report_view), name="leads_client_report"),
            *super().get_urls(),
        ]

    @admin.display(description="report")
    def report_link(self, obj):
        if not obj.pk:
            return "—"
        return format_html('<a href="{}">Lead report</a>', reverse("admin:leads_client_report", args=[obj.pk]))

    def report_view(self, request, pk: int):
        client = get_object_or_404(Client, pk=pk)
        if not self.has_view_permission(request, client):
            raise PermissionDenied
        default_start, default_end = report_period_default(client=client)
        start = _parse_day(request.GET.get("start")) or default_start
        end = _parse_day(request.GET.get("end")) or default_end
        if end < start or (end - start).days > 3 * 366:
            messages.warning(request, "Choose a period of up to three years that ends after it starts.")
            start, end = default_start, default_end
        report = lead_report(client=client, start=start, end=end)
        # Next actions are counted over all the client's open leads, whatever their capture day.
        changelist = reverse("admin:leads_lead_changelist")
        next_actions = {"client__id__exact": client.pk, "next_action_state": "open"}
        overdue = {"client__id__exact": client.pk, "next_action_state": "overdue"}
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": f"Lead report: {client}",
            "client": client,
            "report": report,
            "rows": _rows(client, report),
            "daily": [
                (
                    day,
                    leads,
                    booked,
                    lead_list_url(client=client, start=day, end=day),
                    lead_list_url(client=client, start=day, end=day, status__exact=Lead.Status.BOOKED),
                )
                for day, leads, booked in report.daily
            ],
            "next_actions_url": f"{changelist}?{urlencode(next_actions)}",
            "overdue_url": f"{changelist}?{urlencode(overdue)}",
        }
        return TemplateResponse(request, "admin/leads/client_report.html", context)
