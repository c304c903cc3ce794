"""Every route against every role (issue 6, "Roles and permissions").

The walk takes every route of the console URL conf, the portal URL conf and every operation of the API
(each method), and requests it as each role: the provider's owner, admin and a technician granted the
tenant; a technician of the same provider without a grant; the tenant's client admin, approver, CAB member
and end user; an end user of another tenant; and a visitor who is not signed in. The expected answer comes
from ``controlplane.routes.ROUTES`` and ``controlplane.permissions.MATRIX``:

- a role the matrix refuses is refused (401/403/404, or sent to sign in) and nothing is written: no
  INSERT, UPDATE or DELETE reaches the database (the session row aside);
- a role the matrix allows is not refused by the matrix (the route guard's 403 names the permission in
  ``X-Required-Permission``), is never asked to sign in, and on a route without a record in its path gets
  an answer that is no refusal at all. On record routes a selector or service may still refuse a record
  that is not the role's (404, or 403 for a vote or an approval addressed to someone else): that is the
  record-level half, tested with each practice.

Pages are requested with GET and POST (an empty form post), API operations with their own method (an
empty JSON body). Each request runs in a savepoint that is rolled back, so one role's allowed write does
not change what the next role sees. ``test_every_route_has_an_entry`` fails for a route missing from
ROUTES and for an entry that names no route.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import URLPattern, URLResolver, get_resolver
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import api_token_create, provider_membership_set, tenant_membership_set
from controlplane.api import api
from controlplane.permissions import MATRIX, TEXT, P, Permission, role_may
from controlplane.providers.models import Provider
from controlplane.routes import ROUTES, Access, api_route_key, route_need
from modules.people.models import Person
from tenants.models import Tenant
from tests.accessibility.test_pages import CONSOLE, PORTAL, PORTAL_HOST, url_for
from tests.accessibility.test_pages import routes as page_routes

pytestmark = pytest.mark.django_db

# role name in this test -> (how the user is made, the role the matrix knows it by in tenant acme)
TENANT_ROLES = ("client_admin", "approver", "cab_member", "end_user")
WHO = (
    "owner",
    "admin",
    "technician",
    "ungranted_technician",
    *TENANT_ROLES,
    "outsider",
    "anonymous",
)
WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.I)
ALLOWED_WRITES = ("django_session", '"accounts_apitoken" SET "last_used_at"')


def _all_routes_keys() -> set[str]:
    keys = set()
    for urlconf in (CONSOLE, PORTAL):
        for entry in _patterns(get_resolver(urlconf).url_patterns):
            if entry[0] == "admin":
                continue
            keys.add(entry[1])
    return keys


def _patterns(patterns: list[Any], namespace: str | None = None) -> Iterator[tuple[str | None, str]]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry.url_patterns, entry.namespace or namespace)
        elif isinstance(entry, URLPattern):
            if namespace == "api":
                if str(entry.name).startswith("openapi-"):
                    yield namespace, f"api:{entry.name}"
                continue  # operations: by function below
            yield namespace, str(entry.name)


@dataclass(frozen=True)
class ApiOperation:
    key: str
    method: str
    path: str  # with {param} placeholders, under /api/v1


def api_operations() -> list[ApiOperation]:
    found = []
    for prefix, router in api._routers:
        for path, path_view in router.path_operations.items():
            for operation in path_view.operations:
                for method in operation.methods:
                    found.append(
                        ApiOperation(api_route_key(operation.view_func), method, f"/api/v1{prefix}{path}")
                    )
    return found


def test_every_route_has_an_entry() -> None:
    keys = _all_routes_keys() | {op.key for op in api_operations()}
    missing = sorted(keys - set(ROUTES))
    stale = sorted(set(ROUTES) - keys)
    assert not missing, f"routes without an entry in controlplane.routes.ROUTES: {missing}"
    assert not stale, f"ROUTES entries that name no route: {stale}"
    for op in api_operations():
        assert route_need(op.key, op.method) is not None, f"{op.key} has no rule for {op.method}"


@pytest.fixture
def people(
    pages: dict[str, Any],
    provider: Provider,
    tenant_a: Tenant,
    tenant_b: Tenant,
    client_for: Callable[..., Client],
) -> dict[str, dict[str, Any]]:
    """Each role's user with a console client, a portal client and an API client (personal token)."""
    made: dict[str, User] = {}
    roles: dict[str, str | None] = {"anonymous": None, "ungranted_technician": None, "outsider": None}
    for role in ("owner", "admin"):
        made[role] = make_user(f"{role}.matrix@northwind.example")
        provider_membership_set(user=made[role], provider=provider, role=role, all_clients=True)
        roles[role] = role
    made["technician"] = User.objects.get(email="tech.a@northwind.example")
    roles["technician"] = "technician"
    made["ungranted_technician"] = make_user("ungranted.matrix@northwind.example")
    provider_membership_set(user=made["ungranted_technician"], provider=provider, role="technician")
    for role in TENANT_ROLES:
        if role == "end_user":
            made[role] = User.objects.get(email="alice@acme.example")
        else:
            made[role] = make_user(f"{role}.matrix@acme.example")
            tenant_membership_set(user=made[role], tenant=tenant_a, role=role)
        roles[role] = role
    made["outsider"] = make_user("outsider.matrix@globex.example")
    tenant_membership_set(user=made["outsider"], tenant=tenant_b, role="end_user")
    users: dict[str, User | None] = {"anonymous": None, **made}
    # Each user's directory entry exists before the walk, so entering the tenant writes nothing.
    with tenant_context(tenant_a):
        for who, user in users.items():
            if user is not None and roles.get(who):
                actor_in(tenant_a, user, str(roles[who]))
    result: dict[str, dict[str, Any]] = {}
    for who, user in users.items():
        api_client = Client(HTTP_HOST="testserver")
        if user is not None:
            _, secret = api_token_create(user=user, name="matrix")
            api_client = Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}")
        result[who] = {
            "role": roles[who],
            "provider_role": roles[who]
            if who in ("owner", "admin", "technician", "ungranted_technician")
            else None,
            "console": client_for(user),
            "portal": client_for(user, host=PORTAL_HOST),
            "api": api_client,
            "user": user,
        }
    result["ungranted_technician"]["provider_role"] = "technician"
    return result


