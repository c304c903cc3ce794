"""Shared pytest fixtures: a real PostgreSQL test database with the migrated tenant template, tenants
inside each test's transaction (rolled back with it), users with roles, and clients.

Tenant fixtures (``tenant_a``, ``tenant_b``, ``tenant_c``) take a schema from a pool built once per session
from the template snapshot, exactly as tenant_provision builds one (about 0.8 s of DDL each, which
dominated the suite's time). Only the tenant's rows are written in the test's transaction; whatever the
test writes into the schema, DDL included, rolls back with it, so the next test finds the schema as the
template left it. Tests that commit (``transactional_db``, ``live_server``) get a freshly provisioned
tenant instead, and tests of provisioning call tenant_provision themselves.

Hosts: the console answers on ``testserver``; a tenant's portal on ``<slug>.localhost`` (sent as the
Host header, since Python's resolver does not resolve ``*.localhost`` here).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context
from openapi_spec_validator import validate

from controlplane.accounts.models import User
from controlplane.accounts.services import (
    api_token_create,
    provider_membership_set,
    tenant_grant,
    tenant_membership_set,
    user_create,
)
from controlplane.providers.models import Provider
from modules.people.services import person_for_user
from modules.records.actor import Actor
from tenants.models import Tenant
from tenants.services import new_schema_name, tenant_provision, tenant_register, tenant_validate
from tenants.template import template_migrate, template_snapshot

PASSWORD = "correct-horse-battery-staple"
SCHEMA_POOL_SIZE = 3  # tenant_a, tenant_b, tenant_c
_schema_pool: list[tuple[str, str]] = []  # (schema name, the migration state it was built at)


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """After pytest-django migrated public: migrate the tenant template (the deploy step), then build the
    pool of tenant schemas (committed; the test database is dropped at the end of the session)."""
    with django_db_blocker.unblock():
        template_migrate()
        snapshot = template_snapshot()
        for _ in range(SCHEMA_POOL_SIZE):
            schema_name = new_schema_name()
            with connection.cursor() as cursor:
                cursor.execute(snapshot.statements_for(schema_name).as_string(cursor.connection))
            _schema_pool.append((schema_name, snapshot.migration_state))


def _commits(request: pytest.FixtureRequest) -> bool:
    """True when the test commits for real, so a pooled schema would keep what it wrote."""
    marker = request.node.get_closest_marker("django_db")
    return (
        "transactional_db" in request.fixturenames
        or "live_server" in request.fixturenames
        or bool(marker and marker.kwargs.get("transaction"))
    )


@pytest.fixture
def tenant_make(request: pytest.FixtureRequest, db: None) -> Callable[..., Tenant]:
    """``tenant_make(provider=, name=, slug=, time_zone=)``: a tenant on the next free pooled schema of this
    test, or provisioned for real when the test commits or the pool is used up."""
    free = [] if _commits(request) else list(_schema_pool)

    def make(*, provider: Provider, name: str, slug: str, time_zone: str = "UTC") -> Tenant:
        if not free:
            return tenant_provision(provider=provider, name=name, slug=slug, time_zone=time_zone)
        tenant_validate(slug=slug, name=name, time_zone=time_zone)
        schema_name, migration_state = free.pop(0)
        return tenant_register(
            provider=provider,
            name=name,
            slug=slug,
            time_zone=time_zone,
            locale="en-gb",
            schema_name=schema_name,
            migration_state=migration_state,
        )

    return make


@pytest.fixture(scope="session")
def openapi_document(django_db_setup: None, django_db_blocker: Any) -> dict[str, Any]:
    """The API's OpenAPI document as served, checked once per session against the OpenAPI 3.1 schema
    (openapi-spec-validator takes about 10 s over it; several modules' tests read its paths)."""
    with django_db_blocker.unblock():
        response = Client(HTTP_HOST="testserver").get("/api/v1/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    validate(document)
    return document


@pytest.fixture
def provider(db: None) -> Provider:
    return Provider.objects.create(name="Northwind MSP", slug="northwind")


@pytest.fixture
def other_provider(db: None) -> Provider:
    return Provider.objects.create(name="Contoso MSP", slug="contoso")


@pytest.fixture
def tenant_a(provider: Provider, tenant_make: Callable[..., Tenant]) -> Tenant:
    return tenant_make(provider=provider, name="Acme Corp", slug="acme", time_zone="Europe/London")


@pytest.fixture
def tenant_b(provider: Provider, tenant_make: Callable[..., Tenant]) -> Tenant:
    return tenant_make(provider=provider, name="Globex", slug="globex", time_zone="America/New_York")


def make_user(email: str) -> User:
    return user_create(
        email=email, password=PASSWORD, full_name=email.split("@")[0].title(), email_verified=True
    )


@pytest.fixture
def tech_a(provider: Provider, tenant_a: Tenant) -> User:
    """A technician with a grant for tenant A only."""
    user = make_user("tech.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=user, provider=provider, role="technician"), tenant=tenant_a
    )
    return user


@pytest.fixture
def tech_ab(provider: Provider, tenant_a: Tenant, tenant_b: Tenant) -> User:
    """A technician with grants for tenants A and B."""
    user = make_user("tech.ab@northwind.example")
    membership = provider_membership_set(user=user, provider=provider, role="technician")
    tenant_grant(membership=membership, tenant=tenant_a)
    tenant_grant(membership=membership, tenant=tenant_b)
    return user


@pytest.fixture
def end_user_a(tenant_a: Tenant) -> User:
    user = make_user("alice@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="end_user")
    return user


@pytest.fixture
def end_user_b(tenant_b: Tenant) -> User:
    user = make_user("bob@globex.example")
    tenant_membership_set(user=user, tenant=tenant_b, role="end_user")
    return user


@pytest.fixture
def client_for() -> Callable[..., Client]:
    """``client_for(user, host="testserver")``: a browser-like client signed in as ``user``."""

    def make(user: User | None, host: str = "testserver") -> Client:
        client = Client(HTTP_HOST=host)
        if user is not None:
            client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
        return client

    return make


@pytest.fixture
def api_for() -> Callable[[User], Client]:
    """``api_for(user)``: a client that authenticates with a fresh personal API token (no session)."""

    def make(user: User) -> Client:
        _, secret = api_token_create(user=user, name="tests")
        return Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}")

    return make


@pytest.fixture
def in_tenant() -> Callable[[Tenant], Any]:
    """``with in_tenant(tenant):`` run code in a tenant's schema (django-tenants' tenant_context)."""
    return tenant_context


def actor_in(tenant: Tenant, user: User, role: str = "technician") -> Actor:
    """An actor for ``user`` in ``tenant``; call inside ``tenant_context(tenant)``."""
    person = person_for_user(user_id=user.pk, display_name=user.full_name, email=user.email)
    return Actor(user_id=user.pk, person=person, role=role)


@pytest.fixture(autouse=True)
def _public_before_and_after() -> Iterator[None]:
    """Every test starts and ends on the public schema: a schema left active by a request, a task or a
    context manager would make later queries run in the wrong tenant."""
    assert getattr(connection, "schema_name", None) == "public"
    yield
    schema = getattr(connection, "schema_name", None)
    assert schema == "public", f"test left the connection on {schema}"


@pytest.fixture
def tenant_c(provider: Provider, tenant_make: Callable[..., Tenant]) -> Tenant:
    return tenant_make(provider=provider, name="Initech", slug="initech", time_zone="Asia/Tokyo")


@pytest.fixture(autouse=True)
def _own_cache_keys(settings: Any) -> None:
    """Every test gets its own cache key prefix, so rate-limit counters (allauth's failed sign-ins per
    address and per account) never carry over from one test to the next. The cache stays the real one
    (Redis with REDIS_URL, else the database table); clearing it would also clear the broker's Redis db."""
    settings.CACHES = {"default": {**settings.CACHES["default"], "KEY_PREFIX": f"test-{uuid.uuid4().hex}"}}
