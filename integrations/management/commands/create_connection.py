from datetime import timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.urls import reverse

from integrations.providers import ADAPTER_PATHS, get_adapter
from integrations.services import connection_create
from leads.models import Client
from zartsalgo.errors import ApplicationError


class Command(BaseCommand):
    help = (
        "Connect a client to a provider and print its webhook URL. Secrets are given as env references, "
        "never values: --credential auth_token=env:TWILIO_AUTH_TOKEN_ACME"
    )

    def add_arguments(self, parser):
        parser.add_argument("--client", required=True, help="client slug")
        parser.add_argument("--provider", required=True, choices=sorted(ADAPTER_PATHS))
        parser.add_argument("--reason", required=True, help="why this connection exists")
        parser.add_argument("--name", default="")
        parser.add_argument("--credential", action="append", default=[], metavar="NAME=env:VAR")
        parser.add_argument("--freshness-hours", type=float, default=48.0, help="how long silence is normal")
        parser.add_argument("--base-url", default=settings.WEBHOOK_PUBLIC_BASE_URL or "http://127.0.0.1:8000")

    def handle(self, *args, **opts):
        try:
            client = Client.objects.get(slug=opts["client"])
        except Client.DoesNotExist as exc:
            raise CommandError(f"No client with slug {opts['client']!r}") from exc
        credentials = {}
        for item in opts["credential"]:
            name, sep, ref = item.partition("=")
            if not sep:
                raise CommandError(f"--credential {item!r}: expected NAME=env:VARIABLE")
            credentials[name.strip()] = ref.strip()
        adapter = get_adapter(opts["provider"])
        missing = [n for n in adapter.credential_names if n not in credentials]
        if missing:
            self.stderr.write(
                f"Note: {opts['provider']} verifies with {', '.join(missing)}; add --credential for each."
            )
        try:
            connection = connection_create(
                client=client,
                provider=opts["provider"],
                reason=opts["reason"],
                name=opts["name"],
                actor="system:cli",
                credentials=credentials,
                expected_freshness=timedelta(hours=opts["freshness_hours"]),
            )
        except ApplicationError as exc:
            raise CommandError(exc.message) from exc
        path = reverse("integrations:webhook", args=[connection.provider, connection.webhook_token])
        self.stdout.write(f"Connection #{connection.pk}: {connection}")
        self.stdout.write(f"Webhook URL: {opts['base_url'].rstrip('/')}{path}")
