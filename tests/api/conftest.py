"""API test helpers: token-authenticated clients for staff, a client's own API user, and nobody."""

import pytest
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests import factories


def token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


@pytest.fixture
def staff_api(data_ops_user):
    return token_client(data_ops_user)


@pytest.fixture
def acme_api(acme):
    """Acme's own API user (a portal.ClientUser link, not staff)."""
    link = factories.ClientUserFactory(client=acme, user=factories.UserFactory(username="acme-api"))
    return token_client(link.user)


@pytest.fixture
def zenith_api(other_client):
    link = factories.ClientUserFactory(client=other_client, user=factories.UserFactory(username="zenith-api"))
    return token_client(link.user)


@pytest.fixture
def anonymous_api():
    return APIClient()
