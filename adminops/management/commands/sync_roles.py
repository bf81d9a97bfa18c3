from django.core.management.base import BaseCommand

from adminops.roles import roles_sync


class Command(BaseCommand):
    help = "Reset the role groups (Data ops, …) to exactly the permissions declared in adminops/roles.py."

    def handle(self, *args, **options):
        for name, count in roles_sync().items():
            self.stdout.write(f"{name}: {count} permissions")
