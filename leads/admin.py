"""Staff admin for clients and leads. Thin: every change goes through leads.services."""

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import build_q_object_from_lookup_parameters
from django.contrib.auth import get_user_model
from django.db import OperationalError, connections
from django.db.models import Max, Min, QuerySet
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join

from adminops.models import AdminAction
from zartsalgo.admin_tools import CappedCountPaginator, FastChangeList, FastListAdminMixin, change_link
from zartsalgo.errors import ApplicationError

from . import services
from .admin_reports import ClientReportAdminMixin, NextActionFilter, SourceAttributionFilter
from .models import Activity, Client, Consent, Lead
from .selectors import lead_name_prefix_ids, lead_search_name_prefix, lead_search_q

ER_STATEMENT_TIMEOUT = 1969  # MariaDB: "Query execution was interrupted (max_statement_time exceeded)"


@admin.register(Client)
class ClientAdmin(ClientReportAdminMixin, admin.ModelAdmin):
    # report_link / the report page: leads.admin_reports (the lead report with drill-down).
    list_display = (
        "name",
        "slug",
        "status",
        "time_zone",
        "quiet_hours_start",
        "quiet_hours_end",
        "joined_on",
        "report_link",
    )
    readonly_fields = ("report_link",)
    list_filter = ("status",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    fieldsets = (
        (None, {"fields": ("name", "slug", "status", "joined_on", "report_link")}),
        ("Messaging", {"fields": ("time_zone", "phone_region", "quiet_hours_start", "quiet_hours_end")}),
        ("Coverage", {"fields": ("markets", "service_catalog")}),
    )

    def save_model(self, request, obj, form, change):
        services.client_save(client=obj, changed_fields=form.changed_data, actor=request.user, created=not change)


class MarketFilter(admin.SimpleListFilter):
    """Markets come from the clients' configured lists, not a DISTINCT over every lead."""

    title = "market"
    parameter_name = "market"

    def lookups(self, request, model_admin):
        names = sorted({m for markets in Client.objects.values_list("markets", flat=True) for m in markets or []})
        return [(n, n) for n in names] + [("__none__", "(none)")]

    def queryset(self, request, queryset):
        if self.value() == "__none__":
            return queryset.filter(market="")
        return queryset.filter(market=self.value()) if self.value() else queryset


class OwnerFilter(admin.SimpleListFilter):
    title = "owner"
    parameter_name = "owner"

    def lookups(self, request, model_admin):
        staff = get_user_model().objects.filter(is_staff=True, is_active=True).order_by("username")
        return [("me", "Me"), ("none", "Unassigned")] + [(str(u.pk), u.get_username()) for u in staff]

    def queryset(self, request, queryset):
        value = self.value()
        if value == "me":
            return queryset.filter(owner=request.user)
        if value == "none":
            return queryset.filter(owner__isnull=True)
        return queryset.filter(owner_id=value) if value and value.isdigit() else queryset


def _newest_first(ordering) -> bool:
    """The list's default order (LeadAdmin.ordering), the one lead_name_prefix_ids returns.
    (The changelist may repeat it, and may add -pk.)"""
    if not all(isinstance(o, str) for o in ordering):
        return False
    return tuple(dict.fromkeys("-id" if o == "-pk" else o for o in ordering)) == ("-captured_at", "-id")


# Shorter name prefixes keep the plain search (see LeadAdmin.get_search_results).
NAME_SEARCH_INDEX_FIRST_MIN = 3


class LeadListPaginator(CappedCountPaginator):
    """The capped count of FastListAdminMixin with a time budget, and a deferred join for later pages.

    Count: `COUNT(*) FROM (… LIMIT cap + 1)` reads at most cap + 1 matching rows, which is an
    index range read when one filter is set (every filter has a (filter, captured_at) index).
    Two filters that share no index (urgency=emergency & source=web form: 1 % of 1M leads) make
    it read the rows of one index and test the other column on each row until it has counted
    10,001: 1.3 s at 1M leads with a cold buffer pool. On MariaDB the count therefore runs under
    `max_statement_time` (ADMIN_COUNT_BUDGET_MS, 100 ms): a count that has not finished by then
    is replaced by the optimizer's estimate (below) — the page itself (50 rows, the newest
    first) is still exact. Elsewhere (SQLite in development) the plain capped count.

    Pages: `ORDER BY captured_at DESC, id DESC LIMIT 50 OFFSET 9950` reads the sort index
    backwards, but InnoDB fetches the whole 67-column row of each of the 10,000 entries it skips
    before LIMIT throws them away. Asking first for the ids only is a covering read of the same
    index (every secondary index carries the primary key); the 50 rows are then fetched by
    primary key. Page 1 keeps the single query (OFFSET 0: nothing to skip), so it costs what it
    did and a later page exactly one query more. The deepest page is bounded by the count cap.

    Name search (LeadAdmin.get_search_results marks it): the ids of the matches, newest first,
    come from the two name indexes alone (leads.selectors.lead_name_prefix_ids), capped like the
    count; count = their number (exact up to the cap), a page = its 50 rows by primary key. Two
    queries, no matching row read but the page's.
    """

    estimated = False  # True when the count was over budget and is the optimizer's estimate

    @cached_property
    def name_search_ids(self) -> list[int] | None:
        marked = getattr(getattr(self.object_list, "query", None), "lead_name_search", None)
        if marked is None:
            return None
        prefix, before_search = marked
        return lead_name_prefix_ids(before_search, prefix, limit=self.cap + 1)

    @cached_property
    def budget_seconds(self) -> float:
        return getattr(settings, "ADMIN_COUNT_BUDGET_MS", 100) / 1000

    @cached_property
    def count(self) -> int:
        if self.name_search_ids is not None:
            return len(self.name_search_ids)
        qs = self.object_list
        conn = connections[qs.db] if hasattr(qs, "db") else None
        if conn is None or not (conn.vendor == "mysql" and conn.mysql_is_mariadb) or self.budget_seconds <= 0:
            return super().count
        sql, params = qs.order_by().values("pk")[: self.cap + 1].query.sql_with_params()
        # The inner SQL is the ORM's own (values are parameters); the budget is a float we format.
        statement = f"SET STATEMENT max_statement_time={self.budget_seconds:.3f} FOR SELECT COUNT(*) FROM ({sql}) t"  # noqa: S608
        try:
            # No savepoint: on MariaDB an interrupted statement leaves the transaction usable.
            with conn.cursor() as cursor:
                cursor.execute(statement, params)
                return cursor.fetchone()[0]
        except OperationalError as exc:
            if not (exc.args and exc.args[0] == ER_STATEMENT_TIMEOUT):
                raise
        # Over budget: the optimizer's row estimate for the list's access path (EXPLAIN, ~1 ms),
        # capped like the count. Exact for one index range (a name prefix: 4,040 for "Herr"),
        # an upper bound when a second filter is tested row by row; either way the page of 50
        # rows is exact and the pager only says roughly how far the list goes.
        self.estimated = True
        with conn.cursor() as cursor:
            cursor.execute(f"EXPLAIN {sql}", params)
            columns = [c[0] for c in cursor.description]
            rows = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
        estimate = max((int(r.get("rows") or 0) for r in rows), default=0)
        return min(max(estimate, 1), self.cap + 1)

    def page(self, number):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        by_ids = self.name_search_ids is not None
        if (bottom == 0 and not by_ids) or not hasattr(self.object_list, "values_list"):
            return super().page(number)
        top = bottom + self.per_page
        if top + self.orphans >= self.count:
            top = self.count
        return self._get_page(self._rows(bottom, top), number, self)

    def _rows(self, bottom: int, top: int) -> list:
        if self.name_search_ids is not None:
            ids = self.name_search_ids[bottom:top]
        else:
            ids = list(self.object_list.values_list("pk", flat=True)[bottom:top])
        # Same queryset (filters, select_related owner, prefetch of clients), no sort needed.
        by_pk = {obj.pk: obj for obj in self.object_list.order_by().filter(pk__in=ids)}
        return [by_pk[pk] for pk in ids if pk in by_pk]


def _bounds_queryset_class(base: type, bounds_source) -> type:
    """`base` with MIN/MAX(captured_at) answered from `bounds_source` (see LeadChangeList)."""

    def aggregate(self, *args, **kwargs):
        exprs = list(kwargs.values())
        if (
            not args
            and exprs
            and all(
                isinstance(e, Min | Max) and getattr(e.get_source_expressions()[0], "name", None) == "captured_at"
                for e in exprs
            )
        ):
            return QuerySet.aggregate(bounds_source, **kwargs)
        return QuerySet.aggregate(self, *args, **kwargs)

    return type(f"Bounded{base.__name__}", (base,), {"aggregate": aggregate})


class LeadChangeList(FastChangeList):
    def get_filters(self, request):
        result = super().get_filters(request)
        # What the date hierarchy itself narrows to (year/month/day drill-down as a gte/lt range,
        # or a report link's captured_at__gte/__lt), without the other filters or the search.
        lookups = result[2]
        self.date_lookups = {k: v for k, v in lookups.items() if k.split("__")[0] == self.date_hierarchy}
        return result

    def get_queryset(self, request, exclude_parameters=None):
        qs = super().get_queryset(request, exclude_parameters)
        if self.date_hierarchy and exclude_parameters is None:
            # The date hierarchy asks for MIN/MAX(captured_at) of the filtered list twice (the
            # template tag, then datetimes()). With two filters that share no index, or a name
            # search, that reads every matching row: 1.5 s each at 1M leads. The links are taken
            # from the period drilled into instead (two probes of lead_captured_idx), so a year
            # or month link may lead to an empty page for a narrow filter, as with
            # RangeDatesMixin already between the first and the last lead.
            bounds = self.root_queryset.order_by().filter(
                build_q_object_from_lookup_parameters(getattr(self, "date_lookups", {}))
            )
            qs.__class__ = _bounds_queryset_class(qs.__class__, bounds)
        return qs

    def get_ordering_field(self, field_name):
        # Django honours any list_display position in ?o=, sortable_by only hides the header
        # links. A typed ?o=4 (email) would sort 1M rows without an index; columns outside
        # sortable_by are ignored instead, and the default index order applies.
        if field_name not in self.sortable_by:
            return None
        return super().get_ordering_field(field_name)


class ActivityInline(admin.TabularInline):
    """The lead's timeline. Read-only: provider-made and staff-made entries are history."""

    model = Activity
    extra = 0
    can_delete = False
    ordering = ("-occurred_at", "-id")
    fields = (
        "occurred_at",
        "kind",
        "summary",
        "body_preview",
        "provider",
        "provider_id",
        "delivery_status",
        "is_internal",
        "actor_label",
    )
    readonly_fields = fields
    verbose_name_plural = "Timeline (newest first)"

    @admin.display(description="body")
    def body_preview(self, obj):
        return (obj.body[:140] + "…") if len(obj.body) > 140 else obj.body

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ConsentInline(admin.TabularInline):
    model = Consent
    extra = 0
    can_delete = False
    fields = ("channel", "state", "changed_at", "evidence")
    readonly_fields = fields

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class ActionInline(admin.TabularInline):
    model = AdminAction
    fk_name = "lead"
    extra = 0
    can_delete = False
    ordering = ("-created_at", "-id")
    fields = ("created_at", "verb", "actor_label", "state", "summary")
    readonly_fields = fields
    verbose_name_plural = "Action log"

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


class LeadAdminForm(forms.ModelForm):
    add_note = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), help_text="Internal note added to the timeline."
    )

    class Meta:
        model = Lead
        fields = ("client", "status", "lost_reason", *services.STAFF_EDITABLE_FIELDS)

    def clean(self):
        cleaned = super().clean()
        client = cleaned.get("client") or getattr(self.instance, "client", None)
        if client is None:
            return cleaned
        if {"phone_raw", "email_raw"} & set(self.changed_data) or not self.instance.pk:
            for field, error in services.lead_contact_conflicts(
                lead=self.instance if self.instance.pk else None,
                client=client,
                phone=cleaned.get("phone_raw", ""),
                email=cleaned.get("email_raw", ""),
            ).items():
                if self.instance.pk:  # a new lead with a known contact simply merges
                    self.add_error(field, error)
        status, lost_reason = cleaned.get("status"), cleaned.get("lost_reason", "")
        if self.instance.pk and status and status != self.instance.status:
            allowed = services.STATUS_TRANSITIONS[self.instance.status]
            if status not in allowed:
                self.add_error("status", f"A {self.instance.status} lead can move to: {', '.join(sorted(allowed))}.")
        if status == Lead.Status.LOST and not lost_reason:
            self.add_error("lost_reason", "Choose why the lead was lost.")
        if status != Lead.Status.LOST and lost_reason:
            cleaned["lost_reason"] = ""
        return cleaned


