"""Staff admin for automation rules. Thin: create, change and delete go through
workflows.rules (validated, logged with the actor); "Test against an event" explains what the
rule would have done with a stored event, and enrolls no one."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from adminops.models import AdminAction
from integrations.models import EventType, NormalizedEvent
from zartsalgo.errors import ApplicationError

from .models_rules import AutomationRule
from .rules import EDITABLE, rule_create, rule_delete, rule_explain, rule_update, validate_filters


class AutomationRuleForm(forms.ModelForm):
    event_type = forms.ChoiceField(choices=EventType.choices)

    class Meta:
        model = AutomationRule
        fields = ("client", *EDITABLE)
        help_texts = {
            "filters": 'e.g. {"source": ["web_form", "missed_call"], "service_type": ["Water heater"], '
            '"urgency": ["emergency", "high"], "market": ["Austin"], "consent": {"sms": "not_revoked"}}. '
            "An empty object matches every lead.",
        }

    def clean_filters(self):
        try:
            return validate_filters(self.cleaned_data.get("filters"))
        except ApplicationError as exc:
            raise forms.ValidationError("; ".join(f"{k}: {v}" for k, v in exc.extra["fields"].items())) from exc


@admin.register(AutomationRule)
class AutomationRuleAdmin(admin.ModelAdmin):
    form = AutomationRuleForm
    list_display = (
        "name",
        "client",
        "event_type",
        "action",
        "workflow",
        "reenroll",
        "is_active",
        "fired_count",
        "last_fired_at",
        "updated_by_label",
        "updated_at",
    )
    list_filter = ("is_active", "action", "event_type", "client")
    list_select_related = ("client", "workflow")
    search_fields = ("name", "client__name", "workflow__name")
    readonly_fields = (
        "fired_count",
        "last_fired_at",
        "created_by_label",
        "created_at",
        "updated_by_label",
        "updated_at",
        "test_link",
        "history_link",
    )
    autocomplete_fields = ()

    def get_fields(self, request, obj=None):
        fields = list(AutomationRuleForm.Meta.fields)
        return fields + list(self.readonly_fields) if obj else fields

    def get_readonly_fields(self, request, obj=None):
        # A rule stays with its client (its history and enrollments are that client's).
        return (*self.readonly_fields, "client") if obj else ()

    def save_model(self, request, obj, form, change):
        values = {name: form.cleaned_data[name] for name in EDITABLE if name in form.cleaned_data}
        try:
            if change:
                changed = {name: values[name] for name in form.changed_data if name in values}
                saved = rule_update(rule=obj, actor=request.user, **changed)
            else:
                saved = rule_create(client=form.cleaned_data["client"], actor=request.user, **values)
        except ApplicationError as exc:
            # Validated by the form already; a race (same name saved meanwhile) lands here.
            self.message_user(request, exc.message, messages.ERROR)
            raise
        obj.pk = saved.pk
        obj.__dict__.update({k: v for k, v in saved.__dict__.items() if not k.startswith("_")})

    def delete_model(self, request, obj):
        rule_delete(rule=obj, actor=request.user)

    def delete_queryset(self, request, queryset):
        for rule in queryset:
            rule_delete(rule=rule, actor=request.user)

    def get_urls(self):
        return [
            path("<int:pk>/test/", self.admin_site.admin_view(self.test_view), name="workflows_automationrule_test"),
            *super().get_urls(),
        ]

    def test_view(self, request, pk: int):
        """Would this rule have fired on a stored event, and why (not)? Writes nothing."""
        rule = AutomationRule.objects.select_related("client", "workflow").filter(pk=pk).first()
        if rule is None or not self.has_view_permission(request, rule):
            raise PermissionDenied
        recent = (
            NormalizedEvent.objects.filter(client_id=rule.client_id, event_type=rule.event_type)
            .select_related("lead")
            .order_by("-id")[:15]
        )
        context = {**self.admin_site.each_context(request), "rule": rule, "recent": recent, "opts": self.model._meta}
        event_id = request.GET.get("event", "").strip()
        if event_id:
            event = NormalizedEvent.objects.filter(pk=event_id).first() if event_id.isdigit() else None
            if event is None or event.client_id != rule.client_id:
                context["error"] = f"No normalized event #{event_id} of {rule.client}."
            else:
                context["event"] = event
                context["verdict"] = rule_explain(rule=rule, event=event)
        return TemplateResponse(request, "admin/workflows/automationrule/test.html", context)

    @admin.display(description="test")
    def test_link(self, obj):
        if not obj.pk:
            return "—"
        return format_html(
            '<a href="{}">Test against a past event…</a>', reverse("admin:workflows_automationrule_test", args=[obj.pk])
        )

    @admin.display(description="history")
    def history_link(self, obj):
        if not obj.pk:
            return "—"
        count = AdminAction.objects.filter(target_type="workflows.automationrule", target_id=str(obj.pk)).count()
        url = reverse("admin:adminops_adminaction_changelist")
        return format_html(
            '<a href="{}?target_type=workflows.automationrule&target_id={}">{} logged change(s)</a>', url, obj.pk, count
        )
