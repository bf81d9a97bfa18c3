"""Staff admin for the receiving pipeline: connections, deliveries, raw and normalized events,
and failure review. Thin: every change goes through integrations.services."""

import json

from django.conf import settings
from django.contrib import admin, messages
from django.urls import reverse
from django.utils.html import format_html

from zartsalgo.admin_tools import FastListAdminMixin, change_link
from zartsalgo.errors import ApplicationError

from . import services
from .models import Connection, NormalizedEvent, RawEvent, SyncError, WebhookEvent


def webhook_url(request, connection: Connection) -> str:
    path = reverse("integrations:webhook", args=[connection.provider, connection.webhook_token])
    base = settings.WEBHOOK_PUBLIC_BASE_URL.rstrip("/")
    return f"{base}{path}" if base else request.build_absolute_uri(path)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "provider", "status", "freshness", "owner", "last_event_at", "last_error_at")
    list_filter = ("provider", "status", "client")
    list_select_related = ("client", "owner")
    search_fields = ("client__name", "name", "provider")
    autocomplete_fields = ("client", "owner")
    readonly_fields = (
        "webhook_url",
        "status",
        "status_reason",
        "last_event_at",
        "last_error_at",
        "last_error",
        "stale_since",
        "created_at",
    )
    fields = (
        "client",
        "provider",
        "name",
        "owner",
        "reason",
        "credentials",
        "config",
        "expected_freshness",
        "webhook_url",
        "status",
        "status_reason",
        "last_event_at",
        "stale_since",
        "last_error_at",
        "last_error",
        "created_at",
    )
    actions = ("mark_connected", "mark_uncertain", "mark_paused")

    @admin.display(description="webhook URL")
    def webhook_url(self, obj):
        if not obj.pk:
            return "Shown after saving."
        return format_html("<code>{}</code>", webhook_url(self._request, obj))

    @admin.display(description="freshness")
    def freshness(self, obj):
        if obj.is_stale:
            return format_html(
                '<strong style="color:#a40e26">stale since {}</strong>', obj.stale_since or obj.last_event_at
            )
        return "fresh" if obj.last_event_at else "no events yet"

    def get_form(self, request, obj=None, **kwargs):
        self._request = request
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        # The provider of an existing connection never changes: its token and events belong to it.
        return (*self.readonly_fields, "client", "provider") if obj else self.readonly_fields

    def get_inlines(self, request, obj):
        # Field mappings mean something on CRM connections only (admin_crm.py, docs/crm.md).
        from .admin_crm import CrmFieldMappingInline
        from .crm_adapters import CRM_PROVIDERS

        return (CrmFieldMappingInline,) if obj is not None and obj.provider in CRM_PROVIDERS else ()

    def save_model(self, request, obj, form, change):
        if change:
            obj.save()
            return
        try:
            created = services.connection_create(
                client=obj.client,
                provider=obj.provider,
                reason=obj.reason,
                actor=request.user,
                owner=obj.owner,
                name=obj.name,
                credentials=obj.credentials,
                config=obj.config,
                expected_freshness=obj.expected_freshness,
            )
        except ApplicationError as exc:
            messages.error(request, exc.message)
            return
        obj.pk, obj._state.adding = created.pk, False

    def _set_status(self, request, queryset, status, reason):
        for connection in queryset:
            services.connection_set_status(connection=connection, status=status, actor=request.user, reason=reason)
        self.message_user(request, f"{queryset.count()} connection(s) now {status}.")

    @admin.action(description="Mark connected (releases held events)")
    def mark_connected(self, request, queryset):
        self._set_status(request, queryset, Connection.Status.CONNECTED, "Cleared by staff")

    @admin.action(description="Mark uncertain (hold processing, keep receiving)")
    def mark_uncertain(self, request, queryset):
        self._set_status(request, queryset, Connection.Status.UNCERTAIN, "Marked uncertain by staff")

    @admin.action(description="Pause (hold processing, keep receiving)")
    def mark_paused(self, request, queryset):
        self._set_status(request, queryset, Connection.Status.PAUSED, "Paused by staff")


class ReceiptRawEventsInline(admin.TabularInline):
    model = RawEvent
    fk_name = "receipt"
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("kind", "status", "attempts", "summary")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(FastListAdminMixin, ReadOnlyAdmin):
    inlines = (ReceiptRawEventsInline,)
    list_display = (
        "received_at",
        "provider",
        "connection",
        "outcome",
        "http_status",
        "signature",
        "events_count",
        "duplicates_count",
        "body_size",
        "reason",
    )
    list_filter = ("outcome", "provider", "signature")
    list_select_related = ("connection__client",)
    date_hierarchy = "received_at"
    sortable_by = ("received_at",)
    ordering = ("-received_at", "-id")
    search_fields = ("=body_sha256",)


class NormalizedInline(admin.TabularInline):
    model = NormalizedEvent
    fk_name = "raw_event"
    extra = 0
    can_delete = False
    fields = ("event_type", "occurred_at", "lead", "applied_consumers", "applied_at")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RawEvent)
