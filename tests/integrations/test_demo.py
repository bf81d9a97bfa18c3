import pytest
from django.core.management import call_command

from integrations.models import RawEvent, WebhookEvent

pytestmark = pytest.mark.django_db


def test_demo_deliveries_go_through_the_real_pipeline(django_capture_on_commit_callbacks):
    call_command("seed_demo", "--leads", "12")
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo_webhooks")
    outcomes = sorted(WebhookEvent.objects.values_list("outcome", flat=True))
    assert outcomes == ["accepted"] * 4 + ["duplicate", "rejected_signature"]
    assert set(RawEvent.objects.values_list("status", flat=True)) == {"normalized"}
    call_command("seed_demo_webhooks")  # idempotent
    assert WebhookEvent.objects.count() == 6
