"""The CMDB REST API through the test client: /api/v1/t/<tenant>/cmdb/..., shapes, problem+json errors,
cursor pagination, roles and tenant isolation (another tenant's id answers like a missing one)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.test import Client
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.records.models import ActivityEntry
from tenants.models import Tenant

from .factories import actor_in, ci, rel, tenant_user

BASE = "/api/v1/t/acme/cmdb"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]


def post(api: Client, url: str, body: Any) -> Any:
    return api.post(url, body, content_type="application/json")


def patch(api: Client, url: str, body: Any) -> Any:
    return api.patch(url, body, content_type="application/json")


def create(api: Client, name: str, ci_class: str = "server", **fields: Any) -> dict[str, Any]:
    response = post(api, f"{BASE}/cis", {"name": name, "ci_class": ci_class, **fields})
    assert response.status_code == 201, response.content
    body: dict[str, Any] = response.json()
    return body


def test_create_get_and_patch_a_ci(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    created = create(api, "web01", attributes={"ip_address": "10.0.0.5", "cpu_count": 4}, description="front")
    assert set(created) == {
        "id",
        "number",
        "name",
        "ci_class",
        "lifecycle",
        "owner",
        "support_group",
        "description",
        "attributes",
        "external_ref",
        "created_at",
        "updated_at",
    }
    assert {k: created[k] for k in ("number", "name", "ci_class", "lifecycle", "owner", "attributes")} == {
        "number": "CI0000001",
        "name": "web01",
        "ci_class": "server",
        "lifecycle": "operational",
        "owner": None,
        "attributes": {"cpu_count": 4, "ip_address": "10.0.0.5"},
    }
    url = f"{BASE}/cis/{created['id']}"
    assert api.get(url).json() == created
    with tenant_context(tenant_a):
        person_id = str(actor_in(tenant_a, tech_a).person_id)
    changed = patch(
        api, url, {"lifecycle": "maintenance", "owner_id": person_id, "attributes": {"cpu_count": 8}}
    )
    assert changed.status_code == 200, changed.content
    body = changed.json()
    assert (body["lifecycle"], body["owner"]["id"], body["attributes"]) == (
        "maintenance",
        person_id,
        {"cpu_count": 8, "ip_address": "10.0.0.5"},
    )
    history = api.get(f"{url}/history").json()
    assert [(h["verb"], h["changes"]) for h in history][1:] == [
        (
            "ci.updated",
            {
                "lifecycle": ["operational", "maintenance"],
                "owner": [None, {"id": person_id, "name": tech_a.full_name}],
                "attributes.cpu_count": [4, 8],
            },
        )
    ]
    assert (history[1]["source"], history[1]["actor"]["id"]) == ("api", person_id)


def test_bad_input_is_a_422_naming_the_field(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    bad_attr = post(
        api, f"{BASE}/cis", {"name": "web", "ci_class": "server", "attributes": {"cpu_count": "x"}}
    )
    assert bad_attr.status_code == 422 and bad_attr["Content-Type"] == PROBLEM
    assert bad_attr.json()["errors"] == [
        {"field": "attributes.cpu_count", "message": "must be a whole number"}
    ]
    unknown = post(api, f"{BASE}/cis", {"name": "web", "ci_class": "server", "attributes": {"colour": "red"}})
    assert unknown.json()["errors"] == [
        {"field": "attributes.colour", "message": "unknown attribute for class server"}
    ]
    bad_class = post(api, f"{BASE}/cis", {"name": "web", "ci_class": "toaster"})
    assert bad_class.status_code == 422 and [e["field"] for e in bad_class.json()["errors"]] == [
        "payload.ci_class"
    ]
    web = create(api, "web")
    null_name = patch(api, f"{BASE}/cis/{web['id']}", {"name": None})
    assert null_name.status_code == 422 and null_name.json()["errors"] == [
        {"field": "name", "message": "cannot be null"}
    ]
    no_owner = patch(api, f"{BASE}/cis/{web['id']}", {"owner_id": str(uuid.uuid4())})
    assert no_owner.status_code == 422 and no_owner.json()["errors"] == [
        {"field": "owner_id", "message": "not found"}
    ]
    deep = api.get(f"{BASE}/cis/{web['id']}/impact?depth=11")
    assert deep.status_code == 422 and [e["field"] for e in deep.json()["errors"]] == ["depth"]
    with tenant_context(tenant_a):
        assert ConfigurationItem.objects.count() == 1
        assert ActivityEntry.objects.filter(verb="ci.updated").count() == 0


def test_relationships_both_directions_409_and_422(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    app = create(api, "CRM", "application")
    server = create(api, "srv1")
    service = create(api, "Sales", "business_service", attributes={"criticality": "1"})
    runs = post(
        api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "runs_on", "target_id": server["id"]}
    )
    assert runs.status_code == 201, runs.content
    assert runs.json() == {
        "id": runs.json()["id"],
        "rel_type": "runs_on",
        "direction": "outgoing",
        "reading": "runs on",
        "other": {
            "id": server["id"],
            "number": "CI0000002",
            "name": "srv1",
            "ci_class": "server",
            "lifecycle": "operational",
        },
    }
    used = post(
        api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "depends_on", "source_id": service["id"]}
    )
    assert used.status_code == 201 and (used.json()["direction"], used.json()["reading"]) == (
        "incoming",
        "used by",
    )
    listed = api.get(f"{BASE}/cis/{app['id']}/relationships").json()
    assert [(r["direction"], r["reading"], r["other"]["number"]) for r in listed] == [
        ("outgoing", "runs on", "CI0000002"),
        ("incoming", "used by", "CI0000003"),
    ]
    assert [
        (r["reading"], r["other"]["name"]) for r in api.get(f"{BASE}/cis/{server['id']}/relationships").json()
    ] == [("runs", "CRM")]

    again = post(
        api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "runs_on", "target_id": server["id"]}
    )
    assert again.status_code == 409 and again.json()["type"] == "/problems/relationship-exists"
    itself = post(api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "uses", "target_id": app["id"]})
    assert itself.status_code == 422 and itself.json()["errors"] == [
        {"field": "target_id", "message": "same CI"}
    ]
    both = post(
        api,
        f"{BASE}/cis/{app['id']}/relationships",
        {"rel_type": "uses", "target_id": server["id"], "source_id": service["id"]},
    )
    assert both.status_code == 422 and both.json()["errors"][0]["field"] == "target_id"
    bad_type = post(
        api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "likes", "target_id": server["id"]}
    )
    assert bad_type.status_code == 422 and [e["field"] for e in bad_type.json()["errors"]] == [
        "payload.rel_type"
    ]
    patch(api, f"{BASE}/cis/{server['id']}", {"lifecycle": "retired"})
    retired = post(
        api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "uses", "target_id": server["id"]}
    )
    assert retired.status_code == 409 and retired.json()["type"] == "/problems/ci-retired"

    removed = api.delete(f"{BASE}/relationships/{runs.json()['id']}")
    assert removed.status_code == 204
    assert api.delete(f"{BASE}/relationships/{runs.json()['id']}").status_code == 404
    with tenant_context(tenant_a):
        assert CIRelationship.objects.count() == 1


def test_impact_endpoint(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    db = create(api, "db", "database", attributes={"engine": "postgresql"})
    app = create(api, "CRM", "application")
    service = create(api, "Sales", "business_service")
    post(api, f"{BASE}/cis/{app['id']}/relationships", {"rel_type": "depends_on", "target_id": db["id"]})
    post(api, f"{BASE}/cis/{service['id']}/relationships", {"rel_type": "depends_on", "target_id": app["id"]})
    impact = api.get(f"{BASE}/cis/{db['id']}/impact").json()
    assert impact == [
        {
            "id": app["id"],
            "number": "CI0000002",
            "name": "CRM",
            "ci_class": "application",
            "depth": 1,
            "path": ["CI0000001", "CI0000002"],
            "via": ["depends_on"],
            "steps": [{"source": "CI0000001", "reading": "used by", "target": "CI0000002"}],
            "explanation": "CI0000001 used by CI0000002",
            "is_business_service": False,
        },
        {
            "id": service["id"],
            "number": "CI0000003",
            "name": "Sales",
            "ci_class": "business_service",
            "depth": 2,
            "path": ["CI0000001", "CI0000002", "CI0000003"],
            "via": ["depends_on", "depends_on"],
            "steps": [
                {"source": "CI0000001", "reading": "used by", "target": "CI0000002"},
                {"source": "CI0000002", "reading": "used by", "target": "CI0000003"},
            ],
            "explanation": "CI0000001 used by CI0000002, CI0000002 used by CI0000003",
            "is_business_service": True,
        },
    ]
    assert [i["name"] for i in api.get(f"{BASE}/cis/{db['id']}/impact?depth=1").json()] == ["CRM"]


def test_list_filters_and_cursor_pagination(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    api = api_for(tech_a)
    for name in ("web03", "web01", "web02"):
        create(api, name)
    create(api, "crm-db", "database", attributes={"engine": "mysql"}, lifecycle="retired")

    def names(query: str) -> list[str]:
        return [c["name"] for c in api.get(f"{BASE}/cis?{query}").json()["results"]]

    assert names("") == ["crm-db", "web01", "web02", "web03"]
    assert names("ci_class=database") == ["crm-db"]
    assert names("lifecycle=operational&q=web0") == ["web01", "web02", "web03"]
    assert names("q=CI0000001") == ["web03"]
    assert names("ordering=-number") == ["crm-db", "web02", "web01", "web03"]
    seen: list[str] = []
    url: str | None = f"{BASE}/cis?page_size=3"
    while url:
        page = api.get(url).json()
        seen += [c["name"] for c in page["results"]]
        url = page["next"]
    assert seen == ["crm-db", "web01", "web02", "web03"]
    bad = api.get(f"{BASE}/cis?ci_class=toaster")
    assert bad.status_code == 422


def test_classes_endpoint(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    classes = {c["ci_class"]: c for c in api_for(tech_a).get(f"{BASE}/classes").json()}
    assert list(classes) == [
        "hardware",
        "computer",
        "server",
        "virtual_machine",
        "network_device",
        "software",
        "application",
        "database",
        "business_service",
        "site",
        "generic",
    ]
    assert classes["generic"]["attributes"] == []
    assert [a["name"] for a in classes["server"]["attributes"]] == [
        "serial_number",
        "manufacturer",
        "model",
        "os",
        "os_version",
        "cpu_count",
        "memory_mb",
        "ip_address",
        "fqdn",
        # Written by discovery from endpoint agents' inventories (docs/decisions/0019).
        "kernel",
        "architecture",
        "cpu_model",
        "cpu_cores",
        "boot_time",
        "disks",
        "network",
        "usb",
        "users",
    ]
    disks = next(a for a in classes["server"]["attributes"] if a["name"] == "disks")
    assert (disks["type"], disks["maximum"]) == ("list", 64)
    engine = classes["database"]["attributes"][0]
    assert (engine["name"], engine["type"], engine["required"]) == ("engine", "choice", True)
    assert engine["choices"][0] == {"value": "postgresql", "label": "PostgreSQL"}
    port = classes["database"]["attributes"][2]
    assert (port["type"], port["minimum"], port["maximum"]) == ("int", 1, 65535)


def test_another_tenants_ci_answers_like_a_missing_one(
    api_for: ApiFor, tech_a: User, tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    with tenant_context(tenant_b):
        theirs = ci(actor_in(tenant_b, tech_ab), "globex-web")
        before = ActivityEntry.objects.count()
    api = api_for(tech_a)
    ours = create(api, "acme-web")
    missing = str(uuid.uuid4())
    for suffix in ("", "/relationships", "/impact", "/history"):
        response = api.get(f"{BASE}/cis/{theirs.pk}{suffix}")
        absent = api.get(f"{BASE}/cis/{missing}{suffix}")
        assert response.status_code == absent.status_code == 404, suffix
        assert response.json()["type"] == absent.json()["type"] == "/problems/not-found"
    assert patch(api, f"{BASE}/cis/{theirs.pk}", {"name": "pwned"}).status_code == 404
    to_theirs = post(
        api, f"{BASE}/cis/{ours['id']}/relationships", {"rel_type": "uses", "target_id": str(theirs.pk)}
    )
    assert to_theirs.status_code == 404
    with tenant_context(tenant_b):
        assert ConfigurationItem.objects.get().name == "globex-web"
        assert ActivityEntry.objects.count() == before
    with tenant_context(tenant_a):
        assert CIRelationship.objects.count() == 0


def test_end_users_read_their_own_cis_and_cannot_write(
    api_for: ApiFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        user = actor_in(tenant_a, end_user_a, "end_user")
        laptop = ci(tech, "laptop-alice", "computer", owner=user.person)
        web = ci(tech, "web01")
        rel(tech, laptop, "connects_to", web)
        before = ActivityEntry.objects.count()
    api = api_for(end_user_a)
    assert [c["name"] for c in api.get(f"{BASE}/cis").json()["results"]] == ["laptop-alice"]
    assert api.get(f"{BASE}/cis/{laptop.pk}").json()["name"] == "laptop-alice"
    assert api.get(f"{BASE}/cis/{web.pk}").status_code == 404
    assert api.get(f"{BASE}/cis/{laptop.pk}/relationships").json() == []
    assert [h["verb"] for h in api.get(f"{BASE}/cis/{laptop.pk}/history").json()] == ["ci.created"]
    refused = [
        post(api, f"{BASE}/cis", {"name": "mine", "ci_class": "computer"}),
        patch(api, f"{BASE}/cis/{laptop.pk}", {"name": "renamed"}),
        post(api, f"{BASE}/cis/{laptop.pk}/relationships", {"rel_type": "uses", "target_id": str(web.pk)}),
        api.delete(f"{BASE}/relationships/1"),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403, 403]
    assert {r["Content-Type"] for r in refused} == {PROBLEM}
    with tenant_context(tenant_a):
        assert ConfigurationItem.objects.count() == 2 and ActivityEntry.objects.count() == before
        assert ConfigurationItem.objects.get(pk=laptop.pk).name == "laptop-alice"


def test_a_client_admin_manages_the_cmdb_through_the_api(api_for: ApiFor, tenant_a: Tenant) -> None:
    admin = tenant_user(tenant_a, "it@acme.example", "client_admin")
    api = api_for(admin)
    printer = create(api, "printer-2f", "hardware", attributes={"asset_tag": "A-17"})
    site = create(api, "HQ", "site", attributes={"city": "London"})
    response = post(
        api, f"{BASE}/cis/{site['id']}/relationships", {"rel_type": "contains", "target_id": printer["id"]}
    )
    assert response.status_code == 201
    assert [i["name"] for i in api.get(f"{BASE}/cis/{site['id']}/impact").json()] == ["printer-2f"]


def test_the_openapi_document_names_the_cmdb_paths(api_for: ApiFor, tech_a: User, tenant_a: Tenant) -> None:
    paths = api_for(tech_a).get("/api/v1/openapi.json").json()["paths"]
    assert {
        "/api/v1/t/{tenant}/cmdb/classes",
        "/api/v1/t/{tenant}/cmdb/cis",
        "/api/v1/t/{tenant}/cmdb/cis/{ci_id}",
        "/api/v1/t/{tenant}/cmdb/cis/{ci_id}/relationships",
        "/api/v1/t/{tenant}/cmdb/relationships/{relationship_id}",
        "/api/v1/t/{tenant}/cmdb/cis/{ci_id}/impact",
        "/api/v1/t/{tenant}/cmdb/cis/{ci_id}/history",
    } <= set(paths)
