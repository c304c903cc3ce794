"""Users, memberships and API tokens. Control plane (schema `public`).

A user is global (one email, one user). What a user may do where is a membership: a provider role
(owner, admin, technician) with tenant access by explicit grant or the "all clients" flag, or a tenant
role (client admin, approver, CAB member, end user). See ../shared/ARCHITECTURE.md, "Words".
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.contrib.auth.models import AbstractBaseUser, BaseUserManager, PermissionsMixin
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone


class UserManager(BaseUserManager["User"]):
    def create_user(self, email: str, password: str | None = None, **extra: Any) -> User:
        user = self.model(email=self.normalize_email(email).lower(), **extra)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_superuser(self, email: str, password: str | None = None, **extra: Any) -> User:
        extra.update(is_staff=True, is_superuser=True)
        return self.create_user(email, password, **extra)


class User(AbstractBaseUser, PermissionsMixin):
    """A login identity. Emails are stored lower-case and unique."""

    email = models.EmailField(unique=True)
    full_name = models.CharField(max_length=200, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)
    # The viewer's IANA time zone ("Europe/Berlin"); blank = unset: pages then use the browser's zone
    # (the `tz` cookie), else the tenant's, else UTC (controlplane.console.middleware.ViewerTimeZone).
    time_zone = models.CharField(max_length=64, blank=True, default="")
    # Sessions remember the epoch they signed in at; one older than this is ended on its next request
    # (controlplane.accounts.middleware). Raised by "sign out everywhere" and by password change and reset.
    session_epoch = models.PositiveIntegerField(default=0)

    objects: ClassVar[UserManager] = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: ClassVar[list[str]] = []

    def __str__(self) -> str:
        return self.email


class ProviderRole(models.TextChoices):
    OWNER = "owner", "Owner"
    ADMIN = "admin", "Admin"
    TECHNICIAN = "technician", "Technician"


class TenantRole(models.TextChoices):
    CLIENT_ADMIN = "client_admin", "Client admin"
    APPROVER = "approver", "Approver"
    CAB_MEMBER = "cab_member", "CAB member"
    END_USER = "end_user", "End user"


class ProviderMembership(models.Model):
    """A user's role at their provider. A technician belongs to exactly one provider (one row per user)."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="provider_membership")
    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=ProviderRole.choices)
    # Reach every client tenant of the provider. Never implied by an empty grant list.
    all_clients = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)


class TenantGrant(models.Model):
    """An explicit grant: this provider member may work in this tenant. Made in the console only."""

    membership = models.ForeignKey(ProviderMembership, on_delete=models.CASCADE, related_name="grants")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="grants")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["membership", "tenant"], name="uniq_grant")]


class TenantMembership(models.Model):
    """A client-side role in one tenant (end users, approvers, client admins, CAB members)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="tenant_memberships")
    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=20, choices=TenantRole.choices)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["user", "tenant"], name="uniq_tenant_membership")]


class ApiToken(models.Model):
    """A personal API token. Only its SHA-256 is stored; the secret is shown once at creation.

    Scope: ``all_tenants`` (every tenant the user may enter, now or later: a provider-wide token) or the
    chosen ``tenant_ids``; ``access`` read (GET, HEAD, OPTIONS only) or write. A token never reaches more
    than its user may: the user's membership is checked on every request as for a browser. Every token
    expires (at most 366 days, as GitHub's fine-grained tokens). ``last_used_at``/``last_used_ip`` record
    its use (updated when the address changes, else at most once a minute)."""

    class Access(models.TextChoices):
        READ = "read", "Read"
        WRITE = "write", "Read and write"

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_tokens")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=16, unique=True)
    token_hash = models.CharField(max_length=64, unique=True)
    access = models.CharField(max_length=5, choices=Access.choices, default=Access.READ)
    all_tenants = models.BooleanField(default=False)
    tenant_ids = ArrayField(models.BigIntegerField(), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    last_used_ip = models.GenericIPAddressField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    def reaches(self, tenant_id: int) -> bool:
        """Whether this token's scope includes the tenant (the user's own access is checked apart)."""
        return self.all_tenants or tenant_id in self.tenant_ids


class SecurityEvent(models.Model):
    """Append-only audit of identity and access (control plane): sign-ins (password, SAML, OIDC) and
    refused ones, MFA enrolment and use, password changes and resets, role, grant and membership changes,
    API token creation and revocation, SSO connection changes, sign-out everywhere.

    ``verb`` is dotted (``login.succeeded``, ``login.failed``, ``sso.saml.refused``, ``mfa.totp.added``,
    ``membership.role_changed``); ``user_id`` is the user it concerns (null when unknown, e.g. a refused
    assertion naming no user of ours); ``actor_user_id`` who did it (null: the user themself or the
    system); ``provider_id``/``tenant_id`` where it happened (plain ids, no foreign keys, so the row
    outlives what it names); ``ip`` the client address; ``details`` what changed or why it was refused
    (never a secret). ``at`` is UTC."""

    verb = models.CharField(max_length=60)
    user_id = models.BigIntegerField(null=True, blank=True)
    actor_user_id = models.BigIntegerField(null=True, blank=True)
    provider_id = models.BigIntegerField(null=True, blank=True)
    tenant_id = models.BigIntegerField(null=True, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)
    details = models.JSONField(default=dict)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(fields=["user_id", "at"], name="security_event_user_at"),
            models.Index(fields=["provider_id", "at"], name="security_event_provider_at"),
            models.Index(fields=["tenant_id", "at"], name="security_event_tenant_at"),
        ]

    def __str__(self) -> str:
        return f"{self.verb} user={self.user_id} at {self.at:%Y-%m-%d %H:%M:%S}"
