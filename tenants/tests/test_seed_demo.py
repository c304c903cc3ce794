"""The demo data `make run` loads: complete, and not duplicated by a second run."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command
from django_tenants.utils import tenant_context

from controlplane.accounts.models import ProviderMembership, TenantGrant, TenantMembership, User
from modules.incidents.models import Incident
from modules.records.models import ActivityEntry
from tenants.models import Tenant

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "servicenow_incident_event_log.csv"


def snapshot() -> dict[str, object]:
    counts: dict[str, object] = {
        "users": User.objects.count(),
        "tenants": sorted(Tenant.objects.values_list("slug", flat=True)),
        "grants": TenantGrant.objects.count(),
        "memberships": (ProviderMembership.objects.count(), TenantMembership.objects.count()),
    }
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            counts[tenant.slug] = (Incident.objects.count(), ActivityEntry.objects.count())
    return counts


def test_seed_demo_is_complete_and_idempotent(db: None, tmp_path: Path) -> None:
    small = tmp_path / "log.csv"
    small.write_text("".join(DATA.open().readlines()[:60]))

    call_command("seed_demo", servicenow=small, stdout=io.StringIO())
    first = snapshot()
    out = io.StringIO()
    call_command("seed_demo", servicenow=small, stdout=out)

    assert snapshot() == first
    assert first["tenants"] == ["acme", "globex"]
    assert "tech@northwind.example" in out.getvalue() and "demo-password-1" in out.getvalue()
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            demo = Incident.objects.exclude(source_fields__has_key="system")
            assert set(demo.values_list("state", flat=True)) == {"new", "in_progress", "on_hold", "resolved"}
            assert set(demo.exclude(hold_reason="").values_list("hold_reason", flat=True)) == set(
                Incident.HoldReason.values
            )
    with tenant_context(Tenant.objects.get(slug="acme")):
        assert Incident.objects.filter(source_fields__system="servicenow").count() == len(
            {line.split(",")[0] for line in small.read_text().splitlines()[1:]}
        )
