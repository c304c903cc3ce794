"""SAML connections and the rows that make sign-in through them safe. Control plane (schema `public`).

A connection belongs to exactly one owner: a tenant (the client's IdP, for its end users and approvers) or
a provider (the MSP's IdP, for its technicians). Why each table exists: docs/decisions/0015.
"""

from __future__ import annotations

import uuid

import uuid_utils
from django.db import models
from django.db.models import Q


def uuid7() -> uuid.UUID:
    """A time-ordered UUID (version 7): connection ids appear in URLs, so they reveal no count."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


class SamlConnection(models.Model):
    """One identity provider trusted by one owner (``tenant`` xor ``provider``).

    ``idp_certs``: the IdP's signing certificates (base64 DER, no PEM armour; several during a roll).
    ``email_domains``: lower-case domains for home-realm discovery; an assertion's email must be in one.
    ``role_rules``: ``[{"attribute": "groups", "value": "IT-Admins", "role": "client_admin"}, ...]``, the
    first rule whose attribute holds the value gives the tenant role of a user created by JIT
    provisioning; else ``default_role``. Ignored for provider connections (always technician).
    ``sp_private_key``/``sp_certificate``: this connection's own SP key pair (PEM), made at creation; the
    key is stored in the row for now (production: a KMS, see the decision record)."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="saml_connections"
    )
    provider = models.ForeignKey(
        "providers.Provider",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="saml_connections",
    )
    name = models.CharField(max_length=100)
    idp_entity_id = models.CharField(max_length=1024)
    idp_sso_url = models.URLField(max_length=1024)
    idp_slo_url = models.URLField(max_length=1024, blank=True)
    idp_certs = models.JSONField(default=list)
    idp_metadata_xml = models.TextField(blank=True)
    email_domains = models.JSONField(default=list)
    role_rules = models.JSONField(default=list)
    default_role = models.CharField(max_length=20, default="end_user")
    is_active = models.BooleanField(default=True)
    sp_private_key = models.TextField()
    sp_certificate = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(tenant__isnull=False) & Q(provider__isnull=True))
                | (Q(tenant__isnull=True) & Q(provider__isnull=False)),
                name="saml_connection_one_owner",
            )
        ]

    def __str__(self) -> str:
        return self.name


class SamlRequest(models.Model):
    """An AuthnRequest (or LogoutRequest) we issued: its ``ID`` until ``expires_at``. A response must
    answer one of these (``InResponseTo``), and each is consumed once (deleted when used)."""

    request_id = models.CharField(max_length=100, unique=True)
    connection = models.ForeignKey(SamlConnection, on_delete=models.CASCADE, related_name="requests")
    kind = models.CharField(max_length=10, default="authn")  # authn | logout
    expires_at = models.DateTimeField(db_index=True)  # expired rows are swept on each new request
    created_at = models.DateTimeField(auto_now_add=True)


class SamlAssertionSeen(models.Model):
    """An assertion id already used to sign in, kept until its ``NotOnOrAfter``: the unique constraint
    refuses a replay even inside the validity window (python3-saml keeps no state)."""

    connection = models.ForeignKey(SamlConnection, on_delete=models.CASCADE, related_name="assertions")
    assertion_id = models.CharField(max_length=200)
    not_on_or_after = models.DateTimeField(db_index=True)  # swept after each sign-in
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["connection", "assertion_id"], name="uniq_saml_assertion")
        ]


class SamlIdentity(models.Model):
    """The link from an IdP's subject to our user: (connection, IdP entity id, NameID) -> user. Users are
    found by this, never by email alone."""

    connection = models.ForeignKey(SamlConnection, on_delete=models.CASCADE, related_name="identities")
    idp_entity_id = models.CharField(max_length=1024)
    name_id = models.CharField(max_length=512)
    name_id_format = models.CharField(max_length=200, blank=True)
    user = models.ForeignKey("accounts.User", on_delete=models.CASCADE, related_name="saml_identities")
    created_at = models.DateTimeField(auto_now_add=True)
    last_login_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["connection", "idp_entity_id", "name_id"], name="uniq_saml_identity"
            )
        ]


class OidcKind(models.TextChoices):
    GENERIC = "generic", "OpenID Connect (any issuer)"
    ENTRA = "entra", "Microsoft Entra ID"
    GOOGLE = "google", "Google"


class OidcConnection(models.Model):
    """One OpenID Connect provider trusted by one owner (``tenant`` xor ``provider``), decision 0017.

    ``issuer``: the OP's issuer URL (Entra: ``https://login.microsoftonline.com/<tenant id>/v2.0``; Google:
    ``https://accounts.google.com``); discovery is ``<issuer>/.well-known/openid-configuration`` and an ID
    token's ``iss`` must equal it. ``client_id``/``client_secret``: what the OP registered for us; the
    secret is stored sealed (Fernet under a key derived from SECRET_KEY, controlplane.accounts.crypto) and
    only here: ``social_app.secret`` stays empty and the adapter unseals it in memory for allauth.
    ``email_domains``, ``role_rules``, ``default_role``: as on SamlConnection (a rule's ``attribute`` names
    an ID token/userinfo claim such as ``groups``). ``social_app``: the django-allauth SocialApp
    (provider ``openid_connect``, ``provider_id`` = this id) that the service keeps in step with the row;
    accounts are its SocialAccounts, found by (provider_id, ``sub``), never by email."""

    id = models.UUIDField(primary_key=True, default=uuid7, editable=False)
    tenant = models.ForeignKey(
        "tenants.Tenant", null=True, blank=True, on_delete=models.CASCADE, related_name="oidc_connections"
    )
    provider = models.ForeignKey(
        "providers.Provider",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="oidc_connections",
    )
    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=10, choices=OidcKind.choices, default=OidcKind.GENERIC)
    issuer = models.URLField(max_length=1024)
    client_id = models.CharField(max_length=255)
    client_secret = models.CharField(max_length=1024)
    email_domains = models.JSONField(default=list)
    role_rules = models.JSONField(default=list)
    default_role = models.CharField(max_length=20, default="end_user")
    is_active = models.BooleanField(default=True)
    social_app = models.OneToOneField(
        "socialaccount.SocialApp", on_delete=models.PROTECT, related_name="oidc_connection"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "created_at"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(tenant__isnull=False) & Q(provider__isnull=True))
                | (Q(tenant__isnull=True) & Q(provider__isnull=False)),
                name="oidc_connection_one_owner",
            )
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def app_provider_id(self) -> str:
        """allauth's ``provider_id`` of this connection's SocialApp (and of its SocialAccounts)."""
        return str(self.pk)
