"""Incidents: every transition writes a timeline entry and an action-log row with its actor;
holds placed by an incident are released on close, and only those."""

import pytest

from adminops import services
from adminops.models import AdminAction, Incident, IncidentEntry
from tests import factories
from tests.adminops.helpers import held_enrollment, published_workflow
from zartsalgo.errors import ApplicationError, InvalidTransition

pytestmark = pytest.mark.django_db


def _open(owner, actor, **kwargs):
    return services.incident_open(
        title="Twilio 5xx for Acme",
        owner=owner,
        severity=kwargs.pop("severity", "sev2"),
        rollback_path="Hold Acme's sends; pause the Twilio connection.",
        actor=actor,
        **kwargs,
    )


def _last(incident, kind):
    return IncidentEntry.objects.filter(incident=incident, kind=kind).latest("id")


def test_open_records_owner_rollback_timeline_and_action(data_ops_user, engineer, acme):
    incident = _open(data_ops_user, engineer, clients=[acme], summary="Texts failing since 09:10")
    assert incident.status == "open" and incident.owner == data_ops_user and not incident.sends_held
    assert list(incident.affected_clients.all()) == [acme]
    entry = _last(incident, "opened")
    assert entry.actor_user == engineer and entry.actor_label == f"user:{engineer.username}"
    assert entry.action.verb == "incident.open" and entry.action.actor_user == engineer
    assert (entry.action.target_type, entry.action.target_id) == ("adminops.incident", str(incident.pk))


@pytest.mark.parametrize("missing", ["title", "rollback_path"])
def test_open_needs_a_title_and_a_rollback_path(data_ops_user, missing):
    fields = {"title": "X", "rollback_path": "Pause it", missing: "  "}
    with pytest.raises(ApplicationError):
        services.incident_open(owner=data_ops_user, actor=data_ops_user, **fields)
    assert not Incident.objects.exists()


def test_owner_must_be_staff(data_ops_user):
    outsider = factories.UserFactory()
    with pytest.raises(ApplicationError):
        _open(outsider, data_ops_user)


def test_each_status_transition_is_logged_with_its_actor(data_ops_user, engineer):
    incident = _open(data_ops_user, data_ops_user)
    for status, actor in [("investigating", engineer), ("mitigated", data_ops_user), ("investigating", engineer)]:
        before = AdminAction.objects.count()
        incident = services.incident_set_status(incident=incident, status=status, actor=actor, note="seen in logs")
        assert incident.status == status
        entry = _last(incident, "status")
        assert entry.actor_user == actor and entry.detail["status"] == status
        assert entry.action.verb == f"incident.{status}" and entry.action.actor_user == actor
        assert AdminAction.objects.count() == before + 1


def test_forbidden_moves_are_refused(data_ops_user):
    incident = _open(data_ops_user, data_ops_user)
    with pytest.raises(InvalidTransition):
        services.incident_set_status(incident=incident, status="open", actor=data_ops_user)
    with pytest.raises(InvalidTransition):  # closing needs incident_close and a resolution
        services.incident_set_status(incident=incident, status="closed", actor=data_ops_user)
    incident.refresh_from_db()
    assert incident.status == "open"


def test_note_and_owner_change_are_logged(data_ops_user, engineer):
    incident = _open(data_ops_user, data_ops_user)
    entry = services.incident_add_note(incident=incident, actor=engineer, note="Twilio status page: degraded")
    assert entry.kind == "note" and entry.action.verb == "incident.note" and entry.actor_user == engineer
    other = factories.DataOpsUserFactory()
    incident = services.incident_set_owner(incident=incident, owner=other, actor=engineer)
    assert incident.owner == other
    entry = _last(incident, "owner")
    assert entry.action.verb == "incident.owner" and entry.detail["owner"] == other.username
    with pytest.raises(ApplicationError):
        services.incident_add_note(incident=incident, actor=engineer, note=" ")


def test_close_without_resolution_is_refused(data_ops_user):
    incident = _open(data_ops_user, data_ops_user)
    with pytest.raises(ApplicationError):
        services.incident_close(incident=incident, actor=data_ops_user, resolution="  ")
    incident.refresh_from_db()
    assert incident.status == "open" and not incident.entries.filter(kind="closed").exists()


def test_close_records_resolution_and_is_final(data_ops_user, engineer):
    incident = _open(data_ops_user, data_ops_user)
    incident = services.incident_set_status(incident=incident, status="mitigated", actor=data_ops_user)
    incident = services.incident_close(incident=incident, actor=engineer, resolution="Twilio fixed their carrier")
    assert incident.status == "closed" and incident.closed_at and incident.resolution == "Twilio fixed their carrier"
    assert incident.closed_by_label == f"user:{engineer.username}"
    entry = _last(incident, "closed")
    assert entry.action.verb == "incident.close" and entry.action.actor_user == engineer
    for call in (
        lambda: services.incident_close(incident=incident, actor=engineer, resolution="again"),
        lambda: services.incident_set_status(incident=incident, status="investigating", actor=engineer),
        lambda: services.incident_add_note(incident=incident, actor=engineer, note="late"),
    ):
        with pytest.raises(InvalidTransition):
            call()


