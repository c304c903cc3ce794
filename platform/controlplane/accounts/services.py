"""Control-plane writes for users, memberships and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import smtplib
import zoneinfo
from typing import Any

from allauth.account.models import EmailAddress
from allauth.mfa.models import Authenticator
from django.db import connection, transaction
from django.db.models import F
from django.http import HttpRequest
from django.utils import timezone

from controlplane.permissions import Permission, role_may
from controlplane.problems import Conflict, InvalidInput, NotFound, PermissionDenied
from controlplane.providers.models import Provider
from controlplane.zones import zone_valid
from modules.records.actor import Actor
from tenants.models import Domain, Tenant

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
from .selectors import signs_in_elsewhere_condition, tenant_role_get

logger = logging.getLogger(__name__)


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


TOKEN_MAX_DAYS = 366


@transaction.atomic
def api_token_create(
    *,
    user: User,
    name: str,
    expires_in_days: int = 90,
    access: str = ApiToken.Access.WRITE,
    tenant_ids: list[int] | None = None,
    ip: str | None = None,
) -> tuple[ApiToken, str]:
    """Create a personal API token. Returns the row and the secret (``itsm_<prefix>_<secret>``), which is
    shown once: only its SHA-256 is stored (a 256-bit random secret needs no slow hash).

    ``tenant_ids`` None: every tenant the user may enter (a provider-wide token); else those tenants, each
    of which the user must be able to enter now. ``access`` "read" or "write". ``expires_in_days`` 1-366
    (every token expires, as GitHub's fine-grained tokens). Raises InvalidInput naming the field; records
    ``token.created``."""
    from .selectors import tenant_list_for_user

    errors = []
    if not name.strip():
        errors.append({"field": "name", "message": "required"})
    if access not in ApiToken.Access.values:
        errors.append({"field": "access", "message": "read or write"})
    if not 1 <= expires_in_days <= TOKEN_MAX_DAYS:
        errors.append({"field": "expires_in_days", "message": f"1-{TOKEN_MAX_DAYS} days"})
    if tenant_ids is not None:
        reachable = set(tenant_list_for_user(user=user).values_list("pk", flat=True))
        if not tenant_ids:
            errors.append({"field": "tenant_ids", "message": "choose at least one client, or all"})
        elif not set(tenant_ids) <= reachable:
            errors.append({"field": "tenant_ids", "message": "you cannot enter every client chosen"})
    if errors:
        raise InvalidInput(errors[0]["field"] + ": " + errors[0]["message"], errors=errors)
    prefix = secrets.token_hex(4)
    secret = f"itsm_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken.objects.create(
        user=user,
        name=name.strip(),
        prefix=prefix,
        token_hash=hashlib.sha256(secret.encode()).hexdigest(),
        access=access,
        all_tenants=tenant_ids is None,
        tenant_ids=sorted(set(tenant_ids or [])),
        expires_at=timezone.now() + dt.timedelta(days=expires_in_days),
    )
    security_event_record(
        verb="token.created",
        user_id=user.pk,
        ip=ip,
        details={
            "token": prefix,
            "name": token.name,
            "access": access,
            "tenants": "all" if token.all_tenants else token.tenant_ids,
            "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        },
    )
    return token, secret


@transaction.atomic
def api_token_revoke(*, user: User, token_id: int, ip: str | None = None) -> None:
    """Revoke one of the user's tokens (``token.revoked``); another user's token id answers like a missing
    one (nothing happens)."""
    token = ApiToken.objects.filter(user=user, pk=token_id, revoked_at__isnull=True).first()
    if token is None:
        return
    token.revoked_at = timezone.now()
    token.save(update_fields=["revoked_at"])
    security_event_record(verb="token.revoked", user_id=user.pk, ip=ip, details={"token": token.prefix})


def api_token_used(*, token: ApiToken, ip: str | None, now: dt.datetime | None = None) -> None:
    """Record a use of ``token`` from ``ip``: ``last_used_at`` and ``last_used_ip`` are written when the
    address changed or a minute passed since the last write (one UPDATE, outside any transaction of the
    request), so a busy integration does not write on every call."""
    now = now or timezone.now()
    stale = token.last_used_at is None or (now - token.last_used_at).total_seconds() > 60
    if stale or (ip or None) != token.last_used_ip:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now, last_used_ip=ip or None)


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


# The provider's team (console /team/) and a tenant's users (console /t/<slug>/users/). Who may change
# them is the permission matrix's (provider_team.manage, tenant_members.manage); every change is audited.


def _team_admin(*, actor: User, provider_id: int) -> ProviderMembership:
    mine = ProviderMembership.objects.filter(user=actor, provider_id=provider_id).first()
    if mine is None or not role_may(mine.role, Permission.PROVIDER_TEAM_MANAGE):
        raise PermissionDenied("only the provider's owners and admins manage its team")
    return mine


def _owner_rules(*, mine: ProviderMembership, target: ProviderMembership, role: str | None) -> None:
    """Only an owner makes, changes or removes an owner, and nobody changes or removes their own
    membership (ask another administrator). Together they keep a provider's last owner: changing an
    owner takes another owner."""
    if target.user_id == mine.user_id:
        raise PermissionDenied("you cannot change your own membership; ask another administrator")
    if (target.role == ProviderRole.OWNER or role == ProviderRole.OWNER) and mine.role != ProviderRole.OWNER:
        raise PermissionDenied("only an owner makes or changes an owner")


@transaction.atomic
def provider_member_add(
    *, actor: User, provider: Provider, email: str, full_name: str = "", role: str, ip: str | None = None
) -> ProviderMembership:
    """Add a person to the provider's team with ``role`` (owner, admin, technician). A new address gets a
    user without a usable password (they set one with "forgot password", or sign in through the provider's
    SSO). Technicians start with no client: grants are given on the member's page. Raises PermissionDenied
    (not an owner or admin; an admin adding an owner), Conflict (the person belongs to another provider),
    InvalidInput naming ``email`` or ``role``. Audited as ``membership.added``."""
    mine = _team_admin(actor=actor, provider_id=provider.pk)
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput(
            "a valid email is required", errors=[{"field": "email", "message": "not an email"}]
        )
    if role not in ProviderRole.values:
        raise InvalidInput(
            "unknown role", errors=[{"field": "role", "message": "owner, admin or technician"}]
        )
    if role == ProviderRole.OWNER and mine.role != ProviderRole.OWNER:
        raise PermissionDenied("only an owner makes or changes an owner")
    user = User.objects.filter(email=email).first()
    if user is None:
        user = user_create(email=email, password=None, full_name=full_name.strip())
    elif ProviderMembership.objects.filter(user=user).exists():
        raise Conflict(f"{email} is already on a provider's team")
    membership = ProviderMembership.objects.create(
        user=user, provider=provider, role=role, all_clients=role != ProviderRole.TECHNICIAN
    )
    security_event_record(
        verb="membership.added",
        user_id=user.pk,
        actor_user_id=actor.pk,
        provider_id=provider.pk,
        ip=ip,
        details={"role": role, "all_clients": membership.all_clients},
    )
    return membership


@transaction.atomic
def provider_member_update(
    *,
    actor: User,
    membership: ProviderMembership,
    role: str,
    all_clients: bool,
    tenant_ids: list[int],
    ip: str | None = None,
) -> ProviderMembership:
    """Set a member's provider role, the explicit "all clients" flag and the grants (tenant ids of the
    provider's clients; ignored while "all clients" is on but kept). Deny by default: a technician without
    the flag reaches only granted clients (ARCHITECTURE "Words"). Raises PermissionDenied (see
    ``_owner_rules``) or InvalidInput naming ``role`` or ``tenant_ids``. Audited as ``membership.changed`` with
    what changed ([old, new], grants added and removed); nothing is written when nothing changed."""
    mine = _team_admin(actor=actor, provider_id=membership.provider_id)
    if role not in ProviderRole.values:
        raise InvalidInput(
            "unknown role", errors=[{"field": "role", "message": "owner, admin or technician"}]
        )
    _owner_rules(mine=mine, target=membership, role=role)
    wanted = set(tenant_ids)
    clients = set(
        Tenant.objects.filter(provider_id=membership.provider_id, pk__in=wanted).values_list("pk", flat=True)
    )
    if wanted - clients:
        raise InvalidInput(
            "not a client of this provider", errors=[{"field": "tenant_ids", "message": "unknown client"}]
        )
    held = set(TenantGrant.objects.filter(membership=membership).values_list("tenant_id", flat=True))
    changes: dict[str, Any] = {}
    if membership.role != role:
        changes["role"] = [membership.role, role]
    if membership.all_clients != all_clients:
        changes["all_clients"] = [membership.all_clients, all_clients]
    if wanted - held:
        changes["grants_added"] = sorted(wanted - held)
        TenantGrant.objects.bulk_create(
            [TenantGrant(membership=membership, tenant_id=t) for t in wanted - held]
        )
    if held - wanted:
        changes["grants_removed"] = sorted(held - wanted)
        TenantGrant.objects.filter(membership=membership, tenant_id__in=held - wanted).delete()
    if changes:
        membership.role, membership.all_clients = role, all_clients
        membership.save(update_fields=["role", "all_clients"])
        security_event_record(
            verb="membership.changed",
            user_id=membership.user_id,
            actor_user_id=actor.pk,
            provider_id=membership.provider_id,
            ip=ip,
            details=changes,
        )
    return membership


@transaction.atomic
def provider_member_remove(*, actor: User, membership: ProviderMembership, ip: str | None = None) -> None:
    """Take a member off the provider's team with their grants; their next request to any client is
    refused (the routing middleware reads memberships on every request). The user stays (their tenant
    roles elsewhere, their name on records). Audited as ``membership.removed``."""
    mine = _team_admin(actor=actor, provider_id=membership.provider_id)
    _owner_rules(mine=mine, target=membership, role=None)
    security_event_record(
        verb="membership.removed",
        user_id=membership.user_id,
        actor_user_id=actor.pk,
        provider_id=membership.provider_id,
        ip=ip,
        details={"role": membership.role},
    )
    membership.delete()


def _tenant_manager(actor: Actor, tenant: Tenant) -> None:
    if not actor.may(Permission.TENANT_MEMBERS_MANAGE):
        raise PermissionDenied("only the client's admins and the provider's admins manage its users")
    current = getattr(connection, "tenant", None)
    if getattr(current, "pk", None) != tenant.pk:
        raise PermissionDenied("the actor does not act in this tenant")


@transaction.atomic
def tenant_member_set(
    *, actor: Actor, tenant: Tenant, email: str, role: str, full_name: str = "", ip: str | None = None
) -> TenantMembership:
    """Give the person with ``email`` the tenant role ``role`` (client_admin, approver, cab_member,
    end_user) in ``tenant``, creating the user when new (no usable password: "forgot password" or the
    client's SSO). The provider's own staff are not made tenant members (they enter by grant). Raises
    PermissionDenied, InvalidInput naming ``email`` or ``role``. Audited as ``tenant_membership.added`` or
    ``tenant_membership.changed``."""
    _tenant_manager(actor, tenant)
    email = email.strip().lower()
    if "@" not in email or len(email) > 254:
        raise InvalidInput(
            "a valid email is required", errors=[{"field": "email", "message": "not an email"}]
        )
    if role not in TenantRole.values:
        raise InvalidInput("unknown role", errors=[{"field": "role", "message": "not a tenant role"}])
    user = User.objects.filter(email=email).first()
    if (
        user is not None
        and ProviderMembership.objects.filter(user=user, provider_id=tenant.provider_id).exists()
    ):
        raise InvalidInput(
            "the provider's staff enter clients by grant",
            errors=[{"field": "email", "message": "a member of the provider's team"}],
        )
    if user is None:
        user = user_create(email=email, password=None, full_name=full_name.strip())
    existing = TenantMembership.objects.filter(user=user, tenant=tenant).first()
    if existing is not None and existing.role == role:
        return existing
    membership = tenant_membership_set(user=user, tenant=tenant, role=role)
    security_event_record(
        verb="tenant_membership.changed" if existing else "tenant_membership.added",
        user_id=user.pk,
        actor_user_id=actor.user_id,
        provider_id=tenant.provider_id,
        tenant_id=tenant.pk,
        ip=ip,
        details={"role": [existing.role, role] if existing else role},
    )
    return membership


@transaction.atomic
def tenant_member_remove(
    *, actor: Actor, tenant: Tenant, membership: TenantMembership, ip: str | None = None
) -> None:
    """End a user's role in ``tenant`` (their next request there is refused). One cannot remove oneself.
    Audited as ``tenant_membership.removed``."""
    _tenant_manager(actor, tenant)
    if membership.tenant_id != tenant.pk:
        raise NotFound("no such user here")
    if membership.user_id == actor.user_id:
        raise PermissionDenied("you cannot remove yourself; ask another administrator")
    security_event_record(
        verb="tenant_membership.removed",
        user_id=membership.user_id,
        actor_user_id=actor.user_id,
        provider_id=tenant.provider_id,
        tenant_id=tenant.pk,
        ip=ip,
        details={"role": membership.role},
    )
    membership.delete()


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


@transaction.atomic
def user_mfa_reset(
    *,
    actor: User,
    target_user: User,
    provider: Provider | None = None,
    tenant: Tenant | None = None,
    ip: str | None = None,
) -> list[str]:
    """An administrator resets ``target_user``'s two-factor authentication (they lost their device), as
    Okta's, Entra ID's and ServiceNow's "reset MFA": every allauth ``Authenticator`` of the user (authenticator
    apps, security keys, recovery codes) is deleted, every session of theirs ends (the session epoch,
    as "sign out everywhere"), ``mfa.reset`` is recorded (details: ``removed``, the types, and ``scope``)
    and, after commit, the user is told by email who reset it and when. Where two-factor authentication
    is required of them, they set it up again on their next sign-in (MfaRequiredMiddleware). API tokens
    are not sessions and stay valid. Returns the removed types, sorted.

    Exactly one of ``provider`` (the provider's team page) or ``tenant`` (a client's users page) says in
    whose name the actor acts:

    - ``provider``: the actor is an owner or admin of it (``provider_team.manage``) and the target a member
      of its team; only an owner resets an owner (as ``_owner_rules``).
    - ``tenant``: the actor holds ``tenant_members.manage`` there (client admins, the provider's owners and
      admins who reach it) and the target a tenant role there and nowhere else, and is on no provider's
      team (``signs_in_elsewhere_condition``): a client's administrators never change how someone signs in
      to another organisation.

    Nobody resets their own (their account's two-factor pages are for that). Raises PermissionDenied for
    each refusal above, NotFound when the target is not on the team or has no role in the tenant, and
    Conflict when the target has no authenticator (nothing to reset); a refusal writes nothing."""
    if (provider is None) == (tenant is None):
        raise ValueError("pass exactly one of provider and tenant")
    if provider is not None:
        mine = _team_admin(actor=actor, provider_id=provider.pk)
        theirs = ProviderMembership.objects.filter(user=target_user, provider=provider).first()
        if theirs is None:
            raise NotFound("no such member")
        if theirs.user_id == actor.pk:
            raise PermissionDenied(
                "you cannot reset your own two-factor authentication; use your account's security pages"
            )
        if theirs.role == ProviderRole.OWNER and mine.role != ProviderRole.OWNER:
            raise PermissionDenied("only an owner resets an owner's two-factor authentication")
        where = {"provider_id": provider.pk, "tenant_id": None}
    else:
        assert tenant is not None
        if not role_may(tenant_role_get(user=actor, tenant=tenant), Permission.TENANT_MEMBERS_MANAGE):
            raise PermissionDenied("only the client's admins and the provider's admins manage its users")
        if not TenantMembership.objects.filter(user=target_user, tenant=tenant).exists():
            raise NotFound("no such user here")
        if target_user.pk == actor.pk:
            raise PermissionDenied(
                "you cannot reset your own two-factor authentication; use your account's security pages"
            )
        if User.objects.filter(signs_in_elsewhere_condition(tenant=tenant), pk=target_user.pk).exists():
            raise PermissionDenied(
                "this person also signs in to other organisations; ask the provider's administrators"
            )
        where = {"provider_id": tenant.provider_id, "tenant_id": tenant.pk}
    authenticators = Authenticator.objects.filter(user=target_user)
    removed = sorted(set(authenticators.select_for_update().values_list("type", flat=True)))
    if not removed:
        raise Conflict(f"nothing to reset: {target_user.email} has no two-factor authentication set up")
    authenticators.delete()
    user_session_epoch_bump(user=target_user)
    security_event_record(
        verb="mfa.reset",
        user_id=target_user.pk,
        actor_user_id=actor.pk,
        ip=ip,
        details={"removed": removed, "scope": "provider" if provider is not None else "tenant"},
        **where,
    )
    at = timezone.now()
    email, actor_email = target_user.email, actor.email
    zone = target_user.time_zone or "UTC"
    transaction.on_commit(
        lambda: _mfa_reset_mail(email=email, actor_email=actor_email, at=at, zone=zone, tenant=tenant)
    )
    return removed


def _mfa_reset_mail(
    *, email: str, actor_email: str, at: dt.datetime, zone: str, tenant: Tenant | None
) -> None:
    """The notice of ``user_mfa_reset`` through allauth's adapter (the account mail path: greeting, subject
    prefix and sender of every account email), named after the tenant's portal for a tenant's user. Sent
    after commit; an SMTP failure is logged, not raised, since the reset itself is done and audited."""
    from allauth.account.adapter import get_adapter

    from .adapter import CONSOLE_SITE_NAME, MailSite, tenant_site_name

    zone = zone if zone_valid(zone) else "UTC"
    local = at.astimezone(zoneinfo.ZoneInfo(zone))
    context: dict[str, Any] = {
        "actor_email": actor_email,
        "when": f"{local.day} {local:%B %Y at %H:%M} ({zone})",
    }
    if tenant is not None:
        host = (
            Domain.objects.filter(tenant=tenant, verified_at__isnull=False)
            .order_by("-is_primary", "domain")
            .values_list("domain", flat=True)
            .first()
        )
        context["current_site"] = MailSite(tenant_site_name(tenant), host or "")
    else:
        context["current_site"] = MailSite(CONSOLE_SITE_NAME, "")
    try:
        get_adapter().send_mail("accounts/email/mfa_reset", email, context)
    except (smtplib.SMTPException, OSError):
        logger.exception("mfa reset notice to %s not sent", email)
