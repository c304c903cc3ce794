"""Tenant isolation across every ITIL practice's API (issue 3, ../shared/ARCHITECTURE.md "Rules that keep
tenants apart"):

- another tenant's id answers exactly like an id that never existed, on every GET and DELETE route that
  takes an id, found by walking the OpenAPI document (a new route whose id practice_records.py cannot
  fill fails the test, naming the parameter), in the /links and /attachments query parameters, and in
  write bodies that name another record;
- denied writes (403/404) write nothing in any table of the tenant's schema;
- every tenant operation declares the ``tenant`` path parameter and the document is valid OpenAPI;
- full-text search never returns another tenant's records.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client, override_settings
from django.urls import URLPattern, URLResolver, get_resolver
from psycopg import sql

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_grant
from controlplane.api import api
from controlplane.providers.models import Provider
from modules.records.models import uuid7
from tenants.models import Tenant

from .practice_records import RECORD_KINDS, PracticeRecords, practice_links, practice_records

TENANT_PATHS = "/api/v1/t/{tenant}/"
PROBLEM = "application/problem+json"
ApiFor = Callable[[User], Client]
PATH_PARAMETER = re.compile(r"\{(\w+)\}")


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Path]:
    """Attachments are stored under a temporary MEDIA_ROOT."""
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


# Walking the API


def tenant_id_routes(document: dict[str, Any], method: str) -> list[tuple[str, list[str]]]:
    """``(path, id parameters)`` of every ``method`` operation below /api/v1/t/{tenant}/ whose path has
    at least one parameter besides ``tenant``, in document order."""
    routes = []
    for path, operations in document["paths"].items():
        if path.startswith(TENANT_PATHS) and method in operations:
            ids = [name for name in PATH_PARAMETER.findall(path) if name != "tenant"]
            if ids:
                routes.append((path, ids))
    return routes


def unfillable(routes: list[tuple[str, list[str]]], table: dict[str, uuid.UUID]) -> list[str]:
    """The routes with an id parameter that ``table`` does not fill, each with the parameter named."""
    return [
        f"{path}: no record fills {{{name}}}; create one in practice_records.py and add it to by_param"
        for path, ids in routes
        for name in ids
        if name not in table
    ]


def fill(path: str, slug: str, values: dict[str, Any]) -> str:
    return PATH_PARAMETER.sub(lambda m: slug if m.group(1) == "tenant" else str(values[m.group(1)]), path)


def masked(response: Any, ids: list[Any]) -> Any:
    """The problem body with ``instance`` (checked to be the request path) left out and the given ids
    replaced by ``<id>``, so two answers about different ids compare equal when they say the same."""
    body = response.json()
    assert body.pop("instance") == response.request["PATH_INFO"]
    text = json.dumps(body)
    for value in ids:
        text = re.sub(rf"\b{re.escape(str(value))}\b", "<id>", text)
    return json.loads(text)


def test_unknown_id_parameters_are_reported_by_name() -> None:
    document: dict[str, Any] = {
        "paths": {
            "/api/v1/t/{tenant}/widgets/{widget_id}": {"get": {}},
            "/api/v1/t/{tenant}/incidents/{incident_id}": {"get": {}, "patch": {}},
            "/api/v1/t/{tenant}/incidents/": {"get": {}},
            "/api/v1/me/tokens/{token_id}": {"get": {}},
        }
    }
    routes = tenant_id_routes(document, "get")
    assert routes == [
        ("/api/v1/t/{tenant}/widgets/{widget_id}", ["widget_id"]),
        ("/api/v1/t/{tenant}/incidents/{incident_id}", ["incident_id"]),
    ]
    assert unfillable(routes, {"incident_id": uuid7()}) == [
        "/api/v1/t/{tenant}/widgets/{widget_id}: no record fills {widget_id}; "
        "create one in practice_records.py and add it to by_param"
    ]


def django_api_routes() -> set[str]:
    """Every URL route Django resolves below api/v1/t/<tenant>/, as OpenAPI paths."""

    def walk(patterns: list[Any], prefix: str) -> Iterator[str]:
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return {
        "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)
        for route in walk(get_resolver().url_patterns, "")
        if route.startswith("api/v1/t/<tenant>/")
    }


def test_every_tenant_api_route_is_in_the_openapi_document(db: None) -> None:
    """The walk below reads the OpenAPI document; a route left out of it would escape the walk."""
    document = api.get_openapi_schema()
    documented = {path for path in document["paths"] if path.startswith(TENANT_PATHS)}
    assert django_api_routes() == documented


def test_other_tenants_ids_answer_like_ids_that_never_existed_on_every_get_route(
    media: Path, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor
) -> None:
    """tech_ab may enter both tenants: B's record ids asked for under A's path must answer exactly like
    a uuid7 that never existed (same status, same problem+json body apart from the id), while each
    tenant's own ids answer 200 under its own path (so the route really finds records)."""
    own = practice_records(tenant_a, tech_ab, "acmeword")
    other = practice_records(tenant_b, tech_ab, "globexword")
    routes = tenant_id_routes(api.get_openapi_schema(), "get")
    assert routes, "no GET route with an id under /api/v1/t/{tenant}/"
    missing_params = unfillable(routes, other.by_param)
    assert missing_params == [], "\n".join(missing_params)

    client = api_for(tech_ab)
    failures = []
    for path, ids in routes:
        never = {name: uuid7() for name in ids}
        for slug, records in (("acme", own), ("globex", other)):
            found = client.get(fill(path, slug, records.by_param))
            if found.status_code != 200:
                failures.append(
                    f"{path} with {slug}'s own record: {found.status_code} {found.content[:200]!r}"
                )
        crossed = client.get(fill(path, "acme", other.by_param))
        missing = client.get(fill(path, "acme", never))
        if (crossed.status_code, missing.status_code) != (404, 404):
            failures.append(
                f"{path}: other tenant's id {crossed.status_code}, missing id {missing.status_code}"
            )
            continue
        if crossed["Content-Type"] != PROBLEM or missing["Content-Type"] != PROBLEM:
            failures.append(
                f"{path}: not problem+json ({crossed['Content-Type']}, {missing['Content-Type']})"
            )
            continue
        if crossed.json()["type"] != missing.json()["type"]:
            failures.append(f"{path}: problem type {crossed.json()['type']} != {missing.json()['type']}")
        other_ids = [other.by_param[name] for name in ids]
        if masked(crossed, other_ids) != masked(missing, list(never.values())):
            failures.append(f"{path}: bodies differ: {crossed.content!r} vs {missing.content!r}")
    assert failures == [], "\n".join(failures)
    assert len(routes) >= 30  # every practice's detail, history, comments ... routes were walked