@admin.register(Lead)
class LeadAdmin(FastListAdminMixin, admin.ModelAdmin):
    form = LeadAdminForm
    list_display = (
        "__str__",
        "client",
        "phone_display",
        "email_normalized",
        "source",
        "status",
        "market",
        "urgency",
        "owner",
        "captured_at",
        "dq",
    )
    list_display_links = ("__str__",)
    # Every filter's choices come from a small table or from `choices`, never from a DISTINCT
    # over the leads: client (the client table, 1 query), status/source/urgency/DQ (choices),
    # market (clients' configured markets), owner (staff users).
    # The last two: the leads behind the lead report's coverage and next-action numbers
    # (leads.admin_reports; its drill-down links use them).
    list_filter = (
        "client",
        "status",
        "source",
        MarketFilter,
        "urgency",
        OwnerFilter,
        "has_data_quality_issues",
        SourceAttributionFilter,
        NextActionFilter,
    )
    # "Show counts" would COUNT(*) every filter choice over the filtered list (one aggregate per
    # choice, ~40 on this page, each up to a full index scan at 1M leads): not offered here.
    show_facets = admin.ShowFacets.NEVER
    paginator = LeadListPaginator
    # Not the client: an INNER JOIN to the small client table makes MariaDB start from the
    # clients and filesort every lead; the page's clients come in one prefetch query instead.
    list_select_related = ("owner",)
    # Only columns with an index behind them can be sorted.
    sortable_by = ("captured_at", "status", "source", "urgency")
    search_fields = ("full_name",)  # shows the box; the actual lookup is lead_search_q below
    search_help_text = "Name (starts with), phone in any format, or email."
    date_hierarchy = "captured_at"
    autocomplete_fields = ("client", "owner")
    ordering = ("-captured_at", "-id")
    inlines = (ConsentInline, ActivityInline, ActionInline)

    class Media:
        css = {"all": ("admin/zartsalgo.css",)}

    actions = ("assign_to_me",)
    readonly_fields = (
        "phone_e164",
        "email_normalized",
        "captured_at",
        "first_response_at",
        "first_response_seconds",
        "last_activity_at",
        "status_changed_at",
        "quality_flags",
        "created_at",
        "updated_at",
    )
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "client",
                    ("first_name", "last_name"),
                    ("status", "lost_reason"),
                    "owner",
                    ("next_action", "next_action_due"),
                    "add_note",
                )
            },
        ),
        (
            "Contact",
            {
                "fields": (
                    ("phone_raw", "phone_e164"),
                    ("email_raw", "email_normalized"),
                    ("city", "state_region", "postal_code"),
                    "contact_method",
                )
            },
        ),
        ("Lead fields", {"fields": (("source", "source_detail"), ("service_type", "market", "urgency"))}),
        (
            "Attribution",
            {
                "classes": ("collapse",),
                "fields": (
                    ("utm_source", "utm_medium", "utm_campaign"),
                    ("utm_term", "utm_content"),
                    ("gclid", "fbclid", "msclkid"),
                    "tracking_number",
                    "landing_page",
                    "referrer",
                ),
            },
        ),
        (
            "Timing and quality",
            {
                "fields": (
                    ("captured_at", "first_response_at", "first_response_seconds"),
                    ("last_activity_at", "status_changed_at"),
                    "quality_flags",
                    ("created_at", "updated_at"),
                )
            },
        ),
    )

    @admin.display(description="phone", ordering=None)
    def phone_display(self, obj):
        return obj.phone_e164 or (
            format_html('<span title="unreadable">⚠ {}</span>', obj.phone_raw) if obj.phone_raw else ""
        )

    @admin.display(description="DQ", boolean=True)
    def dq(self, obj):
        return not obj.has_data_quality_issues

    @admin.display(description="data-quality flags")
    def quality_flags(self, obj):
        if not obj.data_quality_flags:
            return "None"
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "",
                "<li><strong>{}</strong>: {} <code>{}</code></li>",
                ((f.get("field"), f.get("reason"), f.get("value", "")) for f in obj.data_quality_flags),
            ),
        )

    def get_changelist(self, request, **kwargs):
        return LeadChangeList

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("client")

    def get_search_results(self, request, queryset, search_term):
        q = lead_search_q(search_term)
        if q is None:
            return queryset, False
        found = queryset.filter(q)
        prefix = lead_search_name_prefix(search_term)
        if (
            prefix is not None
            and len(prefix) >= NAME_SEARCH_INDEX_FIRST_MIN
            and not queryset.query.where.children
            and _newest_first(queryset.query.order_by)
        ):
            # LeadListPaginator takes the ids index-first (lead_name_prefix_ids). Only for the
            # whole list, newest first: with a filter (a client, a status) the matches' rows
            # would be read to test it, and the plain path can stop early in the filter's
            # (filter, captured_at) index; a 1-2 letter prefix matches too many names to sort
            # them all (the newest-first scan finds 50 sooner). Kept on the Query (clones copy it).
            found.query.lead_name_search = (prefix, queryset)
        return found, False

    def has_delete_permission(self, request, obj=None):
        # Leads are the anchor of traceability; only engineers may delete (e.g. a privacy purge).
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        data = form.cleaned_data
        note = data.get("add_note", "")
        try:
            if not change:
                editable = {k: data.get(k) for k in services.STAFF_EDITABLE_FIELDS if data.get(k) not in (None, "")}
                result = services.lead_create_manual(client=data["client"], data=editable, actor=request.user)
                lead = result.lead
                if data.get("status") and data["status"] != lead.status:
                    services.lead_set_status(
                        lead=lead, status=data["status"], lost_reason=data.get("lost_reason", ""), actor=request.user
                    )
                if note:
                    services.note_add(lead=lead, body=note, actor=request.user)
                if not result.created:
                    messages.warning(
                        request, f"This person already existed as lead #{lead.pk}; the new details were merged into it."
                    )
                obj.pk, obj._state.adding = lead.pk, False
                return
            changed = {k: data[k] for k in form.changed_data if k in services.STAFF_EDITABLE_FIELDS}
            services.lead_update(
                lead=obj,
                data=changed,
                actor=request.user,
                status=data.get("status"),
                lost_reason=data.get("lost_reason", ""),
                note=note,
            )
        except ApplicationError as exc:
            messages.error(request, f"{exc.message} {exc.extra or ''}")

    @admin.action(description="Assign selected leads to me")
    def assign_to_me(self, request, queryset):
        for lead in queryset[:500]:
            services.lead_update(lead=lead, data={"owner": request.user}, actor=request.user)
        self.message_user(request, f"Assigned {min(queryset.count(), 500)} lead(s) to you.")


