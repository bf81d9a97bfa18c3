"""The provider registry: key → adapter. Adding a provider = one module + one line here
(see docs/webhooks.md, "Adding a provider")."""

from __future__ import annotations

from importlib import import_module

from .base import ProviderAdapter

# Explicit, ordered, greppable: no auto-discovery.
ADAPTER_PATHS: dict[str, str] = {
    "twilio": "integrations.providers.twilio.TwilioAdapter",
    "sendgrid": "integrations.providers.sendgrid.SendGridAdapter",
    "callrail": "integrations.providers.callrail.CallRailAdapter",
    "thumbtack": "integrations.providers.thumbtack.ThumbtackAdapter",
    "angi": "integrations.providers.angi.AngiAdapter",
    "quickbooks": "integrations.providers.quickbooks.QuickBooksAdapter",
    "webform": "integrations.providers.webform.WebFormAdapter",
    "csv_import": "integrations.providers.csv_import.CsvImportAdapter",
    # Pulled on a schedule, never posted to (integrations/search_console.py, docs/search_console.md).
    "search_console": "integrations.providers.search_console.SearchConsoleAdapter",
    # Outbound-only: CRM handoff connections (integrations/crm_adapters.py, docs/crm.md).
    "crm_webhook": "integrations.crm_adapters.CrmWebhookAdapter",
    "hubspot": "integrations.crm_adapters.HubSpotAdapter",
}

_cache: dict[str, ProviderAdapter] = {}


def get_adapter(key: str) -> ProviderAdapter | None:
    if key not in ADAPTER_PATHS:
        return None
    if key not in _cache:
        module_path, _, class_name = ADAPTER_PATHS[key].rpartition(".")
        try:
            module = import_module(module_path)
        except ModuleNotFoundError:
            return None
        _cache[key] = getattr(module, class_name)()
    return _cache[key]


def provider_choices() -> list[tuple[str, str]]:
    return [(key, key.replace("webform", "web forms (Standard Webhooks)").title()) for key in ADAPTER_PATHS]
