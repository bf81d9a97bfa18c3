"""A worker killed (SIGKILL) in the middle of a CRM handoff: the lead still reaches the CRM, once.

Real worker processes, real Redis, MariaDB; the real adapters talking to a local fake CRM that
applies the first request and then sits on its answer, so the kill lands after the CRM created
the contact and before we heard about it — the case where a naive retry makes a duplicate.
"""

import os
import signal
import uuid

import pytest
from django.db import transaction

from adminops.models import AdminAction
from integrations.crm import crm_handoff_request
from integrations.models import CrmHandoff
from integrations.services import connection_create
from integrations.tasks import sweep_crm_handoffs
from tests import factories
from tests.conftest import start_celery_worker, stop_celery_worker, wait_for
from tests.fakes.crm_server import running_fake_crm
from workflows.models import StaffTask

ACTOR = "system:test"


@pytest.mark.services
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("provider", ["crm_webhook", "hubspot"])
def test_a_worker_killed_mid_handoff_still_hands_off_exactly_once(provider, acme, monkeypatch, tmp_path):
    from zartsalgo.celery import app

    app.conf.task_always_eager = False
    with running_fake_crm() as fake_crm:
        var = f"TEST_CRM_KILL_{uuid.uuid4().hex[:8].upper()}"
        if provider == "crm_webhook":
            monkeypatch.setenv(var, fake_crm.signing_secret)  # the workers inherit os.environ
            credentials, config = {"signing_secret": f"env:{var}"}, {"url": fake_crm.webhook_url}
        else:
            monkeypatch.setenv(var, fake_crm.access_token)
            credentials, config = {"access_token": f"env:{var}"}, {"base_url": fake_crm.url}
        connection_create(
            client=acme, provider=provider, reason="kill test", actor=ACTOR, credentials=credentials, config=config
        )
        lead = factories.LeadFactory(client=acme)
        fake_crm.hang(120)  # the CRM creates the contact, then the answer never comes in time
        # Stuck after 4 s instead of 5 min, so the sweeper takes over quickly; the timeout is
        # long so that the kill, not the timeout, ends the first call.
        worker_env = {"INTEGRATIONS_CRM_STUCK_AFTER_SECONDS": "4", "INTEGRATIONS_CRM_TIMEOUT_SECONDS": "60"}

        worker, log = start_celery_worker(tmp_path, **worker_env)
        try:
            with transaction.atomic():  # as the workflow step's transaction would
                handoff = crm_handoff_request(
                    lead=lead,
                    source="workflow",
                    source_key="enrollment:1:step:crm:visit:1",
                    actor=ACTOR,
                    must_reach=True,
                )
            assert wait_for(lambda: len(fake_crm.contacts) == 1, timeout=60), "the handoff never reached the CRM"
            os.kill(worker.pid, signal.SIGKILL)  # mid-call: the CRM has the contact, we do not know it
            worker.wait(timeout=10)
        finally:
            stop_celery_worker(worker, log)
        handoff.refresh_from_db()
        assert (handoff.status, handoff.attempts, handoff.crm_id) == ("sending", 1, "")  # committed before the call
        assert AdminAction.objects.get(pk=handoff.action_id).state == "intended"

        worker, log = start_celery_worker(tmp_path, **worker_env)
        try:
            # The beat's sweeper finds the row stuck in `sending` and sends it again, same key.
            def swept_and_succeeded():
                sweep_crm_handoffs.delay()
                return CrmHandoff.objects.get(pk=handoff.pk).status == "succeeded"

            assert wait_for(swept_and_succeeded, timeout=90, interval=2)
        finally:
            stop_celery_worker(worker, log)

        handoff.refresh_from_db()
        assert len(fake_crm.requests) >= 2  # it was sent again…
        assert len(fake_crm.contacts) == 1  # …and the CRM still has exactly one contact
        [(crm_id, contact)] = fake_crm.contacts.items()
        assert handoff.crm_id == crm_id
        # The webhook receiver skipped the repeated webhook-id; HubSpot updated the same contact.
        assert contact["writes"] == (1 if provider == "crm_webhook" else len(fake_crm.requests))
        assert AdminAction.objects.get(pk=handoff.action_id).state == "succeeded"
        assert not StaffTask.objects.exists()  # it never died, so no manual fallback
