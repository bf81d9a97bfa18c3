"""The client portal: thin views over portal/selectors.py. Every page is login-required and
scoped to the one client linked to the user (portal_client_for_user → 404 for anyone else)."""

import csv
import datetime
import logging
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import timezone
from django.views.decorators.cache import never_cache

from .forms import PortalPasswordResetForm
from .models import MetricCard
from .selectors import (
    CardDisplay,
    ReportPeriod,
    portal_cards,
    portal_client_for_user,
    portal_lead_trends,
    portal_period_cards,
    portal_period_summaries,
    portal_report,
    portal_report_period,
    portal_report_periods,
    portal_summaries,
)
from .throttle import client_ip, throttle_count, throttle_hit

logger = logging.getLogger(__name__)


class PortalLoginView(auth_views.LoginView):
    template_name = "portal/login.html"
    redirect_authenticated_user = True

    def post(self, request, *args, **kwargs):
        # Too many failed sign-ins for this username, or from this address: refuse before the
        # password is even checked (so guessing stops costing us hashing time) with 429.
        window = settings.PORTAL_LOGIN_WINDOW_SECONDS
        username = request.POST.get("username", "")
        if (
            throttle_count(scope="login-user", value=username, window=window) >= settings.PORTAL_LOGIN_FAILURES_PER_USER
            or throttle_count(scope="login-ip", value=client_ip(request), window=window)
            >= settings.PORTAL_LOGIN_FAILURES_PER_IP
        ):
            form = self.get_form()
            form.errors.clear()
            form.add_error(None, f"Too many sign-in attempts. Try again in {window // 60} minutes.")
            return self.render_to_response(self.get_context_data(form=form), status=429)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form):
        window = settings.PORTAL_LOGIN_WINDOW_SECONDS
        throttle_hit(scope="login-user", value=self.request.POST.get("username", ""), window=window)
        throttle_hit(scope="login-ip", value=client_ip(self.request), window=window)
        return super().form_invalid(form)


# --- password reset: Django's views, portal templates, portal users only -----------------------------


class PortalPasswordResetView(auth_views.PasswordResetView):
    form_class = PortalPasswordResetForm  # staff and unknown addresses: no email, same response
    template_name = "portal/password_reset_form.html"
    email_template_name = "portal/password_reset_email.txt"
    subject_template_name = "portal/password_reset_subject.txt"
    success_url = reverse_lazy("portal:password_reset_done")

    def form_valid(self, form):
        # Past the limit for this address or this client IP, the answer is the same "sent" page
        # (it must not tell whether an address has a login) but no email goes out: the portal
        # cannot be used to flood someone's inbox.
        window = settings.PORTAL_RESET_WINDOW_SECONDS
        per_email = throttle_hit(scope="reset-email", value=form.cleaned_data["email"], window=window)
        per_ip = throttle_hit(scope="reset-ip", value=client_ip(self.request), window=window)
        if per_email > settings.PORTAL_RESETS_PER_EMAIL or per_ip > settings.PORTAL_RESETS_PER_IP:
            logger.warning("portal password reset over the limit (email %s/window, ip %s/window)", per_email, per_ip)
            return redirect(self.get_success_url())
        return super().form_valid(form)


class PortalPasswordResetDoneView(auth_views.PasswordResetDoneView):
    template_name = "portal/password_reset_done.html"


class PortalPasswordResetConfirmView(auth_views.PasswordResetConfirmView):
    template_name = "portal/password_reset_confirm.html"
    success_url = reverse_lazy("portal:password_reset_complete")

    def get_user(self, uidb64):
        # The portal only ever mails links to portal users; a link for anyone else is invalid here
        # (staff passwords are reset through the admin).
        user = super().get_user(uidb64)
        if user is None or user.is_staff or user.is_superuser or not hasattr(user, "client_user"):
            return None
        return user


class PortalPasswordResetCompleteView(auth_views.PasswordResetCompleteView):
    template_name = "portal/password_reset_complete.html"


# --- pages ---------------------------------------------------------------------------------------------


@never_cache
@login_required
def dashboard(request):
    client = portal_client_for_user(user=request.user)
    # Only published items of this client, only their client-safe columns (portal/selectors.py).
    cards = portal_cards(client=client)
    context = {
        "client": client,
        "summaries": portal_summaries(client=client),
        "cards": cards,
        "trends": portal_lead_trends(client=client, cards=cards),
        "periods": portal_report_periods(client=client),
    }
    return render(request, "portal/dashboard.html", context)


@never_cache
@login_required
def reports(request):
    client = portal_client_for_user(user=request.user)
    chosen = request.GET.get("period", "")
    if chosen:  # the report page's period picker (a plain GET form: works without JavaScript)
        period = portal_report_period(client=client, slug=chosen)
        return redirect("portal:report", slug=period.slug)
    context = {"client": client, "periods": portal_report_periods(client=client)}
    return render(request, "portal/reports.html", context)


