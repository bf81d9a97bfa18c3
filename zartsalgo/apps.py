"""The project package as a small app: only for start-up wiring the API needs."""

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "zartsalgo"
    label = "zartsalgo_api"
    verbose_name = "ZartsAlgo API"

    def ready(self):
        # DRF's token admin page lists every key in clear to any staff user who may view tokens;
        # tokens are made and rotated with `manage.py drf_create_token [-r] <user>` (docs/api.md).
        # This runs after the admin's autodiscovery (django.contrib.admin is first in
        # INSTALLED_APPS), so the page is gone before anything lists the admin's models.
        from django.contrib import admin
        from rest_framework.authtoken.models import TokenProxy

        if admin.site.is_registered(TokenProxy):
            admin.site.unregister(TokenProxy)
