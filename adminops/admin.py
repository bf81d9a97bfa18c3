from django.contrib import admin
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from zartsalgo.admin_tools import FastListAdminMixin, change_link

from .models import AdminAction


@admin.register(AdminAction)
class AdminActionAdmin(FastListAdminMixin, admin.ModelAdmin):
    """The action log, read-only: it is evidence, so nobody edits or deletes it here."""

    list_display = ("created_at", "verb", "actor_label", "state", "client", "lead_link", "target_link", "summary")
    list_filter = ("state", "client")
    list_select_related = ("client", "lead")
    search_fields = ("=verb", "=idempotency_key", "=target_id")
    search_help_text = "Exact verb (e.g. lead.status_change), idempotency key or target id."
    date_hierarchy = "created_at"
    sortable_by = ("created_at",)
    ordering = ("-created_at", "-id")
    readonly_fields = [f.name for f in AdminAction._meta.fields] + ["target_link"]

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id)

    @admin.display(description="target")
    def target_link(self, obj):
        if not obj.target_type:
            return ""
        app_label, _, model = obj.target_type.partition(".")
        try:
            url = reverse(f"admin:{app_label}_{model}_change", args=[obj.target_id])
        except NoReverseMatch:
            return f"{obj.target_type} #{obj.target_id}"
        return format_html('<a href="{}">{} #{}</a>', url, obj.target_type, obj.target_id)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
