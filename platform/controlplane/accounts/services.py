"""Control-plane writes for users, memberships and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from allauth.account.models import EmailAddress
from django.db import transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from controlplane.problems import Conflict, InvalidInput, PermissionDenied
from controlplane.providers.models import Provider
from controlplane.zones import zone_valid
from tenants.models import Tenant

from .models import (
    ApiToken,
    ProviderMembership,
    ProviderRole,
    SecurityEvent,
    TenantGrant,
    TenantMembership,
    TenantRole,
    User,
)
from .selectors import tenant_role_get


@transaction.atomic
def user_create(
    *, email: str, password: str | None, full_name: str = "", email_verified: bool = False
) -> User:
    """Create a user with ``email`` as their primary allauth address. Raises Conflict if the email
    (case-insensitive) is taken.

    Sign-in requires a verified address (``ACCOUNT_EMAIL_VERIFICATION = "mandatory"``): pass
    ``email_verified=True`` only when the creator vouches for the address (provisioning a tenant's first
    admin from a signed contract, the demo data, tests); otherwise the user gets a verification link on
    their first sign-in and cannot enter before following it. ``password`` is not validated here (the
    validators run on the forms people type into); ``None`` makes an unusable password."""
    email = email.strip().lower()
    if User.objects.filter(email=email).exists() or EmailAddress.objects.filter(email=email).exists():
        raise Conflict(f"a user with email {email} exists")
    user = User.objects.create_user(email=email, password=password, full_name=full_name)
    EmailAddress.objects.create(user=user, email=email, primary=True, verified=email_verified)
    return user


@transaction.atomic
def user_session_epoch_bump(*, user: User) -> int:
    """Raise ``user.session_epoch`` by one and return the new value: every session signed in before
    now ends on its next request (controlplane.accounts.middleware). Updates ``user`` in place."""
    User.objects.filter(pk=user.pk).update(session_epoch=F("session_epoch") + 1)
    user.refresh_from_db(fields=["session_epoch"])
    return user.session_epoch


@transaction.atomic
def user_sign_out_everywhere(
    *, user: User, ip: str | None = None, tenant_id: int | None = None, actor_user_id: int | None = None
) -> int:
    """End every session of ``user`` on every host (console and portals), the caller's included: the
    session epoch is raised (see ``user_session_epoch_bump``) and ``session.ended_everywhere`` recorded.
    API tokens are not sessions and stay valid (revoke them on the tokens page). ``actor_user_id``: an
    administrator acting on someone else (None: the user themself). Returns the new epoch."""
    epoch = user_session_epoch_bump(user=user)
    security_event_record(
        verb="session.ended_everywhere",
        user_id=user.pk,
        actor_user_id=actor_user_id,
        tenant_id=tenant_id,
        ip=ip,
        details={"epoch": epoch},
    )
    return epoch


@transaction.atomic
def provider_membership_set(
    *, user: User, provider: Provider, role: str, all_clients: bool | None = None
) -> ProviderMembership:
    """Make ``user`` a member of ``provider`` with ``role``. Owners and admins reach all clients unless
    told otherwise; technicians only by grant. Raises Conflict if the user belongs to another provider."""
    if role not in ProviderRole.values:
        raise InvalidInput(
            f"unknown provider role {role!r}", errors=[{"field": "role", "message": "unknown"}]
        )
    existing = ProviderMembership.objects.filter(user=user).first()
    if existing is not None and existing.provider_id != provider.pk:
        raise Conflict("a technician belongs to exactly one provider")
    if all_clients is None:
        all_clients = role in (ProviderRole.OWNER, ProviderRole.ADMIN)
    membership, _ = ProviderMembership.objects.update_or_create(
        user=user, defaults={"provider": provider, "role": role, "all_clients": all_clients}
    )
    return membership


def tenant_grant(*, membership: ProviderMembership, tenant: Tenant) -> TenantGrant:
    """Grant a provider member access to one of the provider's tenants (idempotent)."""
    if tenant.provider_id != membership.provider_id:
        raise InvalidInput(
            "tenant belongs to another provider", errors=[{"field": "tenant", "message": "other provider"}]
        )
    grant, _ = TenantGrant.objects.get_or_create(membership=membership, tenant=tenant)
    return grant


def tenant_membership_set(*, user: User, tenant: Tenant, role: str) -> TenantMembership:
    """Give ``user`` a tenant role (end user, approver, CAB member, client admin) in ``tenant``."""
    if role not in TenantRole.values:
        raise InvalidInput(f"unknown tenant role {role!r}", errors=[{"field": "role", "message": "unknown"}])
    membership, _ = TenantMembership.objects.update_or_create(
        user=user, tenant=tenant, defaults={"role": role}
    )
    return membership


def api_token_create(*, user: User, name: str, expires_in_days: int | None = None) -> tuple[ApiToken, str]:
    """Create a personal API token. Returns the row and the secret (``itsm_<prefix>_<secret>``), which is
    shown once: only its SHA-256 is stored (a 256-bit random secret needs no slow hash)."""
    if not name.strip():
        raise InvalidInput("name is required", errors=[{"field": "name", "message": "required"}])
    prefix = secrets.token_hex(4)
    secret = f"itsm_{prefix}_{secrets.token_urlsafe(32)}"
    expires_at = timezone.now() + dt.timedelta(days=expires_in_days) if expires_in_days else None
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        prefix=prefix,
        token_hash=hashlib.sha256(secret.encode()).hexdigest(),
        expires_at=expires_at,
    )
    return token, secret


