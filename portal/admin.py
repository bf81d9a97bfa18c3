"""Staff admin for portal logins and client-facing proof. Thin: every change goes through
portal.services; the pages show the latest checks and link to the leads and events behind each
item (traceability: the lead list is one click, a lead's timeline the second)."""

from django import forms
from django.contrib import admin, messages
from django.template.response import TemplateResponse
from django.utils.html import format_html, format_html_join

from integrations.search_console import PROVIDER as SEARCH_CONSOLE
from zartsalgo.admin_tools import change_link
from zartsalgo.errors import ApplicationError

from . import services
from .models import CheckRun, ClientUser, MetricCard, ProofStatus, Summary
from .search_console_cards import search_console_cards_compute
from .selectors import (
    card_display,
    check_run_failures,
    check_run_latest,
    proof_events_url,
    proof_leads_url,
    proof_trace_counts,
)


@admin.register(ClientUser)
class ClientUserAdmin(admin.ModelAdmin):
    list_display = ("user", "client", "role", "created_at")
    list_filter = ("client", "role")
    list_select_related = ("user", "client")
    search_fields = ("user__username", "user__email")
    autocomplete_fields = ("user", "client")


_STATUS_ICON = {"pass": "✔", "warn": "⚠", "fail": "✖"}


def render_check_run(run: CheckRun | None) -> str:
    if run is None:
        return "Not checked yet."
    rows = []
    for result in run.results.all():
        details = result.details or {}
        reasons = []
        for group in details.get("groups", []):
            reasons.append(f"leads {', '.join(map(str, group['lead_ids']))}: {group['reason']}")
        for lead in details.get("leads", []):
            reasons.append(f"lead {lead['lead_id']}: {'; '.join(lead['reasons'])}")
        for conn in details.get("connections", []):
            if conn.get("status") != "pass":
                reasons.append(f"{conn['provider']} #{conn['connection_id']}: {conn['reason']}")
        more = details.get("total_flagged", 0) - len(details.get("leads", details.get("groups", [])))
        if details.get("leads") and more > 0:
            reasons.append(f"… and {more} more")
        rows.append(
            (
                _STATUS_ICON.get(result.status, ""),
                result.name,
                result.status,
                result.summary,
                format_html_join("", "<li>{}</li>", ((r,) for r in reasons[:60])),
            )
        )
    return format_html(
        "<p>Run #{} by {} at {} — overall <strong>{}</strong></p><table><tbody>{}</tbody></table>",
        run.pk,
        run.ran_by_label,
        run.ran_at.strftime("%Y-%m-%d %H:%M"),
        run.status,
        format_html_join("", "<tr><td>{} {}</td><td><strong>{}</strong></td><td>{}<ul>{}</ul></td></tr>", rows),
    )


class ProofDraftForm(forms.ModelForm):
    """The add page drafts: pick the client and the period, the services compute the rest."""

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("period_start"), cleaned.get("period_end")
        if start and end and end < start:
            self.add_error("period_end", "The period ends before it starts.")
        return cleaned