@pytest.mark.parametrize("shared", ["links", "attachments"])
def test_shared_parts_answer_other_tenants_records_like_missing_ones(
    media: Path, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor, shared: str
) -> None:
    """/links and /attachments take the record as query parameters: every record kind of B, asked for
    under A, answers like a record that never existed."""
    own = practice_records(tenant_a, tech_ab, "acmeword")
    other = practice_records(tenant_b, tech_ab, "globexword")
    client = api_for(tech_ab)
    assert sorted(other.by_kind) == sorted(RECORD_KINDS)
    for kind in RECORD_KINDS:
        url = f"/api/v1/t/acme/{shared}"
        assert client.get(url, {"record_type": kind, "record_id": str(own.by_kind[kind])}).status_code == 200
        crossed = client.get(url, {"record_type": kind, "record_id": str(other.by_kind[kind])})
        never = uuid7()
        missing = client.get(url, {"record_type": kind, "record_id": str(never)})
        assert crossed.status_code == missing.status_code == 404, kind
        assert crossed["Content-Type"] == missing["Content-Type"] == PROBLEM
        assert masked(crossed, [other.by_kind[kind]]) == masked(missing, [never]), kind


@pytest.fixture
def admin_ab(provider: Provider, tenant_a: Tenant, tenant_b: Tenant) -> User:
    """A provider admin with grants for tenants A and B (CAB members and blackouts are admins' work)."""
    user = make_user("admin.ab@northwind.example")
    membership = provider_membership_set(user=user, provider=provider, role="admin")
    tenant_grant(membership=membership, tenant=tenant_a)
    tenant_grant(membership=membership, tenant=tenant_b)
    return user


