"""The webhook endpoint: POST /api/webhooks/<provider>/<token>/ — thin over services.webhook_receive."""

import functools
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import HttpResponse
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.views import APIView

from . import services
from .providers.base import InboundRequest


def _public_url(request) -> str:
    # Twilio signs the exact URL it called; behind a proxy that is the public one.
    base = settings.WEBHOOK_PUBLIC_BASE_URL.rstrip("/")
    return f"{base}{request.get_full_path()}" if base else request.build_absolute_uri()


def _read_body(request, limit: int) -> bytes | None:
    """The body, or None when it is over the limit (read at most limit + 1 bytes)."""
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        return None
    body = request._request.read(limit + 1)
    return None if len(body) > limit else body


class _NoNegotiation(BaseContentNegotiation):
    """The view answers with the provider's own body and content type (TwiML, JSON); there is
    nothing to negotiate, and DRF's parsing of the Accept header is a cost on every delivery."""

    def select_parser(self, request, parsers):
        return None

    def select_renderer(self, request, renderers, format_suffix=None):
        return renderers[0], renderers[0].media_type


class WebhookView(APIView):
    # Providers authenticate by signature, not by session or token; no CSRF, no DRF parsing:
    # the adapter must see the raw bytes the signature was computed over.
    authentication_classes: list = []
    permission_classes = [AllowAny]
    parser_classes: list = []
    throttle_classes: list = []
    content_negotiation_class = _NoNegotiation

    def perform_authentication(self, request) -> None:
        # No user is ever authenticated here (DRF's documented way to skip the eager
        # request.user lookup); the provider is authenticated by its signature in the service.
        pass

    def post(self, request, provider: str, token: str):
        limit = settings.WEBHOOK_MAX_BODY_BYTES
        content_type = (request.META.get("CONTENT_TYPE") or "").split(";")[0].strip().lower()
        headers = {k.lower(): v for k, v in request.headers.items()}
        remote = request.META.get("REMOTE_ADDR") or None
        body = _read_body(request, limit)
        if body is None:
            inbound = InboundRequest(
                location=_public_url(request), method="POST", headers=headers, body=b"", content_type=content_type
            )
            result = services.webhook_reject_too_large(
                provider=provider, token=token, request=inbound, remote_addr=remote, limit=limit
            )
        else:
            form = {}
            if content_type == "application/x-www-form-urlencoded":
                try:
                    form = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
                except UnicodeDecodeError:
                    form = {}
            inbound = InboundRequest(
                location=functools.partial(_public_url, request),
                method="POST",
                headers=headers,
                body=body,
                content_type=content_type,
                form=form,
            )
            result = services.webhook_receive(provider=provider, token=token, request=inbound, remote_addr=remote)
        return HttpResponse(result.body, status=result.status, content_type=result.content_type)
