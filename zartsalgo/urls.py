from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from . import health

admin.site.site_header = "ZartsAlgo Ops"
admin.site.site_title = "ZartsAlgo Ops"
admin.site.index_title = "Lead operations"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    path("api/", include("integrations.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
