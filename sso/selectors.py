"""Reads of SAML and OpenID Connect connections, always scoped to their owner (a tenant or a provider)."""

from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db.models import QuerySet

from controlplane.accounts.models import ProviderMembership, SecurityEvent, User
from controlplane.permissions import Permission, roles_with
from controlplane.problems import NotFound
from tenants.models import Domain, Tenant

from .models import OidcConnection, SamlConnection

# Who manages connections: a tenant's by the provider's owners and admins and the tenant's client admins;
# a provider's by its owners and admins (issue 6).
# Who manages connections: the permission matrix (controlplane.permissions).
TENANT_MANAGE_ROLES = roles_with(Permission.TENANT_SSO_MANAGE) - {"system"}
PROVIDER_MANAGE_ROLES = roles_with(Permission.PROVIDER_SSO_MANAGE) - {"system"}


def connection_list(
    *, tenant: Tenant | None = None, provider_id: int | None = None
) -> QuerySet[SamlConnection]:
    """The connections of one owner (a tenant, or a provider's own), active and inactive, by name."""
    if tenant is not None:
        return SamlConnection.objects.filter(tenant=tenant)
    if provider_id is not None:
        return SamlConnection.objects.filter(provider_id=provider_id, tenant__isnull=True)
    return SamlConnection.objects.none()


def connection_get(
    *, connection_id: uuid.UUID, tenant: Tenant | None = None, provider_id: int | None = None
) -> SamlConnection:
    """One connection of that owner. Another owner's id answers NotFound, like a missing one."""
    connection = connection_list(tenant=tenant, provider_id=provider_id).filter(pk=connection_id).first()
    if connection is None:
        raise NotFound("no such connection")
    return connection


def _served_here(*, tenant_id: int | None, hostname: str) -> bool:
    """A tenant's connection is served on that tenant's verified portal hosts; a provider's on console
    hosts only."""
    if tenant_id is None:
        return hostname in settings.CONSOLE_HOSTS
    return Domain.objects.filter(domain=hostname, tenant_id=tenant_id, verified_at__isnull=False).exists()


def connection_for_host(*, connection_id: uuid.UUID, hostname: str) -> SamlConnection | None:
    """The active connection ``connection_id`` if it is served on ``hostname``: a tenant's on that tenant's
    verified portal host, a provider's on a console host. Else None (the SAML endpoints answer 404), so a
    connection only ever signs users in where its owner lives."""
    connection = SamlConnection.objects.filter(pk=connection_id, is_active=True).first()
    if connection is None:
        return None
    return connection if _served_here(tenant_id=connection.tenant_id, hostname=hostname) else None


def oidc_connection_for_host(*, provider_id: str, hostname: str) -> OidcConnection | None:
    """The active OIDC connection whose allauth ``provider_id`` (its id as text) is ``provider_id``, if it
    is served on ``hostname`` (same rule as ``connection_for_host``); else None."""
    try:
        key = uuid.UUID(str(provider_id))
    except ValueError:
        return None
    connection = OidcConnection.objects.filter(pk=key, is_active=True).first()
    if connection is None:
        return None
    return connection if _served_here(tenant_id=connection.tenant_id, hostname=hostname) else None


def oidc_connection_list(
    *, tenant: Tenant | None = None, provider_id: int | None = None
) -> QuerySet[OidcConnection]:
    """The OIDC connections of one owner (a tenant, or a provider's own), active and inactive, by name."""
    if tenant is not None:
        return OidcConnection.objects.filter(tenant=tenant)
    if provider_id is not None:
        return OidcConnection.objects.filter(provider_id=provider_id, tenant__isnull=True)
    return OidcConnection.objects.none()


def oidc_connection_get(
    *, connection_id: uuid.UUID, tenant: Tenant | None = None, provider_id: int | None = None
) -> OidcConnection:
    """One OIDC connection of that owner. Another owner's id answers NotFound, like a missing one."""
    connection = oidc_connection_list(tenant=tenant, provider_id=provider_id).filter(pk=connection_id).first()
    if connection is None:
        raise NotFound("no such connection")
    return connection


def provider_manager_membership(*, user: User) -> ProviderMembership | None:
    """The user's provider membership when it may manage the provider's connections (owner, admin)."""
    membership = ProviderMembership.objects.filter(user=user).first()
    if membership is None or membership.role not in PROVIDER_MANAGE_ROLES:
        return None
    return membership


def sso_connection_for_email(*, email: str, hostname: str) -> SamlConnection | OidcConnection | None:
    """Home-realm discovery: the active connection (SAML or OIDC) that owns ``email``'s domain for this
    host, or None.

    On a tenant's portal host (a verified Domain row) only that tenant's connections count; on a console
    host only providers' connections. Domains are compared lower-case and exactly (no parent-domain
    match: ``eu.acme.example`` must be listed itself). Several matches (one owner may not have two, see
    services) answer the oldest."""
    _, _, domain = email.strip().lower().rpartition("@")
    if not domain:
        return None
    owner: dict[str, Any]
    if hostname in settings.CONSOLE_HOSTS:
        owner = {"tenant__isnull": True}
    else:
        tenant_id = (
            Domain.objects.filter(domain=hostname, verified_at__isnull=False)
            .values_list("tenant_id", flat=True)
            .first()
        )
        if tenant_id is None:
            return None
        owner = {"tenant_id": tenant_id}
    found: list[SamlConnection | OidcConnection] = []
    for model in (SamlConnection, OidcConnection):
        match = (
            model.objects.filter(**owner, is_active=True, email_domains__contains=[domain])
            .order_by("created_at")
            .first()
        )
        if match is not None:
            found.append(match)
    return min(found, key=lambda c: c.created_at) if found else None


def connection_event_list(
    *, connection: SamlConnection | OidcConnection, limit: int = 20
) -> list[SecurityEvent]:
    """The newest security events of ``connection`` (sign-ins, refusals with their reason, changes),
    newest first, at most ``limit``: what an administrator reads when an IdP's users cannot sign in."""
    return list(
        SecurityEvent.objects.filter(
            verb__startswith="sso.", details__connection=str(connection.pk)
        ).order_by("-at", "-id")[:limit]
    )