def never_existed(document: dict[str, Any], path: str, method: str, name: str) -> Any:
    """An id that no record ever had, of the parameter's declared type (bigint or UUIDv7)."""
    parameters = document["paths"][path][method].get("parameters", [])
    declared = next(p for p in parameters if p["name"] == name and p["in"] == "path")
    return 987_654_321 if declared["schema"].get("type") == "integer" else uuid7()


def test_other_tenants_ids_answer_like_ids_that_never_existed_on_every_delete_route(
    media: Path, tenant_a: Tenant, tenant_b: Tenant, admin_ab: User, api_for: ApiFor
) -> None:
    """DELETE under A's path with B's ids removes nothing anywhere and answers like ids that never
    existed; the same DELETEs under B's own path then succeed (the ids were real)."""
    practice_records(tenant_a, admin_ab, "acmeword")  # A holds every kind of record, none of B's ids
    other = practice_links(tenant_b, admin_ab, practice_records(tenant_b, admin_ab, "globexword"))
    document = api.get_openapi_schema()
    routes = tenant_id_routes(document, "delete")
    missing_params = unfillable(routes, other)
    assert missing_params == [], "\n".join(missing_params)
    client = api_for(admin_ab)
    before = (schema_row_counts(tenant_a), schema_row_counts(tenant_b))

    failures = []
    for path, ids in routes:
        never = {name: never_existed(document, path, "delete", name) for name in ids}
        crossed = client.delete(fill(path, "acme", other))
        missing = client.delete(fill(path, "acme", never))
        if (crossed.status_code, missing.status_code) != (404, 404):
            failures.append(
                f"{path}: other tenant's id {crossed.status_code}, missing id {missing.status_code}"
            )
        elif crossed["Content-Type"] != PROBLEM or missing["Content-Type"] != PROBLEM:
            failures.append(
                f"{path}: not problem+json ({crossed['Content-Type']}, {missing['Content-Type']})"
            )
        elif masked(crossed, [other[name] for name in ids]) != masked(missing, list(never.values())):
            failures.append(f"{path}: bodies differ: {crossed.content!r} vs {missing.content!r}")
    assert failures == [], "\n".join(failures)
    assert (schema_row_counts(tenant_a), schema_row_counts(tenant_b)) == before

    for path, _ in routes:
        response = client.delete(fill(path, "globex", other))
        assert response.status_code in (200, 204), (path, response.content)
    assert len(routes) >= 7


def reference_writes(own: PracticeRecords) -> list[tuple[str, str, str, Callable[[Any], dict[str, Any]]]]:
    """``(path below /api/v1/t/acme/, parameter, encoding, body(referenced id))``: writes on A's records
    whose body names another record by id (the id is taken from ``parameter``'s records)."""
    ids = own.by_param
    return [
        (
            "problems/",
            "ci_id",
            "json",
            lambda x: {"short_description": "Disk fills", "configuration_item_id": x},
        ),
        (f"problems/{ids['problem_id']}/incidents", "incident_id", "json", lambda x: {"incident_id": x}),
        ("problems/known-errors", "problem_id", "json", lambda x: {"problem_id": x}),
        (f"changes/{ids['change_id']}/cis", "ci_id", "json", lambda x: {"ci_id": x}),
        (
            f"knowledge/articles/{ids['article_id']}/links",
            "known_error_id",
            "json",
            lambda x: {"record_type": "known_error", "record_id": x},
        ),
        ("catalog/items", "category_id", "json", lambda x: {"name": "Dock", "category_id": x}),
        ("requests/", "item_id", "json", lambda x: {"items": [{"catalog_item_id": x}]}),
        (
            "links",
            "problem_id",
            "json",
            lambda x: {
                "source_type": "incident",
                "source_id": str(ids["incident_id"]),
                "target_type": "problem",
                "target_id": x,
                "kind": "caused_by",
            },
        ),
        (
            "attachments",
            "incident_id",
            "multipart",
            lambda x: {
                "record_type": "incident",
                "record_id": x,
                "file": ContentFile(b"log\n", name="a.log"),
            },
        ),
    ]


