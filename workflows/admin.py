"""Staff admin for workflows. Thin: every change goes through workflows.services / engine.

- Workflows: status, publish, holds; the draft's steps edited inline (validated on save), published
  versions read-only.
- Enrollments: per-lead position ("where is each contact"), manual enroll (the add form),
  unenroll, release of a hold (an unknown send needs a person to say whether it went out).
- Staff tasks: "assigned to me" first; mark done.
- Outbound messages and step runs: the record, read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from integrations.admin import ReadOnlyAdmin
from leads.models import Lead
from zartsalgo.admin_tools import FastListAdminMixin, ReadOnlyInline, add_lead_inlines, change_link
from zartsalgo.errors import ApplicationError

from . import engine, services
from .models import Enrollment, OutboundMessage, StaffTask, Step, StepRun, Workflow, WorkflowVersion
from .steps import validate_step_config


class StepInlineForm(forms.ModelForm):
    class Meta:
        model = Step
        fields = ("position", "key", "kind", "name", "config")

    def clean(self):
        cleaned = super().clean()
        if cleaned.get("kind") and cleaned.get("config") is not None:
            try:
                cleaned["config"] = validate_step_config(cleaned["kind"], cleaned["config"])
            except ApplicationError as exc:
                for field, message in exc.extra.get("fields", {}).items():
                    self.add_error("config", f"{field}: {message}")
        return cleaned


class StepInline(admin.TabularInline):
    model = Step
    form = StepInlineForm
    extra = 0
    fields = ("position", "key", "kind", "name", "config")

    def _editable(self, obj) -> bool:
        return obj is not None and not obj.is_published

    def has_add_permission(self, request, obj=None):
        return self._editable(obj) and super().has_add_permission(request, obj)

    def has_change_permission(self, request, obj=None):
        return self._editable(obj) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None):
        return self._editable(obj) and super().has_delete_permission(request, obj)


@admin.register(WorkflowVersion)
class WorkflowVersionAdmin(admin.ModelAdmin):
    list_display = ("__str__", "workflow", "number", "published_at", "published_by_label", "notes")
    list_filter = ("workflow__client",)
    list_select_related = ("workflow",)
    readonly_fields = ("workflow", "number", "published_at", "published_by_label", "notes")
    fields = readonly_fields
    inlines = (StepInline,)

    def has_add_permission(self, request):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def save_formset(self, request, form, formset, change):
        # Changes to the draft's steps: logged as one edit of the workflow.
        super().save_formset(request, form, formset, change)
        version = form.instance
        from adminops.services import action_record

        action_record(
            verb="workflow.draft_edit",
            actor=request.user,
            client=version.workflow.client,
            target=version.workflow,
            summary=f"Edited the steps of {version}",
        )


class EnrollmentInline(admin.TabularInline):
    model = Enrollment
    extra = 0
    fields = ("lead", "state", "step_key", "next_run_at", "hold_reason")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def get_queryset(self, request):
        return super().get_queryset(request).filter(state__in=list(Enrollment.LIVE_STATES)).select_related("lead")[:50]

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Workflow)
class WorkflowAdmin(admin.ModelAdmin):
    list_display = ("name", "client", "status", "version_link", "draft_link", "sends_held", "updated_at")
    list_filter = ("status", "client", "sends_held")
    list_select_related = ("client", "published_version")
    search_fields = ("name", "client__name")
    fields = (
        "client",
        "name",
        "description",
        "owner",
        "status",
        "version_link",
        "draft_link",
        "preview_link",
        "sends_held_reason",
    )
    readonly_fields = ("status", "version_link", "draft_link", "preview_link", "sends_held_reason")
    autocomplete_fields = ("client", "owner")
    actions = ("publish", "pause", "activate", "archive", "hold_sends", "release_sends")

    def get_urls(self):
        return [
            path(
                "<int:pk>/preview/",
                self.admin_site.admin_view(self.preview_view),
                name="workflows_workflow_preview",
            ),
            *super().get_urls(),
        ]

    def preview_view(self, request, pk: int):
        """For a real lead: when each step would fire, in the client's local time."""
        workflow = Workflow.objects.select_related("client", "published_version").get(pk=pk)
        if not self.has_view_permission(request, workflow):
            raise PermissionDenied
        version = workflow.published_version or workflow.versions.order_by("-number").first()
        context = {**self.admin_site.each_context(request), "workflow": workflow, "version": version, "rows": []}
        lead_id = request.GET.get("lead", "").strip()
        if lead_id:
            lead = Lead.objects.filter(pk=lead_id, client=workflow.client).first() if lead_id.isdigit() else None
            if lead is None:
                context["error"] = f"No lead #{lead_id} of {workflow.client}."
            else:
                context["lead"] = lead
                context["rows"] = engine.workflow_preview(workflow=workflow, lead=lead, version=version)
        return TemplateResponse(request, "admin/workflows/preview.html", context)

    @admin.display(description="timeline preview")
    def preview_link(self, obj):
        if not obj.pk:
            return "—"
        return format_html(
            '<a href="{}">Preview for a lead…</a>', reverse("admin:workflows_workflow_preview", args=[obj.pk])
        )

    @admin.display(description="running version")
    def version_link(self, obj):
        version = obj.published_version
        return change_link("workflows_workflowversion", version.pk, f"v{version.number}") if version else "—"

    @admin.display(description="draft (edit steps here)")
    def draft_link(self, obj):
        draft = obj.versions.filter(published_at__isnull=True).first() if obj.pk else None
        return change_link("workflows_workflowversion", draft.pk, f"v{draft.number} draft") if draft else "—"

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)  # name/description/owner only
            return
        created = services.workflow_create(
            client=obj.client, name=obj.name, description=obj.description, owner=obj.owner, actor=request.user
        )
        obj.pk, obj.status = created.pk, created.status
        obj._state.adding = False

    def _each(self, request, queryset, fn, done: str):
        count = 0
        for workflow in queryset:
            try:
                fn(workflow)
                count += 1
            except ApplicationError as exc:
                self.message_user(request, f"{workflow}: {exc}", messages.ERROR)
        if count:
            self.message_user(request, f"{count} workflow(s) {done}.")

    @admin.action(description="Publish the draft (new enrollments run it)")
    def publish(self, request, queryset):
        self._each(request, queryset, lambda w: services.workflow_publish(workflow=w, actor=request.user), "published")

    @admin.action(description="Pause (no new enrollments; enrolled leads go on)")
    def pause(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda w: services.workflow_set_status(workflow=w, status="paused", actor=request.user),
            "paused",
        )

    @admin.action(description="Activate")
    def activate(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda w: services.workflow_set_status(workflow=w, status="active", actor=request.user),
            "activated",
        )

    @admin.action(description="Archive")
    def archive(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda w: services.workflow_set_status(workflow=w, status="archived", actor=request.user),
            "archived",
        )

    @admin.action(description="Hold all sends (keep everyone's place)")
    def hold_sends(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda w: services.workflow_hold_sends(
                workflow=w, held=True, actor=request.user, reason=f"Held by {request.user.get_username()} in the admin"
            ),
            "holding sends",
        )

    @admin.action(description="Release held sends (resume where each stopped)")
    def release_sends(self, request, queryset):
        self._each(
            request,
            queryset,
            lambda w: services.workflow_hold_sends(workflow=w, held=False, actor=request.user),
            "sending again",
        )


