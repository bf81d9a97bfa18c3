"""Pieces every /api/v1/ view shares: who may see which client's rows, the page shape, the schema hook.

Scoping (docs/api.md):
- staff (`user.is_staff`) see and change every client's rows;
- a client's own API user (a user with a `portal.ClientUser` link, reached as `user.client_user`)
  sees only that client's rows; a row of another client answers 404, exactly like a row that
  does not exist, so ids never leak which other clients exist;
- any other authenticated user gets 403, an anonymous caller 401.

This module sits in `zartsalgo/` (below every app), so it reads the link with getattr instead of
importing portal's model: leads, integrations and workflows views use it without importing portal.
"""

from __future__ import annotations

from dataclasses import dataclass

from django import forms
from django.db import models
from django.db.models import QuerySet
from django_filters import rest_framework as filters
from rest_framework import serializers
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import SAFE_METHODS, BasePermission

from .errors import NotFound


@dataclass(frozen=True)
class ClientScope:
    """What one caller may reach: every client (staff), one client (its API user), or nothing."""

    is_staff: bool
    client_id: int | None

    @classmethod
    def of(cls, user) -> ClientScope:
        if user is None or not user.is_authenticated or not user.is_active:
            return cls(is_staff=False, client_id=None)
        if user.is_staff:
            return cls(is_staff=True, client_id=None)
        link = getattr(user, "client_user", None)
        return cls(is_staff=False, client_id=link.client_id if link is not None else None)

    @property
    def allowed(self) -> bool:
        return self.is_staff or self.client_id is not None

    def filter(self, queryset: QuerySet, field: str = "client_id") -> QuerySet:
        """The rows this caller may see; `field` is the path to the row's client id."""
        if self.is_staff:
            return queryset
        if self.client_id is None:
            return queryset.none()
        return queryset.filter(**{field: self.client_id})

    def sees_client(self, client_id: int | None) -> bool:
        return self.is_staff or (self.client_id is not None and client_id == self.client_id)

    def get(self, queryset: QuerySet, field: str = "client_id", **lookup):
        """One row this caller may see, or 404 (another client's row looks like a missing one)."""
        row = self.filter(queryset, field).filter(**lookup).first()
        if row is None:
            raise NotFound("Not found.")
        return row


def scope_of(request) -> ClientScope:
    # One computation per request: views and serializers ask several times.
    scope = getattr(request, "_client_scope", None)
    if scope is None:
        scope = ClientScope.of(request.user)
        request._client_scope = scope
    return scope


class StaffOrClientUser(BasePermission):
    """Staff, or a client's own API user; client users may only read unless the view allows a write."""

    message = "Only staff and a client's own API users may use this API."

    def has_permission(self, request, view) -> bool:
        scope = scope_of(request)
        if not scope.allowed:
            return False
        if scope.is_staff or request.method in SAFE_METHODS:
            return True
        return request.method in getattr(view, "client_user_writes", ())


class StaffOnly(BasePermission):
    message = "Only staff may do this."

    def has_permission(self, request, view) -> bool:
        return scope_of(request).is_staff


class ScopedMixin:
    """For API views: the permission pair and the caller's scope."""

    permission_classes = [StaffOrClientUser]
    # HTTP methods a client's own API user may use beyond reads (e.g. ("POST", "PATCH")).
    client_user_writes: tuple[str, ...] = ()

    @property
    def scope(self) -> ClientScope:
        return scope_of(self.request)


class IdCursorPagination(CursorPagination):
    """Cursor pages ordered by the primary key (unique and indexed): each page is an index range
    read, and nothing ever counts the table or skips rows with OFFSET."""

    ordering = "-id"
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 200


class ErrorSerializer(serializers.Serializer):
    """The one error shape (zartsalgo.errors.drf_exception_handler)."""

    message = serializers.CharField()
    code = serializers.CharField()
    extra = serializers.DictField(
        help_text='Detail; validation errors name each field: {"fields": {"config.body": "required text"}}.'
    )


def client_field_for(request, value, *, field: str = "client"):
    """The client a created row belongs to: staff name it; a client user's is always their own."""
    scope = scope_of(request)
    if scope.is_staff:
        if value is None:
            raise serializers.ValidationError({field: "required"})
        return value
    if value is not None and value.pk != scope.client_id:
        # Another client's id looks like an unknown one.
        raise serializers.ValidationError({field: f'Invalid pk "{value.pk}" - object does not exist.'})
    from leads.models import Client

    return Client.objects.get(pk=scope.client_id)


def schema_only_api_v1(endpoints):
    """drf-spectacular preprocessing hook: the public schema documents /api/v1/ only (provider
    webhooks under /api/webhooks/ authenticate by signature; docs/webhooks.md covers them)."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/api/v1/")]


class ScopedPrimaryKeyRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key in input, resolved only among rows the caller may see: another client's id
    is "does not exist", as an unknown id is. `client_field` is the path to the row's client id."""

    def __init__(self, *, client_field: str = "client_id", **kwargs):
        self.client_field = client_field
        super().__init__(**kwargs)

    def get_queryset(self):
        queryset = super().get_queryset()
        request = self.context.get("request")
        if request is None:
            return queryset.none()
        return scope_of(request).filter(queryset, self.client_field)


class IdFilter(filters.NumberFilter):
    """An id in a query string: a whole number (NumberFilter alone would accept decimals)."""

    field_class = forms.IntegerField


class OutputSerializer(serializers.ModelSerializer):
    """Base for read-only model output. DRF drops `allow_blank` from read-only fields, so the
    schema would promise that a choice field is never "" when the model allows it; this puts it
    back, and shows URLs as plain strings (a blank URL is "", not a URI). It keeps the schema
    honest for clients (and the contract test checks it)."""

    serializer_field_mapping = {
        **serializers.ModelSerializer.serializer_field_mapping,
        models.URLField: serializers.CharField,
    }

    def get_fields(self):
        fields = super().get_fields()
        opts = self.Meta.model._meta
        for name, field in fields.items():
            try:
                model_field = opts.get_field(field.source or name)  # fields are not bound yet
            except Exception:  # noqa: S112 - not a plain model field (a method or a nested path)
                continue
            if getattr(model_field, "blank", False) and hasattr(field, "allow_blank"):
                field.allow_blank = True
            if getattr(model_field, "null", False):
                field.allow_null = True
        return fields

    def to_representation(self, instance):
        # Meta.staff_only_fields: operational text (provider error messages, hold reasons, which
        # staff user did something) that a client's own API user gets blank. Blank, not absent,
        # so the response keeps the shape the schema promises for every caller.
        out = super().to_representation(instance)
        hidden = getattr(self.Meta, "staff_only_fields", ())
        if hidden:
            request = self.context.get("request")
            if request is None or not scope_of(request).is_staff:
                for name in hidden:
                    if name in out:
                        out[name] = ""
        return out
