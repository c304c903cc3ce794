"""Writes of OpenID Connect single sign-on: connections (each with its allauth SocialApp) and the checks
of a sign-in that django-allauth has completed (decision 0017).

What is checked where (OpenID Connect Core 1.0 §3.1.2, §3.1.3.7, §15.5.2; RFC 7636; RFC 9700 §2.1):

- django-allauth (``openid_connect`` provider): the ``state`` (one stashed in this browser's session,
  consumed once), the PKCE ``code_verifier`` sent with the code (``oauth_pkce_enabled``), the code
  exchange at the OP's token endpoint with our client credentials, the ID token's ``iss`` (from
  discovery), ``aud`` (our client id) and ``exp`` (PyJWT); the ID token is read from the token endpoint's
  TLS answer, so its signature may go unchecked (OIDC Core §3.1.3.7 item 6).
- here (``oidc_login_accept``, called by ``sso.adapter`` before allauth signs anyone in): the flow was
  started by our own login view for a ``login`` (never allauth's connect/redirect processes), the
  ``nonce`` we stashed with the state equals the ID token's, the ID token's ``iss`` equals the
  connection's issuer, the connection is active and served on this host, and the user: found by the
  SocialAccount (provider_id = the connection, uid = ``sub``), else provisioned like a SAML subject
  (``services.user_provision``) only from a verified email claim; refusals are audited as
  ``sso.oidc.refused`` after everything the attempt wrote was rolled back.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from allauth.socialaccount.models import SocialAccount, SocialApp
from django.db import transaction
from django.utils import timezone

from controlplane.accounts.crypto import secret_seal, secret_unseal
from controlplane.accounts.models import TenantRole, User
from controlplane.accounts.services import security_event_record
from controlplane.problems import InvalidInput
from controlplane.providers.models import Provider
from tenants.models import Tenant

from .models import OidcConnection, OidcKind
from .services import (
    SsoRefused,
    _check_role,
    _domains_free,
    connection_audit,
    eligible_check,
    owner_provider_id,
    user_provision,
)

OIDC_SCOPES = ["openid", "email", "profile"]
GOOGLE_ISSUER = "https://accounts.google.com"
ENTRA_ISSUER = "https://login.microsoftonline.com/{tenant}/v2.0"
ALLAUTH_PROVIDER = "openid_connect"
OIDC_CLIENT_SECRET = b"msp-itsm sso oidc client secret v1"  # HKDF label of the sealed client secrets


def oidc_client_secret(connection: OidcConnection) -> str:
    """The connection's client secret in plain text, unsealed from the row (controlplane.accounts.crypto).
    Raises SecretUnreadable when SECRET_KEY changed without a fallback."""
    return secret_unseal(connection.client_secret, purpose=OIDC_CLIENT_SECRET)


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "message": message}])


def oidc_issuer_for(*, kind: str, issuer: str, entra_tenant: str = "") -> str:
    """The issuer URL of a connection of ``kind``: Google's fixed one; Entra ID's from the directory
    (tenant) id, ``https://login.microsoftonline.com/<tenant id>/v2.0`` (Microsoft identity platform
    v2.0 endpoints); a generic OP's as given, which must be an https URL without query or fragment (OIDC
    Discovery §2, OIDC Core §2 "iss"). Loopback http issuers are accepted for development and tests.
    Raises InvalidInput naming the field (``issuer`` or ``entra_tenant``)."""
    if kind == OidcKind.GOOGLE:
        return GOOGLE_ISSUER
    if kind == OidcKind.ENTRA:
        value = entra_tenant.strip().lower()
        if not value or not all(c.isalnum() or c in "-." for c in value):
            raise _bad("entra_tenant", "Give the Entra ID directory (tenant) id, for example a GUID.")
        return ENTRA_ISSUER.format(tenant=value)
    if kind != OidcKind.GENERIC:
        raise _bad("kind", "Unknown kind of provider.")
    value = issuer.strip().rstrip("/")
    parts = urlsplit(value)
    loopback = parts.scheme == "http" and parts.hostname in ("127.0.0.1", "localhost", "::1")
    if not parts.netloc or (parts.scheme != "https" and not loopback) or parts.query or parts.fragment:
        raise _bad("issuer", "Give the issuer as an https URL without query, for example https://id.example.")
    return value


def entra_tenant_of(connection: OidcConnection) -> str:
    """The Entra ID directory id in an Entra connection's issuer ("" for other kinds)."""
    if connection.kind != OidcKind.ENTRA:
        return ""
    return connection.issuer.removeprefix("https://login.microsoftonline.com/").removesuffix("/v2.0")