class EnrollForm(forms.ModelForm):
    """The add form is the manual enroll: a lead and an active workflow of its client."""

    class Meta:
        model = Enrollment
        fields = ("workflow", "lead")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["workflow"].queryset = Workflow.objects.filter(status=Workflow.Status.ACTIVE)


class StepRunInline(admin.TabularInline):
    model = StepRun
    extra = 0
    can_delete = False
    fields = ("visit", "step_key", "step_kind", "state", "started_at", "finished_at", "summary")
    readonly_fields = fields
    ordering = ("visit",)

    def has_add_permission(self, request, obj=None):
        return False


class MessageInline(admin.TabularInline):
    model = OutboundMessage
    extra = 0
    can_delete = False
    fields = ("step_key", "channel", "to", "status", "provider_id", "sent_at", "error")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Enrollment)
class EnrollmentAdmin(FastListAdminMixin, admin.ModelAdmin):
    list_display = ("lead_link", "workflow", "state", "step_key", "next_run_local", "hold_reason", "created_at")
    list_filter = ("state", "exit_reason", "workflow__client", "workflow")
    list_select_related = ("lead", "workflow", "client")
    date_hierarchy = "created_at"
    sortable_by = ("created_at", "next_run_at")
    raw_id_fields = ("lead",)
    readonly_fields = (
        "workflow",
        "version",
        "lead",
        "state",
        "step_key",
        "visit",
        "next_run_local",
        "next_run_at",
        "waiting_for",
        "hold_reason",
        "held_at",
        "exit_reason",
        "exit_detail",
        "finished_at",
        "enrolled_by_label",
        "source_event",
        "created_at",
    )
    inlines = (StepRunInline, MessageInline)
    actions = ("unenroll", "release_resume", "release_was_sent", "release_not_sent")

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id, obj.lead)

    @admin.display(description="next run (client's local time)", ordering="next_run_at")
    def next_run_local(self, obj):
        if obj.next_run_at is None or obj.state not in Enrollment.LIVE_STATES:
            return "—"
        return f"{obj.next_run_at.astimezone(obj.client.tz):%a %d %b %Y %H:%M} {obj.client.time_zone}"

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is None:
            kwargs["form"] = EnrollForm
        return super().get_form(request, obj, change=change, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        return self.readonly_fields if obj else ()

    def get_fields(self, request, obj=None):
        return ("workflow", "lead") if obj is None else self.readonly_fields

    def get_inlines(self, request, obj):
        return self.inlines if obj else ()

    def has_change_permission(self, request, obj=None):
        return request.user.has_perm("workflows.change_enrollment")

    def has_delete_permission(self, request, obj=None):
        return False  # unenroll instead: the history stays

    def save_model(self, request, obj, form, change):
        if change:
            return
        try:
            created = services.enrollment_create(workflow=obj.workflow, lead=obj.lead, actor=request.user)
        except ApplicationError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            raise
        obj.pk = created.pk
        obj._state.adding = False

    def _release(self, request, queryset, resolution: str, label: str):
        done = 0
        for enrollment in queryset.filter(state=Enrollment.State.HELD):
            try:
                engine.enrollment_release(enrollment=enrollment, actor=request.user, resolution=resolution)
                done += 1
            except ApplicationError as exc:
                self.message_user(request, f"{enrollment}: {exc}", messages.ERROR)
        self.message_user(request, f"{done} enrollment(s) released ({label}).")

    @admin.action(description="Unenroll")
    def unenroll(self, request, queryset):
        done = 0
        for enrollment in queryset.filter(state__in=list(Enrollment.LIVE_STATES)):
            services.enrollment_unenroll(enrollment=enrollment, actor=request.user, reason="Unenrolled in the admin")
            done += 1
        self.message_user(request, f"{done} enrollment(s) unenrolled.")

    @admin.action(description="Release hold (resume where it stopped)")
    def release_resume(self, request, queryset):
        self._release(request, queryset, "", "resumed")

    @admin.action(description="Release: the held message WAS sent (go on)")
    def release_was_sent(self, request, queryset):
        self._release(request, queryset, "sent", "marked sent")

    @admin.action(description="Release: the held message was NOT sent (send it again)")
    def release_not_sent(self, request, queryset):
        self._release(request, queryset, "not_sent", "sending again")


class MineFilter(admin.SimpleListFilter):
    title = "assigned to"
    parameter_name = "assignee"

    def lookups(self, request, model_admin):
        return [("me", "Me"), ("nobody", "Nobody"), ("all", "Everyone")]

    def choices(self, changelist):
        # "Me" is the default view: "my tasks".
        value = self.value() or "me"
        for lookup, title in self.lookup_choices:
            yield {
                "selected": value == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        match self.value() or "me":
            case "me":
                return queryset.filter(assignee=request.user)
            case "nobody":
                return queryset.filter(assignee__isnull=True)
        return queryset


@admin.register(StaffTask)
class StaffTaskAdmin(admin.ModelAdmin):
    list_display = ("title", "lead_link", "assignee", "due_at", "status", "overdue")
    list_filter = (MineFilter, "status", "client")
    list_select_related = ("lead", "assignee")
    raw_id_fields = ("lead", "enrollment")
    readonly_fields = ("client", "lead", "enrollment", "completed_at", "completed_by")
    fields = ("title", "notes", "assignee", "due_at", "status", *readonly_fields)
    actions = ("mark_done",)

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id, obj.lead) if obj.lead_id else "—"

    @admin.display(boolean=True)
    def overdue(self, obj):
        return bool(obj.status == StaffTask.Status.OPEN and obj.due_at and obj.due_at < timezone.now())

    def has_add_permission(self, request):
        return False

    @admin.action(description="Mark done")
    def mark_done(self, request, queryset):
        count = services.staff_tasks_complete(tasks=queryset, actor=request.user)
        self.message_user(request, f"{count} task(s) done.")


@admin.register(OutboundMessage)
class OutboundMessageAdmin(FastListAdminMixin, ReadOnlyAdmin):
    list_display = ("created_at", "channel", "to", "status", "provider", "provider_id", "lead_link", "step_key")
    list_filter = ("status", "channel", "client")
    list_select_related = ("lead",)
    date_hierarchy = "created_at"
    sortable_by = ("created_at",)

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id, obj.lead)


