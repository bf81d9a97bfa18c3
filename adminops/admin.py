from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, format_html_join

from zartsalgo.admin_tools import FastListAdminMixin, ReadOnlyInline, change_link
from zartsalgo.errors import ApplicationError

from . import services
from .models import AdminAction, Incident, IncidentEntry


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


# --- incidents ---------------------------------------------------------------------------------


class IncidentEntryInline(ReadOnlyInline):
    model = IncidentEntry
    fields = ("created_at", "kind", "actor_label", "message")
    ordering = ("created_at", "id")
    show_change_link = False
    verbose_name_plural = "Timeline"


class IncidentForm(forms.ModelForm):
    """The model's fields plus what a person does next; the admin hands both to the services."""

    hold_sends = forms.BooleanField(
        required=False,
        label="Hold the affected sends now",
        help_text="Holds every affected client's and workflow's sends (enrollments keep their place). "
        "Only the holds this incident places are released when it closes.",
    )
    step = forms.ChoiceField(
        required=False,
        label="Next step",
        choices=[
            ("", "— no change —"),
            ("investigating", "Mark investigating"),
            ("mitigated", "Mark mitigated"),
            ("hold_sends", "Hold the affected sends"),
            ("release_sends", "Release the sends this incident held"),
            ("close", "Close (resolution required)"),
        ],
    )
    note = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}), help_text="Added to the timeline.")
    close_resolution = forms.CharField(
        required=False,
        label="Resolution",
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="On close: what was done, and what keeps it from happening again.",
    )
    keep_holds = forms.BooleanField(
        required=False, label="Keep the holds on after closing", help_text="Default: closing releases them."
    )

    class Meta:
        model = Incident
        fields = (
            "title",
            "owner",
            "severity",
            "summary",
            "rollback_path",
            "affected_clients",
            "affected_connections",
            "affected_workflows",
        )

    def clean(self):
        data = super().clean()
        if data.get("step") == "close" and not (data.get("close_resolution") or "").strip():
            self.add_error("close_resolution", "Say what was done before closing.")
        return data


@admin.register(Incident)
class IncidentAdmin(admin.ModelAdmin):
    """Incidents: owner, rollback path and held sends first, the timeline below. Every change is
    a service call (adminops.services.incident_*), so each one is in the timeline and the action
    log with its actor."""

    form = IncidentForm
    list_display = ("__str__", "severity", "status", "owner", "sends_held", "opened_at", "rollback_short")
    list_filter = ("status", "severity", "sends_held")
    list_select_related = ("owner",)
    search_fields = ("title",)
    ordering = ("-opened_at", "-id")
    autocomplete_fields = ("affected_clients", "affected_connections", "affected_workflows")
    inlines = (IncidentEntryInline,)

    add_fieldsets = (
        (None, {"fields": ("title", "owner", "severity", "summary", "rollback_path")}),
        ("Affected", {"fields": ("affected_clients", "affected_connections", "affected_workflows", "hold_sends")}),
    )
    change_fieldsets = (
        ("Owner, rollback path, holds", {"fields": ("owner", "rollback_path_display", "held_display")}),
        (None, {"fields": ("title", "severity", "status", "summary", "opened_at", "opened_by_label")}),
        ("Affected", {"fields": ("affected_display",)}),
        ("Next", {"fields": ("step", "note", "close_resolution", "keep_holds")}),
        ("Closed", {"fields": ("closed_at", "closed_by_label", "resolution")}),
    )

    @admin.display(description="rollback path")
    def rollback_short(self, obj):
        return obj.rollback_path[:80]

    @admin.display(description="rollback path")
    def rollback_path_display(self, obj):
        return format_html('<div style="white-space:pre-wrap;font-weight:bold">{}</div>', obj.rollback_path)

    @admin.display(description="sends held by this incident")
    def held_display(self, obj):
        if not obj.holds_placed:
            return "none"
        return format_html_join(
            "",
            "<div>{} {} — held {}{}</div>",
            (
                (
                    h["type"],
                    h["label"],
                    h.get("placed_at", ""),
                    f", released {h['released_at']}" if h.get("released_at") else " (ON)",
                )
                for h in obj.holds_placed
            ),
        )

    @admin.display(description="affected")
    def affected_display(self, obj):
        parts = [
            ("Clients", obj.affected_clients.all(), "leads_client"),
            ("Connections", obj.affected_connections.select_related("client"), "integrations_connection"),
            ("Workflows", obj.affected_workflows.all(), "workflows_workflow"),
        ]
        return format_html_join(
            "",
            "<div>{}: {}</div>",
            (
                (label, format_html_join(", ", "{}", ((change_link(name, o.pk, str(o)),) for o in rows)) or "—")
                for label, rows, name in parts
            ),
        )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return self.add_fieldsets
        if not obj.is_open:  # closed is final: nothing left to do but read
            return tuple(fs for fs in self.change_fieldsets if fs[0] != "Next")
        return self.change_fieldsets

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        readonly = [
            "title",
            "severity",
            "status",
            "summary",
            "opened_at",
            "opened_by_label",
            "rollback_path_display",
            "held_display",
            "affected_display",
            "closed_at",
            "closed_by_label",
            "resolution",
        ]
        if not obj.is_open:
            readonly += ["owner"]
        return readonly

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is not None and not obj.is_open:
            for name in ("step", "note", "close_resolution", "keep_holds"):
                form.base_fields.pop(name, None)
        return form

    def get_fields(self, request, obj=None):
        return [f for _, opts in self.get_fieldsets(request, obj) for f in opts["fields"]]

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "owner":
            kwargs["queryset"] = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def has_delete_permission(self, request, obj=None):
        return False  # evidence, like the action log

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        try:
            if not change:
                created = services.incident_open(
                    title=data["title"],
                    owner=data["owner"],
                    severity=data["severity"],
                    summary=data.get("summary", ""),
                    rollback_path=data["rollback_path"],
                    clients=data.get("affected_clients", []),
                    connections=data.get("affected_connections", []),
                    workflows=data.get("affected_workflows", []),
                    hold_sends=data.get("hold_sends", False),
                    actor=request.user,
                )
                obj.pk, obj._state.adding = created.pk, False
                return
            self._change(request, obj, data)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def _change(self, request, obj, data):
        incident = Incident.objects.get(pk=obj.pk)
        if data.get("owner") and data["owner"].pk != incident.owner_id:
            services.incident_set_owner(incident=incident, owner=data["owner"], actor=request.user)
        note = (data.get("note") or "").strip()
        step = data.get("step") or ""
        if step in ("investigating", "mitigated"):
            services.incident_set_status(incident=incident, status=step, actor=request.user, note=note)
            note = ""
        elif note:
            services.incident_add_note(incident=incident, actor=request.user, note=note)
        if step == "hold_sends":
            services.incident_hold_sends(incident=incident, actor=request.user)
        elif step == "release_sends":
            services.incident_release_sends(incident=incident, actor=request.user)
        elif step == "close":
            services.incident_close(
                incident=incident,
                actor=request.user,
                resolution=data["close_resolution"],
                release_holds=not data.get("keep_holds"),
            )

    def save_related(self, request, form, formsets, change):
        # The affected sets are written by incident_open (and logged there), so no form.save_m2m();
        # the timeline inline is read-only, its formset saves nothing but must still run.
        for formset in formsets:
            self.save_formset(request, form, formset, change=change)