class RawEventAdmin(FastListAdminMixin, ReadOnlyAdmin):
    list_display = ("received_at", "provider", "client", "kind", "status", "attempts", "next_attempt_at", "summary")
    list_filter = ("status", "provider", "client")
    list_select_related = ("client",)
    date_hierarchy = "received_at"
    sortable_by = ("received_at",)
    ordering = ("-received_at", "-id")
    search_fields = ("=idempotency_key",)
    inlines = (NormalizedInline,)
    actions = ("replay",)

    def get_fields(self, request, obj=None):
        fields = [
            "connection",
            "client",
            "provider",
            "receipt",
            "idempotency_key",
            "kind",
            "summary",
            "occurred_at",
            "received_at",
            "status",
            "attempts",
            "next_attempt_at",
            "last_error",
            "processed_at",
        ]
        # The full payload can hold names, numbers and message bodies: only for staff granted it.
        if request.user.has_perm("integrations.view_raw_payload"):
            fields.append("payload_pretty")
        return fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    @admin.display(description="payload (restricted)")
    def payload_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False)[:50000])

    @admin.action(description="Replay selected events (logged)")
    def replay(self, request, queryset):
        count = services.raw_events_replay(raw_events=queryset, actor=request.user, reason="Admin replay")
        self.message_user(request, f"Replaying {count} event(s).")

    def has_change_permission(self, request, obj=None):
        # Needed for the replay action; the form itself stays read-only (every field is).
        return request.user.has_perm("integrations.change_rawevent")


@admin.register(NormalizedEvent)
class NormalizedEventAdmin(FastListAdminMixin, ReadOnlyAdmin):
    list_display = ("occurred_at", "event_type", "client", "lead_link", "raw_link", "applied_at")
    list_filter = ("event_type", "client")
    list_select_related = ("client", "lead")
    date_hierarchy = "occurred_at"
    sortable_by = ("occurred_at",)
    ordering = ("-occurred_at", "-id")
    search_fields = ("=idempotency_key",)

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id, obj.lead)

    @admin.display(description="raw event")
    def raw_link(self, obj):
        return change_link("integrations_rawevent", obj.raw_event_id)


class ReviewStatusFilter(admin.SimpleListFilter):
    """Hookdeck-style issue states for people, over the machine states."""

    title = "review status"
    parameter_name = "review"

    def lookups(self, request, model_admin):
        return [("open", "Open"), ("acknowledged", "Acknowledged"), ("resolved", "Resolved"), ("ignored", "Ignored")]

    def queryset(self, request, queryset):
        active = [SyncError.State.RETRYING, SyncError.State.DEAD]
        match self.value():
            case "open":
                return queryset.filter(state__in=active, acknowledged_at__isnull=True)
            case "acknowledged":
                return queryset.filter(state__in=active, acknowledged_at__isnull=False)
            case "resolved" | "ignored":
                return queryset.filter(state=self.value())
        return queryset


@admin.register(SyncError)
class SyncErrorAdmin(FastListAdminMixin, ReadOnlyAdmin):
    """Failure review: dead letters and retrying failures, with the actions that settle them."""

    list_display = (
        "created_at",
        "stage",
        "state",
        "review",
        "attempt",
        "next_retry_at",
        "connection",
        "raw_link",
        "handoff_link",
        "short_error",
    )
    list_filter = (ReviewStatusFilter, "state", "stage", "connection__provider", "client")
    list_select_related = ("connection__client",)
    date_hierarchy = "created_at"
    sortable_by = ("created_at",)
    ordering = ("-created_at", "-id")
    readonly_fields = (
        "connection",
        "client",
        "raw_event",
        "crm_handoff",
        "stage",
        "state",
        "attempt",
        "next_retry_at",
        "error",
        "traceback",
        "acknowledged_by",
        "acknowledged_at",
        "resolved_by",
        "resolved_at",
        "resolution",
    )
    actions = ("retry_now", "acknowledge", "mark_resolved", "mark_ignored")

    @admin.display(description="review")
    def review(self, obj):
        return obj.review_status

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.error[:120]

    @admin.display(description="raw event")
    def raw_link(self, obj):
        return change_link("integrations_rawevent", obj.raw_event_id)

    @admin.display(description="CRM handoff")
    def handoff_link(self, obj):
        return change_link("integrations_crmhandoff", obj.crm_handoff_id)

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("integrations.change_syncerror")

    @admin.action(description="Retry now (replay the raw events, resend the CRM handoffs)")
    def retry_now(self, request, queryset):
        from . import crm
        from .models_crm import CrmHandoff

        raws = RawEvent.objects.filter(pk__in=queryset.exclude(raw_event=None).values("raw_event"))
        count = services.raw_events_replay(raw_events=raws, actor=request.user, reason="Retry from failure review")
        handoffs = CrmHandoff.objects.filter(pk__in=queryset.exclude(crm_handoff=None).values("crm_handoff"))
        handoff_count = crm.crm_handoffs_retry(handoffs=handoffs, actor=request.user)
        self.message_user(request, f"Retrying {count} event(s) and {handoff_count} CRM handoff(s).")

    @admin.action(description="Acknowledge (someone is on it)")
    def acknowledge(self, request, queryset):
        self.message_user(
            request, f"Acknowledged {services.sync_errors_acknowledge(errors=queryset, actor=request.user)}."
        )

    @admin.action(description="Mark resolved…")
    def mark_resolved(self, request, queryset):
        return self._settle(request, queryset, SyncError.State.RESOLVED)

    @admin.action(description="Mark ignored…")
    def mark_ignored(self, request, queryset):
        return self._settle(request, queryset, SyncError.State.IGNORED)

    def _settle(self, request, queryset, state):
        reason = request.POST.get("resolution", "").strip()
        if not reason:
            from django.template.response import TemplateResponse

            return TemplateResponse(
                request,
                "admin/integrations/syncerror/settle.html",
                {
                    **self.admin_site.each_context(request),
                    "errors": queryset,
                    "state": state,
                    "action": request.POST["action"],
                    "opts": self.model._meta,
                    "title": f"Mark {queryset.count()} failure(s) {state}",
                },
            )
        count = services.sync_errors_set_state(errors=queryset, state=state, actor=request.user, resolution=reason)
        self.message_user(request, f"{count} failure(s) marked {state}.")
        return None


# The CSV import pages and the CRM handoff pages live in their own modules.
from . import admin_crm, admin_imports  # noqa: E402, F401
