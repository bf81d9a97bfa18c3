"""Password reset for portal users: Django's token flow, portal templates, portal users only."""

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.core import mail
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from portal.services import client_user_create
from tests import factories

pytestmark = pytest.mark.django_db

LINK = re.compile(r"http://testserver(/portal/password-reset/[^/\s]+/[^/\s]+/)")


@pytest.fixture
def owner(acme):
    return client_user_create(
        client=acme, email="owner@acme.example", password="pw-test-123456", actor="system:test"
    ).user


def request_reset(client, email: str):
    return client.post("/portal/password-reset/", {"email": email})


def test_round_trip_request_email_new_password_sign_in(client, owner):
    response = request_reset(client, "Owner@ACME.example")  # any case

    assert response.status_code == 302 and response["Location"] == "/portal/password-reset/sent/"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["owner@acme.example"]
    assert message.subject == "Reset your ZartsAlgo portal password"
    link = LINK.search(message.body).group(1)

    form_page = client.get(link, follow=True)  # Django swaps the token for a session key
    assert form_page.status_code == 200 and form_page.context["validlink"]
    set_url = form_page.redirect_chain[-1][0]
    html = form_page.content.decode()
    assert '<label for="id_new_password1">' in html and '<label for="id_new_password2">' in html

    done = client.post(set_url, {"new_password1": "Fresh-Pass-2026!x", "new_password2": "Fresh-Pass-2026!x"})
    assert done.status_code == 302 and done["Location"] == "/portal/password-reset/complete/"
    assert "Password saved" in client.get(done["Location"]).content.decode()

    client.logout()
    old = client.post("/portal/login/", {"username": "owner@acme.example", "password": "pw-test-123456"})
    assert old.status_code == 200  # the old password no longer works
    new = client.post("/portal/login/", {"username": "owner@acme.example", "password": "Fresh-Pass-2026!x"})
    assert new.status_code == 302 and new["Location"] == "/portal/"
    assert client.get("/portal/").status_code == 200

    client.logout()
    reused = client.get(link, follow=True)  # a link works once
    assert not reused.context["validlink"] and "not valid" in reused.content.decode()


def test_unknown_address_gets_the_same_answer_and_no_email(client, owner):
    known = request_reset(client, "owner@acme.example")
    mail.outbox.clear()

    unknown = request_reset(client, "nobody@nowhere.example")

    assert mail.outbox == []
    assert (unknown.status_code, unknown["Location"]) == (known.status_code, known["Location"])


@pytest.mark.parametrize("who", ["staff", "inactive", "no_client_link"])
def test_only_active_portal_users_get_a_reset_email(client, acme, who):
    if who == "staff":
        factories.DataOpsUserFactory(email="ops@agency.example")
        email = "ops@agency.example"
    elif who == "inactive":
        link = client_user_create(client=acme, email="gone@acme.example", password="pw-test-123456", actor="t")
        link.user.is_active = False
        link.user.save(update_fields=["is_active"])
        email = "gone@acme.example"
    else:
        factories.UserFactory(username="plain", email="plain@acme.example")
        email = "plain@acme.example"

    response = request_reset(client, email)

    assert response.status_code == 302 and response["Location"] == "/portal/password-reset/sent/"
    assert mail.outbox == []


def test_a_reset_link_for_a_staff_user_is_refused(client):
    staff = factories.DataOpsUserFactory()
    uid = urlsafe_base64_encode(force_bytes(staff.pk))
    token = default_token_generator.make_token(staff)

    page = client.get(f"/portal/password-reset/{uid}/{token}/", follow=True)

    assert not page.context["validlink"]
    assert "not valid" in page.content.decode()


def test_reset_pages_use_portal_templates_with_labels(client):
    html = client.get("/portal/password-reset/").content.decode()
    assert '<label for="id_email">' in html and '<a class="skip-link" href="#main">' in html
    assert "Check your email" in client.get("/portal/password-reset/sent/").content.decode()
