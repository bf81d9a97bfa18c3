"""Staff admin: a client's lead report (leads.reports) with every number linked to exactly the
leads behind it in the Lead admin list. Wired from leads/admin.py (ClientAdmin's mixin, the
Lead admin's attribution filter)."""

from __future__ import annotations

import datetime
from decimal import Decimal
from urllib.parse import quote_plus, urlencode

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dates import MONTHS_3, WEEKDAYS_ABBR
from django.utils.html import escape, format_html
from django.utils.safestring import SafeString, mark_safe

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


class LeadListLinks:
    """Drill-down URLs into the Lead admin list for one client: the changelist path, the client
    and the counted-reasons parameters are encoded once, each day boundary and each set of
    lookups once per page; a link is then string concatenation (a 12-month report has ~800
    links: a reverse() and a full urlencode each was 111 ms). Same strings as lead_list_url."""

    def __init__(self, client: Client) -> None:
        self.tz = client.tz
        self.prefix = f"{reverse('admin:leads_lead_changelist')}?{urlencode({'client__id__exact': client.pk})}"
        # The admin cannot exclude: list every counted reason, the empty one (not lost) included.
        self.counted = urlencode({"lost_reason__in": ",".join(["", *COUNTED_LOST_REASONS])})
        self._instants: dict[datetime.date, str] = {}
        self._lookups: dict[tuple, str] = {}

    def _instant(self, day: datetime.date) -> str:
        """Local midnight starting `day`, in UTC, URL-encoded."""
        encoded = self._instants.get(day)
        if encoded is None:
            encoded = self._instants[day] = quote_plus(_utc(local_day_start(self.tz, day)))
        return encoded

    def url(self, start: datetime.date, end: datetime.date, **lookups: str) -> str:
        key = tuple(lookups.items())
        extra = self._lookups.get(key)
        if extra is None:
            extra = self._lookups[key] = f"&{urlencode(lookups)}" if lookups else ""
        return (
            f"{self.prefix}&captured_at__gte={self._instant(start)}"
            f"&captured_at__lt={self._instant(end + datetime.timedelta(days=1))}&{self.counted}{extra}"
        )


def lead_list_url(*, client: Client, start: datetime.date, end: datetime.date, **lookups: str) -> str:
    """The Lead admin list of the client's counted leads (spam and duplicates left out) captured
    on local days start..end, narrowed by `lookups`. Only lookups the Lead admin accepts: its
    list filters (client, status, source, attributed) and its own fields' lookups."""
    return LeadListLinks(client).url(start, end, **lookups)


def _fmt(value) -> str:
    if value is None:
        return "—"
    return f"{value:.1f}" if isinstance(value, Decimal) else f"{value:,}"


def _period_cells(links: LeadListLinks, numbers: PeriodNumbers | None) -> dict[str, tuple[str, str]]:
    """metric → (text, drill-down url) for one period."""
    if numbers is None:
        return {}

    def url(**lookups):
        return links.url(numbers.start, numbers.end, **lookups)

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


def _rows(links: LeadListLinks, report) -> dict[str, list[dict]]:
    current = _period_cells(links, report.current)
    baseline = _period_cells(links, report.baseline)

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


def _daily_rows(daily: list[tuple]) -> SafeString:
    """The "By day" table's rows (up to 3 x 366), made here rather than in a template loop: the
    loop and its `date:"D M j"` filter were ~100 ms for a year. Same markup and day labels (the
    filter's own translated abbreviations, looked up once per page)."""
    weekdays = [str(WEEKDAYS_ABBR[i]) for i in range(7)]
    months = {i: str(MONTHS_3[i]).title() for i in range(1, 13)}
    return mark_safe(  # noqa: S308 - every interpolated value is escaped or an int
        "".join(
            f"<tr><td>{escape(weekdays[day.weekday()])} {escape(months[day.month])} {day.day}</td>"
            f'<td><a href="{escape(leads_url)}">{int(n_leads)}</a></td>'
            f'<td><a href="{escape(booked_url)}">{int(n_booked)}</a></td></tr>\n'
            for day, n_leads, n_booked, leads_url, booked_url in daily
        )
    )


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
        links = LeadListLinks(client)
        booked = {"status__exact": Lead.Status.BOOKED}
        daily = [
            (day, n_leads, n_booked, links.url(day, day), links.url(day, day, **booked))
            for day, n_leads, n_booked in report.daily
        ]
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
            "rows": _rows(links, report),
            "daily": daily,
            "daily_rows": _daily_rows(daily),
            "next_actions_url": f"{changelist}?{urlencode(next_actions)}",
            "overdue_url": f"{changelist}?{urlencode(overdue)}",
        }
        return TemplateResponse(request, "admin/leads/client_report.html", context)
