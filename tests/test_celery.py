import datetime
import importlib

import pytest
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from adminops import services
from adminops.models import AdminAction
from adminops.tasks import BEAT_HEARTBEAT_KEY, beat_heartbeat, sweep_stale_intended_actions
from tests.conftest import wait_for
from zartsalgo.celery import app
from zartsalgo.tasks import enqueue_on_commit


def test_queues_are_named_for_their_work_and_routes_resolve():
    assert {q.name for q in app.conf.task_queues} == {"ingest", "workflows", "outbound", "default"}
    router = app.amqp.router
    assert router.route({}, "integrations.tasks.process_raw_event")["queue"].name == "ingest"
    assert router.route({}, "workflows.tasks.send_step_message")["queue"].name == "outbound"
    assert router.route({}, "workflows.tasks.run_due_enrollments")["queue"].name == "workflows"
    assert router.route({}, "adminops.tasks.beat_heartbeat")["queue"].name == "default"


def test_work_that_must_not_be_lost_is_acked_late():
    assert app.conf.task_acks_late is True
    assert app.conf.task_reject_on_worker_lost is True
    assert app.conf.worker_prefetch_multiplier == 1


def test_beat_schedule_names_registered_tasks():
    for name, entry in app.conf.beat_schedule.items():
        importlib.import_module(entry["task"].rsplit(".", 1)[0])
        assert entry["task"] in app.tasks, f"beat entry {name} points at unknown task {entry['task']}"


@pytest.mark.django_db
def test_enqueue_waits_for_commit(django_capture_on_commit_callbacks):
    cache.delete(BEAT_HEARTBEAT_KEY)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        enqueue_on_commit(beat_heartbeat)
        assert cache.get(BEAT_HEARTBEAT_KEY) is None  # nothing ran inside the transaction
    assert len(callbacks) == 1
    callbacks[0]()
    assert cache.get(BEAT_HEARTBEAT_KEY) is not None


@pytest.mark.django_db(transaction=True)
def test_rolled_back_transaction_enqueues_nothing():
    cache.delete(BEAT_HEARTBEAT_KEY)
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue_on_commit(beat_heartbeat)
        raise RuntimeError("boom")
    assert cache.get(BEAT_HEARTBEAT_KEY) is None


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
def test_real_worker_runs_a_task_enqueued_after_commit(celery_worker):
    """Redis carries the message, a separate worker process does the work in MariaDB."""
    stale, _ = services.action_record_intended(verb="sms.send", actor="system:test", summary="stale")
    AdminAction.objects.filter(pk=stale.pk).update(created_at=timezone.now() - datetime.timedelta(hours=2))
    with transaction.atomic():
        enqueue_on_commit(sweep_stale_intended_actions)
        enqueue_on_commit(beat_heartbeat)
    state = wait_for(lambda: AdminAction.objects.get(pk=stale.pk).state == "unknown", timeout=60)
    assert state, "the worker did not process the sweep task"
    assert wait_for(lambda: cache.get(BEAT_HEARTBEAT_KEY), timeout=30)