@never_cache
@login_required
def report(request, slug: str):
    client = portal_client_for_user(user=request.user)
    period = portal_report_period(client=client, slug=slug)  # 404 unless this client published it
    context = {
        "client": client,
        "period": period,
        "cards": portal_period_cards(client=client, period=period),
        "summaries": portal_period_summaries(client=client, period=period),
        "live": portal_report(client=client, period=period),
        "periods": portal_report_periods(client=client),
    }
    return render(request, "portal/report.html", context)


# --- CSV export: exactly what the pages show -------------------------------------------------------------

CSV_HEADER = (
    "Section",
    "Period start",
    "Period end",
    "Source",
    "Metric",
    "Unit",
    "Baseline (before you joined)",
    "Current value",
    "Status",
    "Next action",
    "What it means",
)
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection); a leading
# quote makes it text. Tab and carriage return are on OWASP's list too.
_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        text = f"{value.normalize():f}"  # 20.00 → 20, 37.50 → 37.5
    elif isinstance(value, datetime.date):
        text = value.isoformat()
    else:
        text = str(value)
    return f"'{text}" if text.startswith(_FORMULA_PREFIXES) else text


def _card_row(card: MetricCard, shown: CardDisplay) -> list:
    status = f"{shown.status_label}. {shown.stale_note}" if shown.is_stale else shown.status_label
    return [
        "Metric card",
        card.period_start,
        card.period_end,
        card.source_label,
        card.metric_label,
        card.get_unit_display(),
        card.baseline_value,
        None if shown.is_stale else card.current_value,  # a stale source shows no number (card_display)
        status,
        card.next_action,
        card.meaning,
    ]


def _summary_row(summary) -> list:
    return [
        "Summary",
        summary.period_start,
        summary.period_end,
        "",
        summary.title,
        "",
        None,
        None,
        "",
        "",
        summary.body,
    ]


def _report_rows(period: ReportPeriod, report) -> list[list]:
    """The report page's aggregate table and breakdowns, row for row."""
    current, baseline = report.current, report.baseline

    def measure(label, attr, unit):
        return [
            "Report",
            period.start,
            period.end,
            "Lead records",
            label,
            unit,
            getattr(baseline, attr) if baseline else None,
            getattr(current, attr),
            "",
            "",
            "",
        ]

    rows = [measure(label, attr, unit) for label, attr, unit in REPORT_MEASURES]
    for section, items in (
        ("Report: leads by source", [(label, count) for _, label, count in current.by_source]),
        ("Report: leads by service", current.by_service),
        ("Report: reasons leads were lost", current.lost_reasons),
    ):
        rows += [
            [section, period.start, period.end, "Lead records", label, "leads", None, count, "", "", ""]
            for label, count in items
        ]
    return rows


# (label, PeriodNumbers attribute, unit): the report page's table and the CSV share this list.
REPORT_MEASURES = (
    ("Leads", "leads", "leads"),
    ("Leads that heard back", "responded", "leads"),
    ("Median first response", "response_median_minutes", "minutes"),
    ("9 in 10 answered within", "response_p90_minutes", "minutes"),
    ("Booked", "booked", "leads"),
    ("Booked rate", "booked_rate", "%"),
    ("Leads with a known source", "with_source_and_attribution", "leads"),
    ("Source coverage", "source_coverage", "%"),
)


def _csv_response(filename: str, rows: list[list]) -> HttpResponse:
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response.write("\ufeff")  # BOM: Excel then reads the file as UTF-8
    writer = csv.writer(response)
    writer.writerow(CSV_HEADER)
    writer.writerows([csv_safe(cell) for cell in row] for row in rows)
    return response


def _today(client) -> str:
    return f"{timezone.localtime(timezone.now(), client.tz):%Y-%m-%d}"


@never_cache
@login_required
def export_csv(request):
    """The dashboard's published cards and summaries."""
    client = portal_client_for_user(user=request.user)
    rows = [_card_row(card, shown) for card, shown in portal_cards(client=client)]
    rows += [_summary_row(summary) for summary in portal_summaries(client=client)]
    return _csv_response(f"{client.slug}-results-{_today(client)}.csv", rows)


@never_cache
@login_required
def report_export_csv(request, slug: str):
    """One report page: its published cards, summaries and aggregate numbers."""
    client = portal_client_for_user(user=request.user)
    period = portal_report_period(client=client, slug=slug)
    rows = [_card_row(card, shown) for card, shown in portal_period_cards(client=client, period=period)]
    rows += [_summary_row(summary) for summary in portal_period_summaries(client=client, period=period)]
    rows += _report_rows(period, portal_report(client=client, period=period).report)
    return _csv_response(f"{client.slug}-report-{period.slug}.csv", rows)