def test_writes_naming_another_tenants_record_answer_like_a_missing_one_and_write_nothing(
    media: Path, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor
) -> None:
    """A body that names B's record (an incident to link, a CI, a catalog item ...) sent under A's path
    answers exactly like one naming a record that never existed; with A's own record it succeeds."""
    own = practice_records(tenant_a, tech_ab, "acmeword")
    other = practice_records(tenant_b, tech_ab, "globexword")
    client = api_for(tech_ab)

    def post(path: str, encoding: str, body: dict[str, Any]) -> Any:
        url = f"/api/v1/t/acme/{path}"
        if encoding == "multipart":
            return client.post(url, body)
        return client.post(url, body, content_type="application/json")

    before = (schema_row_counts(tenant_a), schema_row_counts(tenant_b))
    writes = reference_writes(own)
    for path, parameter, encoding, body in writes:
        foreign, never = other.by_param[parameter], uuid7()
        crossed = post(path, encoding, body(str(foreign)))
        missing = post(path, encoding, body(str(never)))
        assert crossed.status_code == missing.status_code, (path, crossed.content, missing.content)
        assert crossed.status_code in (404, 422), (path, crossed.content)
        assert crossed["Content-Type"] == missing["Content-Type"] == PROBLEM
        assert masked(crossed, [foreign]) == masked(missing, [never]), path
    assert (schema_row_counts(tenant_a), schema_row_counts(tenant_b)) == before

    for path, parameter, encoding, body in writes:
        response = post(path, encoding, body(str(own.by_param[parameter])))
        assert response.status_code == 201, (path, response.content)


# Denials write nothing


