"""Ops status (/ops/status/, /ops/status.json) reflects what is wrong right now."""

from datetime import timedelta

import pytest
from django.utils import timezone

from adminops import services
from adminops.models import Heartbeat
from adminops.tasks import BEAT_HEARTBEAT_NAME, beat_heartbeat
from integrations.models import SyncError
from tests import factories
from tests.adminops.helpers import dead_handoff, held_enrollment, stale_connection, unknown_send

pytestmark = pytest.mark.django_db

JSON = "/ops/status.json"


def test_json_reflects_a_dead_letter_a_stale_connection_and_a_held_enrollment(
    client, data_ops_user, acme, django_assert_max_num_queries
):
    client.force_login(data_ops_user)
    fresh = factories.ConnectionFactory(client=acme, provider="webform", last_event_at=timezone.now())
    before = client.get(JSON).json()
    assert before["sync_errors"]["dead"] == 0 and before["held_enrollments"]["total"] == 0

    factories.SyncErrorFactory(raw_event__connection=fresh, state=SyncError.State.DEAD)
    stale = stale_connection(acme)
    held = held_enrollment(acme)
    with django_assert_max_num_queries(15):
        body = client.get(JSON).json()

    assert body["status"] == "degraded"
    assert body["sync_errors"] == {"retrying": 0, "dead": 1}
    assert any("dead sync error" in r for r in body["reasons"])
    rows = {c["id"]: c for c in body["connections"]}
    assert rows[stale.pk]["freshness"] == "stale" and rows[stale.pk]["stale"] is True
    assert rows[stale.pk]["expected_within_seconds"] == 2 * 86400
    assert rows[stale.pk]["last_event_age_seconds"] > 2 * 86400
    assert rows[fresh.pk]["freshness"] == "fresh" and rows[fresh.pk]["stale"] is False
    assert body["connection_counts"]["stale"] == 1
    assert body["held_enrollments"]["total"] == 1 and body["held_enrollments"]["switch"] == 1
    assert held.state == "held"


def test_heartbeat_missing_then_recorded_by_the_task(client, data_ops_user):
    client.force_login(data_ops_user)
    body = client.get(JSON).json()
    assert body["beat_heartbeat"]["last_beat_at"] is None and body["beat_heartbeat"]["stale"] is True
    assert any("heartbeat" in r for r in body["reasons"])

    beat_heartbeat.apply()  # as beat (or run_scheduler) runs it
    body = client.get(JSON).json()
    beat = body["beat_heartbeat"]
    assert beat["last_beat_at"] is not None and beat["stale"] is False
    assert beat["interval_seconds"] == 30.0 and beat["stale_after_seconds"] == 90.0
    assert body["status"] == "ok", body["reasons"]

    Heartbeat.objects.filter(name=BEAT_HEARTBEAT_NAME).update(beat_at=timezone.now() - timedelta(seconds=91))
    assert client.get(JSON).json()["beat_heartbeat"]["stale"] is True


def test_scheduler_lag_is_the_age_of_the_oldest_due_enrollment(client, data_ops_user, acme, settings):
    from workflows.models import Enrollment

    settings.OPS_SCHEDULER_LAG_WARN_SECONDS = 60
    services.heartbeat_record(name=BEAT_HEARTBEAT_NAME)
    enrollment = held_enrollment(acme)
    Enrollment.objects.filter(pk=enrollment.pk).update(
        state="active", hold_kind="", next_run_at=timezone.now() - timedelta(minutes=5)
    )
    client.force_login(data_ops_user)
    body = client.get(JSON).json()
    assert 290 < body["scheduler"]["lag_seconds"] < 400 and body["scheduler"]["due"] == 1
    assert any("scheduler lag" in r for r in body["reasons"])


def test_unknown_outcomes_handoffs_queues_and_incidents(client, data_ops_user, engineer, acme, settings):
    unknown_send(acme)
    dead_handoff(acme)
    incident = services.incident_open(
        title="Twilio down", owner=data_ops_user, rollback_path="Hold sends", severity="sev1", actor=engineer
    )
    client.force_login(data_ops_user)
    body = client.get(JSON).json()
    assert body["unknown_outcomes"]["messages"] == 1 and body["held_enrollments"]["send_unknown"] == 1
    assert body["crm_handoffs"]["dead"] == 1
    assert body["open_incidents"][0]["id"] == incident.pk
    assert body["open_incidents"][0]["owner"] == data_ops_user.username
    assert body["open_incidents"][0]["rollback_path"] == "Hold sends"
    queues = body["queues"]
    assert set(queues["queues"]) == {"ingest", "workflows", "outbound", "default"}
    if not settings.REDIS_URL or settings.CELERY_TASK_ALWAYS_EAGER:
        assert queues["available"] is False and set(queues["queues"].values()) == {"n/a"}


@pytest.mark.services
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # send_task always publishes
def test_queue_depths_read_redis_under_the_key_prefix(settings):
    """With Redis: a message published to a queue shows in its depth (then is purged)."""
    from adminops.selectors import queue_depths
    from zartsalgo.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = False
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("default")
        before = queue_depths()["queues"]["default"]
        app.send_task("adminops.tasks.beat_heartbeat", queue="default", connection=conn)
        after = queue_depths()
        conn.default_channel.queue_purge("default")
    assert after["available"] is True and after["queues"]["default"] == before + 1


def test_status_page_renders_for_staff(client, data_ops_user, acme, django_assert_max_num_queries):
    stale_connection(acme)
    held_enrollment(acme)
    client.force_login(data_ops_user)
    with django_assert_max_num_queries(25):
        response = client.get("/ops/status/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "degraded" in html and "stale" in html and "Beat heartbeat" in html


def test_staff_only(client, acme):
    assert client.get(JSON).status_code == 401
    assert client.get("/ops/status/").status_code == 302
    client.force_login(factories.ClientUserFactory(client=acme).user)
    assert client.get(JSON).status_code == 403
    assert client.get("/ops/status/").status_code == 302


def test_health_probes_still_answer(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").status_code == 200
