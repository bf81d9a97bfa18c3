"""Leads over the REST API (/api/v1/leads/): create, list, read, change — thin over leads.services.

Creating goes through the same dedupe as every provider signal (lead_create_manual): a phone or
email the client already has merges into that lead (200) instead of making a new one (201).
Internal notes, the timeline and raw provider payloads are not part of this API.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import get_user_model
from django_filters import rest_framework as filters
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.response import Response

from zartsalgo.api import ErrorSerializer, IdFilter, OutputSerializer, ScopedMixin, client_field_for, scope_of
from zartsalgo.errors import ApplicationError

from . import normalize as norm
from . import services
from .models import Client, ContactMethod, Lead, LeadSource, Urgency

ATTRIBUTION = services.ATTRIBUTION_FIELDS


class LeadOutput(OutputSerializer):
    phone = serializers.CharField(source="phone_e164", allow_null=True, read_only=True, help_text="E.164")
    email = serializers.CharField(source="email_normalized", allow_null=True, read_only=True, help_text="Case-folded")

    class Meta:
        model = Lead
        fields = (
            "id",
            "client",
            "first_name",
            "last_name",
            "full_name",
            "phone",
            "phone_raw",
            "email",
            "email_raw",
            "postal_code",
            "city",
            "state_region",
            "source",
            "source_detail",
            "service_type",
            "contact_method",
            "market",
            "urgency",
            "owner",
            *ATTRIBUTION,
            "status",
            "lost_reason",
            "status_changed_at",
            "next_action",
            "next_action_due",
            "captured_at",
            "first_response_at",
            "last_activity_at",
            "tags",
            "data_quality_flags",
            "created_at",
            "updated_at",
        )
        read_only_fields = fields


def _text(model_field: str, **kwargs) -> serializers.CharField:
    return serializers.CharField(
        max_length=Lead._meta.get_field(model_field).max_length, required=False, allow_blank=True, **kwargs
    )


def _staff_users():
    return get_user_model().objects.filter(is_staff=True, is_active=True)


class LeadWriteFields(serializers.Serializer):
    """The fields staff (and the client's own API users) may set; phone/email are normalized by
    the service (E.164 with the client's region, case-folded email)."""

    phone = _text("phone_raw", help_text="Any format; stored raw and as E.164.")
    email = serializers.EmailField(max_length=254, required=False, allow_blank=True)
    first_name = _text("first_name")
    last_name = _text("last_name")
    postal_code = _text("postal_code")
    city = _text("city")
    state_region = _text("state_region")
    source = serializers.ChoiceField(choices=LeadSource.choices, required=False)
    source_detail = _text("source_detail")
    service_type = _text("service_type")
    contact_method = serializers.ChoiceField(choices=ContactMethod.choices, required=False)
    market = _text("market")
    urgency = serializers.ChoiceField(choices=Urgency.choices, required=False)
    owner = serializers.PrimaryKeyRelatedField(
        queryset=_staff_users(), required=False, allow_null=True, help_text="A staff user id (staff only)."
    )
    next_action = _text("next_action")
    next_action_due = serializers.DateTimeField(required=False, allow_null=True)
    utm_source = _text("utm_source")
    utm_medium = _text("utm_medium")
    utm_campaign = _text("utm_campaign")
    utm_term = _text("utm_term")
    utm_content = _text("utm_content")
    gclid = _text("gclid")
    fbclid = _text("fbclid")
    msclkid = _text("msclkid")
    tracking_number = _text("tracking_number")
    landing_page = serializers.URLField(max_length=1000, required=False, allow_blank=True)
    referrer = serializers.URLField(max_length=1000, required=False, allow_blank=True)

    def validate_owner(self, value):
        if value is not None and not scope_of(self.context["request"]).is_staff:
            raise serializers.ValidationError("Only staff assign owners.")
        return value

    def service_data(self) -> dict:
        """The validated fields under the names leads.services uses."""
        data = dict(self.validated_data)
        data.pop("client", None)
        for name in ("status", "lost_reason"):
            data.pop(name, None)
        if "phone" in data:
            data["phone_raw"] = data.pop("phone")
        if "email" in data:
            data["email_raw"] = data.pop("email")
        return data


class LeadCreateInput(LeadWriteFields):
    client = serializers.PrimaryKeyRelatedField(
        queryset=Client.objects.all(), required=False, help_text="Staff: required. A client's API user: their own."
    )

    def validate(self, attrs):
        if not (attrs.get("phone") or attrs.get("email")):
            raise serializers.ValidationError(
                {"phone": "give a phone or an email", "email": "give a phone or an email"}
            )
        attrs["client"] = client_field_for(self.context["request"], attrs.get("client"))
        return attrs


class LeadUpdateInput(LeadWriteFields):
    status = serializers.ChoiceField(choices=Lead.Status.choices, required=False)
    lost_reason = serializers.ChoiceField(
        choices=Lead.LostReason.choices, required=False, help_text="Required with status=lost."
    )

    def validate(self, attrs):
        if attrs.get("status") == Lead.Status.LOST and not attrs.get("lost_reason"):
            raise serializers.ValidationError({"lost_reason": "required when status is lost"})
        return attrs


class LeadFilter(filters.FilterSet):
    client = IdFilter(field_name="client_id")
    status = filters.ChoiceFilter(choices=Lead.Status.choices)
    source = filters.ChoiceFilter(choices=LeadSource.choices)
    urgency = filters.ChoiceFilter(choices=Urgency.choices)
    service_type = filters.CharFilter()
    market = filters.CharFilter()
    phone = filters.CharFilter(method="filter_phone", help_text="Exact, in any format (compared as E.164).")
    email = filters.CharFilter(method="filter_email", help_text="Exact (case-folded).")
    created_after = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="gte")
    created_before = filters.IsoDateTimeFilter(field_name="created_at", lookup_expr="lt")
    captured_after = filters.IsoDateTimeFilter(field_name="captured_at", lookup_expr="gte")
    captured_before = filters.IsoDateTimeFilter(field_name="captured_at", lookup_expr="lt")

    class Meta:
        model = Lead
        fields = ()

    def filter_phone(self, queryset, name, value):
        phone, _ = norm.normalize_phone(value, settings.DEFAULT_PHONE_REGION)
        return queryset.filter(phone_e164=phone) if phone else queryset.none()

    def filter_email(self, queryset, name, value):
        email, _ = norm.normalize_email(value)
        return queryset.filter(email_normalized=email) if email else queryset.none()


def _update_error(exc: ApplicationError) -> ApplicationError:
    """The service names phone_raw/email_raw; the API calls them phone/email."""
    if exc.code == "duplicate_contact":
        names = {"phone_raw": "phone", "email_raw": "email"}
        exc.extra = {"fields": {names.get(k, k): v for k, v in exc.extra.items()}}
    return exc


@extend_schema_view(
    get=extend_schema(summary="List leads", tags=["leads"]),
    post=extend_schema(
        summary="Create a lead (deduplicated)",
        description="Goes through the same dedupe as provider signals: a phone or email the client already "
        "has merges into that lead and answers 200 with it; a new lead answers 201.",
        tags=["leads"],
        request=LeadCreateInput,
        responses={201: LeadOutput, 200: LeadOutput, 400: ErrorSerializer},
    ),
)
class LeadListCreateApi(ScopedMixin, generics.ListAPIView):
    serializer_class = LeadOutput
    filterset_class = LeadFilter
    client_user_writes = ("POST",)

    def get_queryset(self):
        return self.scope.filter(Lead.objects.all())

    def post(self, request):
        data = LeadCreateInput(data=request.data, context={"request": request})
        data.is_valid(raise_exception=True)
        result = services.lead_create_manual(
            client=data.validated_data["client"], data=data.service_data(), actor=request.user
        )
        return Response(
            LeadOutput(result.lead).data, status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK
        )


@extend_schema_view(
    get=extend_schema(summary="Read a lead", tags=["leads"]),
    patch=extend_schema(
        summary="Change a lead",
        description="Sets fields, re-normalizes phone/email, moves the status (409 when the pipeline forbids the "
        "move). Logged with the caller as actor.",
        tags=["leads"],
        request=LeadUpdateInput,
        responses={200: LeadOutput, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer},
    ),
)
class LeadDetailApi(ScopedMixin, generics.GenericAPIView):
    serializer_class = LeadOutput
    client_user_writes = ("PATCH",)

    def get_queryset(self):
        return self.scope.filter(Lead.objects.all())

    def get(self, request, pk: int):
        return Response(LeadOutput(self.get_object()).data)

    def patch(self, request, pk: int):
        lead = self.get_object()
        data = LeadUpdateInput(data=request.data, context={"request": request}, partial=True)
        data.is_valid(raise_exception=True)
        try:
            lead = services.lead_update(
                lead=lead,
                data=data.service_data(),
                actor=request.user,
                status=data.validated_data.get("status"),
                lost_reason=data.validated_data.get("lost_reason", ""),
            )
        except ApplicationError as exc:
            raise _update_error(exc) from exc
        return Response(LeadOutput(Lead.objects.get(pk=lead.pk)).data)