class ProofAdmin(admin.ModelAdmin):
    """What summaries and cards share: the status trail, checks, traceability and the actions."""

    list_filter = ("status", "client")
    list_select_related = ("client", "approved_by")
    date_hierarchy = "period_end"
    ordering = ("-period_end", "-id")
    actions = ("run_checks", "approve", "publish", "retract")
    content_fields: tuple = ()
    internal_fields: tuple = ()
    add_fields: tuple = ("client", "period_start", "period_end")
    trail_fields = (
        "status",
        "client",
        ("period_start", "period_end"),
        "drafted_by_label",
        ("content_changed_at", "checked_at"),
        ("approved_by", "approved_at"),
        ("published_by", "published_at"),
        "publish_override_reason",
        ("retracted_by", "retracted_at"),
        "retracted_reason",
    )

    def get_fieldsets(self, request, obj=None):
        if obj is None:
            return ((None, {"fields": self.add_fields}),)
        return (
            ("Traceability", {"fields": ("trace",)}),
            ("Client-facing", {"fields": self.content_fields}),
            ("Internal only (never shown in the portal)", {"fields": self.internal_fields}),
            ("Latest checks", {"fields": ("latest_checks",)}),
            ("Approval trail", {"fields": self.trail_fields}),
        )

    def get_form(self, request, obj=None, **kwargs):
        if obj is None:
            kwargs["form"] = ProofDraftForm
            kwargs["fields"] = self.add_fields
        return super().get_form(request, obj, **kwargs)

    def get_readonly_fields(self, request, obj=None):
        if obj is None:
            return ()
        trail = [f for entry in self.trail_fields for f in (entry if isinstance(entry, tuple) else (entry,))]
        # Published text is frozen: retract first, then edit (which sends it back to draft).
        flat = [f for entry in self.content_fields for f in (entry if isinstance(entry, tuple) else (entry,))]
        frozen = flat if obj.status == ProofStatus.PUBLISHED else []
        return (*trail, *frozen, "trace", "latest_checks", *self.extra_readonly)

    extra_readonly: tuple = ()

    def has_delete_permission(self, request, obj=None):
        # The approval trail is evidence of what a client was shown; only engineers delete.
        return request.user.is_superuser

    @admin.display(description="behind this")
    def trace(self, obj):
        leads, events = proof_trace_counts(item=obj)
        return format_html(
            '<a href="{}">{} lead{} behind this</a> · <a href="{}">{} source event{}</a>'
            "<br><small>Each lead's page shows its timeline and events.</small>",
            proof_leads_url(item=obj),
            leads,
            "" if leads == 1 else "s",
            proof_events_url(item=obj),
            events,
            "" if events == 1 else "s",
        )

    @admin.display(description="checks")
    def latest_checks(self, obj):
        return render_check_run(check_run_latest(item=obj))

    def save_model(self, request, obj, form, change):
        try:
            if not change:
                created = self.draft(request, form.cleaned_data)
                obj.pk, obj._state.adding = created.pk, False
                return
            data = {k: form.cleaned_data[k] for k in form.changed_data if k in self.editable_names}
            if data:
                self.update(obj=obj, actor=request.user, data=data)
        except ApplicationError as exc:
            messages.error(request, exc.message)

    def save_related(self, request, form, formsets, change):
        # Nothing to save besides the services' own writes (no inlines, no m2m).
        return None

    @property
    def editable_names(self) -> set[str]:
        return {*self.content_fields, *self.internal_fields}

    def _each(self, request, queryset, verb, call):
        done = 0
        for item in queryset.select_related("client")[:200]:
            try:
                call(item)
                done += 1
            except ApplicationError as exc:
                messages.error(request, exc.message)
        if done:
            self.message_user(request, f"{done} item(s) {verb}.", messages.SUCCESS)

    @admin.action(description="Run data-quality checks", permissions=("change",))
    def run_checks(self, request, queryset):
        self._each(request, queryset, "checked", lambda item: services.proof_check(item=item, actor=request.user))

    @admin.action(description="Approve (as me)", permissions=("change",))
    def approve(self, request, queryset):
        self._each(request, queryset, "approved", lambda item: services.proof_approve(item=item, actor=request.user))

    @admin.action(description="Publish to the client portal…", permissions=("change",))
    def publish(self, request, queryset):
        items = list(queryset.select_related("client")[:200])
        runs = {item.pk: check_run_latest(item=item) for item in items}
        failing = {pk: check_run_failures(run=run) for pk, run in runs.items() if run}
        if "apply" not in request.POST:
            return self._confirm(
                request,
                items,
                title=f"Publish {len(items)} item(s) to the client portal",
                button="Publish",
                rows=[(item, runs[item.pk], failing.get(item.pk, [])) for item in items],
                reason_label="Override reason (required when a check failed; recorded in the log)",
                reason_required=any(failing.values()),
            )
        reason = request.POST.get("reason", "")
        self._each(
            request,
            queryset,
            "published",
            lambda item: services.proof_publish(item=item, actor=request.user, override_reason=reason),
        )
        return None

    @admin.action(description="Retract from the client portal…", permissions=("change",))
    def retract(self, request, queryset):
        items = list(queryset.select_related("client")[:200])
        if "apply" not in request.POST or not request.POST.get("reason", "").strip():
            return self._confirm(
                request,
                items,
                title=f"Retract {len(items)} item(s) from the client portal",
                button="Retract",
                rows=[(item, None, []) for item in items],
                reason_label="Why it is retracted (the client saw it; recorded in the log)",
                reason_required=True,
            )
        reason = request.POST["reason"]
        self._each(
            request,
            queryset,
            "retracted",
            lambda item: services.proof_retract(item=item, actor=request.user, reason=reason),
        )
        return None

    def _confirm(self, request, items, *, title, button, rows, reason_label, reason_required):
        return TemplateResponse(
            request,
            "portal/admin_proof_action.html",
            {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": title,
                "rows": rows,
                "action": request.POST.get("action", ""),
                "button": button,
                "reason_label": reason_label,
                "reason_required": reason_required,
            },
        )