def _expected(who: str, person: dict[str, Any], need: Any, *, in_tenant: bool, portal: bool) -> bool:
    """Whether the matrix lets ``who`` through a route that needs ``need``."""
    if need == Access.PUBLIC:
        return True
    if who == "anonymous":
        return False
    if need == Access.SIGNED_IN:
        return True
    role = person["role"] if (in_tenant or portal) else person["provider_role"]
    if portal and role not in TENANT_ROLES:
        return False  # provider staff have no role on a client's portal
    if need == Access.MEMBER:
        return role is not None
    return role_may(role, need)


def _refused(response: Any) -> bool:
    if response.status_code in (401, 403, 404):
        return True
    return _sent_to_sign_in(response)


def _sent_to_sign_in(response: Any) -> bool:
    """Sent to sign in first, to come back (``?next=``): a refusal. A sign-out page's redirect to the
    sign-in page afterwards names no ``next``."""
    return response.status_code == 302 and "/accounts/login/?next=" in response.get("Location", "")


def _call(client: Client, method: str, url: str, *, api: bool) -> tuple[Any, list[str]]:
    with transaction.atomic():
        with CaptureQueriesContext(connection) as queries:
            if api:
                body = "{}" if method in ("POST", "PUT", "PATCH") else None
                response = client.generic(method, url, body or "", content_type="application/json")
            elif method == "POST":
                response = client.post(url, {"csrfmiddlewaretoken": "x"})
            else:
                response = client.get(url)
        transaction.set_rollback(True)
    writes = [
        q["sql"]
        for q in queries.captured_queries
        if WRITE.match(q["sql"]) and not any(allowed in q["sql"] for allowed in ALLOWED_WRITES)
    ]
    return response, writes


