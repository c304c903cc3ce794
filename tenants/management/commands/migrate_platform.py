"""python manage.py migrate_platform: the deploy-time migration of public, the template and every tenant."""

from __future__ import annotations

from typing import Any

from django.core.management import call_command
from django.core.management.base import BaseCommand

from tenants.models import Tenant
from tenants.template import expected_migration_state, schema_migration_state, template_migrate


class Command(BaseCommand):
    help = (
        "Migrate the public schema (and create the cache table), then the tenant template, then each tenant whose recorded migration "
        "state differs from the code's. Resumable: a tenant finished by an interrupted run is skipped."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        verbosity = int(options["verbosity"])
        call_command("migrate_schemas", shared=True, interactive=False, verbosity=max(0, verbosity - 1))
        # The DatabaseCache table behind rate limits when there is no Redis (no-op with Redis; idempotent).
        call_command("createcachetable", verbosity=max(0, verbosity - 1))
        template_migrate(verbosity=max(0, verbosity - 1))
        expected = expected_migration_state()
        # A list, not a cursor: django-tenants closes the connection after each schema's migration.
        behind = list(Tenant.objects.exclude(migration_state=expected).order_by("id"))
        done = 0
        for tenant in behind:
            call_command(
                "migrate_schemas",
                tenant=True,
                schema_name=tenant.schema_name,
                interactive=False,
                verbosity=max(0, verbosity - 1),
            )
            tenant.migration_state = schema_migration_state(tenant.schema_name)
            tenant.save(update_fields=["migration_state"])
            done += 1
        self.stdout.write(f"public, template and {done} tenant(s) migrated; others were up to date")
