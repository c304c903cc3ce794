"""The demo data `make run` loads: complete, and not duplicated by a second run."""

from __future__ import annotations

import io
from pathlib import Path

from django.core.management import call_command
from django_tenants.utils import tenant_context

from controlplane.accounts.models import ProviderMembership, TenantGrant, TenantMembership, User
from controlplane.mailin.models import InboundAddress
from modules.changes.models import Change
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.cmdb.selectors import ci_impact_get
from modules.incidents.models import Incident
from modules.knowledge.models import Article
from modules.problems.models import KnownError, Problem
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from modules.requests.models import CatalogItem
from modules.sla.models import SLAPolicy, SLATimer
from tenants.models import Tenant

DATA = Path(__file__).resolve().parents[2] / "tests" / "data" / "servicenow_incident_event_log.csv"


def snapshot() -> dict[str, object]:
    counts: dict[str, object] = {
        "users": User.objects.count(),
        "tenants": sorted(Tenant.objects.values_list("slug", flat=True)),
        "grants": TenantGrant.objects.count(),
        "memberships": (ProviderMembership.objects.count(), TenantMembership.objects.count()),
        "inbound": sorted(InboundAddress.objects.values_list("address", "tenant__slug")),
    }
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            counts[tenant.slug] = (
                Incident.objects.count(),
                ActivityEntry.objects.count(),
                ConfigurationItem.objects.count(),
                CIRelationship.objects.count(),
                Problem.objects.count(),
                KnownError.objects.count(),
                Change.objects.count(),
                CatalogItem.objects.count(),
                Article.objects.count(),
                SLAPolicy.objects.count(),
                SLATimer.objects.count(),
            )
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
    assert first["inbound"] == [("support@acme.example", "acme"), ("support@globex.example", "globex")]
    assert "tech@northwind.example" in out.getvalue() and "demo-password-1" in out.getvalue()
    for tenant in Tenant.objects.all():
        with tenant_context(tenant):
            demo = Incident.objects.exclude(source_fields__has_key="system")
            assert set(demo.values_list("state", flat=True)) == {"new", "in_progress", "on_hold", "resolved"}
            assert set(demo.exclude(hold_reason="").values_list("hold_reason", flat=True)) == set(
                Incident.HoldReason.values
            )
            # each practice has its demo record, wired together
            problem = Problem.objects.filter(external_ref=None).get()
            assert KnownError.objects.get(problem=problem).state == "published"
            change = Change.objects.get(short_description__startswith="Patch srv-payroll01")
            assert change.configuration_items.count() == 1
            assert sorted(CatalogItem.objects.values_list("name", flat=True)) == [
                "Install software",
                "New laptop",
            ]
            assert Article.objects.get().state == "published"
            server = ConfigurationItem.objects.get(name="esx01")
            reached = ci_impact_get(actor=Actor.system(), ci_id=server.pk)
            assert [i.name for i in reached][-1] == "Payroll"
            # every demo incident has a resolution timer under the demo contract
            assert (
                SLATimer.objects.filter(kind="resolution", record_id__in=demo.values("pk")).count()
                == demo.count()
            )
    with tenant_context(Tenant.objects.get(slug="acme")):
        assert Incident.objects.filter(source_fields__system="servicenow").count() == len(
            {line.split(",")[0] for line in small.read_text().splitlines()[1:]}
        )
        imported = Incident.objects.filter(source_fields__system="servicenow").values("pk")
        assert SLATimer.objects.filter(record_id__in=imported, kind="resolution").count() == imported.count()
