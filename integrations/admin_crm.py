"""Staff admin for CRM handoffs: the list, retry, export of prepared payloads, settle by hand.
Thin: every change goes through integrations.crm (each one logged there)."""

import json

from django.contrib import admin, messages
from django.http import HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from zartsalgo.admin_tools import FastListAdminMixin, ReadOnlyInline, add_lead_inlines, change_link
from zartsalgo.errors import ApplicationError

from . import crm
from .admin import ReadOnlyAdmin
from .models_crm import CrmFieldMapping, CrmHandoff

# The prepared payload holds names, phones and emails: shown and exported only to staff who may
# see raw provider payloads (the "Raw payload reviewers" group).
PAYLOAD_PERMISSION = "integrations.view_raw_payload"


class CrmFieldMappingInline(admin.TabularInline):
    """Shown on CRM connections only (ConnectionAdmin.get_inlines). No rows = the provider's
    default mapping (integrations.crm.DEFAULT_MAPPINGS)."""

    model = CrmFieldMapping
    extra = 0
    fields = ("position", "lead_field", "crm_field", "required")
    ordering = ("position", "id")
    verbose_name = "CRM field mapping"
    verbose_name_plural = "CRM field mapping (empty: the provider's default mapping, see docs/crm.md)"


@admin.register(CrmHandoff)
class CrmHandoffAdmin(FastListAdminMixin, ReadOnlyAdmin):
    list_display = (
        "created_at",
        "status",
        "client",
        "lead_link",
        "connection",
        "source",
        "attempts",
        "next_attempt_at",
        "crm_id",
        "short_error",
    )
    list_filter = ("status", "client", "connection")
    list_select_related = ("client", "lead", "connection__client")
    date_hierarchy = "created_at"
    sortable_by = ("created_at",)
    ordering = ("-created_at", "-id")
    search_fields = ("=idempotency_key", "=crm_id")
    actions = ("retry", "export_payloads", "mark_manual")

    def get_fields(self, request, obj=None):
        fields = [
            "client",
            "lead_link",
            "connection",
            "status",
            "source",
            "source_key",
            "idempotency_key",
            "must_reach",
            "attempts",
            "next_attempt_at",
            "crm_id",
            "succeeded_at",
            "last_error",
            "action_link",
            "errors_link",
            "created_at",
            "updated_at",
        ]
        if request.user.has_perm(PAYLOAD_PERMISSION):
            fields.append("payload_pretty")
        return fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def has_change_permission(self, request, obj=None):
        # Needed for the actions; the form itself stays read-only (every field is).
        return request.user.has_perm("integrations.change_crmhandoff")

    def has_view_raw_payload_permission(self, request):
        return request.user.has_perm(PAYLOAD_PERMISSION)

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id, obj.lead)

    @admin.display(description="action log")
    def action_link(self, obj):
        return change_link("adminops_adminaction", obj.action_id)

    @admin.display(description="failure review")
    def errors_link(self, obj):
        if not obj.pk:
            return ""
        url = reverse("admin:integrations_syncerror_changelist") + f"?crm_handoff={obj.pk}"
        return format_html('<a href="{}">failures of this handoff</a>', url)

    @admin.display(description="error")
    def short_error(self, obj):
        return obj.last_error[:120]

    @admin.display(description="prepared payload (restricted)")
    def payload_pretty(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.payload, indent=2, ensure_ascii=False)[:50000])

    @admin.action(description="Retry now (logged)", permissions=["change"])
    def retry(self, request, queryset):
        count = crm.crm_handoffs_retry(handoffs=_plain(queryset), actor=request.user)
        self.message_user(request, f"Retrying {count} handoff(s); in-flight and settled ones were left alone.")

    @admin.action(description="Export prepared payloads as JSON (logged)", permissions=["view_raw_payload"])
    def export_payloads(self, request, queryset):
        rows = crm.crm_handoffs_export(handoffs=_plain(queryset), actor=request.user)
        response = HttpResponse(
            json.dumps(rows, indent=2, ensure_ascii=False, default=str), content_type="application/json"
        )
        stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
        response["Content-Disposition"] = f'attachment; filename="crm-handoffs-{stamp}.json"'
        return response

    @admin.action(description="Mark settled by hand…", permissions=["change"])
    def mark_manual(self, request, queryset):
        reason = request.POST.get("reason", "").strip()
        if not reason:
            return TemplateResponse(
                request,
                "admin/integrations/crmhandoff/settle.html",
                {
                    **self.admin_site.each_context(request),
                    "handoffs": queryset,
                    "action": request.POST["action"],
                    "opts": self.model._meta,
                    "title": f"Mark {queryset.count()} CRM handoff(s) settled by hand",
                },
            )
        crm_id = request.POST.get("crm_id", "").strip()
        settled, refused = 0, []
        for handoff in queryset:
            try:
                crm.crm_handoff_mark_manual(handoff=handoff, actor=request.user, reason=reason, crm_id=crm_id)
                settled += 1
            except ApplicationError as exc:
                refused.append(exc.message)
        self.message_user(request, f"{settled} handoff(s) settled by hand.")
        for message in refused:
            self.message_user(request, message, messages.WARNING)
        return None


def _plain(queryset):
    """The selected rows without the changelist's joins (the services lock them FOR UPDATE)."""
    return CrmHandoff.objects.filter(pk__in=queryset.values("pk"))


class LeadHandoffsInline(ReadOnlyInline):
    """On the lead's page: every CRM handoff of the lead (the payload stays on the handoff's page)."""

    model = CrmHandoff
    fk_name = "lead"
    ordering = ("-created_at", "-id")
    fields = ("created_at", "connection", "source", "status", "attempts", "next_attempt_at", "crm_id", "last_error")
    verbose_name_plural = "CRM handoffs"


add_lead_inlines(LeadHandoffsInline)
