"""One error family for the domain, and the DRF handler that turns it into a 4xx answer."""

from typing import Any

from django.core.exceptions import PermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler


class ApplicationError(Exception):
    """A domain rule said no. `message` is safe to show to the caller; `extra` adds detail."""

    status_code = 400
    code = "application_error"

    def __init__(self, message: str, extra: dict[str, Any] | None = None, *, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if code:
            self.code = code


class InvalidTransition(ApplicationError, ValueError):
    """A state machine was asked for a move its rules forbid."""

    status_code = 409
    code = "invalid_transition"


class NotFound(ApplicationError, LookupError):
    status_code = 404
    code = "not_found"


def drf_exception_handler(exc: Exception, context: dict) -> Response | None:
    """Answer every error in one shape: {"message", "code", "extra"}."""
    if isinstance(exc, DjangoValidationError):
        exc = drf_exceptions.ValidationError(
            exc.message_dict if hasattr(exc, "error_dict") else {"non_field_errors": exc.messages}
        )
    elif isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = drf_exceptions.PermissionDenied()

    if isinstance(exc, ApplicationError):
        return Response({"message": exc.message, "code": exc.code, "extra": exc.extra}, status=exc.status_code)

    response = exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, drf_exceptions.ValidationError):
        body = {"message": "Validation error", "code": "invalid", "extra": {"fields": response.data}}
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else response.data
        body = {"message": str(detail), "code": getattr(detail, "code", "error"), "extra": {}}
    response.data = body
    return response
