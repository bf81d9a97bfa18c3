"""Bench-only URLConf: the project's URLs plus a "stock Django" lead admin at /baseline-admin/.

The baseline site registers every model the project's admin site has, with the same ModelAdmin
classes (so the page chrome, sidebar and autocomplete are identical), except that Lead gets
StockLeadAdmin: LeadAdmin with the large-table optimizations of zartsalgo/admin_tools.py and
the index-friendly search undone. Nothing in the project is edited; run.py points
settings.ROOT_URLCONF here.
"""

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.urls import path

from leads.admin import LeadAdmin
from leads.models import Lead
from zartsalgo.urls import urlpatterns as project_urlpatterns


class StockLeadAdmin(LeadAdmin):
    """LeadAdmin as stock Django would run it. Same columns, filters, per-page size and template."""

    paginator = Paginator  # exact COUNT(*) of the filtered list
    show_full_result_count = True  # ... and a second COUNT(*) of the whole table
    search_fields = ("full_name", "phone_raw", "email_raw")  # '%term%' icontains on each

    def get_changelist(self, request, **kwargs):
        return ChangeList  # the date hierarchy asks the database for DISTINCT years/months/days

    def get_search_results(self, request, queryset, search_term):
        return admin.ModelAdmin.get_search_results(self, request, queryset, search_term)


baseline_site = admin.AdminSite(name="baseline_admin")
baseline_site.site_header, baseline_site.site_title = admin.site.site_header, admin.site.site_title
baseline_site.index_title = admin.site.index_title
for _model, _model_admin in admin.site._registry.items():
    baseline_site.register(_model, StockLeadAdmin if _model is Lead else type(_model_admin))

urlpatterns = [path("baseline-admin/", baseline_site.urls), *project_urlpatterns]
