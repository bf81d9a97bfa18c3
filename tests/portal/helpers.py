"""Shared setup for the proof tests: a period in the client's calendar and leads inside it."""

import datetime

from django.utils import timezone

from adminops.models import AdminAction
from portal import services
from tests import factories


def last_ten_days(client) -> tuple[datetime.date, datetime.date]:
    end = timezone.localtime(timezone.now(), client.tz).date() - datetime.timedelta(days=1)
    return end - datetime.timedelta(days=9), end


def at(client, day: datetime.date, hour: int = 12) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(hour), tzinfo=client.tz)


_n = iter(range(100, 10_000))


def clean_lead(client, day, **fields):
    """A lead nothing should flag: readable name, valid phone, ordinary email, full fields."""
    n = next(_n)
    values = {
        "client": client,
        "first_name": "Maria",
        "last_name": f"Garcia{chr(97 + n % 26)}",
        "phone_raw": f"+1512201{n:04d}",
        "phone_e164": f"+1512201{n:04d}",
        "email_raw": f"maria{n}@gmail.com",
        "email_normalized": f"maria{n}@gmail.com",
        "source": "web_form",
        "service_type": "Drain cleaning",
        "utm_source": "google",
        "postal_code": f"787{n % 100:02d}",
        "captured_at": at(client, day),
    }
    values.update(fields)
    return factories.LeadFactory(**values)


def publish(item, user, override_reason: str = ""):
    services.proof_check(item=item, actor=user)
    services.proof_approve(item=item, actor=user)
    return services.proof_publish(item=item, actor=user, override_reason=override_reason)


def actions_for(item):
    return AdminAction.objects.filter(target_type=item._meta.label_lower, target_id=str(item.pk)).order_by("id")
