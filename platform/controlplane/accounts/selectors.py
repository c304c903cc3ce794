"""Who may enter which tenant. Deny by default: access comes only from an explicit grant, the
"all clients" flag of a provider role, or a tenant membership (../shared/ARCHITECTURE.md, "Words")."""

from __future__ import annotations

import functools
import operator
from collections.abc import Iterable

from allauth.mfa.models import Authenticator
from django.db.models import Exists, OuterRef, Q, QuerySet

from tenants.models import Tenant

from .models import ProviderMembership, SecurityEvent, TenantGrant, TenantMembership, User


def tenant_role_get(*, user: User, tenant: Tenant) -> str | None:
    """The role ``user`` holds in ``tenant`` on the console (provider role) or portal (tenant role).

    Returns the provider role (owner/admin/technician) if the user's provider owns the tenant and the
    membership has "all clients" or a grant for it; else the tenant role of a TenantMembership; else None.
    """
    membership = ProviderMembership.objects.filter(user=user, provider_id=tenant.provider_id).first()
    if membership is not None and (
        membership.all_clients or TenantGrant.objects.filter(membership=membership, tenant=tenant).exists()
    ):
        return membership.role
    return portal_role_get(user=user, tenant=tenant)


def portal_role_get(*, user: User, tenant: Tenant) -> str | None:
    """The tenant role (client_admin, approver, cab_member, end_user) of ``user`` in ``tenant``, or None.

    Only these users sign in on the tenant's branded portal.
    """
    return TenantMembership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()


def tenant_list_for_user(*, user: User, as_provider_staff: bool = False) -> QuerySet[Tenant]:
    """Active tenants the user may enter on the console, by name. ``as_provider_staff``: only those their
    provider role reaches (all clients, or granted ones), not those where they hold a tenant role (an end
    user or approver of some client, possibly another provider's)."""
    membership = ProviderMembership.objects.filter(user=user).first()
    conditions: list[Q] = []
    if not as_provider_staff:
        conditions.append(Q(Exists(TenantMembership.objects.filter(user=user, tenant=OuterRef("pk")))))
    if membership is not None:
        reach = Q(provider_id=membership.provider_id)
        if not membership.all_clients:
            reach &= Q(Exists(TenantGrant.objects.filter(membership=membership, tenant=OuterRef("pk"))))
        conditions.append(reach)
    if not conditions:
        return Tenant.objects.none()
    condition = functools.reduce(operator.or_, conditions)
    return Tenant.objects.filter(condition, status=Tenant.Status.ACTIVE).order_by("name")


# What a user is shown of their own audit (their account pages): sign-ins and changes to their access.
OWN_SECURITY_VERBS = {
    "login.succeeded": "Signed in",
    "login.failed": "Sign-in refused",
    "login.locked": "Sign-in blocked: too many failed attempts",
    "password.changed": "Password changed",
    "password.reset": "Password reset by email link",
    "email.verified": "Email address verified",
    "session.ended_everywhere": "Signed out everywhere",
    "mfa.reset": "Two-factor authentication reset by an administrator",
}


def security_event_list(*, user: User, limit: int = 10) -> list[tuple[SecurityEvent, str]]:
    """The newest ``limit`` security events about ``user`` with their wording (``OWN_SECURITY_VERBS``):
    sign-ins, refused and blocked sign-ins, password and address changes, sign-outs everywhere; newest
    first, on any host. Only the user's own rows (``user_id``). ``at`` is UTC (pages show local time)."""
    qs = SecurityEvent.objects.filter(user_id=user.pk, verb__in=list(OWN_SECURITY_VERBS))
    return [(event, OWN_SECURITY_VERBS[event.verb]) for event in qs.order_by("-at", "-id")[:limit]]


# Authenticators that count as a second factor on their own (recovery codes are only a fallback).
SECOND_FACTORS = (Authenticator.Type.TOTP, Authenticator.Type.WEBAUTHN)


def mfa_required_condition() -> Q:
    """The condition (on ``User``) "must use two-factor authentication": their provider requires it of
    its members (``Provider.require_mfa_for_technicians``) or a tenant they hold a role in requires it of
    its users (``Tenant.require_mfa_for_end_users``)."""
    return Q(
        Exists(
            ProviderMembership.objects.filter(user=OuterRef("pk"), provider__require_mfa_for_technicians=True)
        )
    ) | Q(
        Exists(TenantMembership.objects.filter(user=OuterRef("pk"), tenant__require_mfa_for_end_users=True))
    )


def mfa_required(*, user: User) -> bool:
    """True when ``user`` must use two-factor authentication (``mfa_required_condition``). One query."""
    return User.objects.filter(mfa_required_condition(), pk=user.pk).exists()


def mfa_enrolment_missing(*, user: User) -> bool:
    """True when ``user`` must use two-factor authentication but has no authenticator app (TOTP) or
    security key. The authenticator is global, so one enrolment satisfies every requirement. One query."""
    enrolled = Exists(Authenticator.objects.filter(user=OuterRef("pk"), type__in=SECOND_FACTORS))
    return User.objects.filter(mfa_required_condition(), pk=user.pk).exclude(enrolled).exists()


MFA_TYPE_NAMES = {
    Authenticator.Type.TOTP: "authenticator app",
    Authenticator.Type.WEBAUTHN: "security key",
    Authenticator.Type.RECOVERY_CODES: "recovery codes",
}


def mfa_types_by_user(*, user_ids: Iterable[int]) -> dict[int, list[str]]:
    """User id -> the sorted types of their allauth authenticators (``totp``, ``webauthn``,
    ``recovery_codes``; a user without any is missing from the dict). One query for a whole list page."""
    found: dict[int, set[str]] = {}
    for user_id, kind in Authenticator.objects.filter(user_id__in=list(user_ids)).values_list(
        "user_id", "type"
    ):
        found.setdefault(user_id, set()).add(kind)
    return {user_id: sorted(kinds) for user_id, kinds in found.items()}


def mfa_methods_text(types: Iterable[str]) -> str:
    """ "On: authenticator app, recovery codes." (second factors first) or "Off." (none, or recovery codes
    alone, which are no second factor on their own). No query."""
    kinds = sorted(set(types))
    names = [MFA_TYPE_NAMES[t] for t in kinds if t in SECOND_FACTORS] + [
        MFA_TYPE_NAMES[t] for t in kinds if t not in SECOND_FACTORS and t in MFA_TYPE_NAMES
    ]
    return f"On: {', '.join(names)}." if any(t in SECOND_FACTORS for t in kinds) else "Off."


def mfa_status_text(*, user: User) -> str:
    """One line for the account pages: "On: authenticator app, recovery codes." / "Off." with "Required
    by your organisation." appended when ``mfa_required``. Two queries."""
    text = mfa_methods_text(Authenticator.objects.filter(user=user).values_list("type", flat=True))
    return f"{text} Required by your organisation." if mfa_required(user=user) else text


def signs_in_elsewhere_condition(*, tenant: Tenant) -> Q:
    """The condition (on ``User``) "also signs in to another organisation": a member of any provider's
    team, or a role in any tenant but ``tenant``. A tenant's administrators may not change such a user's
    sign-in (``user_mfa_reset``): it would change how they sign in to organisations that are not theirs."""
    return Q(Exists(ProviderMembership.objects.filter(user=OuterRef("pk")))) | Q(
        Exists(TenantMembership.objects.filter(user=OuterRef("pk")).exclude(tenant=tenant))
    )