@admin.register(Summary)
class SummaryAdmin(ProofAdmin):
    list_display = ("title", "client", "period_start", "period_end", "status", "approved_by", "published_at")
    search_fields = ("title",)
    content_fields = ("title", "body")
    internal_fields = ("internal_draft", "summarizer_and_evidence")
    extra_readonly = ("summarizer_and_evidence",)

    @property
    def editable_names(self) -> set[str]:
        return {"title", "body", "internal_draft"}

    @admin.display(description="summarizer / evidence")
    def summarizer_and_evidence(self, obj):
        return format_html("<code>{}</code><pre>{}</pre>", obj.summarizer, obj.evidence)

    def draft(self, request, data):
        return services.summary_draft(
            client=data["client"], period_start=data["period_start"], period_end=data["period_end"], actor=request.user
        )

    def update(self, *, obj, actor, data):
        return services.summary_update(summary=obj, actor=actor, data=data)


@admin.register(MetricCard)
class MetricCardAdmin(ProofAdmin):
    list_display = (
        "metric_label",
        "client",
        "source_label",
        "period_end",
        "shown_value",
        "shown_status",
        "status",
        "published_at",
    )
    list_select_related = ("client", "approved_by", "connection")
    add_fields = ("client", "period_start", "period_end", "connection")
    content_fields = (
        "display_now",
        ("source_label", "connection"),
        ("metric_key", "metric_label", "unit"),
        ("baseline_value", "current_value", "health"),
        "next_action",
        "meaning",
    )
    internal_fields = ("internal_notes", "evidence")
    extra_readonly = ("display_now", "metric_key", "evidence")

    @property
    def editable_names(self) -> set[str]:
        return {*services.CARD_CONTENT_FIELDS, *services.CARD_INTERNAL_FIELDS}

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        if obj is None and "connection" in form.base_fields:
            form.base_fields["connection"].required = False
            form.base_fields[
                "connection"
            ].help_text = "Optional: the provider whose freshness governs these cards. Empty = all sources."
        return form

    @admin.display(description="as shown now")
    def display_now(self, obj):
        shown = card_display(obj)
        if shown.is_stale:
            return format_html(
                '<strong style="color:#b00">{}</strong> — the portal shows “—” instead of {}. {}',
                shown.status_label,
                obj.current_value,
                shown.stale_note,
            )
        return format_html("{} (baseline {}) · {}", shown.value_text, shown.baseline_text, shown.status_label)

    @admin.display(description="value")
    def shown_value(self, obj):
        return card_display(obj).value_text

    @admin.display(description="health")
    def shown_status(self, obj):
        return card_display(obj).status_label

    def draft(self, request, data):
        connection = data.get("connection")
        if connection is not None and connection.provider == SEARCH_CONSOLE:
            # A Search Console connection: its own four cards (clicks, impressions, CTR, position).
            cards = search_console_cards_compute(
                client=data["client"],
                connection=connection,
                period_start=data["period_start"],
                period_end=data["period_end"],
                actor=request.user,
            )
            messages.info(request, f"{len(cards)} Search Console card(s) drafted or refreshed.")
            return cards[0]
        cards = services.metric_cards_compute(
            client=data["client"],
            period_start=data["period_start"],
            period_end=data["period_end"],
            connection=connection,
            actor=request.user,
        )
        messages.info(request, f"{len(cards)} metric card(s) drafted or refreshed.")
        return cards[0]

    def update(self, *, obj, actor, data):
        return services.metric_card_update(card=obj, actor=actor, data=data)


@admin.register(CheckRun)
class CheckRunAdmin(admin.ModelAdmin):
    """History of check runs. Internal only, written by portal.services, never edited."""

    list_display = ("ran_at", "client", "subject_link", "status", "ran_by_label")
    list_filter = ("status", "client")
    list_select_related = ("client", "summary", "card")
    ordering = ("-ran_at", "-id")
    fields = (
        "client",
        "subject_link",
        "period_start",
        "period_end",
        "ran_by_label",
        "ran_at",
        "status",
        "results_html",
    )
    readonly_fields = fields

    @admin.display(description="for")
    def subject_link(self, obj):
        if obj.summary_id:
            return change_link("portal_summary", obj.summary_id, obj.summary)
        return change_link("portal_metriccard", obj.card_id, obj.card)

    @admin.display(description="results")
    def results_html(self, obj):
        return render_check_run(obj)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
