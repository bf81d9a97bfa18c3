"""Outbound channels the workflow engine sends through: Twilio SMS, SendGrid email, and a console
channel for the embedded demo.

Every send ends in exactly one of three ways, and the difference is what keeps us from texting a
customer twice or silently dropping a message:

* `SendResult`: the provider accepted the message; keep its id to match delivery webhooks later.
* `SendRejected`: the provider definitely did not send it (it answered 4xx, or we never managed to
  open a connection). Safe to retry when `retryable`, safe to give up otherwise.
* `SendOutcomeUnknown`: the request may have reached the provider (a 5xx, a read timeout, a
  connection cut mid-answer). The message may well have gone out, so an automatic re-send could
  duplicate it; the caller should hold the send for a human or for the provider's status webhook.

When in doubt we say "unknown": a wrong "rejected" becomes a duplicate message to a customer, a
wrong "unknown" only costs someone a look.

The providers' real SDKs are used (twilio's on `requests`, sendgrid's on `urllib`); both can be
pointed at another base URL, which is how tests run them against a local fake server.
"""

from __future__ import annotations

import http.client
import json
import logging
import socket
import threading
import urllib.error
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import python_http_client.exceptions
import requests
import sendgrid
from sendgrid.helpers.mail import Category, CustomArg, Mail
from sendgrid.helpers.mail.exceptions import SendGridException
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client as TwilioClient
from urllib3.exceptions import MaxRetryError, NewConnectionError

logger = logging.getLogger(__name__)

SENDGRID_DEFAULT_HOST = "https://api.sendgrid.com"


@dataclass(frozen=True)
class SendResult:
    """What the provider said when it took the message."""

    provider: str  # "twilio" | "sendgrid" | "console"
    provider_id: str  # Twilio Message SID; SendGrid X-Message-Id response header; console: a uuid4 hex
    status: str  # initial status: twilio "queued"/"accepted"/..., sendgrid "accepted", console "delivered"


class SendError(Exception):
    """Base of both send failures; `reason` is a short human-readable explanation."""

    def __init__(self, reason: str, *, provider: str = "", http_status: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.provider = provider
        self.http_status = http_status


class SendRejected(SendError):
    """The provider did NOT send the message: it answered 4xx, or no connection was ever opened.

    `retryable` is True for 429 (rate limited: the same request will succeed later) and for
    connection failures (nothing left this machine); False for other 4xx, where the same request
    would be refused again (bad number, unverified sender, bad credentials...).
    `code` is the provider's error code when it gives one (Twilio does, e.g. "21211").
    """

    def __init__(
        self,
        reason: str,
        *,
        provider: str = "",
        code: str | None = None,
        retryable: bool = False,
        http_status: int | None = None,
    ) -> None:
        super().__init__(reason, provider=provider, http_status=http_status)
        self.code = code
        self.retryable = retryable


class SendOutcomeUnknown(SendError):
    """We cannot tell whether the message went out; do not re-send it automatically.

    A 5xx is here rather than in SendRejected because providers answer 5xx after queueing too (a
    crash while writing the response, a gateway timing out in front of a healthy backend); the
    same goes for a read timeout or a connection reset once the request was written.
    """


def _status_error(provider: str, status: int, reason: str, code: str | None) -> SendRejected | SendOutcomeUnknown:
    """Classify a provider's non-2xx HTTP answer."""
    if status == 429:
        return SendRejected(reason, provider=provider, code=code, retryable=True, http_status=status)
    if 400 <= status < 500:
        return SendRejected(reason, provider=provider, code=code, retryable=False, http_status=status)
    # 5xx, and anything stranger (a 3xx the SDK did not follow): the provider did not say "no".
    return SendOutcomeUnknown(f"HTTP {status}: {reason}", provider=provider, http_status=status)


class TwilioSmsChannel:
    """SMS through Twilio's Programmable Messaging API (POST /2010-04-01/Accounts/{sid}/Messages.json)."""

    provider = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, base_url: str | None = None, timeout: float = 10.0):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        # TwilioHttpClient(timeout=) becomes requests' timeout, i.e. both the connect timeout and the
        # per-read timeout (not a cap on the whole exchange). Its requests Session keeps connections
        # alive between sends; it mounts no retrying adapter, so one send is one POST.
        self._client = TwilioClient(account_sid, auth_token, http_client=TwilioHttpClient(timeout=timeout))
        if base_url is not None:
            # twilio 9.x keeps each API domain's root on its Domain object: `client.api` (cached on
            # the client) is the Domain behind `client.messages`, and Domain.absolute_url() joins
            # `base_url` with "2010-04-01/Accounts/...". Nothing else carries the host.
            self._client.api.base_url = base_url.rstrip("/")
            # TWILIO_EDGE / TWILIO_REGION in the environment make the client rewrite the host to
            # "api.<edge>.<region>.twilio.com"; that would mangle an explicit base URL such as
            # "http://127.0.0.1:8001", so an explicit base URL wins.
            self._client.edge = None
            self._client.region = None

    def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> SendResult:
        params: dict[str, Any] = {"to": to, "from_": from_, "body": body}
        if status_callback:
            params["status_callback"] = status_callback
        try:
            message = self._client.messages.create(**params)
        except TwilioRestException as exc:
            # Legacy error body {"code": 21211, "message": ..., "more_info": ..., "status": 400}. When
            # the body has no code the SDK puts the HTTP status in `code`; Twilio's own codes are
            # five digits, so a code equal to the status is the SDK's filler, not Twilio's word.
            code = None if exc.code == exc.status else _code(exc.code)
            raise _status_error(self.provider, exc.status, exc.msg, code) from exc
        except TwilioServiceException as exc:
            # RFC 9457 problem-details bodies; NOT a subclass of TwilioRestException in twilio 9.x.
            reason = ": ".join(part for part in (exc.title, exc.detail) if part)
            raise _status_error(self.provider, exc.status, reason, _code(exc.code)) from exc
        except requests.RequestException as exc:
            # TwilioHttpClient does not wrap transport errors: requests' own exceptions arrive here.
            raise _requests_error(self.provider, exc) from exc
        except json.JSONDecodeError as exc:
            # A 2xx whose body is not JSON: Twilio said yes, so the message probably exists.
            raise SendOutcomeUnknown(f"unparseable success response: {exc}", provider=self.provider) from exc
        if not message.sid:
            raise SendOutcomeUnknown("Twilio answered 2xx without a message SID", provider=self.provider)
        return SendResult(provider=self.provider, provider_id=message.sid, status=str(message.status or "queued"))