@admin.register(StepRun)
class StepRunAdmin(FastListAdminMixin, ReadOnlyAdmin):
    list_display = ("started_at", "enrollment", "step_key", "step_kind", "visit", "state", "summary")
    list_filter = ("state", "step_kind", "client")
    list_select_related = ("enrollment__lead", "enrollment__workflow")
    date_hierarchy = "started_at"
    sortable_by = ("started_at",)


class LeadEnrollmentsInline(ReadOnlyInline):
    """On the lead's page: every workflow it is or was in, where it stands, and each step it ran."""

    model = Enrollment
    fk_name = "lead"
    fields = ("workflow", "state", "step_key", "next_run_at", "exit_reason", "steps_run", "created_at")
    verbose_name_plural = "workflow enrollments (with the steps each ran)"

    def get_queryset(self, request):
        # One query for every enrollment's step runs, not one per row.
        return super().get_queryset(request).select_related("workflow").prefetch_related("step_runs")

    @admin.display(description="steps run (oldest first)")
    def steps_run(self, obj):
        runs = sorted(obj.step_runs.all(), key=lambda r: (r.started_at, r.pk))
        return " · ".join(f"{r.step_key} #{r.visit}: {r.state}" for r in runs) or "—"


class LeadMessagesInline(ReadOnlyInline):
    model = OutboundMessage
    fk_name = "lead"
    ordering = ("-created_at", "-id")
    fields = ("created_at", "channel", "to", "status", "enrollment", "step_key", "sent_at", "provider_id", "error")
    verbose_name_plural = "outbound messages"


class LeadTasksInline(ReadOnlyInline):
    model = StaffTask
    fk_name = "lead"
    ordering = ("status", "due_at", "id")
    fields = ("title", "status", "assignee", "due_at", "enrollment", "completed_at")
    verbose_name_plural = "staff tasks"


add_lead_inlines(LeadEnrollmentsInline, LeadMessagesInline, LeadTasksInline)
from . import admin_rules  # noqa: E402, F401 - registers the automation rule admin
