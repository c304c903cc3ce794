"""Fixtures of the knowledge tests: the tenant roles that matter here besides the root conftest's."""

from __future__ import annotations

import pytest

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.providers.models import Provider
from tenants.models import Tenant


@pytest.fixture
def client_admin_a(tenant_a: Tenant) -> User:
    """The client's own administrator in tenant A (a tenant role, not provider staff)."""
    user = make_user("dana@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="client_admin")
    return user


@pytest.fixture
def approver_a(tenant_a: Tenant) -> User:
    user = make_user("erin@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="approver")
    return user


@pytest.fixture
def carol(tenant_a: Tenant) -> User:
    """A second end user of tenant A."""
    user = make_user("carol@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="end_user")
    return user


@pytest.fixture
def admin(provider: Provider, tenant_a: Tenant) -> User:
    """A provider admin (all clients by default)."""
    user = make_user("admin@northwind.example")
    provider_membership_set(user=user, provider=provider, role="admin")
    return user
