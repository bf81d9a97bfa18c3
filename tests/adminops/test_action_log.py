import datetime

import pytest
from django.utils import timezone

from adminops import services
from adminops.models import AdminAction
from adminops.tasks import sweep_stale_intended_actions
from tests import factories
from zartsalgo.errors import InvalidTransition

pytestmark = pytest.mark.django_db


def test_intended_then_succeeded_records_actor_target_and_time(data_ops_user):
    lead = factories.LeadFactory()
    action, created = services.action_record_intended(
        verb="sms.send", actor=data_ops_user, lead=lead, target=lead, summary="Confirmation SMS"
    )
    assert created and action.state == "intended" and action.completed_at is None
    assert action.client == lead.client  # derived from the lead
    assert action.actor_label == f"user:{data_ops_user.username}" and action.actor_user == data_ops_user
    assert (action.target_type, action.target_id) == ("leads.lead", str(lead.pk))

    services.action_mark_succeeded(action=action, detail={"provider_id": "SM123"})
    action.refresh_from_db()
    assert action.state == "succeeded" and action.completed_at is not None
    assert action.detail == {"provider_id": "SM123"}


def test_system_actor_label():
    action, _ = services.action_record_intended(verb="x.y", actor="workflows", summary="s")
    assert action.actor_label == "system:workflows" and action.actor_user is None


def test_idempotency_key_returns_the_first_row():
    first, created_first = services.action_record_intended(
        verb="sms.send", actor="system:workflows", summary="a", idempotency_key="enr:1:step:2:visit:1"
    )
    services.action_mark_succeeded(action=first)
    again, created_again = services.action_record_intended(
        verb="sms.send", actor="system:workflows", summary="a", idempotency_key="enr:1:step:2:visit:1"
    )
    assert created_first and not created_again
    assert again.pk == first.pk and again.state == "succeeded"
    assert AdminAction.objects.filter(idempotency_key="enr:1:step:2:visit:1").count() == 1


def test_finished_actions_cannot_change_outcome():
    action, _ = services.action_record_intended(verb="x", actor="system:t", summary="s")
    services.action_mark_failed(action=action, error="provider said 400")
    with pytest.raises(InvalidTransition):
        services.action_mark_succeeded(action=action)
    action.refresh_from_db()
    assert action.state == "failed" and action.error == "provider said 400"


def test_unknown_can_be_resolved_by_review():
    action, _ = services.action_record_intended(verb="x", actor="system:t", summary="s")
    services.action_mark_unknown(action=action, error="timeout after 15 s")
    services.action_mark_succeeded(action=action, summary="Checked in Twilio console: delivered")
    action.refresh_from_db()
    assert action.state == "succeeded" and action.summary.startswith("Checked")


def test_action_record_is_immediately_succeeded():
    action = services.action_record(verb="lead.update", actor="system:t", summary="s")
    assert action.state == "succeeded" and action.completed_at is not None
    assert abs((action.created_at - action.completed_at).total_seconds()) < 1
    action.refresh_from_db()  # one INSERT wrote it that way: there is no "intended" moment
    assert action.state == "succeeded" and action.completed_at is not None


def test_sweeper_marks_only_stale_intended_as_unknown(settings):
    settings.ADMIN_ACTION_UNKNOWN_AFTER_SECONDS = 600
    stale, _ = services.action_record_intended(verb="sms.send", actor="system:t", summary="old")
    services.action_record_intended(verb="sms.send", actor="system:t", summary="new")
    done, _ = services.action_record_intended(verb="sms.send", actor="system:t", summary="done")
    services.action_mark_succeeded(action=done)
    AdminAction.objects.filter(pk__in=[stale.pk, done.pk]).update(
        created_at=timezone.now() - datetime.timedelta(hours=1)
    )

    assert sweep_stale_intended_actions() == 1
    states = dict(AdminAction.objects.values_list("summary", "state"))
    assert states == {"old": "unknown", "new": "intended", "done": "succeeded"}
    assert "Check before retrying" in AdminAction.objects.get(pk=stale.pk).error