def _api_url(op: ApiOperation, params: dict[str, Any]) -> str:
    def fill(match: re.Match[str]) -> str:
        name = match.group(1).split(":")[-1]
        value = params.get(name, params.get(f"api_{name}"))
        assert value is not None, f"{op.key}: no value for path parameter {name}; add it to the fixture"
        return str(value)

    return re.sub(r"{([^}]+)}", fill, op.path)


def test_every_route_answers_every_role_as_the_matrix_says(
    pages: dict[str, Any], people: dict[str, dict[str, Any]]
) -> None:
    params = dict(pages["params"])
    params["token_id"] = 1
    with tenant_context(Tenant.objects.get(slug="acme")):
        params["person_id"] = Person.objects.get(email="alice@acme.example").pk
    report: list[str] = []
    checked = 0
    targets: list[tuple[str, str, str, str, bool, bool, bool]] = []
    for route in page_routes():
        url = url_for(route, params)
        in_tenant = route.pattern.startswith("t/<slug:tenant>/")
        has_record = any(p != "tenant" for p in route.params)
        for method in ("GET", "POST"):
            targets.append(
                (
                    route.name,
                    method,
                    url,
                    "portal" if route.portal else "console",
                    in_tenant,
                    has_record,
                    route.portal,
                )
            )
    for op in api_operations():
        url = _api_url(op, params)
        in_tenant = "/t/{tenant}/" in op.path
        has_record = bool(re.search(r"{(?!tenant)", op.path))
        targets.append((op.key, op.method, url, "api", in_tenant, has_record, False))
    for key, method, url, surface, in_tenant, has_record, portal in targets:
        need = route_need(key, method)
        if need is None:
            report.append(f"{key} {method}: no rule")
            continue
        for who, person in people.items():
            # Outside a tenant the API is the signed-in browser's (personal tokens act in tenants).
            client = person[surface if surface != "api" or in_tenant else "console"]
            session = client.cookies.get(settings.SESSION_COOKIE_NAME)
            response, writes = _call(client, method, url, api=surface == "api")
            if person["user"] is not None and client.cookies.get(settings.SESSION_COOKIE_NAME) != session:
                # A sign-out route ended the browser's session (its rows rolled back): sign in again.
                client.force_login(person["user"], backend="django.contrib.auth.backends.ModelBackend")
            checked += 1
            allowed = _expected(who, person, need, in_tenant=in_tenant, portal=portal)
            where = f"{key} {method} {url} as {who} ({need})"
            staff = role_may(person["role"], P.RECORD_WORK) and not portal
            if allowed:
                # A public route may send to sign-in itself (single logout without a message does).
                to_sign_in = _sent_to_sign_in(response)
                if (
                    response.get("X-Required-Permission")
                    or response.status_code == 401
                    or (to_sign_in and need != Access.PUBLIC)
                ):
                    report.append(f"{where}: refused ({response.status_code}) but the matrix allows it")
                elif not has_record and response.status_code in ((403, 404) if method == "GET" else (403,)):
                    report.append(f"{where}: answered {response.status_code}, the matrix allows it")
                elif has_record and method == "GET" and response.status_code == 404 and staff:
                    report.append(f"{where}: 404 for staff, who see every record")
            else:
                if not _refused(response):
                    report.append(f"{where}: answered {response.status_code}, the matrix refuses it")
                if writes:
                    report.append(f"{where}: refused but wrote: {writes[:2]}")
    assert checked > 2000, checked
    assert not report, f"{len(report)} mismatches\n" + "\n".join(report)


def test_the_matrix_names_only_known_roles_and_every_permission_has_its_words() -> None:
    assert set(TEXT) == set(Permission)
    assert set(MATRIX) == {
        "owner",
        "admin",
        "technician",
        "client_admin",
        "approver",
        "cab_member",
        "end_user",
        "system",
    }


def test_the_permissions_page_shows_the_matrix_of_the_code() -> None:
    """docs/permissions.md shows MATRIX and ROUTES as they are (``manage.py permission_matrix --write``)."""
    from controlplane.accounts.management.commands.permission_matrix import documented_matrix
    from controlplane.permissions import matrix_markdown

    assert documented_matrix() == matrix_markdown()
