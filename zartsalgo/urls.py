from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from . import health

admin.site.site_header = "ZartsAlgo Ops"
admin.site.site_title = "ZartsAlgo Ops"
admin.site.index_title = "Lead operations"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="admin:index", permanent=False)),
    path("admin/", admin.site.urls),
    path("portal/", include("portal.urls")),
    # The REST API (docs/api.md) and its OpenAPI schema + docs pages (assets from static, no CDN).
    path("api/v1/", include("zartsalgo.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/redoc/", SpectacularRedocView.as_view(url_name="api-schema"), name="api-redoc"),
    # Provider webhooks: /api/webhooks/<provider>/<token>/ (docs/webhooks.md).
    path("api/", include("integrations.urls")),
    # Staff ops pages: failure review and ops status (docs/operations.md).
    path("ops/", include("adminops.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
]
