"""Reads of a tenant's branding and domains (control plane)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from controlplane.accounts.models import User
from controlplane.permissions import P
from controlplane.problems import NotFound
from modules.records.actor import Actor

from .models import Domain, Tenant, TenantAuditEntry, TenantBranding


def branding_get(*, tenant: Tenant) -> TenantBranding:
    """The tenant's branding row, or an unsaved one with the defaults when none was set yet. Branding is
    public on the tenant's portal (shown on its sign-in page too), so no actor is needed."""
    found = TenantBranding.objects.filter(tenant=tenant).first()
    return found if found is not None else TenantBranding(tenant=tenant)


def domain_list(*, actor: Actor, tenant: Tenant) -> QuerySet[Domain]:
    """The tenant's domains, primary first then by name, for the provider's staff (others see none)."""
    if not actor.may(P.DOMAIN_READ):
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


@dataclass(frozen=True)
class AuditLine:
    """One audit entry as the console and portal show it: ``who`` is the user's name (or "system")."""

    entry: TenantAuditEntry
    who: str

    @property
    def changes(self) -> list[tuple[str, Any, Any]]:
        """``(field, old, new)`` per changed field, in field order."""
        return [(field, *pair) for field, pair in sorted(self.entry.changes.items())]


AUDIT_READ = {"branding.": P.BRANDING_MANAGE, "domain.": P.DOMAIN_READ}


def tenant_audit_list(*, actor: Actor, tenant: Tenant, prefix: str, limit: int = 20) -> list[AuditLine]:
    """The newest ``limit`` audit entries of ``tenant`` whose verb starts with ``prefix`` ("branding." or
    "domain."), newest first, each with its author's name; two queries. Empty for a role that may not
    read that page (AUDIT_READ). Times are UTC (aware datetimes)."""
    if prefix not in AUDIT_READ or not actor.may(AUDIT_READ[prefix]):
        return []
    entries = list(
        TenantAuditEntry.objects.filter(tenant=tenant, verb__startswith=prefix).order_by("-at", "-id")[:limit]
    )
    names = dict(
        User.objects.filter(pk__in={e.actor_user_id for e in entries if e.actor_user_id}).values_list(
            "pk", "full_name"
        )
    )
    return [
        AuditLine(entry=e, who=(names.get(e.actor_user_id, "") if e.actor_user_id else "") or "system")
        for e in entries
    ]
