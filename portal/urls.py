from django.contrib.auth import views as auth_views
from django.urls import path, re_path

from . import views

app_name = "portal"

# A report is named by its period: /portal/reports/2026-01-01--2026-01-31/ (selectors.ReportPeriod).
_PERIOD = r"(?P<slug>\d{4}-\d{2}-\d{2}--\d{4}-\d{2}-\d{2})"

urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("export.csv", views.export_csv, name="export_csv"),
    path("reports/", views.reports, name="reports"),
    re_path(rf"^reports/{_PERIOD}/$", views.report, name="report"),
    re_path(rf"^reports/{_PERIOD}/export\.csv$", views.report_export_csv, name="report_export_csv"),
    path("login/", views.PortalLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("password-reset/", views.PortalPasswordResetView.as_view(), name="password_reset"),
    path("password-reset/sent/", views.PortalPasswordResetDoneView.as_view(), name="password_reset_done"),
    path(
        "password-reset/<uidb64>/<token>/",
        views.PortalPasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path("password-reset/complete/", views.PortalPasswordResetCompleteView.as_view(), name="password_reset_complete"),
]
