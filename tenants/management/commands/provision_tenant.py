"""python manage.py provision_tenant --provider SLUG --name NAME --slug SLUG [--time-zone TZ] [--locale L]"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.problems import DomainError
from controlplane.providers.models import Provider
from tenants.services import tenant_provision


class Command(BaseCommand):
    help = "Provision a client tenant (schema from the migrated template) for a provider."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--provider", required=True, help="provider slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--slug", required=True, help="unique on the platform; used in /t/<slug>/")
        parser.add_argument("--time-zone", default="UTC", help="IANA name, e.g. Europe/London")
        parser.add_argument("--locale", default="en-gb")

    def handle(self, *args: Any, **options: Any) -> None:
        provider = Provider.objects.filter(slug=options["provider"]).first()
        if provider is None:
            raise CommandError(f"--provider: no provider with slug {options['provider']!r}")
        try:
            tenant = tenant_provision(
                provider=provider,
                name=options["name"],
                slug=options["slug"],
                time_zone=options["time_zone"],
                locale=options["locale"],
            )
        except DomainError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"provisioned {tenant.slug} (schema {tenant.schema_name})")
