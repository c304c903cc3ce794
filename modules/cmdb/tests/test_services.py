"""CMDB services on the real database: attributes validated per class, the history of every change,
relationship rules, who may write (and that a denial writes nothing), the search document."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.postgres.search import SearchQuery
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from controlplane.problems import InvalidInput, NotFound, PermissionDenied
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.cmdb.selectors import ci_get, ci_list, ci_relationship_list
from modules.cmdb.services import (
    CIRetired,
    RelationshipExists,
    ci_create,
    ci_lifecycle_set,
    ci_update,
    relationship_create,
    relationship_delete,
)
from modules.records.models import ActivityEntry, SearchDocument
from tenants.models import Tenant

from .factories import actor_in, ci, rel, tenant_user


def entries(record: ConfigurationItem) -> list[tuple[str, dict[str, Any]]]:
    return [(e.verb, e.changes) for e in ActivityEntry.objects.filter(record_id=record.pk)]


def test_create_numbers_normalises_attributes_and_records_every_set_field(
    tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        web = ci(
            actor,
            " web01 ",
            "server",
            description="front end",
            attributes={"ip_address": " 10.0.0.5 ", "cpu_count": "4", "memory_mb": 8192, "fqdn": ""},
        )
        switch = ci(actor, "sw1", "network_device", attributes={"mac_address": "00-1A-2B-3C-4D-5E"})
        assert (web.number, switch.number) == ("CI0000001", "CI0000002")
        web.refresh_from_db()
        assert web.name == "web01"
        assert web.attributes == {"cpu_count": 4, "memory_mb": 8192, "ip_address": "10.0.0.5"}
        assert switch.attributes == {"mac_address": "00:1a:2b:3c:4d:5e"}
        assert entries(web) == [
            (
                "ci.created",
                {
                    "name": [None, "web01"],
                    "ci_class": [None, "server"],
                    "lifecycle": [None, "operational"],
                    "description": [None, "front end"],
                    "attributes.cpu_count": [None, 4],
                    "attributes.memory_mb": [None, 8192],
                    "attributes.ip_address": [None, "10.0.0.5"],
                },
            )
        ]
        document = SearchDocument.objects.get(record_id=web.pk)
        assert (
            document.record_type,
            document.number,
            document.title,
            document.state,
            document.visibility,
        ) == (
            "ci",
            "CI0000001",
            "web01",
            "operational",
            "technicians",
        )


def test_search_document_holds_attribute_values(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        db = ci(actor, "crm-db", "database", attributes={"engine": "postgresql", "port": 5432})
        found = SearchDocument.objects.filter(document=SearchQuery("postgresql", config="english"))
        assert [d.record_id for d in found] == [db.pk]


def test_unknown_attribute_is_a_422_naming_it_and_nothing_is_written(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        with pytest.raises(InvalidInput) as caught:
            ci(actor, "web01", "server", attributes={"colour": "red", "cpu_count": 2, "engine": "mysql"})
        assert caught.value.extra["errors"] == [
            {"field": "attributes.colour", "message": "unknown attribute for class server"},
            {"field": "attributes.engine", "message": "unknown attribute for class server"},
        ]
        assert ConfigurationItem.objects.count() == ActivityEntry.objects.count() == 0
        assert SearchDocument.objects.count() == 0


@pytest.mark.parametrize(
    ("ci_class", "name", "value", "message"),
    [
        ("server", "cpu_count", "four", "must be a whole number"),
        ("server", "cpu_count", 0, "at least 1"),
        ("server", "cpu_count", True, "must be a whole number"),
        ("server", "memory_mb", 2.5, "must be a whole number"),
        ("virtual_machine", "ip_address", "10.0.0.256", "must be an IPv4 or IPv6 address"),
        ("computer", "os", 7, "must be text"),
        (
            "network_device",
            "mac_address",
            "00:1a:2b:3c:4d",
            "must be a MAC address such as 00:1a:2b:3c:4d:5e",
        ),
        ("network_device", "ports", -1, "at least 1"),
        (
            "database",
            "engine",
            "db2",
            "one of postgresql, mysql, mariadb, mssql, oracle, mongodb, redis, other",
        ),
        ("database", "port", 70000, "at most 65535"),
        ("application", "url", "ftp://example.com", "must be an http or https URL"),
        ("business_service", "criticality", "5", "one of 1, 2, 3, 4"),
        ("business_service", "service_owner_email", "not-an-email", "must be an e-mail address"),
        ("hardware", "purchase_date", "2024-02-30", "must be a date YYYY-MM-DD"),
        ("hardware", "warranty_expires", "20240101", "must be a date YYYY-MM-DD"),
        ("site", "city", "x" * 101, "at most 100 characters"),
    ],
)
def test_bad_attribute_values_are_refused_per_class(
    tech_a: User, tenant_a: Tenant, ci_class: str, name: str, value: Any, message: str
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        attributes = (
            {name: value} if ci_class != "database" or name == "engine" else {"engine": "mysql", name: value}
        )
        with pytest.raises(InvalidInput) as caught:
            ci(actor, "thing", ci_class, attributes=attributes)
        assert caught.value.extra["errors"] == [{"field": f"attributes.{name}", "message": message}]
        assert ConfigurationItem.objects.count() == 0


def test_good_values_of_every_type_are_kept_normalised(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        hw = ci(actor, "rack-pdu", "hardware", attributes={"purchase_date": "2024-02-29"})
        vm = ci(actor, "vm1", "virtual_machine", attributes={"ip_address": "2001:DB8::1", "cpu_count": 2.0})
        svc = ci(
            actor,
            "Payroll",
            "business_service",
            attributes={"criticality": "1", "service_owner_email": "cfo@acme.example"},
        )
        app = ci(
            actor, "CRM", "application", attributes={"url": "https://crm.acme.example", "version": "4.2"}
        )
        assert hw.attributes == {"purchase_date": "2024-02-29"}
        assert vm.attributes == {"cpu_count": 2, "ip_address": "2001:db8::1"}
        assert svc.attributes == {"criticality": "1", "service_owner_email": "cfo@acme.example"}
        assert app.attributes == {"version": "4.2", "url": "https://crm.acme.example"}


def test_a_required_attribute_must_be_set(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        with pytest.raises(InvalidInput) as caught:
            ci(actor, "crm-db", "database", attributes={"version": "15"})
        assert caught.value.extra["errors"] == [{"field": "attributes.engine", "message": "required"}]
        db = ci(actor, "crm-db", "database", attributes={"engine": "postgresql"})
        with pytest.raises(InvalidInput) as caught:
            ci_update(actor=actor, ci=db, attributes={"engine": None})
        assert caught.value.extra["errors"] == [{"field": "attributes.engine", "message": "required"}]


def test_bad_name_class_and_lifecycle_are_422s_naming_the_field(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        with pytest.raises(InvalidInput) as caught:
            ci_create(actor=actor, name=" ", ci_class="toaster", lifecycle="dead")
        assert [e["field"] for e in caught.value.extra["errors"]] == ["name", "ci_class", "lifecycle"]
        web = ci(actor, "web01")
        with pytest.raises(InvalidInput) as caught:
            ci_update(actor=actor, ci=web, external_ref="x", name=None)
        assert caught.value.extra["errors"] == [{"field": "external_ref", "message": "not editable"}]
        with pytest.raises(InvalidInput) as caught:
            ci_update(actor=actor, ci=web, name=None)
        assert caught.value.extra["errors"] == [{"field": "name", "message": "cannot be null"}]
        assert [verb for verb, _ in entries(web)] == ["ci.created"]


def test_update_records_each_changed_field_and_attribute_old_to_new(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        web = ci(actor, "web01", attributes={"ip_address": "10.0.0.5", "cpu_count": 2, "os": "Ubuntu"})
        updated = ci_update(
            actor=actor,
            ci=web,
            name="web01.acme",
            owner=actor.person,
            description="",
            attributes={"cpu_count": "4", "os": None, "memory_mb": 4096, "ip_address": "10.0.0.5"},
        )
        assert updated.attributes == {"cpu_count": 4, "memory_mb": 4096, "ip_address": "10.0.0.5"}
        ci_lifecycle_set(actor=actor, ci=updated, lifecycle="maintenance")
        ci_update(actor=actor, ci=updated, name="web01.acme", attributes={"cpu_count": 4})  # no change
        ci_update(actor=actor, ci=updated, owner=None)
        assert actor.person is not None
        person = {"id": str(actor.person.pk), "name": actor.person.display_name}
        assert entries(web)[1:] == [
            (
                "ci.updated",
                {
                    "name": ["web01", "web01.acme"],
                    "owner": [None, person],
                    "attributes.cpu_count": [2, 4],
                    "attributes.memory_mb": [None, 4096],
                    "attributes.os": ["Ubuntu", None],
                },
            ),
            ("ci.updated", {"lifecycle": ["operational", "maintenance"]}),
            ("ci.updated", {"owner": [person, None]}),
        ]
        web.refresh_from_db()
        assert (web.name, web.lifecycle, web.owner_id) == ("web01.acme", "maintenance", None)
        assert SearchDocument.objects.get(record_id=web.pk).state == "maintenance"


def test_a_class_change_revalidates_attributes(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        box = ci(actor, "box", "computer", attributes={"ip_address": "10.0.0.9", "os": "Windows"})
        with pytest.raises(InvalidInput) as caught:
            ci_update(actor=actor, ci=box, ci_class="network_device")
        assert caught.value.extra["errors"] == [
            {"field": "attributes.os", "message": "unknown attribute for class network_device"}
        ]
        box.refresh_from_db()
        assert box.ci_class == "computer"
        ci_update(actor=actor, ci=box, ci_class="network_device", attributes={"os": None, "ports": 24})
        box.refresh_from_db()
        assert (box.ci_class, box.attributes) == ("network_device", {"ip_address": "10.0.0.9", "ports": 24})
        assert entries(box)[-1] == (
            "ci.updated",
            {
                "ci_class": ["computer", "network_device"],
                "attributes.os": ["Windows", None],
                "attributes.ports": [None, 24],
            },
        )


@pytest.mark.parametrize("role", ["end_user", "approver", "cab_member"])
def test_only_technicians_and_client_admins_write_and_a_denial_writes_nothing(
    tech_a: User, tenant_a: Tenant, role: str
) -> None:
    user = tenant_user(tenant_a, f"{role}@acme.example", role)
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        web, db = ci(tech, "web01"), ci(tech, "db01", "database", attributes={"engine": "mysql"})
        link = rel(tech, web, "depends_on", db)
        before = ActivityEntry.objects.count()
        denied = actor_in(tenant_a, user, role)
        attempts = [
            lambda: ci(denied, "laptop", "computer"),
            lambda: ci_update(actor=denied, ci=web, name="hacked"),
            lambda: ci_lifecycle_set(actor=denied, ci=web, lifecycle="retired"),
            lambda: relationship_create(actor=denied, source_id=db.pk, target_id=web.pk, rel_type="uses"),
            lambda: relationship_delete(actor=denied, relationship_id=link.pk),
        ]
        for attempt in attempts:
            with pytest.raises(PermissionDenied):
                attempt()
        assert ActivityEntry.objects.count() == before
        assert ConfigurationItem.objects.count() == 2 and CIRelationship.objects.count() == 1
        web.refresh_from_db()
        assert (web.name, web.lifecycle) == ("web01", "operational")


def test_a_client_admin_manages_the_cmdb_and_sees_every_ci(tech_a: User, tenant_a: Tenant) -> None:
    admin = tenant_user(tenant_a, "it@acme.example", "client_admin")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        web = ci(tech, "web01")
        actor = actor_in(tenant_a, admin, "client_admin")
        laptop = ci(actor, "laptop-17", "computer")
        rel(actor, laptop, "connects_to", web)
        ci_update(actor=actor, ci=web, description="patched")
        assert [c.name for c in ci_list(actor=actor)] == ["laptop-17", "web01"]
        assert ci_get(actor=actor, ci_id=web.pk) == web


def test_end_users_see_only_their_own_cis_and_no_relationships(
    tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        user = actor_in(tenant_a, end_user_a, "end_user")
        laptop = ci(tech, "laptop-alice", "computer", owner=user.person)
        web = ci(tech, "web01")
        rel(tech, laptop, "connects_to", web)
        assert [c.name for c in ci_list(actor=user)] == ["laptop-alice"]
        assert ci_get(actor=user, ci_id=laptop.pk) == laptop
        with pytest.raises(NotFound):
            ci_get(actor=user, ci_id=web.pk)
        assert ci_relationship_list(actor=user, ci=laptop) == []


def test_list_filters(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        ci(tech, "web01")
        ci(tech, "web02", lifecycle="retired")
        ci(tech, "crm-db", "database", attributes={"engine": "oracle"}, owner=tech.person)

        def names(**filters: Any) -> list[str]:
            return [c.name for c in ci_list(actor=tech, **filters)]

        assert names() == ["crm-db", "web01", "web02"]
        assert names(ci_class="server") == ["web01", "web02"]
        assert names(lifecycle="retired") == ["web02"]
        assert names(owner=tech.person_id) == ["crm-db"]
        assert names(q="WEB") == ["web01", "web02"]
        assert names(q="ci0000003") == ["crm-db"]


def test_relationships_read_both_ways_and_log_on_both_cis(tech_a: User, tenant_a: Tenant) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        app, server = ci(tech, "CRM", "application"), ci(tech, "srv1")
        db = ci(tech, "crm-db", "database", attributes={"engine": "mssql"})
        runs = rel(tech, app, "runs_on", server)
        uses = rel(tech, app, "depends_on", db)
        views = ci_relationship_list(actor=tech, ci=app)
        assert [(v.direction, v.reading, v.other.number) for v in views] == [
            ("outgoing", "depends on", "CI0000003"),
            ("outgoing", "runs on", "CI0000002"),
        ]
        assert [
            (v.id, v.direction, v.reading, v.other.name) for v in ci_relationship_list(actor=tech, ci=server)
        ] == [(runs.pk, "incoming", "runs", "CRM")]
        assert entries(app)[1:] == [
            (
                "relationship.added",
                {"relationship": [None, "runs on CI0000002"], "relationship_id": [None, runs.pk]},
            ),
            (
                "relationship.added",
                {"relationship": [None, "depends on CI0000003"], "relationship_id": [None, uses.pk]},
            ),
        ]
        assert entries(server)[1:] == [
            (
                "relationship.added",
                {"relationship": [None, "runs CI0000001"], "relationship_id": [None, runs.pk]},
            )
        ]
        relationship_delete(actor=tech, relationship_id=runs.pk)
        assert entries(server)[-1] == (
            "relationship.removed",
            {"relationship": ["runs CI0000001", None], "relationship_id": [runs.pk, None]},
        )
        assert entries(app)[-1] == (
            "relationship.removed",
            {"relationship": ["runs on CI0000002", None], "relationship_id": [runs.pk, None]},
        )
        assert list(CIRelationship.objects.values_list("pk", flat=True)) == [uses.pk]
        with pytest.raises(NotFound):
            relationship_delete(actor=tech, relationship_id=runs.pk)


def test_relationship_rules(tech_a: User, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User) -> None:
    with tenant_context(tenant_b):
        other_tenant_ci = ci(actor_in(tenant_b, tech_ab), "globex-web")
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        app, server = ci(tech, "CRM", "application"), ci(tech, "srv1")
        old = ci(tech, "srv0", lifecycle="retired")
        rel(tech, app, "runs_on", server)
        before = ActivityEntry.objects.count()
        with pytest.raises(RelationshipExists):
            rel(tech, app, "runs_on", server)
        with pytest.raises(InvalidInput) as caught:
            rel(tech, app, "runs_on", app)
        assert caught.value.extra["errors"] == [{"field": "target_id", "message": "same CI"}]
        with pytest.raises(InvalidInput) as caught:
            rel(tech, app, "likes", server)
        assert caught.value.extra["errors"][0]["field"] == "rel_type"
        with pytest.raises(CIRetired):
            rel(tech, app, "runs_on", old)
        with pytest.raises(CIRetired):
            rel(tech, old, "depends_on", server)
        with pytest.raises(NotFound):  # another tenant's CI answers like a missing one
            relationship_create(actor=tech, source_id=app.pk, target_id=other_tenant_ci.pk, rel_type="uses")
        assert ActivityEntry.objects.count() == before
        assert CIRelationship.objects.count() == 1
        rel(tech, app, "uses", server)  # another type between the same CIs is a new relationship
        ci_lifecycle_set(actor=tech, ci=server, lifecycle="retired")  # existing relationships stay
        assert CIRelationship.objects.count() == 2