def _code(code: object) -> str | None:
    return None if code is None else str(code)


def _requests_error(provider: str, exc: requests.RequestException) -> SendRejected | SendOutcomeUnknown:
    """Classify a transport failure from requests: rejected only when no connection was ever opened."""
    if isinstance(exc, requests.ConnectTimeout):
        # urllib3 raises this only while the TCP (or TLS-to-proxy) handshake is pending: no byte
        # of the request can have been written.
        return SendRejected(f"connect timeout: {exc}", provider=provider, retryable=True)
    if isinstance(exc, requests.ConnectionError) and not isinstance(exc, requests.exceptions.SSLError):
        # requests.ConnectionError covers two very different things: failing to connect (refused,
        # DNS failure, unreachable: urllib3's NewConnectionError inside MaxRetryError) and the peer
        # dropping an open connection (ProtocolError: RemoteDisconnected, ConnectionResetError),
        # possibly after it read our whole request. Only the first is a safe retry.
        wrapped = exc.args[0] if exc.args else None
        if isinstance(wrapped, MaxRetryError) and isinstance(wrapped.reason, NewConnectionError):
            return SendRejected(f"could not connect: {wrapped.reason}", provider=provider, retryable=True)
    # ReadTimeout (request written, answer late), ChunkedEncodingError, resets, TLS trouble...
    return SendOutcomeUnknown(f"{type(exc).__name__}: {exc}", provider=provider)


