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
        staff_only_fields = ("status_reason",)

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


# What a client's own API user sees of a normalized event's data: named, client-safe fields only,
# at every depth. Free text copied from a payload (message bodies, job descriptions, import notes)
# stays with staff, as the same text on the timeline does (Activity.body is internal unless marked
# visible), and so do error text and internal prices. A key not listed here is hidden from clients
# by default: a new adapter field is staff-only until someone decides it is client-safe.
CLIENT_VISIBLE_DATA_KEYS = frozenset(
    {
        *("provider_id", "summary", "status", "event", "type", "channel", "source", "service", "service_type"),
        *("phone", "email", "first_name", "last_name", "full_name", "postal_code", "city", "state_region"),
        *("market", "urgency", "contact_method", "tracking_number", "caller_withheld", "call_type"),
        *("call_status", "duration", "answered", "voicemail", "num_media", "has_message", "keyword"),
        *("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content", "gclid", "fbclid", "msclkid"),
        *("landing_page", "referrer", "attribution", "date", "page", "query", "site", "dimensions"),
        *("clicks", "impressions", "ctr", "position", "rows", "start", "end", "created", "updated"),
        *("merged", "failed", "ignored", "duplicate", "processed", "counts", "occurred_at"),
    }
)


def client_safe_data(value):
    """`value` with every mapping reduced to CLIENT_VISIBLE_DATA_KEYS, recursively."""
    if isinstance(value, dict):
        return {k: client_safe_data(v) for k, v in value.items() if k in CLIENT_VISIBLE_DATA_KEYS}
    if isinstance(value, list):
        return [client_safe_data(v) for v in value]
    return value


class NormalizedEventOutput(OutputSerializer):
    data = serializers.JSONField(
        read_only=True,
        help_text="The normalized fields (never the raw payload). Client users see only client-safe "
        "fields: no message text, descriptions, notes or error text.",
    )

    class Meta:
        model = NormalizedEvent
        fields = ("id", "client", "lead", "event_type", "occurred_at", "data", "applied_at", "created_at")
        read_only_fields = fields

    def to_representation(self, instance):
        out = super().to_representation(instance)
        request = self.context.get("request")
        if request is None or not scope_of(request).is_staff:
            out["data"] = client_safe_data(out["data"])
        return out


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