def _app_settings(issuer: str) -> dict[str, Any]:
    # server_url: discovery at <issuer>/.well-known/openid-configuration (allauth appends it);
    # PKCE always (RFC 7636, RFC 9700 §2.1.1); scopes fixed; the userinfo endpoint is also read.
    return {"server_url": issuer, "oauth_pkce_enabled": True, "scope": list(OIDC_SCOPES)}


def _clean_common(*, name: str, client_id: str, default_role: str) -> None:
    if not name.strip():
        raise _bad("name", "Give the connection a name.")
    if not client_id.strip():
        raise _bad("client_id", "Give the client id the provider registered for this connection.")
    if default_role not in TenantRole.values:
        raise _bad("default_role", "Unknown role.")


@transaction.atomic
def oidc_connection_create(
    *,
    actor_user_id: int | None,
    actor_role: str,
    tenant: Tenant | None = None,
    provider: Provider | None = None,
    name: str,
    kind: str,
    issuer: str = "",
    entra_tenant: str = "",
    client_id: str,
    client_secret: str,
    email_domains: list[str],
    role_rules: list[dict[str, str]],
    default_role: str = TenantRole.END_USER,
    ip: str | None = None,
) -> OidcConnection:
    """A new OIDC connection of ``tenant`` or (exclusive) ``provider``, with its allauth SocialApp
    (provider ``openid_connect``, ``provider_id`` = the connection id, PKCE on, scopes openid email
    profile). ``actor_role`` as for SAML connections (else PermissionDenied). Issuer, client id/secret,
    domains (unique among active SAML and OIDC connections here) and rules are checked; errors raise
    InvalidInput/Conflict naming the field and write nothing. Audited as ``sso.connection.created``."""
    if (tenant is None) == (provider is None):
        raise InvalidInput("a connection has exactly one owner: a tenant or a provider")
    _check_role(actor_role=actor_role, tenant=tenant)
    _clean_common(name=name, client_id=client_id, default_role=default_role)
    if not client_secret.strip():
        raise _bad("client_secret", "Give the client secret the provider issued.")
    issuer_url = oidc_issuer_for(kind=kind, issuer=issuer, entra_tenant=entra_tenant)
    _domains_free(domains=email_domains, tenant=tenant)
    connection = OidcConnection(
        tenant=tenant,
        provider=provider,
        name=name.strip(),
        kind=kind,
        issuer=issuer_url,
        client_id=client_id.strip(),
        client_secret=secret_seal(client_secret.strip(), purpose=OIDC_CLIENT_SECRET),
        email_domains=email_domains,
        role_rules=role_rules if tenant is not None else [],
        default_role=default_role if tenant is not None else TenantRole.END_USER,
    )
    connection.social_app = SocialApp.objects.create(
        provider=ALLAUTH_PROVIDER,
        provider_id=str(connection.pk),
        name=connection.name,
        client_id=connection.client_id,
        secret="",  # the sealed secret is the connection's; the adapter unseals it into the app in memory
        settings=_app_settings(issuer_url),
    )
    connection.save()
    connection_audit(
        "sso.connection.created",
        connection,
        actor_user_id=actor_user_id,
        ip=ip,
        changes={
            "kind": kind,
            "issuer": issuer_url,
            "client_id": connection.client_id,
            "email_domains": email_domains,
        },
    )
    return connection


