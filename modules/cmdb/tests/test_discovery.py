"""Discovery on the real database: an agent's inventory becomes its computer CI, software CIs installed
on it and its site; what changed is one history entry; an unchanged inventory writes nothing."""

from __future__ import annotations

import copy
import datetime as dt
import uuid
from collections.abc import Callable
from typing import Any

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from modules.cmdb.discovery import Device, Inventory, computers_ensure, inventories_apply
from modules.cmdb.models import CIRelationship, ConfigurationItem, DiscoveryState, RelType
from modules.cmdb.selectors import ci_impact_get
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, SearchDocument
from tenants.models import Tenant

NOW = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)
AGENT = uuid.UUID("01900000-0000-7000-8000-000000000001")


def inventory_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "hostname": "web-01",
        "os": {
            "name": "Linux",
            "version": "24.04",
            "distribution": "Ubuntu",
            "kernel": "6.8.0-45-generic",
            "architecture": "x86_64",
        },
        "cpu": {"model": "Intel Xeon", "cores": 4, "threads": 8},
        "memory_bytes": 16 * 1024**3,
        "disks": [{"device": "/dev/sda1", "mount": "/", "fstype": "ext4", "total_bytes": 100 * 1024**3}],
        "network": [
            {"name": "lo", "mac": "", "addresses": ["127.0.0.1"]},
            {"name": "eth0", "mac": "00:1a:2b:3c:4d:5e", "addresses": ["fe80::1", "10.0.0.5"]},
        ],
        "software": [
            {"name": "openssl", "version": "3.0.13", "vendor": "OpenSSL"},
            {"name": "nginx", "version": "1.24.0"},
        ],
        "usb": [{"vendor_id": "046d", "product_id": "c52b", "name": "Logitech receiver"}],
        "users": [{"name": "alice", "terminal": "pts/0", "since": "2026-12-02T08:00:00Z"}],
        "uptime_seconds": 3600,
        "boot_time": "2026-12-02T08:30:00Z",
    }
    data.update(overrides)
    return data


def inv(
    data: dict[str, Any], *, at: dt.datetime = NOW, site: str = "", agent: uuid.UUID = AGENT
) -> Inventory:
    return Inventory(agent_id=agent, hostname="web-01", site=site, collected_at=at, data=data)


def computer() -> ConfigurationItem:
    return ConfigurationItem.objects.get(external_ref=f"agent:{AGENT}")


def installed(ci: ConfigurationItem) -> set[str | None]:
    return set(
        CIRelationship.objects.filter(target=ci, rel_type=RelType.INSTALLED_ON).values_list(
            "source__external_ref", flat=True
        )
    )