def schema_row_counts(tenant: Tenant) -> dict[str, int]:
    """Rows of every table in the tenant's schema, read from the PostgreSQL catalogs (so a table added
    later is counted without changing this test)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') ORDER BY c.relname",
            [tenant.schema_name],
        )
        tables = [row[0] for row in cursor.fetchall()]
        counts = {}
        for table in tables:
            cursor.execute(
                sql.SQL("SELECT count(*) FROM {}.{}").format(
                    sql.Identifier(tenant.schema_name), sql.Identifier(table)
                )
            )
            counts[table] = cursor.fetchone()[0]
    return counts


def write_requests(
    records: PracticeRecords, own_incident: uuid.UUID
) -> list[tuple[str, str, dict[str, Any]]]:
    """``(method, path below /api/v1/t/acme/, body)``: valid writes of problems, changes, the CMDB,
    knowledge, the catalog and links (a technician's identical request succeeds)."""
    ids = records.by_param
    return [
        ("post", "problems/", {"short_description": "Mail fails every Monday"}),
        ("patch", f"problems/{ids['problem_id']}", {"short_description": "renamed"}),
        ("post", "problems/known-errors", {"title": "Mail queue stalls"}),
        ("patch", f"problems/known-errors/{ids['known_error_id']}", {"title": "renamed"}),
        ("post", "changes/", {"change_type": "normal", "short_description": "Upgrade mail"}),
        ("patch", f"changes/{ids['change_id']}", {"short_description": "renamed"}),
        ("post", "cmdb/cis", {"name": "mail-02", "ci_class": "server"}),
        ("patch", f"cmdb/cis/{ids['ci_id']}", {"name": "renamed"}),
        ("post", "knowledge/articles", {"title": "How to restart mail"}),
        ("patch", f"knowledge/articles/{ids['article_id']}", {"title": "renamed"}),
        ("post", "catalog/items", {"name": "Monitor", "category_id": str(ids["category_id"])}),
        ("patch", f"catalog/items/{ids['item_id']}", {"name": "renamed"}),
        (
            "post",
            "links",
            {
                "source_type": "incident",
                "source_id": str(own_incident),
                "target_type": "problem",
                "target_id": str(ids["problem_id"]),
                "kind": "caused_by",
            },
        ),
    ]


def send(client: Client, method: str, path: str, body: dict[str, Any]) -> Any:
    call = client.post if method == "post" else client.patch
    return call(f"/api/v1/t/acme/{path}", body, content_type="application/json")


def test_end_users_writes_to_the_practices_are_refused_and_write_nothing(
    media: Path, tenant_a: Tenant, tech_a: User, end_user_a: User, api_for: ApiFor
) -> None:
    records = practice_records(tenant_a, tech_a, "acmeword")
    end_user = api_for(end_user_a)
    mine = end_user.post("/api/v1/t/acme/incidents/", {"short_description": "My mail"}, "application/json")
    assert mine.status_code == 201  # the end user is a person of the tenant now; later requests add none
    writes = write_requests(records, uuid.UUID(mine.json()["id"]))
    before = schema_row_counts(tenant_a)
    assert before["records_activityentry"] > 0 and before["problems_problem"] == 1

    for method, path, body in writes:
        response = send(end_user, method, path, body)
        assert response.status_code in (403, 404), (method, path, response.status_code, response.content)
        assert response["Content-Type"] == PROBLEM, (method, path)
        assert response.json()["status"] == response.status_code
    after = schema_row_counts(tenant_a)
    assert after == before

    technician = api_for(tech_a)
    for method, path, body in writes:  # the same requests were valid: only the role refused them
        response = send(technician, method, path, body)
        assert response.status_code == (201 if method == "post" else 200), (method, path, response.content)


# The OpenAPI document


def test_openapi_document_is_valid_and_every_tenant_operation_declares_the_tenant(
    openapi_document: dict[str, Any],
) -> None:
    document = openapi_document
    operations = [
        (method, path, operation)
        for path, item in document["paths"].items()
        if path.startswith(TENANT_PATHS)
        for method, operation in item.items()
    ]
    assert len(operations) > 100
    undeclared = [
        f"{method.upper()} {path}"
        for method, path, operation in operations
        if not any(
            p["name"] == "tenant" and p["in"] == "path" and p.get("required") is True
            for p in operation.get("parameters", [])
        )
    ]
    assert undeclared == []
    prefixes = {path.split("/")[5] for _, path, _ in operations}
    assert {
        "incidents",
        "requests",
        "catalog",
        "problems",
        "changes",
        "cmdb",
        "knowledge",
        "search",
    } <= prefixes


# Search


def test_search_never_returns_another_tenants_records(
    media: Path, tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, api_for: ApiFor
) -> None:
    practice_records(tenant_a, tech_ab, "acmeword")
    other = practice_records(tenant_b, tech_ab, "zyxwquorble")
    client = api_for(tech_ab)

    def hits(slug: str, q: str) -> set[tuple[str, str]]:
        response = client.get(f"/api/v1/t/{slug}/search", {"q": q, "limit": "100"})
        assert response.status_code == 200, response.content
        return {(hit["record_type"], hit["record_id"]) for hit in response.json()}

    in_b = {(kind, str(record_id)) for kind, record_id in other.by_kind.items()}
    assert hits("globex", "zyxwquorble") == in_b  # every kind is found in its own tenant
    assert hits("globex", "zyxwquo") == in_b  # the last word also as a prefix
    for q in ("zyxwquorble", "zyxwquo", "zyxwquorble mail"):
        assert hits("acme", q) == set(), q
    assert {kind for kind, _ in hits("acme", "acmeword")} == set(RECORD_KINDS)
    assert hits("globex", "acmeword") == set()