@transaction.atomic
def oidc_connection_update(
    *,
    actor_user_id: int | None,
    actor_role: str,
    connection: OidcConnection,
    name: str,
    kind: str,
    issuer: str = "",
    entra_tenant: str = "",
    client_id: str,
    client_secret: str = "",
    email_domains: list[str],
    role_rules: list[dict[str, str]],
    default_role: str,
    is_active: bool,
    ip: str | None = None,
) -> OidcConnection:
    """Change a connection and its SocialApp together. A blank ``client_secret`` keeps the current one.
    Same checks and errors as ``oidc_connection_create``; audited as ``sso.connection.updated`` with the
    changed fields (the secret only as "changed", never its value)."""
    _check_role(actor_role=actor_role, tenant=connection.tenant)
    _clean_common(name=name, client_id=client_id, default_role=default_role)
    issuer_url = oidc_issuer_for(kind=kind, issuer=issuer, entra_tenant=entra_tenant)
    fields = (
        "name",
        "kind",
        "issuer",
        "client_id",
        "email_domains",
        "role_rules",
        "default_role",
        "is_active",
    )
    before = {f: getattr(connection, f) for f in fields}
    secret_changed = bool(client_secret.strip()) and client_secret.strip() != oidc_client_secret(connection)
    if is_active:
        _domains_free(domains=email_domains, tenant=connection.tenant, exclude_oidc_id=connection.pk)
    connection.name = name.strip()
    connection.kind = kind
    connection.issuer = issuer_url
    connection.client_id = client_id.strip()
    if secret_changed:
        connection.client_secret = secret_seal(client_secret.strip(), purpose=OIDC_CLIENT_SECRET)
    connection.email_domains = email_domains
    if connection.tenant_id is not None:
        connection.role_rules = role_rules
        connection.default_role = default_role
    connection.is_active = is_active
    connection.save()
    app = connection.social_app
    app.name = connection.name
    app.client_id = connection.client_id
    app.settings = _app_settings(issuer_url)
    app.save()
    changes: dict[str, Any] = {
        f: [str(old), str(getattr(connection, f))]
        for f, old in before.items()
        if getattr(connection, f) != old
    }
    if secret_changed:
        changes["client_secret"] = "changed"  # noqa: S105 (a marker, not a secret)
    connection_audit(
        "sso.connection.updated", connection, actor_user_id=actor_user_id, ip=ip, changes=changes
    )
    return connection


# --- sign-in -----------------------------------------------------------------------------------------


@dataclass
class OidcLogin:
    """A verified sign-in: the user, their SocialAccount and whether JIT provisioning created the user."""

    user: User
    account: SocialAccount
    created: bool


def _claims(extra_data: dict[str, Any]) -> dict[str, Any]:
    """The ID token's claims, completed by userinfo's (the ID token wins: it is what we checked)."""
    merged: dict[str, Any] = dict(extra_data.get("userinfo") or {})
    merged.update(extra_data.get("id_token") or {})
    return merged


def _as_list(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list | tuple):
        return [str(v) for v in value]
    return [str(value)]


def email_verified(connection: OidcConnection, claims: dict[str, Any]) -> bool:
    """Does the OP vouch for the email claim? ``email_verified: true`` (OIDC Core §5.1), or, for Entra ID,
    which sends no ``email_verified`` and whose ``email`` is user-editable ("nOAuth"), the optional claim
    ``xms_edov: true`` (the email's domain is verified by the directory's owner; it must be added to the
    app registration's optional claims)."""
    truthy = (True, "true", "True", "1", 1)
    if claims.get("email_verified") in truthy:
        return True
    return connection.kind == OidcKind.ENTRA and claims.get("xms_edov") in truthy


def oidc_login_accept(
    *,
    connection: OidcConnection | None,
    uid: str,
    extra_data: dict[str, Any],
    state: dict[str, Any],
    hostname_ok: bool,
    ip: str | None,
) -> OidcLogin:
    """Check an OIDC sign-in that allauth completed (state, PKCE, code exchange, iss/aud/exp done) and
    find or provision its user.

    ``uid``: the ``sub`` claim; ``extra_data``: allauth's ``{"id_token": claims, "userinfo": claims}``;
    ``state``: allauth's state of this flow (``process``, and the ``nonce`` our login view stashed);
    ``hostname_ok``: the request came to the host that owns the connection. Raises SsoRefused with a
    reason (``inactive-connection``, ``host``, ``process``, ``nonce``, ``issuer``, ``sub``,
    ``email-unverified`` and those of ``user_provision``/``eligible_check``); the refusal is recorded as
    ``sso.oidc.refused`` after this attempt's writes were rolled back. A success is recorded as
    ``sso.oidc.login`` in the same transaction as what it created."""
    if connection is None:
        raise SsoRefused("inactive-connection", "no active connection for this provider id")
    try:
        return _accept(
            connection=connection, uid=uid, extra_data=extra_data, state=state, hostname_ok=hostname_ok, ip=ip
        )
    except SsoRefused as exc:
        oidc_refusal_record(
            connection=connection, reason=exc.reason, detail=exc.detail, user_id=exc.user_id, ip=ip
        )
        raise


