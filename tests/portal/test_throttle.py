"""Portal sign-in and password-reset limits: guessing is cut off with 429, reset emails stop
after a few per address, and the answers never reveal whether an address has a login."""

import pytest
from django.core import mail

from portal.services import client_user_create

pytestmark = pytest.mark.django_db

EMAIL, PASSWORD = "owner@acme.example", "pw-test-123456"


@pytest.fixture
def owner(acme):
    return client_user_create(client=acme, email=EMAIL, password=PASSWORD, actor="system:test").user


def _login(client, username, password, ip="198.51.100.7"):
    return client.post("/portal/login/", {"username": username, "password": password}, REMOTE_ADDR=ip)


def test_failed_sign_ins_lock_the_username_then_even_the_right_password_waits(client, owner, settings):
    settings.PORTAL_LOGIN_FAILURES_PER_USER = 3
    for _ in range(3):
        assert _login(client, EMAIL, "wrong").status_code == 200  # the form again, with its error
    locked = _login(client, EMAIL, PASSWORD)
    assert locked.status_code == 429 and "Too many sign-in attempts" in locked.content.decode()
    assert "_auth_user_id" not in client.session
    # The same username in another case is the same account; another account is not locked.
    assert _login(client, EMAIL.upper(), PASSWORD, ip="203.0.113.9").status_code == 429
    other = client_user_create(
        client=owner.client_user.client, email="office@acme.example", password=PASSWORD, actor="system:test"
    )
    assert _login(client, other.user.username, PASSWORD).status_code == 302


def test_one_address_guessing_many_usernames_is_cut_off(client, owner, settings):
    settings.PORTAL_LOGIN_FAILURES_PER_IP = 4
    for n in range(4):
        assert _login(client, f"nobody{n}@example.com", "wrong").status_code == 200
    assert _login(client, EMAIL, PASSWORD).status_code == 429
    assert _login(client, EMAIL, PASSWORD, ip="203.0.113.9").status_code == 302  # another address


def test_reset_emails_stop_after_the_limit_with_the_same_answer(client, owner, settings):
    settings.PORTAL_RESETS_PER_EMAIL = 2
    answers = [client.post("/portal/password-reset/", {"email": EMAIL}) for _ in range(4)]
    assert {(r.status_code, r["Location"]) for r in answers} == {(302, "/portal/password-reset/sent/")}
    assert len(mail.outbox) == 2


def test_reset_requests_from_one_address_are_capped_across_emails(client, owner, settings):
    settings.PORTAL_RESETS_PER_IP = 2
    client.post("/portal/password-reset/", {"email": "a@example.com"})
    client.post("/portal/password-reset/", {"email": "b@example.com"})
    assert client.post("/portal/password-reset/", {"email": EMAIL}).status_code == 302
    assert mail.outbox == []