class SendGridEmailChannel:
    """Email through SendGrid's v3 Mail Send API (POST /v3/mail/send)."""

    provider = "sendgrid"

    def __init__(self, *, api_key: str, host: str | None = None, timeout: float = 10.0):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        # `host` is the SDK's own constructor argument; python_http_client appends "/v3/mail/send".
        self._client = sendgrid.SendGridAPIClient(api_key=api_key, host=(host or SENDGRID_DEFAULT_HOST).rstrip("/"))
        # SendGridAPIClient has no timeout argument and by default urllib waits forever (a stuck
        # connection would hang the worker). The python_http_client.Client it builds has a
        # `timeout` attribute that every derived client (`client.mail.send`) copies and passes to
        # urllib's opener.open(timeout=): the socket timeout for connect and for each read.
        self._client.client.timeout = timeout

    def send_email(
        self,
        *,
        to: str,
        from_email: str,
        subject: str,
        html: str,
        text: str,
        custom_args: dict[str, str] | None = None,
        categories: list[str] | None = None,
    ) -> SendResult:
        try:
            message = Mail(
                from_email=from_email, to_emails=to, subject=subject, plain_text_content=text, html_content=html
            )
            for key, value in (custom_args or {}).items():
                # Message-level custom_args come back on every event webhook for this message:
                # that is how a delivery or bounce is tied back to our send.
                message.add_custom_arg(CustomArg(key, str(value)))
            # Mail.add_category() inserts at the front of its list; adding in reverse keeps the
            # caller's order in the request (SendGrid ignores the order, but logs and tests read it).
            for category in reversed(categories or []):
                message.add_category(Category(category))
        except SendGridException as exc:
            # The helper refuses content that looks like a SendGrid API key (ApiKeyIncludedException).
            # Nothing was sent and the same content would be refused again.
            reason = getattr(exc, "message", None) or str(exc)
            raise SendRejected(reason, provider=self.provider, code="content_rejected", retryable=False) from exc

        try:
            response = self._client.send(message)
        except python_http_client.exceptions.HTTPError as exc:
            # python_http_client turns urllib's HTTPError into one subclass per status
            # (BadRequestsError, TooManyRequestsError, InternalServerError...) plus the base class
            # for the rest; the status is all we need to classify.
            raise _status_error(self.provider, exc.status_code, _sendgrid_reason(exc), None) from exc
        except urllib.error.URLError as exc:
            # urllib wraps OSErrors raised while connecting AND while writing the request in
            # URLError; only refusal and DNS failure are certainly pre-connection. A timeout here may
            # be a connect timeout or a stalled write of the body, which urllib does not distinguish.
            if isinstance(exc.reason, ConnectionRefusedError | socket.gaierror):
                raise SendRejected(f"could not connect: {exc.reason}", provider=self.provider, retryable=True) from exc
            raise SendOutcomeUnknown(f"URLError: {exc.reason}", provider=self.provider) from exc
        except (OSError, http.client.HTTPException) as exc:
            # Raised unwrapped once the request is written: TimeoutError waiting for the answer,
            # RemoteDisconnected / ConnectionResetError, IncompleteRead of the body.
            raise SendOutcomeUnknown(f"{type(exc).__name__}: {exc}", provider=self.provider) from exc

        message_id = response.headers.get("X-Message-Id")
        if not message_id:
            # Accepted, yet nothing to correlate webhooks with; re-sending would duplicate it.
            raise SendOutcomeUnknown(
                f"SendGrid answered {response.status_code} without X-Message-Id", provider=self.provider
            )
        return SendResult(provider=self.provider, provider_id=message_id, status="accepted")


def _sendgrid_reason(exc: python_http_client.exceptions.HTTPError) -> str:
    """SendGrid error bodies look like {"errors": [{"message": ..., "field": ..., "help": ...}]}."""
    try:
        errors = json.loads(exc.body)["errors"]
        messages = [f"{e['field']}: {e['message']}" if e.get("field") else str(e["message"]) for e in errors]
        if messages:
            return "; ".join(messages)
    except (ValueError, KeyError, TypeError):
        pass
    return f"{exc.status_code} {exc.reason}"


class ConsoleChannel:
    """The embedded demo's channel: records each message instead of sending it.

    With `path`, one JSON object per line is appended to that file (the demo UI and tests read it);
    without, each message is logged at INFO. Always succeeds with status "delivered".
    """

    provider = "console"

    def __init__(self, *, path: str | None = None):
        self._path = Path(path) if path else None
        # Worker threads may share a channel; one write per line under a lock keeps lines whole.
        self._lock = threading.Lock()

    def send_sms(self, *, to: str, from_: str, body: str, status_callback: str | None = None) -> SendResult:
        return self._record(
            {"channel": "sms", "to": to, "from": from_, "body": body, "status_callback": status_callback}
        )

    def send_email(
        self,
        *,
        to: str,
        from_email: str,
        subject: str,
        html: str,
        text: str,
        custom_args: dict[str, str] | None = None,
        categories: list[str] | None = None,
    ) -> SendResult:
        return self._record(
            {
                "channel": "email",
                "to": to,
                "from": from_email,
                "subject": subject,
                "html": html,
                "text": text,
                "custom_args": dict(custom_args or {}),
                "categories": list(categories or []),
            }
        )

    def _record(self, fields: dict[str, Any]) -> SendResult:
        result = SendResult(provider=self.provider, provider_id=uuid.uuid4().hex, status="delivered")
        entry = {"id": result.provider_id, "at": datetime.now(UTC).isoformat(), **fields}
        line = json.dumps(entry, ensure_ascii=False)
        if self._path is None:
            logger.info("console channel: %s", line)
        else:
            self._path.parent.mkdir(parents=True, exist_ok=True)  # var/ does not exist in a fresh clone
            with self._lock, self._path.open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        return result
