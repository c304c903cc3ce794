"""python manage.py import_servicenow PATH --tenant SLUG

Imports a ServiceNow incident event log into a tenant. Prints one line per problem row, then, as its
last line, one JSON object: {"incidents", "events", "skipped", "people", "groups", "errors": [...]}.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django_tenants.utils import tenant_context

from modules.incidents.servicenow import servicenow_import
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Import a ServiceNow incident event log (CSV) into a tenant; safe to run again."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("path", type=Path)
        parser.add_argument("--tenant", required=True, help="tenant slug")

    def handle(self, *args: Any, **options: Any) -> None:
        tenant = Tenant.objects.filter(slug=options["tenant"]).first()
        if tenant is None:
            raise CommandError(f"--tenant: no tenant with slug {options['tenant']!r}")
        path: Path = options["path"]
        if not path.is_file():
            raise CommandError(f"PATH: {path} is not a readable file")
        with path.open(newline="", encoding="utf-8") as stream, tenant_context(tenant):
            report = servicenow_import(stream=stream, time_zone=tenant.time_zone)
        for error in report.errors:
            self.stderr.write(f"{path}:{error.line}: {error.field}: {error.message}")
        self.stdout.write(json.dumps(report.as_dict()))
