from django.apps import AppConfig
from django.db.models.signals import post_migrate


class AdminopsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "adminops"
    verbose_name = "Ops: action log"

    def ready(self) -> None:
        # Infrastructure hook, not business wiring: after every `migrate` the role groups are
        # brought back to exactly the permissions declared in adminops/roles.py, so a fresh
        # database (CI, demo, a new replica) never lacks them and nobody's hand-edits drift.
        from .roles import sync_roles_after_migrate

        post_migrate.connect(sync_roles_after_migrate, sender=self, dispatch_uid="adminops.sync_roles")