def test_opening_with_holds_holds_affected_sends_and_closing_releases_only_those(
    data_ops_user, engineer, acme, other_client
):
    from workflows import services as wf

    acme_flow = published_workflow(acme, name="Acme follow-up")
    other_flow = published_workflow(other_client, name="Zenith follow-up")
    # Someone else held Zenith's workflow before the incident: that hold is not the incident's.
    wf.workflow_hold_sends(workflow=other_flow, held=True, actor=engineer, reason="Template under review")

    incident = _open(data_ops_user, engineer, clients=[acme], workflows=[acme_flow, other_flow], hold_sends=True)
    acme.refresh_from_db()
    acme_flow.refresh_from_db()
    assert acme.sends_held and acme_flow.sends_held and incident.sends_held
    assert {(h["type"], h["id"]) for h in incident.holds_placed} == {("client", acme.pk), ("workflow", acme_flow.pk)}
    entry = _last(incident, "hold")
    assert entry.action.verb == "incident.hold_sends" and entry.actor_user == engineer
    # The kill switches logged their own changes with the same actor.
    assert AdminAction.objects.filter(verb="client.hold_sends", actor_user=engineer, client=acme).exists()

    # A held enrollment of Acme resumes when the incident's holds are released.
    enrollment = held_enrollment(acme, workflow=acme_flow)

    incident = services.incident_close(incident=incident, actor=data_ops_user, resolution="Carrier fixed")
    acme.refresh_from_db()
    acme_flow.refresh_from_db()
    other_flow.refresh_from_db()
    assert not acme.sends_held and not acme_flow.sends_held
    assert other_flow.sends_held and other_flow.sends_held_reason == "Template under review"
    assert not incident.sends_held and all(h["released_at"] for h in incident.holds_placed)
    enrollment.refresh_from_db()
    assert enrollment.state == "active"
    release = _last(incident, "release")
    assert release.action.verb == "incident.release_sends" and release.actor_user == data_ops_user


def test_release_leaves_a_hold_someone_else_re_placed(data_ops_user, engineer, acme):
    from workflows import services as wf

    incident = _open(data_ops_user, engineer, clients=[acme], hold_sends=True)
    # Someone took the hold over with their own reason while the incident was open.
    wf.client_hold_sends(client=acme, held=True, actor=engineer, reason="Client unpaid invoice")
    incident = services.incident_release_sends(incident=incident, actor=data_ops_user)
    acme.refresh_from_db()
    assert acme.sends_held and acme.sends_held_reason == "Client unpaid invoice"
    assert "someone else" in incident.holds_placed[0]["note"]


def test_close_can_keep_the_holds_on(data_ops_user, acme):
    incident = _open(data_ops_user, data_ops_user, clients=[acme], hold_sends=True)
    incident = services.incident_close(
        incident=incident, actor=data_ops_user, resolution="Client paused for winter", release_holds=False
    )
    acme.refresh_from_db()
    assert acme.sends_held and incident.sends_held and incident.status == "closed"


# The timeline inline's management form, as the browser posts it.
INLINE = {
    f"entries-{k}": v for k, v in {"TOTAL_FORMS": 0, "INITIAL_FORMS": 0, "MIN_NUM_FORMS": 0, "MAX_NUM_FORMS": 0}.items()
}


def test_admin_opens_moves_and_closes_through_the_services(client, data_ops_user, acme):
    client.force_login(data_ops_user)
    response = client.post(
        "/admin/adminops/incident/add/",
        {
            **INLINE,
            "title": "Angi leads missing",
            "owner": data_ops_user.pk,
            "severity": "sev2",
            "summary": "",
            "rollback_path": "Pause the Angi connection",
            "affected_clients": [acme.pk],
            "hold_sends": "on",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    incident = Incident.objects.get()
    assert incident.sends_held and incident.entries.filter(kind="opened", actor_user=data_ops_user).exists()
    url = f"/admin/adminops/incident/{incident.pk}/change/"
    page = client.get(url)
    assert page.status_code == 200 and "Pause the Angi connection" in page.content.decode()

    response = client.post(url, {**INLINE, "owner": data_ops_user.pk, "step": "investigating", "note": "Checking Angi"})
    assert response.status_code == 302
    incident.refresh_from_db()
    assert incident.status == "investigating"

    response = client.post(url, {**INLINE, "owner": data_ops_user.pk, "step": "close", "close_resolution": ""})
    assert response.status_code == 200  # the form says a resolution is needed
    incident.refresh_from_db()
    assert incident.status == "investigating"

    response = client.post(
        url, {**INLINE, "owner": data_ops_user.pk, "step": "close", "close_resolution": "Angi re-sent"}
    )
    assert response.status_code == 302
    incident.refresh_from_db()
    acme.refresh_from_db()
    assert incident.status == "closed" and not acme.sends_held
    verbs = list(
        AdminAction.objects.filter(target_type="adminops.incident").order_by("id").values_list("verb", flat=True)
    )
    assert verbs == [
        "incident.open",
        "incident.hold_sends",
        "incident.investigating",
        "incident.release_sends",
        "incident.close",
    ]
    assert client.get(f"/admin/adminops/incident/{incident.pk}/delete/").status_code == 403


def test_closed_incident_page_is_read_only(client, data_ops_user):
    incident = _open(data_ops_user, data_ops_user)
    services.incident_close(incident=incident, actor=data_ops_user, resolution="Done")
    client.force_login(data_ops_user)
    response = client.get(f"/admin/adminops/incident/{incident.pk}/change/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Done" in html and 'name="step"' not in html
