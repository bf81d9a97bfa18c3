"""Outbound channels, run with the providers' REAL SDKs against a local fake HTTP server.

Nothing of ours or of the SDKs is mocked; only the network peer is fake (tests/fakes/provider_server.py).
That is the point: which exception a timeout or a reset actually surfaces as is decided deep inside
requests/urllib3 (Twilio) and urllib (SendGrid), and a mock would just restate our assumptions.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import socket
import time
from collections.abc import Callable, Iterator

import pytest

from tests.fakes.provider_server import FakeProviderServer
from workflows.channels import (
    ConsoleChannel,
    SendGridEmailChannel,
    SendOutcomeUnknown,
    SendRejected,
    SendResult,
    TwilioSmsChannel,
)

ACCOUNT_SID = "AC3f9c1e2d4b5a6978e1f2a3b4c5d6e7f8"
AUTH_TOKEN = "5f1e2d3c4b5a69788796a5b4c3d2e1f0"
SENDGRID_KEY = "SG.test-key.not-a-real-one"
FROM_NUMBER = "+15125550100"
TO_NUMBER = "+15125550143"
CALLBACK = "https://ops.example.com/hooks/twilio/status?send=42"


def twilio_channel(url: str, timeout: float = 5.0) -> TwilioSmsChannel:
    return TwilioSmsChannel(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN, base_url=url, timeout=timeout)


def sendgrid_channel(url: str, timeout: float = 5.0) -> SendGridEmailChannel:
    return SendGridEmailChannel(api_key=SENDGRID_KEY, host=url, timeout=timeout)


def send_sms(url: str, timeout: float = 5.0) -> SendResult:
    return twilio_channel(url, timeout).send_sms(to=TO_NUMBER, from_=FROM_NUMBER, body="Hi Dana, it's Acme Roofing.")


def send_email(url: str, timeout: float = 5.0) -> SendResult:
    return sendgrid_channel(url, timeout).send_email(
        to="dana@example.com",
        from_email="office@acme-roofing.example",
        subject="Your roof estimate",
        html="<p>Hi Dana</p>",
        text="Hi Dana",
    )


SENDERS: dict[str, Callable[..., SendResult]] = {"twilio": send_sms, "sendgrid": send_email}
# What each provider says when it refuses: Twilio's legacy error JSON, SendGrid's {"errors": [...]}.
ERROR_BODIES = {
    "twilio": {"code": 20429, "message": "Too Many Requests", "more_info": "https://www.twilio.com/docs/errors/20429"},
    "sendgrid": {"errors": [{"field": None, "message": "too many requests", "help": None}]},
}


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A URL whose port is bound but not listening: the kernel answers a SYN with RST (refused).

    Holding the bound socket for the test keeps the port from being reused by anything else.
    """
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


# --- Twilio ---------------------------------------------------------------------------------------


def test_twilio_success_posts_the_message_form_with_basic_auth(fake_provider: FakeProviderServer) -> None:
    channel = twilio_channel(fake_provider.url)

    result = channel.send_sms(to=TO_NUMBER, from_=FROM_NUMBER, body="Hi Dana", status_callback=CALLBACK)

    assert result.provider == "twilio"
    assert re.fullmatch(r"SM[0-9a-f]{32}", result.provider_id)
    assert result.status == "queued"
    [request] = fake_provider.requests
    assert request.method == "POST"
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert request.form() == {
        "To": [TO_NUMBER],
        "From": [FROM_NUMBER],
        "Body": ["Hi Dana"],
        "StatusCallback": [CALLBACK],
    }
    expected_auth = base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
    assert request.headers["Authorization"] == f"Basic {expected_auth}"


def test_twilio_returns_the_sid_and_status_twilio_answered(fake_provider: FakeProviderServer) -> None:
    sid = "SM" + "ab" * 16
    fake_provider.respond(201, {"sid": sid, "status": "accepted", "to": TO_NUMBER})

    result = send_sms(fake_provider.url)

    assert result == SendResult(provider="twilio", provider_id=sid, status="accepted")
    assert "StatusCallback" not in fake_provider.requests[0].form()


def test_twilio_400_is_rejected_for_good_with_twilios_error_code(fake_provider: FakeProviderServer) -> None:
    fake_provider.respond(
        400,
        {
            "code": 21211,
            "message": "Invalid 'To' Phone Number: +1512555014",
            "more_info": "https://www.twilio.com/docs/errors/21211",
            "status": 400,
        },
    )

    with pytest.raises(SendRejected) as caught:
        send_sms(fake_provider.url)

    assert caught.value.retryable is False
    assert caught.value.code == "21211"
    assert caught.value.http_status == 400
    assert "Invalid 'To' Phone Number" in caught.value.reason


