"""Console pages for the CMDB, through the test client: list with filters, detail (attributes,
relationships both ways, impact paths, history), create and edit forms, add and remove relationships."""

from __future__ import annotations

from collections.abc import Callable

from django.test import Client
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.records.models import ActivityEntry
from tenants.models import Tenant

from .factories import actor_in, ci, rel


def test_list_filters_and_htmx_partial(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        ci(tech, "web01")
        ci(tech, "crm-db", "database", attributes={"engine": "mysql"}, lifecycle="retired")
    console = client_for(tech_a)
    page = console.get("/t/acme/cmdb/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "<td>web01</td>" in text and "<td>crm-db</td>" in text and "+ New CI" in text
    only_db = console.get("/t/acme/cmdb/?ci_class=database").content.decode()
    assert "<td>crm-db</td>" in only_db and "<td>web01</td>" not in only_db
    retired = console.get("/t/acme/cmdb/?lifecycle=operational&q=web").content.decode()
    assert "<td>web01</td>" in retired and "<td>crm-db</td>" not in retired
    partial = console.get("/t/acme/cmdb/?q=crm", HTTP_HX_REQUEST="true")
    assert b"<html" not in partial.content and b"<td>crm-db</td>" in partial.content


def test_detail_shows_attributes_relationships_impact_and_history(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        db = ci(tech, "crm-db", "database", attributes={"engine": "postgresql", "port": 5432})
        app = ci(tech, "CRM", "application")
        service = ci(tech, "Sales", "business_service")
        rel(tech, app, "depends_on", db)
        rel(tech, service, "depends_on", app)
    page = client_for(tech_a).get("/t/acme/cmdb/CI0000001/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "CI0000001 · crm-db" in text
    assert "<th>Engine</th><td>postgresql</td>" in text and "<th>TCP port</th><td>5432</td>" in text
    assert "<td>used by</td>" in text  # CRM depends on crm-db, read from crm-db
    assert "CI0000001 used by CI0000002, CI0000002 used by CI0000003" in text
    assert "business service</span>" in text
    assert "ci.created" in text and "relationship.added" in text and "attributes.engine" in text
    assert client_for(tech_a).get("/t/acme/cmdb/CI0000099/").status_code == 404


def test_create_and_edit_a_ci_in_the_console(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    console = client_for(tech_a)
    assert console.get("/t/acme/cmdb/new/").status_code == 200
    created = console.post(
        "/t/acme/cmdb/new/",
        {
            "name": "web01",
            "ci_class": "server",
            "lifecycle": "operational",
            "attributes": '{"ip_address": "10.0.0.5", "cpu_count": 2, "os": "Debian"}',
        },
    )
    assert created.status_code == 302 and created["Location"] == "/t/acme/cmdb/CI0000001/"
    bad = console.post(
        "/t/acme/cmdb/new/",
        {
            "name": "web02",
            "ci_class": "server",
            "lifecycle": "operational",
            "attributes": '{"cpu_count": "two"}',
        },
    )
    assert bad.status_code == 422 and "attributes.cpu_count: must be a whole number" in bad.content.decode()
    not_json = console.post(
        "/t/acme/cmdb/new/",
        {"name": "web02", "ci_class": "server", "lifecycle": "operational", "attributes": "{"},
    )
    assert not_json.status_code == 422
    edit_page = console.get("/t/acme/cmdb/CI0000001/edit/").content.decode()
    assert "10.0.0.5" in edit_page and "Edit CI0000001" in edit_page
    edited = console.post(
        "/t/acme/cmdb/CI0000001/edit/",
        {
            "name": "web01",
            "ci_class": "server",
            "lifecycle": "maintenance",
            "attributes": '{"ip_address": "10.0.0.6", "cpu_count": 2}',
        },
    )
    assert edited.status_code == 302
    with tenant_context(tenant_a):
        web = ConfigurationItem.objects.get()
        assert (web.lifecycle, web.attributes) == ("maintenance", {"cpu_count": 2, "ip_address": "10.0.0.6"})
        assert ActivityEntry.objects.filter(record_id=web.pk).last().changes == {  # type: ignore[union-attr]
            "lifecycle": ["operational", "maintenance"],
            "attributes.ip_address": ["10.0.0.5", "10.0.0.6"],
            "attributes.os": ["Debian", None],
        }


def test_add_and_remove_a_relationship_in_the_console(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        ci(tech, "CRM", "application")
        ci(tech, "srv1")
        ci(tech, "old", lifecycle="retired")
    console = client_for(tech_a)
    added = console.post(
        "/t/acme/cmdb/CI0000002/relationships/", {"reading": "in:runs_on", "other": "ci0000001"}
    )
    assert added.status_code == 302 and added["Location"] == "/t/acme/cmdb/CI0000002/"
    duplicate = console.post(
        "/t/acme/cmdb/CI0000001/relationships/", {"reading": "out:runs_on", "other": "CI0000002"}
    )
    assert duplicate.status_code == 409 and "already runs on" in duplicate.content.decode()
    retired = console.post(
        "/t/acme/cmdb/CI0000001/relationships/", {"reading": "out:uses", "other": "CI0000003"}
    )
    assert retired.status_code == 409 and "CI0000003 is retired" in retired.content.decode()
    missing = console.post(
        "/t/acme/cmdb/CI0000001/relationships/", {"reading": "out:uses", "other": "CI0000042"}
    )
    assert missing.status_code == 422 and "no such CI" in missing.content.decode()
    page = console.get("/t/acme/cmdb/CI0000001/").content.decode()
    assert "<td>runs on</td>" in page and "srv1" in page
    with tenant_context(tenant_a):
        relationship = CIRelationship.objects.get()
        assert (relationship.source.name, relationship.rel_type, relationship.target.name) == (
            "CRM",
            "runs_on",
            "srv1",
        )
    removed = console.post(f"/t/acme/cmdb/CI0000001/relationships/{relationship.pk}/delete/")
    assert removed.status_code == 302
    with tenant_context(tenant_a):
        assert CIRelationship.objects.count() == 0


def test_an_end_user_cannot_create_in_the_console(
    client_for: Callable[..., Client], end_user_a: User, tech_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        ci(actor_in(tenant_a, tech_a), "web01")
    console = client_for(end_user_a)
    listed = console.get("/t/acme/cmdb/")
    assert listed.status_code == 200 and "+ New CI" not in listed.content.decode()
    assert "<td>web01</td>" not in listed.content.decode()
    assert console.get("/t/acme/cmdb/new/").status_code == 403
    refused = console.post(
        "/t/acme/cmdb/new/", {"name": "mine", "ci_class": "computer", "lifecycle": "operational"}
    )
    assert refused.status_code == 403
    assert console.get("/t/acme/cmdb/CI0000001/").status_code == 404
    with tenant_context(tenant_a):
        assert ConfigurationItem.objects.count() == 1
