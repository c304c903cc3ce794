"""Shared pytest fixtures: a real PostgreSQL test database with the migrated tenant template, tenants
provisioned inside each test's transaction (rolled back with it), users with roles, and clients.

Hosts: the console answers on ``testserver``; a tenant's portal on ``<slug>.localhost`` (sent as the
Host header, since Python's resolver does not resolve ``*.localhost`` here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django_tenants.utils import tenant_context

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
from tenants.services import tenant_provision
from tenants.template import template_migrate

PASSWORD = "correct-horse-battery-staple"


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup: None, django_db_blocker: Any) -> None:
    """After pytest-django migrated public: migrate the tenant template (the deploy step)."""
    with django_db_blocker.unblock():
        template_migrate()


@pytest.fixture
def provider(db: None) -> Provider:
    return Provider.objects.create(name="Northwind MSP", slug="northwind")


@pytest.fixture
def other_provider(db: None) -> Provider:
    return Provider.objects.create(name="Contoso MSP", slug="contoso")


@pytest.fixture
def tenant_a(provider: Provider) -> Tenant:
    return tenant_provision(provider=provider, name="Acme Corp", slug="acme", time_zone="Europe/London")


@pytest.fixture
def tenant_b(provider: Provider) -> Tenant:
    return tenant_provision(provider=provider, name="Globex", slug="globex", time_zone="America/New_York")


def make_user(email: str) -> User:
    return user_create(email=email, password=PASSWORD, full_name=email.split("@")[0].title())


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
def tenant_c(provider: Provider) -> Tenant:
    return tenant_provision(provider=provider, name="Initech", slug="initech", time_zone="Asia/Tokyo")