def test_first_inventory_creates_the_computer_software_and_history(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        assert inventories_apply(inventories=[inv(inventory_data())], now=NOW) == 1
        ci = computer()
        assert (ci.name, ci.ci_class, ci.number) == ("web-01", "computer", "CI0000001")
        assert ci.attributes["os"] == "Ubuntu"
        assert ci.attributes["os_version"] == "24.04"
        assert ci.attributes["cpu_count"] == 8
        assert ci.attributes["memory_mb"] == 16384
        assert ci.attributes["ip_address"] == "10.0.0.5"
        assert ci.attributes["boot_time"] == "2026-12-02T08:30:00Z"
        assert ci.attributes["usb"] == [
            {"vendor_id": "046d", "product_id": "c52b", "name": "Logitech receiver"}
        ]
        assert [u["name"] for u in ci.attributes["users"]] == ["alice"]
        assert installed(ci) == {"software:openssl@3.0.13", "software:nginx@1.24.0"}
        openssl = ConfigurationItem.objects.get(external_ref="software:openssl@3.0.13")
        assert (openssl.ci_class, openssl.attributes) == (
            "software",
            {"version": "3.0.13", "vendor": "OpenSSL"},
        )
        # Impact reads "installed on" like "runs on": the computer's failure reaches its software.
        system = Actor.system()
        assert {i.number for i in ci_impact_get(actor=system, ci_id=ci.pk)} == {
            openssl.number,
            ConfigurationItem.objects.get(external_ref="software:nginx@1.24.0").number,
        }
        entries = list(ActivityEntry.objects.filter(record_id=ci.pk).values_list("verb", "source"))
        assert entries == [("ci.created", "discovery"), ("ci.discovered", "discovery")]
        discovered = ActivityEntry.objects.get(record_id=ci.pk, verb="ci.discovered").changes
        assert discovered["attributes.os_version"] == [None, "24.04"]
        assert discovered["software_added"] == [None, "2: nginx 1.24.0, openssl 3.0.13"]
        assert SearchDocument.objects.filter(record_id__in=[ci.pk, openssl.pk]).count() == 2
        assert DiscoveryState.objects.get(agent_id=AGENT).last_inventory_at == NOW


def test_an_identical_inventory_writes_nothing_but_the_inventory_time(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        inventories_apply(inventories=[inv(inventory_data())], now=NOW)
        before = (
            ConfigurationItem.objects.count(),
            CIRelationship.objects.count(),
            ActivityEntry.objects.count(),
            computer().updated_at,
        )
        later = NOW + dt.timedelta(hours=6)
        with CaptureQueriesContext(connection) as queries:
            assert inventories_apply(inventories=[inv(inventory_data(), at=later)], now=later) == 0
        writes = [q["sql"] for q in queries if not q["sql"].lstrip().upper().startswith("SELECT")]
        assert len(writes) == 1 and writes[0].startswith('UPDATE "cmdb_discoverystate"')
        after = (
            ConfigurationItem.objects.count(),
            CIRelationship.objects.count(),
            ActivityEntry.objects.count(),
            computer().updated_at,
        )
        assert after == before
        assert DiscoveryState.objects.get(agent_id=AGENT).last_inventory_at == later
        # The same report again (a redelivered batch) and an older one change nothing at all.
        with CaptureQueriesContext(connection) as queries:
            inventories_apply(inventories=[inv(inventory_data(), at=NOW)], now=later)
        assert all(q["sql"].lstrip().upper().startswith("SELECT") for q in queries)


def test_changes_update_attributes_and_software_with_one_history_entry(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        inventories_apply(inventories=[inv(inventory_data())], now=NOW)
        ci = computer()
        # A person's attribute stays; discovery owns only its own.
        ci.attributes = {**ci.attributes, "serial_number": "SN-1"}
        ci.save()
        data = inventory_data(
            os={**inventory_data()["os"], "version": "24.10"},
            software=[
                {"name": "openssl", "version": "3.0.14"},
                {"name": "curl", "version": "8.5.0"},
            ],
        )
        later = NOW + dt.timedelta(hours=6)
        assert inventories_apply(inventories=[inv(data, at=later)], now=later) == 1
        ci.refresh_from_db()
        assert ci.attributes["os_version"] == "24.10"
        assert ci.attributes["serial_number"] == "SN-1"
        assert installed(ci) == {"software:openssl@3.0.14", "software:curl@8.5.0"}
        # Software no longer installed keeps its CI (its history), without the relationship.
        assert ConfigurationItem.objects.filter(external_ref="software:nginx@1.24.0").exists()
        entry = (
            ActivityEntry.objects.filter(record_id=ci.pk, verb="ci.discovered").order_by("at", "id").last()
        )
        assert entry is not None
        assert entry.changes == {
            "attributes.os_version": ["24.04", "24.10"],
            "software_added": [None, "2: curl 8.5.0, openssl 3.0.14"],
            "software_removed": ["2: nginx 1.24.0, openssl 3.0.13", None],
        }


def test_software_is_shared_between_computers_and_bulk(tenant_a: Tenant) -> None:
    other = uuid.UUID("01900000-0000-7000-8000-000000000002")
    many = [{"name": f"pkg{i:04d}", "version": "1.0"} for i in range(1500)]
    with tenant_context(tenant_a):
        with CaptureQueriesContext(connection) as queries:
            inventories_apply(
                inventories=[
                    inv(inventory_data(software=many)),
                    inv(inventory_data(software=many), agent=other),
                ],
                now=NOW,
            )
        assert len(queries) < 40  # bulk: no query per software row
        assert ConfigurationItem.objects.filter(ci_class="software").count() == 1500
        assert CIRelationship.objects.filter(rel_type=RelType.INSTALLED_ON).count() == 3000
        entry = ActivityEntry.objects.filter(verb="ci.discovered").first()
        assert entry is not None
        assert entry.changes["software_added"][1].startswith("1500: pkg0000 1.0, pkg0001 1.0")
        assert entry.changes["software_added"][1].endswith("… and 1480 more")


def test_site_contains_the_computer_and_moves(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        inventories_apply(inventories=[inv(inventory_data(), site="London")], now=NOW)
        ci = computer()
        london = ConfigurationItem.objects.get(external_ref="site:London")
        assert london.ci_class == "site"
        assert CIRelationship.objects.filter(source=london, target=ci, rel_type=RelType.CONTAINS).exists()
        later = NOW + dt.timedelta(hours=1)
        inventories_apply(inventories=[inv(inventory_data(), site="Paris", at=later)], now=later)
        paris = ConfigurationItem.objects.get(external_ref="site:Paris")
        sites = set(
            CIRelationship.objects.filter(target=ci, rel_type=RelType.CONTAINS).values_list(
                "source", flat=True
            )
        )
        assert sites == {paris.pk}
        entry = (
            ActivityEntry.objects.filter(record_id=ci.pk, verb="ci.discovered").order_by("at", "id").last()
        )
        assert entry is not None and entry.changes == {"site": ["London", "Paris"]}


def test_reports_before_the_first_inventory_create_the_computer_by_host_name(tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        found = computers_ensure(devices=[Device(AGENT, "laptop-7", "Leeds")], now=NOW)
        ci = found[AGENT]
        assert (ci.name, ci.ci_class, ci.attributes) == ("laptop-7", "computer", {})
        assert CIRelationship.objects.filter(target=ci, source__external_ref="site:Leeds").exists()
        assert computers_ensure(devices=[Device(AGENT, "laptop-7", "Leeds")], now=NOW)[AGENT].pk == ci.pk
        # The first inventory then names it after the inventory's host name.
        data = copy.deepcopy(inventory_data())
        inventories_apply(inventories=[inv(data, site="Leeds")], now=NOW)
        ci.refresh_from_db()
        assert ci.name == "web-01"
        assert ConfigurationItem.objects.filter(ci_class="computer").count() == 1


def test_a_computer_page_lists_the_first_300_relationships(
    tenant_a: Tenant, tech_a: User, client_for: Callable[..., Client]
) -> None:
    many = [{"name": f"pkg{i:04d}", "version": "1.0"} for i in range(310)]
    with tenant_context(tenant_a):
        inventories_apply(inventories=[inv(inventory_data(software=many))], now=NOW)
        number = computer().number
    body = client_for(tech_a).get(f"/t/acme/cmdb/{number}/").content.decode()
    assert "10 more relationships not listed" in body
    assert "10 more CIs reached, not listed" in body
    assert body.count('<tr class="rel-incoming">') == 300