def test_twilio_problem_details_error_is_mapped_too(fake_provider: FakeProviderServer) -> None:
    # twilio 9.x raises TwilioServiceException (not a TwilioRestException) for RFC 9457 bodies.
    fake_provider.respond(
        403,
        {
            "type": "https://www.twilio.com/docs/errors/20003",
            "title": "Authenticate",
            "status": 403,
            "code": 20003,
            "detail": "Permission denied",
        },
    )

    with pytest.raises(SendRejected) as caught:
        send_sms(fake_provider.url)

    assert (caught.value.code, caught.value.retryable, caught.value.http_status) == ("20003", False, 403)
    assert caught.value.reason == "Authenticate: Permission denied"


def test_twilio_ignores_edge_and_region_env_when_given_a_base_url(
    fake_provider: FakeProviderServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Otherwise the SDK rewrites the host to "<product>.<edge>.<region>.twilio.com" and mangles 127.0.0.1.
    monkeypatch.setenv("TWILIO_EDGE", "dublin")
    monkeypatch.setenv("TWILIO_REGION", "ie1")

    assert send_sms(fake_provider.url).provider_id.startswith("SM")
    assert len(fake_provider.requests) == 1


# --- SendGrid -------------------------------------------------------------------------------------


def test_sendgrid_success_posts_the_mail_json_with_the_bearer_key(fake_provider: FakeProviderServer) -> None:
    channel = sendgrid_channel(fake_provider.url)

    result = channel.send_email(
        to="dana@example.com",
        from_email="office@acme-roofing.example",
        subject="Your roof estimate",
        html="<p>Hi <b>Dana</b></p>",
        text="Hi Dana",
        custom_args={"send_id": "42", "enrollment_id": "7"},
        categories=["workflow", "estimate-follow-up"],
    )

    [request] = fake_provider.requests
    assert result == SendResult(provider="sendgrid", provider_id=result.provider_id, status="accepted")
    assert result.provider_id  # the X-Message-Id the server sent back
    assert request.method == "POST"
    assert request.path == "/v3/mail/send"
    assert request.headers["Authorization"] == f"Bearer {SENDGRID_KEY}"
    payload = request.json()
    assert payload["personalizations"] == [{"to": [{"email": "dana@example.com"}]}]
    assert payload["from"] == {"email": "office@acme-roofing.example"}
    assert payload["subject"] == "Your roof estimate"
    assert payload["content"] == [
        {"type": "text/plain", "value": "Hi Dana"},
        {"type": "text/html", "value": "<p>Hi <b>Dana</b></p>"},
    ]
    assert payload["custom_args"] == {"send_id": "42", "enrollment_id": "7"}
    assert payload["categories"] == ["workflow", "estimate-follow-up"]


def test_sendgrid_provider_id_is_the_x_message_id_header(fake_provider: FakeProviderServer) -> None:
    fake_provider.respond(202, headers={"X-Message-Id": "W2l9gDmUTg2Jk6GxLjrtwA"})

    assert send_email(fake_provider.url).provider_id == "W2l9gDmUTg2Jk6GxLjrtwA"


def test_sendgrid_400_is_rejected_for_good_with_sendgrids_messages(fake_provider: FakeProviderServer) -> None:
    fake_provider.respond(
        400,
        {
            "errors": [
                {
                    "field": "from",
                    "message": "The from address does not match a verified Sender Identity.",
                    "help": "https://sendgrid.com/docs/for-developers/sending-email/sender-identity/",
                }
            ]
        },
    )

    with pytest.raises(SendRejected) as caught:
        send_email(fake_provider.url)

    assert (caught.value.retryable, caught.value.code, caught.value.http_status) == (False, None, 400)
    assert caught.value.reason == "from: The from address does not match a verified Sender Identity."


def test_sendgrid_refuses_content_that_looks_like_an_api_key_before_sending(
    fake_provider: FakeProviderServer,
) -> None:
    channel = sendgrid_channel(fake_provider.url)

    with pytest.raises(SendRejected) as caught:
        channel.send_email(
            to="dana@example.com",
            from_email="office@acme-roofing.example",
            subject="oops",
            html="<p>hi</p>",
            text="SG.abc123.def456",
        )

    assert caught.value.retryable is False
    assert fake_provider.requests == []


# --- Both providers: how each failure is classified -----------------------------------------------


@pytest.mark.parametrize("provider", SENDERS)
def test_429_is_rejected_but_retryable(provider: str, fake_provider: FakeProviderServer) -> None:
    fake_provider.respond(429, ERROR_BODIES[provider], headers={"Retry-After": "2"})

    with pytest.raises(SendRejected) as caught:
        SENDERS[provider](fake_provider.url)

    assert caught.value.retryable is True
    assert caught.value.http_status == 429
    assert caught.value.code == ("20429" if provider == "twilio" else None)


@pytest.mark.parametrize("status", [500, 502, 503])
@pytest.mark.parametrize("provider", SENDERS)
def test_5xx_is_outcome_unknown(provider: str, status: int, fake_provider: FakeProviderServer) -> None:
    # The provider may have accepted the message before failing to answer; re-sending could duplicate it.
    fake_provider.respond(status, {"message": "Internal Server Error"})

    with pytest.raises(SendOutcomeUnknown) as caught:
        SENDERS[provider](fake_provider.url)

    assert caught.value.http_status == status
    assert len(fake_provider.requests) == 1


def test_twilio_error_without_a_code_has_no_code(fake_provider: FakeProviderServer) -> None:
    # twilio's SDK would report the HTTP status as the error code; that is not a Twilio error code.
    fake_provider.respond(401)

    with pytest.raises(SendRejected) as caught:
        send_sms(fake_provider.url)

    assert (caught.value.code, caught.value.http_status, caught.value.retryable) == (None, 401, False)


@pytest.mark.parametrize("provider", SENDERS)
def test_answer_slower_than_the_timeout_is_outcome_unknown(provider: str, fake_provider: FakeProviderServer) -> None:
    # A normal success, only too late: the request was delivered, so the message may well exist.
    fake_provider.respond(202 if provider == "sendgrid" else 201, delay=2.0)

    started = time.monotonic()
    with pytest.raises(SendOutcomeUnknown):
        SENDERS[provider](fake_provider.url, timeout=0.5)

    assert time.monotonic() - started < 1.8  # the channel's timeout applied, not the server's delay
    assert len(fake_provider.requests) == 1


@pytest.mark.parametrize("drop", ["before_response", "mid_body"])
@pytest.mark.parametrize("provider", SENDERS)
def test_connection_reset_after_the_request_is_outcome_unknown(
    provider: str, drop: str, fake_provider: FakeProviderServer
) -> None:
    # For Twilio this arrives as requests.ConnectionError, the same class as "refused": the
    # channel must look inside it rather than treat every ConnectionError as "never sent".
    body = {"errors": []} if provider == "sendgrid" else {"sid": "SM" + "0" * 32, "status": "queued"}
    fake_provider.respond(202 if provider == "sendgrid" else 201, body, drop=drop)  # type: ignore[arg-type]

    with pytest.raises(SendOutcomeUnknown):
        SENDERS[provider](fake_provider.url)

    assert len(fake_provider.requests) == 1


@pytest.mark.parametrize("provider", SENDERS)
def test_connection_refused_is_rejected_and_retryable(provider: str, refused_url: str) -> None:
    with pytest.raises(SendRejected) as caught:
        SENDERS[provider](refused_url)

    assert caught.value.retryable is True
    assert caught.value.http_status is None


# --- Console --------------------------------------------------------------------------------------


def test_console_channel_appends_one_json_line_per_message(tmp_path) -> None:
    path = tmp_path / "outbox.jsonl"
    channel = ConsoleChannel(path=str(path))

    sms = channel.send_sms(to=TO_NUMBER, from_=FROM_NUMBER, body="Hi Dana", status_callback=CALLBACK)
    email = channel.send_email(
        to="dana@example.com",
        from_email="office@acme-roofing.example",
        subject="Your roof estimate",
        html="<p>Hi Dana</p>",
        text="Hi Dana",
        custom_args={"send_id": "42"},
        categories=["workflow"],
    )

    assert (sms.provider, sms.status) == ("console", "delivered")
    assert re.fullmatch(r"[0-9a-f]{32}", sms.provider_id)
    assert sms.provider_id != email.provider_id
    first, second = (json.loads(line) for line in path.read_text().splitlines())
    assert first["id"] == sms.provider_id
    assert {k: first[k] for k in ("channel", "to", "from", "body", "status_callback")} == {
        "channel": "sms",
        "to": TO_NUMBER,
        "from": FROM_NUMBER,
        "body": "Hi Dana",
        "status_callback": CALLBACK,
    }
    assert second["id"] == email.provider_id
    assert second["channel"] == "email"
    assert (second["subject"], second["html"], second["text"]) == ("Your roof estimate", "<p>Hi Dana</p>", "Hi Dana")
    assert (second["custom_args"], second["categories"]) == ({"send_id": "42"}, ["workflow"])


def test_console_channel_without_a_path_logs(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="workflows.channels"):
        result = ConsoleChannel().send_sms(to=TO_NUMBER, from_=FROM_NUMBER, body="Hi Dana")

    assert result.provider_id in caplog.text
    assert "Hi Dana" in caplog.text


def test_console_channel_creates_its_folder(tmp_path):
    from workflows.channels import ConsoleChannel

    path = tmp_path / "not" / "yet" / "outbox.jsonl"
    result = ConsoleChannel(path=str(path)).send_sms(to="+15125550143", from_="console", body="Hi")
    assert result.status == "delivered" and path.read_text().count("\n") == 1
