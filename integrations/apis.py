"""Connections and normalized events over the REST API: read only.

No secret ever leaves here: a connection shows the *names* of the credentials its adapter uses
(the values live in the environment), and its webhook URL only to staff (the URL's token lets
anyone post deliveries). A normalized event shows its normalized fields, never the raw payload.
"""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_field, extend_schema_view
from rest_framework import generics, serializers

from zartsalgo.api import IdFilter, OutputSerializer, ScopedMixin, scope_of

from .models import Connection, EventType, NormalizedEvent


class ConnectionOutput(OutputSerializer):
    credential_names = serializers.SerializerMethodField(help_text="Names the adapter asks for; never the values.")
    webhook_url = serializers.SerializerMethodField(
        help_text="Staff only (null for client users): the token in it lets anyone post deliveries."
    )
    is_stale = serializers.BooleanField(read_only=True)

    class Meta:
        model = Connection
        fields = (
            "id",
            "client",
            "provider",
            "name",
            "status",
            "status_reason",
            "owner",
            "reason",
            "credential_names",
            "webhook_url",
            "expected_freshness",
            "last_event_at",
            "last_error_at",
            "stale_since",
            "is_stale",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_credential_names(self, obj: Connection) -> list[str]:
        return sorted(obj.credentials or {})

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_webhook_url(self, obj: Connection) -> str | None:
        request = self.context.get("request")
        if request is None or not scope_of(request).is_staff:
            return None
        path = reverse("integrations:webhook", args=[obj.provider, obj.webhook_token])
        base = settings.WEBHOOK_PUBLIC_BASE_URL.rstrip("/")
        return f"{base}{path}" if base else request.build_absolute_uri(path)


class ConnectionFilter(filters.FilterSet):
    client = IdFilter(field_name="client_id")
    provider = filters.CharFilter()
    status = filters.ChoiceFilter(choices=Connection.Status.choices)

    class Meta:
        model = Connection
        fields = ()


@extend_schema_view(get=extend_schema(summary="List provider connections", tags=["connections"]))
class ConnectionListApi(ScopedMixin, generics.ListAPIView):
    serializer_class = ConnectionOutput
    filterset_class = ConnectionFilter

    def get_queryset(self):
        return self.scope.filter(Connection.objects.all())


@extend_schema_view(get=extend_schema(summary="Read a provider connection", tags=["connections"]))
class ConnectionDetailApi(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = ConnectionOutput

    def get_queryset(self):
        return self.scope.filter(Connection.objects.all())


class NormalizedEventOutput(OutputSerializer):
    data = serializers.JSONField(read_only=True, help_text="The normalized fields (never the raw payload).")

    class Meta:
        model = NormalizedEvent
        fields = ("id", "client", "lead", "event_type", "occurred_at", "data", "applied_at", "created_at")
        read_only_fields = fields


class NormalizedEventFilter(filters.FilterSet):
    client = IdFilter(field_name="client_id")
    lead = IdFilter(field_name="lead_id")
    event_type = filters.ChoiceFilter(choices=EventType.choices)
    occurred_after = filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="gte")
    occurred_before = filters.IsoDateTimeFilter(field_name="occurred_at", lookup_expr="lt")

    class Meta:
        model = NormalizedEvent
        fields = ()


@extend_schema_view(get=extend_schema(summary="List normalized events", tags=["normalized events"]))
class NormalizedEventListApi(ScopedMixin, generics.ListAPIView):
    serializer_class = NormalizedEventOutput
    filterset_class = NormalizedEventFilter

    def get_queryset(self):
        return self.scope.filter(NormalizedEvent.objects.all())


@extend_schema_view(get=extend_schema(summary="Read a normalized event", tags=["normalized events"]))
class NormalizedEventDetailApi(ScopedMixin, generics.RetrieveAPIView):
    serializer_class = NormalizedEventOutput

    def get_queryset(self):
        return self.scope.filter(NormalizedEvent.objects.all())