def api_token_revoke(*, user: User, token_id: int) -> None:
    """Revoke one of the user's tokens; another user's token id answers like a missing one."""
    ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).update(revoked_at=timezone.now())


@transaction.atomic
def user_time_zone_set(*, user: User, time_zone: str) -> User:
    """Set the zone ``user`` sees dates in: an IANA name known to zoneinfo ("Europe/Berlin"), or ""
    to unset it (pages then use the browser's zone, else the tenant's, else UTC). Raises InvalidInput
    (field ``time_zone``) for an unknown name. Control plane; no tenant data changes."""
    time_zone = time_zone.strip()
    if time_zone and not zone_valid(time_zone):
        raise InvalidInput(
            f"unknown time zone {time_zone!r}",
            errors=[{"field": "time_zone", "message": "Choose a time zone from the list."}],
        )
    user.time_zone = time_zone
    user.save(update_fields=["time_zone"])
    return user


def security_event_record(
    *,
    verb: str,
    user_id: int | None = None,
    actor_user_id: int | None = None,
    provider_id: int | None = None,
    tenant_id: int | None = None,
    ip: str | None = None,
    details: dict[str, Any] | None = None,
) -> SecurityEvent:
    """Append one row to the identity and access audit (``SecurityEvent``; verbs and fields there).

    Runs in the caller's transaction when there is one, so a refused change that rolls back leaves no
    audit of a change; a refusal that must be audited (a bad password, a forged assertion) is recorded by
    its caller outside the rolled-back work. ``ip`` is the request's client address (``client_ip``)."""
    return SecurityEvent.objects.create(
        verb=verb,
        user_id=user_id,
        actor_user_id=actor_user_id,
        provider_id=provider_id,
        tenant_id=tenant_id,
        ip=ip or None,
        details=details or {},
    )


def client_ip(request: HttpRequest) -> str | None:
    """The client's address for audit and rate limits: ``REMOTE_ADDR`` only. Behind a reverse proxy the
    proxy must set it (e.g. gunicorn's ``--forwarded-allow-ips`` with uvicorn/ProxyFix); a client's own
    ``X-Forwarded-For`` is never trusted here (OWASP: spoofable header)."""
    return request.META.get("REMOTE_ADDR") or None


@transaction.atomic
def provider_mfa_requirement_set(
    *, actor: User, provider: Provider, required: bool, ip: str | None = None
) -> Provider:
    """Require (or stop requiring) two-factor authentication of every member of ``provider`` (owners,
    admins, technicians): a member without an authenticator is sent to set one up on their next page
    (controlplane.accounts.middleware.MfaRequiredMiddleware). Only the provider's owners and admins may;
    anyone else raises PermissionDenied and nothing changes. A change is recorded as
    ``mfa.policy_changed`` (details: scope ``provider``, ``required``); setting the current value records
    nothing."""
    membership = ProviderMembership.objects.filter(user=actor, provider=provider).first()
    if membership is None or membership.role not in (ProviderRole.OWNER, ProviderRole.ADMIN):
        raise PermissionDenied("only the provider's owners and admins set its sign-in policy")
    provider = Provider.objects.select_for_update().get(pk=provider.pk)
    if provider.require_mfa_for_technicians != required:
        provider.require_mfa_for_technicians = required
        provider.save(update_fields=["require_mfa_for_technicians"])
        security_event_record(
            verb="mfa.policy_changed",
            user_id=None,
            actor_user_id=actor.pk,
            provider_id=provider.pk,
            ip=ip,
            details={"scope": "provider", "required": required},
        )
    return provider


@transaction.atomic
def tenant_mfa_requirement_set(
    *, actor: User, tenant: Tenant, required: bool, ip: str | None = None
) -> Tenant:
    """Require (or stop requiring) two-factor authentication of every user with a role in ``tenant``
    (end users, approvers, CAB members, client admins). The tenant's client admins may (on the portal),
    and the provider's owners and admins who reach the tenant; anyone else raises PermissionDenied and
    nothing changes. Recorded as ``mfa.policy_changed`` (scope ``tenant``) when the value changes."""
    role = tenant_role_get(user=actor, tenant=tenant)
    if role not in (TenantRole.CLIENT_ADMIN, ProviderRole.OWNER, ProviderRole.ADMIN):
        raise PermissionDenied("only the client's admins set its portal sign-in policy")
    tenant = Tenant.objects.select_for_update().get(pk=tenant.pk)
    if tenant.require_mfa_for_end_users != required:
        tenant.require_mfa_for_end_users = required
        tenant.save(update_fields=["require_mfa_for_end_users"])
        security_event_record(
            verb="mfa.policy_changed",
            actor_user_id=actor.pk,
            provider_id=tenant.provider_id,
            tenant_id=tenant.pk,
            ip=ip,
            details={"scope": "tenant", "required": required},
        )
    return tenant