@admin.register(Activity)
class ActivityAdmin(FastListAdminMixin, admin.ModelAdmin):
    list_display = (
        "occurred_at",
        "kind",
        "lead_link",
        "client",
        "summary",
        "provider",
        "provider_id",
        "delivery_status",
        "is_internal",
    )
    list_filter = ("kind", "client", "is_internal")
    list_select_related = ("lead", "client")
    search_fields = ("=provider_id",)
    search_help_text = "Exact provider id (MessageSid, CallSid…)."
    date_hierarchy = "occurred_at"
    sortable_by = ("occurred_at",)
    ordering = ("-occurred_at", "-id")
    readonly_fields = [f.name for f in Activity._meta.fields]

    @admin.display(description="lead")
    def lead_link(self, obj):
        return change_link("leads_lead", obj.lead_id, obj.lead)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        # Timeline entries are history: provider-made ones came from a provider, staff notes
        # are added from the lead page. Nobody edits them afterwards.
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Consent)
class ConsentAdmin(admin.ModelAdmin):
    list_display = ("lead", "channel", "state", "changed_at", "evidence")
    list_filter = ("channel", "state")
    list_select_related = ("lead",)
    autocomplete_fields = ("lead",)
    readonly_fields = ("lead", "channel", "state", "changed_at", "evidence", "source_activity")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
