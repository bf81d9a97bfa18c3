import pytest
from django.contrib.auth.models import Group, Permission

from adminops.roles import DATA_OPS_GROUP, ROLE_PERMISSIONS, roles_sync
from tests import factories

pytestmark = pytest.mark.django_db


def _perms(group):
    return {f"{p.content_type.app_label}.{p.codename}" for p in group.permissions.select_related("content_type")}


def test_data_ops_group_has_exactly_the_declared_permissions():
    group = Group.objects.get(name=DATA_OPS_GROUP)
    assert _perms(group) == set(ROLE_PERMISSIONS[DATA_OPS_GROUP])
    # Traceability: data ops never delete leads or log rows.
    assert not any(p.endswith(("delete_lead", "delete_adminaction", "change_adminaction")) for p in _perms(group))


def test_sync_removes_drift():
    group = Group.objects.get(name=DATA_OPS_GROUP)
    group.permissions.add(Permission.objects.get(codename="delete_lead"))
    roles_sync()
    assert "leads.delete_lead" not in _perms(group)


def test_data_ops_can_work_leads_but_not_delete(client, data_ops_user):
    lead = factories.LeadFactory()
    client.force_login(data_ops_user)
    assert client.get("/admin/leads/lead/").status_code == 200
    assert client.get(f"/admin/leads/lead/{lead.pk}/change/").status_code == 200
    assert client.get(f"/admin/leads/lead/{lead.pk}/delete/").status_code == 403
    assert client.get("/admin/adminops/adminaction/").status_code == 200
    assert client.get("/admin/auth/user/add/").status_code == 403


def test_client_portal_user_cannot_enter_admin(client):
    link = factories.ClientUserFactory()
    client.force_login(link.user)
    response = client.get("/admin/leads/lead/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
