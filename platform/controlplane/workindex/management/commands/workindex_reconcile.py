"""python manage.py workindex_reconcile [--tenant SLUG] [--dry-run]

Rebuilds the cross-client work index's expected rows from each tenant schema, compares them with the
index and, unless ``--dry-run``, fixes every difference. Output: one line per difference
(``<slug>: missing incident INC0000042 (<id>)``, ``<slug>: stale ... : state, title``,
``<slug>: extra ...``), one summary line per tenant, then as the last line one JSON object
``{"tenants": n, "missing": n, "stale": n, "extra": n, "fixed": bool}``. Exit status 0, except 1 for a
dry run that found differences (like ``git diff --exit-code``).
"""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.workindex.services import workindex_reconcile
from tenants.models import Tenant


class Command(BaseCommand):
    help = "Compare the work index with the tenant schemas and fix the differences."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--tenant", help="only this tenant (slug)")
        parser.add_argument("--dry-run", action="store_true", help="report, change nothing")

    def handle(self, *args: Any, **options: Any) -> None:
        tenants = Tenant.objects.exclude(schema_name="public").order_by("slug")
        if options["tenant"]:
            tenants = tenants.filter(slug=options["tenant"])
            if not tenants.exists():
                raise CommandError(f"--tenant: no tenant with slug {options['tenant']!r}")
        fix = not options["dry_run"]
        totals = {"tenants": 0, "missing": 0, "stale": 0, "extra": 0}
        for tenant in tenants:
            report = workindex_reconcile(tenant=tenant, fix=fix)
            for difference in report.differences:
                self.stdout.write(f"{tenant.slug}: {difference}")
            counts = report.counts()
            verb = "fixed" if fix and report.differences else "found"
            self.stdout.write(
                f"{tenant.slug}: {counts['missing']} missing, {counts['stale']} stale, {counts['extra']} extra"
                f" ({verb})"
            )
            totals["tenants"] += 1
            for kind, count in counts.items():
                totals[kind] += count
        self.stdout.write(json.dumps({**totals, "fixed": fix}))
        if not fix and totals["missing"] + totals["stale"] + totals["extra"]:
            raise SystemExit(1)