@transaction.atomic
def _accept(
    *,
    connection: OidcConnection,
    uid: str,
    extra_data: dict[str, Any],
    state: dict[str, Any],
    hostname_ok: bool,
    ip: str | None,
) -> OidcLogin:
    if not connection.is_active:
        raise SsoRefused("inactive-connection", "the connection is deactivated")
    if not hostname_ok:
        raise SsoRefused("host", "the callback came to a host that does not own this connection")
    if state.get("process") != "login":
        raise SsoRefused("process", f"process {state.get('process')!r} is not a sign-in started here")
    id_token = extra_data.get("id_token") or {}
    expected_nonce = str(state.get("oidc_nonce") or "")
    if not expected_nonce or not hmac.compare_digest(expected_nonce, str(id_token.get("nonce") or "")):
        raise SsoRefused("nonce", "the ID token's nonce is not the one of this sign-in (OIDC Core 3.1.3.7)")
    if id_token.get("iss") != connection.issuer:
        raise SsoRefused("issuer", f"the ID token's issuer {id_token.get('iss')!r} is not the connection's")
    if not uid or uid != str(id_token.get("sub") or ""):
        raise SsoRefused("sub", "the subject differs between the ID token and the account")
    account = (
        SocialAccount.objects.select_related("user")
        .filter(provider=connection.app_provider_id, uid=uid)
        .first()
    )
    claims = _claims(extra_data)
    created = False
    if account is not None:
        user = account.user
        eligible_check(connection, user, linking=False, oidc_provider_id=connection.app_provider_id)
    else:
        # OIDC Core §15.5.2 / §5.7: the email claim is not a stable identifier and is only trusted when
        # the OP says it is verified; it never finds an account by itself (no auto-connect).
        if not email_verified(connection, claims):
            raise SsoRefused("email-unverified", "the OP does not say the email claim is verified")
        email = str(claims.get("email") or "").strip().lower()
        if (
            email
            and SocialAccount.objects.filter(provider=connection.app_provider_id, user__email=email).exists()
        ):
            # The account already belongs to another subject of this OP: a recycled or edited email must
            # not hand it to a new person (OIDC Core §5.7).
            raise SsoRefused("other-identity", "the email belongs to another subject of this connection")
        attributes = {key: _as_list(value) for key, value in claims.items()}
        user, created = user_provision(
            connection=connection,
            email=email,
            full_name=str(claims.get("name") or ""),
            attributes=attributes,
            oidc_provider_id=connection.app_provider_id,
        )
        account = SocialAccount.objects.create(
            user=user, provider=connection.app_provider_id, uid=uid, extra_data=extra_data
        )
    account.last_login = timezone.now()
    account.extra_data = extra_data
    account.save(update_fields=["last_login", "extra_data"])
    security_event_record(
        verb="sso.oidc.login",
        user_id=user.pk,
        provider_id=owner_provider_id(connection),
        tenant_id=connection.tenant_id,
        ip=ip,
        details={"connection": str(connection.pk), "sub": uid, "created": created},
    )
    return OidcLogin(user=user, account=account, created=created)


def oidc_refusal_record(
    *, connection: OidcConnection, reason: str, detail: str, ip: str | None, user_id: int | None = None
) -> None:
    """Audit a refused OIDC sign-in as ``sso.oidc.refused`` with its ``reason`` slug (also used for the
    errors allauth reports: ``state``, ``token``, ``audience``, ``id-token``, ``cancelled``)."""
    security_event_record(
        verb="sso.oidc.refused",
        user_id=user_id,
        provider_id=owner_provider_id(connection),
        tenant_id=connection.tenant_id,
        ip=ip,
        details={"connection": str(connection.pk), "reason": reason, "detail": detail[:500]},
    )
