"""Reads of a tenant's branding and domains (control plane)."""

from __future__ import annotations

from django.db.models import QuerySet

from controlplane.problems import NotFound
from modules.records.actor import Actor

from .models import Domain, Tenant, TenantBranding

DOMAIN_READ_ROLES = frozenset({"owner", "admin", "technician"})


def branding_get(*, tenant: Tenant) -> TenantBranding:
    """The tenant's branding row, or an unsaved one with the defaults when none was set yet. Branding is
    public on the tenant's portal (shown on its sign-in page too), so no actor is needed."""
    found = TenantBranding.objects.filter(tenant=tenant).first()
    return found if found is not None else TenantBranding(tenant=tenant)


def domain_list(*, actor: Actor, tenant: Tenant) -> QuerySet[Domain]:
    """The tenant's domains, primary first then by name, for the provider's staff (others see none)."""
    if actor.role not in DOMAIN_READ_ROLES:
        return Domain.objects.none()
    return Domain.objects.filter(tenant=tenant).order_by("-is_primary", "domain")


def domain_get(*, actor: Actor, tenant: Tenant, domain_id: int) -> Domain:
    """One of the tenant's domains (NotFound for another tenant's id, a missing one, or a reader without
    a provider role)."""
    found = domain_list(actor=actor, tenant=tenant).select_related("tenant").filter(pk=domain_id).first()
    if found is None:
        raise NotFound("no such domain")
    return found


def domain_is_routable(*, hostname: str) -> bool:
    """True when ``hostname`` (normalised by the caller) is a verified domain of an active tenant: what the
    reverse proxy's on-demand TLS ``ask`` endpoint answers, and what routing serves."""
    return Domain.objects.filter(
        domain=hostname, verified_at__isnull=False, tenant__status=Tenant.Status.ACTIVE
    ).exists()
