"""Published proof over the REST API (/api/v1/summaries/, /api/v1/metric-cards/): read only.

What the portal page shows, as JSON: only **published** summaries and metric cards, only their
client-safe fields. Never the internal draft, internal notes, evidence, check runs, who drafted,
approved or published them, or an override reason; drafts and their review live in the admin.

Scoping as everywhere in /api/v1 (zartsalgo/api.py): a client's own API user sees their client's
published items, another client's id answers 404 (as an unknown id or an unpublished item does);
staff see every client's published items (`?client=` narrows).

A metric card whose source is stale reads as the portal shows it (portal.selectors.card_display):
`current_value` and `health` are null, `is_stale` true and `status_label` says since when — a figure from a
provider that stopped sending must not look current here either.
"""

from __future__ import annotations

from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers

from zartsalgo.api import IdFilter, OutputSerializer, ScopedMixin

from .models import MetricCard, Summary
from .selectors import card_display, published_cards, published_summaries


class SummaryOutput(OutputSerializer):
    """A published summary: its period, title and client-safe body."""

    class Meta:
        model = Summary
        fields = ("id", "client", "period_start", "period_end", "title", "body", "published_at")
        read_only_fields = fields


class MetricCardOutput(OutputSerializer):
    """A published metric card: the number, its baseline before the client joined, how it is going,
    what happens next, and how the portal shows it right now (value withheld while the source is
    stale)."""

    current_value = serializers.SerializerMethodField(
        help_text="The period's value; null when there is none or when the source is stale (see is_stale)."
    )
    health = serializers.SerializerMethodField(
        help_text="How it is going against the baseline; null while the source is stale (the value is withheld)."
    )
    value_text = serializers.SerializerMethodField(help_text='As the portal shows it, e.g. "15 clicks", "4.3%", "—".')
    baseline_text = serializers.SerializerMethodField(help_text='e.g. "5 clicks" or "No baseline".')
    status_label = serializers.SerializerMethodField(help_text='"On track", "Watch", "Off track" or "Stale since …".')
    is_stale = serializers.SerializerMethodField(help_text="The source stopped sending: the value is withheld.")
    stale_note = serializers.SerializerMethodField(help_text="Why the value is withheld (empty when not stale).")

    class Meta:
        model = MetricCard
        fields = (
            "id",
            "client",
            "period_start",
            "period_end",
            "metric_key",
            "metric_label",
            "source_label",
            "unit",
            "baseline_value",
            "current_value",
            "health",
            "next_action",
            "meaning",
            "value_text",
            "baseline_text",
            "status_label",
            "is_stale",
            "stale_note",
            "published_at",
        )
        read_only_fields = fields

    def _shown(self, obj: MetricCard):
        # One card_display per card per response, shared by the fields below.
        cache = self.context.setdefault("_card_display", {})
        if obj.pk not in cache:
            cache[obj.pk] = card_display(obj)
        return cache[obj.pk]

    @extend_schema_field(
        serializers.DecimalField(max_digits=12, decimal_places=2, allow_null=True, coerce_to_string=True)
    )
    def get_current_value(self, obj: MetricCard) -> str | None:
        if obj.current_value is None or self._shown(obj).is_stale:
            return None
        return serializers.DecimalField(max_digits=12, decimal_places=2).to_representation(obj.current_value)

    @extend_schema_field(serializers.ChoiceField(choices=MetricCard.Health.choices, allow_null=True))
    def get_health(self, obj: MetricCard) -> str | None:
        return None if self._shown(obj).is_stale else obj.health

    @extend_schema_field(serializers.CharField())
    def get_value_text(self, obj: MetricCard) -> str:
        return self._shown(obj).value_text

    @extend_schema_field(serializers.CharField())
    def get_baseline_text(self, obj: MetricCard) -> str:
        return self._shown(obj).baseline_text

    @extend_schema_field(serializers.CharField())
    def get_status_label(self, obj: MetricCard) -> str:
        return self._shown(obj).status_label

    @extend_schema_field(serializers.BooleanField())
    def get_is_stale(self, obj: MetricCard) -> bool:
        return self._shown(obj).is_stale

    @extend_schema_field(serializers.CharField(allow_blank=True))
    def get_stale_note(self, obj: MetricCard) -> str:
        return self._shown(obj).stale_note


class SummaryFilter(filters.FilterSet):
    client = IdFilter(field_name="client_id")
    period_end_after = filters.DateFilter(field_name="period_end", lookup_expr="gte", help_text="Inclusive.")
    period_end_before = filters.DateFilter(field_name="period_end", lookup_expr="lt", help_text="Exclusive.")

    class Meta:
        model = Summary
        fields = ()


class MetricCardFilter(SummaryFilter):
    metric_key = filters.CharFilter()

    class Meta:
        model = MetricCard
        fields = ()


_SCOPE_NOTE = "Published items only; a client's API user sees their own client's, staff every client's."


@extend_schema_view(get=extend_schema(summary="List published summaries", description=_SCOPE_NOTE, tags=["portal"]))
class SummaryListApi(ScopedMixin, generics.ListAPIView):
    serializer_class = SummaryOutput
    filterset_class = SummaryFilter

    def get_queryset(self):
        return self.scope.filter(published_summaries())


@extend_schema_view(get=extend_schema(summary="Read a published summary", description=_SCOPE_NOTE, tags=["portal"]))
class SummaryDetailApi(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = SummaryOutput

    def get_queryset(self):
        return self.scope.filter(published_summaries())


@extend_schema_view(get=extend_schema(summary="List published metric cards", description=_SCOPE_NOTE, tags=["portal"]))
class MetricCardListApi(ScopedMixin, generics.ListAPIView):
    serializer_class = MetricCardOutput
    filterset_class = MetricCardFilter

    def get_queryset(self):
        return self.scope.filter(published_cards())


@extend_schema_view(get=extend_schema(summary="Read a published metric card", description=_SCOPE_NOTE, tags=["portal"]))
class MetricCardDetailApi(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = MetricCardOutput

    def get_queryset(self):
        return self.scope.filter(published_cards())
