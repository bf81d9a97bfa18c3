from django.conf import settings
from django.db import models

from zartsalgo.models import TimeStampedModel


class ClientUser(TimeStampedModel):
    """Links a portal login to exactly one client. Portal users are never staff."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        VIEWER = "viewer", "Viewer"

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="client_user")
    client = models.ForeignKey("leads.Client", on_delete=models.PROTECT, related_name="portal_users")
    role = models.CharField(max_length=8, choices=Role.choices, default=Role.VIEWER)

    class Meta:
        verbose_name = "client portal user"

    def __str__(self) -> str:
        return f"{self.user.get_username()} → {self.client}"
