"""Writes of single sign-on: connections (from IdP metadata), AuthnRequests, the ACS, logout.

What is checked where (SAML 2.0 core §3.4, §2.5; profiles §4.1.4; PITFALLS.md "SAML"; decision 0015):

- python3-saml, strict: XML schema, status, exactly one assertion, signature over the assertion (and over
  the response when present) with one of the connection's IdP certificates, no deprecated algorithm,
  issuer, Conditions (NotBefore/NotOnOrAfter within ``SAML_CLOCK_SKEW_SECONDS``), Destination and
  Recipient against the URL this request came to, audience when present.
- here, on top: an ``InResponseTo`` is required (no unsolicited login), a Destination and an
  AudienceRestriction naming this connection's SP are required, every bearer SubjectConfirmationData
  must answer the same request and name this connection's ACS; the request id must be one we issued for
  this connection, unexpired, and is consumed once (``SamlRequest``); the assertion id is remembered
  until its NotOnOrAfter (``SamlAssertionSeen``, unique), so a replay is refused.
- the user: found by ``SamlIdentity`` (connection, IdP entity id, NameID); a new subject may only become
  a user of this connection's owner: an existing account with that email is linked only when it belongs
  to this owner alone; provider connections create technicians without grants (ARCHITECTURE.md, "Words").
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass, field
from typing import Any, Protocol

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context
from lxml import etree
from onelogin.saml2.auth import OneLogin_Saml2_Auth
from onelogin.saml2.constants import OneLogin_Saml2_Constants as C
from onelogin.saml2.errors import OneLogin_Saml2_Error, OneLogin_Saml2_ValidationError
from onelogin.saml2.idp_metadata_parser import OneLogin_Saml2_IdPMetadataParser
from onelogin.saml2.response import OneLogin_Saml2_Response
from onelogin.saml2.settings import OneLogin_Saml2_Settings
from onelogin.saml2.xml_utils import OneLogin_Saml2_XML

from controlplane.accounts.models import ProviderMembership, ProviderRole, TenantMembership, TenantRole, User
from controlplane.accounts.services import (
    provider_membership_set,
    security_event_record,
    tenant_membership_set,
    user_create,
)
from controlplane.problems import Conflict, DomainError, InvalidInput, PermissionDenied
from controlplane.providers.models import Provider
from modules.people.services import person_for_user
from tenants.models import Tenant

from .keys import certificate_body, key_pair_make
from .models import OidcConnection, SamlAssertionSeen, SamlConnection, SamlIdentity, SamlRequest
from .saml import saml_settings, sp_urls
from .selectors import PROVIDER_MANAGE_ROLES, TENANT_MANAGE_ROLES

DOMAIN_RE = re.compile(r"^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")
EMAIL_ATTRIBUTES = (
    "email",
    "mail",
    "emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
)
NAME_ATTRIBUTES = (
    "displayName",
    "name",
    "cn",
    "urn:oid:2.16.840.1.113730.3.1.241",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
)


class SsoRefused(DomainError):
    """A sign-in (SAML message or OpenID Connect answer) we do not accept. ``reason`` is a short stable
    slug for the audit (``signature``, ``replay``, ``unknown-request``, ``other-owner``, ``nonce``...);
    ``detail`` says more (never shown to the browser, which only learns that sign-in failed)."""

    status = 403
    slug = "sso-refused"
    title = "Single sign-on refused"

    def __init__(self, reason: str, detail: str = "", *, user_id: int | None = None) -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.user_id = user_id


SamlRefused = SsoRefused  # the SAML code's name for it; OIDC refusals are the same class


class SsoOwner(Protocol):
    """What provisioning needs of a connection, SAML or OIDC: its owner and its role mapping."""

    pk: Any
    tenant_id: int | None
    provider_id: int | None
    email_domains: list[str]
    role_rules: list[dict[str, str]]
    default_role: str

    @property
    def tenant(self) -> Tenant | None: ...

    @property
    def provider(self) -> Provider | None: ...


# --- connections -----------------------------------------------------------------------------------


@dataclass
class IdpMetadata:
    entity_id: str
    sso_url: str
    slo_url: str
    certs: list[str] = field(default_factory=list)


def idp_metadata_parse(*, xml: str) -> IdpMetadata:
    """The IdP's entity id, HTTP-Redirect SSO and SLO URLs and signing certificates from its SAML 2.0
    metadata (OneLogin_Saml2_IdPMetadataParser; metadata spec §2.4.3). Raises InvalidInput (field
    ``metadata_xml``) when the XML does not parse, has no IDPSSODescriptor, no entity id, no https
    SSO URL for the HTTP-Redirect binding or no usable signing certificate."""

    def bad(message: str) -> InvalidInput:
        return InvalidInput(message, errors=[{"field": "metadata_xml", "message": message}])

    if not xml.strip():
        raise bad("Paste or upload the identity provider's metadata XML.")
    try:
        parsed = OneLogin_Saml2_IdPMetadataParser.parse(xml.strip())
    except (etree.XMLSyntaxError, ValueError, OneLogin_Saml2_Error, TypeError) as exc:
        raise bad(f"This is not valid SAML metadata XML ({str(exc)[:120]}).") from exc
    except Exception as exc:  # defusedxml-style refusals (DTDs, entities) raise their own types
        raise bad(f"This metadata XML is refused ({type(exc).__name__}).") from exc
    idp = parsed.get("idp") or {}
    entity_id = idp.get("entityId") or ""
    sso_url = (idp.get("singleSignOnService") or {}).get("url") or ""
    slo_url = (idp.get("singleLogoutService") or {}).get("url") or ""
    if not entity_id:
        raise bad("The metadata has no IdP entity (no IDPSSODescriptor with an entityID).")
    if not sso_url.startswith("https://"):
        raise bad("The metadata has no https single sign-on URL for the HTTP-Redirect binding.")
    if slo_url and not slo_url.startswith("https://"):
        raise bad("The single logout URL must use https.")
    raw_certs: list[str] = []
    if idp.get("x509cert"):
        raw_certs.append(idp["x509cert"])
    raw_certs.extend((idp.get("x509certMulti") or {}).get("signing") or [])
    certs = []
    for raw in raw_certs:
        try:
            certs.append(certificate_body(raw))
        except ValueError as exc:
            raise bad("A signing certificate in the metadata does not parse.") from exc
    if not certs:
        raise bad('The metadata has no signing certificate (KeyDescriptor use="signing").')
    return IdpMetadata(
        entity_id=entity_id, sso_url=sso_url, slo_url=slo_url, certs=list(dict.fromkeys(certs))
    )


def email_domains_parse(*, text: str) -> list[str]:
    """Domains from comma/space/newline-separated text, lower-case, de-duplicated, in order. Raises
    InvalidInput (field ``email_domains``) naming the first that is not a hostname."""
    domains: list[str] = []
    for raw in re.split(r"[\s,;]+", text.strip().lower()):
        if not raw:
            continue
        domain = raw.lstrip("@")
        if not DOMAIN_RE.match(domain):
            message = f"{raw} is not a domain (for example acme.example)."
            raise InvalidInput(message, errors=[{"field": "email_domains", "message": message}])
        if domain not in domains:
            domains.append(domain)
    return domains


def role_rules_parse(*, text: str) -> list[dict[str, str]]:
    """Role-mapping rules from JSON text: ``[{"attribute": "groups", "value": "IT-Admins", "role":
    "client_admin"}]`` (roles: TenantRole values). Empty text is no rules. Raises InvalidInput (field
    ``role_rules``)."""

    def bad(message: str) -> InvalidInput:
        return InvalidInput(message, errors=[{"field": "role_rules", "message": message}])

    if not text.strip():
        return []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise bad(f"Not valid JSON: {exc.msg} (line {exc.lineno}).") from exc
    if not isinstance(data, list):
        raise bad('Give a list of rules: [{"attribute": ..., "value": ..., "role": ...}].')
    rules = []
    for number, rule in enumerate(data, start=1):
        if not isinstance(rule, dict) or not all(
            isinstance(rule.get(k), str) for k in ("attribute", "value", "role")
        ):
            raise bad(f"Rule {number} needs text values for attribute, value and role.")
        if rule["role"] not in TenantRole.values:
            raise bad(
                f"Rule {number}: unknown role {rule['role']!r} (one of {', '.join(TenantRole.values)})."
            )
        rules.append({"attribute": rule["attribute"], "value": rule["value"], "role": rule["role"]})
    return rules


def _domains_free(
    *, domains: list[str], tenant: Tenant | None, exclude_id: Any = None, exclude_oidc_id: Any = None
) -> None:
    """Home-realm discovery must be unambiguous on each host: one active connection (SAML or OIDC) per
    domain within a tenant; one active provider connection per domain on the console. A tenant's
    connection may not list a domain of its provider's own connections (a client's IdP must not mint
    accounts at the MSP's addresses). ``exclude_id``/``exclude_oidc_id``: the SAML/OIDC connection being
    edited. Raises Conflict (field ``email_domains``)."""
    if tenant is not None:
        others = SamlConnection.objects.filter(tenant=tenant, is_active=True)
        oidc_others = OidcConnection.objects.filter(tenant=tenant, is_active=True)
    else:
        others = SamlConnection.objects.filter(tenant__isnull=True, is_active=True)
        oidc_others = OidcConnection.objects.filter(tenant__isnull=True, is_active=True)
    if exclude_id is not None:
        others = others.exclude(pk=exclude_id)
    if exclude_oidc_id is not None:
        oidc_others = oidc_others.exclude(pk=exclude_oidc_id)
    for domain in domains:
        if tenant is not None and _provider_domain(tenant.provider_id, domain):
            message = f"{domain} is the provider's own domain: its people sign in through the provider."
            raise Conflict(message, errors=[{"field": "email_domains", "message": message}])
        if (
            others.filter(email_domains__contains=[domain]).exists()
            or oidc_others.filter(email_domains__contains=[domain]).exists()
        ):
            message = f"{domain} already belongs to another active connection here."
            raise Conflict(message, errors=[{"field": "email_domains", "message": message}])


def _provider_domain(provider_id: int, domain: str) -> bool:
    """True when an active connection (SAML or OIDC) of the provider itself (its technicians' IdP) lists
    ``domain``."""
    mine = {"provider_id": provider_id, "tenant__isnull": True, "is_active": True}
    return (
        SamlConnection.objects.filter(**mine, email_domains__contains=[domain]).exists()
        or OidcConnection.objects.filter(**mine, email_domains__contains=[domain]).exists()
    )


def owner_provider_id(connection: SsoOwner) -> int | None:
    """The provider a connection belongs to: its own, or its tenant's (for audit rows)."""
    if connection.provider_id is not None:
        return connection.provider_id
    return connection.tenant.provider_id if connection.tenant is not None else None


def connection_audit(
    verb: str,
    connection: SamlConnection | OidcConnection,
    *,
    actor_user_id: int | None,
    ip: str | None,
    changes: dict[str, Any],
) -> None:
    """A connection's change (``sso.connection.*``) in the security audit; OIDC rows name their protocol."""
    details: dict[str, Any] = {"connection": str(connection.pk), "name": connection.name}
    if isinstance(connection, OidcConnection):
        details["protocol"] = "oidc"
    security_event_record(
        verb=verb,
        actor_user_id=actor_user_id,
        provider_id=owner_provider_id(connection),
        tenant_id=connection.tenant_id,
        ip=ip,
        details={**details, "changes": changes},
    )


def _check_role(*, actor_role: str, tenant: Tenant | None) -> None:
    allowed = TENANT_MANAGE_ROLES if tenant is not None else PROVIDER_MANAGE_ROLES
    if actor_role not in allowed:
        raise PermissionDenied("only owners and admins (and a client's admins) manage SSO connections")


@transaction.atomic
def connection_create(
    *,
    actor_user_id: int | None,
    actor_role: str,
    tenant: Tenant | None = None,
    provider: Provider | None = None,
    name: str,
    metadata_xml: str,
    email_domains: list[str],
    role_rules: list[dict[str, str]],
    default_role: str = TenantRole.END_USER,
    ip: str | None = None,
) -> SamlConnection:
    """A new connection of ``tenant`` or (exclusive) ``provider`` from the IdP's metadata, with a fresh
    SP key pair. ``actor_role`` is the actor's role where the page runs (tenant connections: owner, admin,
    client_admin; provider ones: owner, admin), else PermissionDenied. Bad metadata, domains or rules
    raise InvalidInput/Conflict naming the field; nothing is written then. Audited as
    ``sso.connection.created``."""
    if (tenant is None) == (provider is None):
        raise InvalidInput("a connection has exactly one owner: a tenant or a provider")
    _check_role(actor_role=actor_role, tenant=tenant)
    if not name.strip():
        raise InvalidInput(
            "name is required", errors=[{"field": "name", "message": "Give the connection a name."}]
        )
    if default_role not in TenantRole.values:
        raise InvalidInput("unknown role", errors=[{"field": "default_role", "message": "Unknown role."}])
    metadata = idp_metadata_parse(xml=metadata_xml)
    _domains_free(domains=email_domains, tenant=tenant)
    key, cert = key_pair_make(common_name=f"itsm-sp-{name.strip()}")
    connection = SamlConnection.objects.create(
        tenant=tenant,
        provider=provider,
        name=name.strip(),
        idp_entity_id=metadata.entity_id,
        idp_sso_url=metadata.sso_url,
        idp_slo_url=metadata.slo_url,
        idp_certs=metadata.certs,
        idp_metadata_xml=metadata_xml.strip(),
        email_domains=email_domains,
        role_rules=role_rules if tenant is not None else [],
        default_role=default_role if tenant is not None else TenantRole.END_USER,
        sp_private_key=key,
        sp_certificate=certificate_body(cert),
    )
    connection_audit(
        "sso.connection.created",
        connection,
        actor_user_id=actor_user_id,
        ip=ip,
        changes={"idp_entity_id": metadata.entity_id, "email_domains": email_domains},
    )
    return connection


@transaction.atomic
def connection_update(
    *,
    actor_user_id: int | None,
    actor_role: str,
    connection: SamlConnection,
    name: str,
    metadata_xml: str,
    email_domains: list[str],
    role_rules: list[dict[str, str]],
    default_role: str,
    is_active: bool,
    ip: str | None = None,
) -> SamlConnection:
    """Change a connection. Blank ``metadata_xml`` keeps the IdP settings; new metadata replaces entity
    id, URLs and certificates (an IdP's certificate roll). The SP key pair never changes here. Same
    checks and errors as ``connection_create``; audited as ``sso.connection.updated`` with the changed
    fields."""
    _check_role(actor_role=actor_role, tenant=connection.tenant)
    if not name.strip():
        raise InvalidInput(
            "name is required", errors=[{"field": "name", "message": "Give the connection a name."}]
        )
    if default_role not in TenantRole.values:
        raise InvalidInput("unknown role", errors=[{"field": "default_role", "message": "Unknown role."}])
    before = {
        f: getattr(connection, f)
        for f in (
            "name",
            "idp_entity_id",
            "idp_sso_url",
            "idp_slo_url",
            "idp_certs",
            "email_domains",
            "role_rules",
            "default_role",
            "is_active",
        )
    }
    if metadata_xml.strip():
        metadata = idp_metadata_parse(xml=metadata_xml)
        connection.idp_entity_id = metadata.entity_id
        connection.idp_sso_url = metadata.sso_url
        connection.idp_slo_url = metadata.slo_url
        connection.idp_certs = metadata.certs
        connection.idp_metadata_xml = metadata_xml.strip()
    if is_active:
        _domains_free(domains=email_domains, tenant=connection.tenant, exclude_id=connection.pk)
    connection.name = name.strip()
    connection.email_domains = email_domains
    if connection.tenant_id is not None:
        connection.role_rules = role_rules
        connection.default_role = default_role
    connection.is_active = is_active
    connection.save()
    changes = {
        f: [str(old), str(getattr(connection, f))]
        for f, old in before.items()
        if getattr(connection, f) != old
    }
    connection_audit(
        "sso.connection.updated", connection, actor_user_id=actor_user_id, ip=ip, changes=changes
    )
    return connection


@transaction.atomic
def connection_deactivate(
    *,
    actor_user_id: int | None,
    actor_role: str,
    connection: SamlConnection | OidcConnection,
    ip: str | None = None,
) -> SamlConnection | OidcConnection:
    """Stop signing anyone in through a SAML or OIDC ``connection`` (its endpoints, or its login and
    callback, then answer 404). Identities and SocialAccounts stay, so reactivating it restores sign-in.
    Audited as ``sso.connection.deactivated``."""
    _check_role(actor_role=actor_role, tenant=connection.tenant)
    if connection.is_active:
        connection.is_active = False
        connection.save(update_fields=["is_active", "updated_at"])
        connection_audit(
            "sso.connection.deactivated",
            connection,
            actor_user_id=actor_user_id,
            ip=ip,
            changes={"is_active": ["True", "False"]},
        )
    return connection


# --- sign-in -----------------------------------------------------------------------------------------


def saml_login_start(*, connection: SamlConnection, request_data: dict[str, Any], relay_state: str) -> str:
    """The IdP URL (HTTP-Redirect binding, signed AuthnRequest) to send the browser to. The request's ID
    is stored (``SamlRequest``) until ``SAML_REQUEST_TTL_SECONDS`` from now; ``relay_state`` must
    already be a safe same-host path (views check it)."""
    auth = OneLogin_Saml2_Auth(request_data, old_settings=saml_settings(connection))
    url: str = auth.login(return_to=relay_state)
    now = timezone.now()
    SamlRequest.objects.filter(expires_at__lt=now).delete()  # housekeeping: expired ids are useless
    SamlRequest.objects.create(
        request_id=auth.get_last_request_id(),
        connection=connection,
        kind="authn",
        expires_at=now + dt.timedelta(seconds=settings.SAML_REQUEST_TTL_SECONDS),
    )
    return url


@dataclass
class SamlLogin:
    """A verified sign-in: the user, whether JIT provisioning created them, and what single logout needs."""

    user: User
    created: bool
    name_id: str
    name_id_format: str
    session_index: str


def _first(attributes: dict[str, list[str]], names: tuple[str, ...]) -> str:
    lowered = {k.lower(): v for k, v in attributes.items()}
    for name in names:
        values = lowered.get(name.lower())
        if values and values[0]:
            return str(values[0]).strip()
    return ""


def _validated(
    connection: SamlConnection, request_data: dict[str, Any], saml_response: str
) -> OneLogin_Saml2_Response:
    """Parse and validate the POSTed SAMLResponse for ``connection`` (python3-saml, strict, then our extra
    checks). Raises SamlRefused."""
    if not saml_response:
        raise SamlRefused("no-response", "no SAMLResponse in the POST")
    settings_obj = OneLogin_Saml2_Settings(saml_settings(connection), sp_validation_only=True)
    try:
        response = OneLogin_Saml2_Response(settings_obj, saml_response)
    except Exception as exc:  # not base64, not XML, or refused by the parser (DTD, entities)
        raise SamlRefused("malformed", f"the response does not parse: {type(exc).__name__}") from exc
    in_response_to = response.document.get("InResponseTo")
    if not in_response_to:
        raise SamlRefused("missing-in-response-to", "unsolicited response (no InResponseTo)")
    try:
        response.is_valid(request_data, request_id=in_response_to, raise_exceptions=True)
    except OneLogin_Saml2_ValidationError as exc:
        raise SamlRefused(_reason_of(exc), str(exc)) from exc
    except Exception as exc:
        raise SamlRefused("invalid", f"{type(exc).__name__}: {exc}") from exc
    urls = sp_urls(connection)
    if response.document.get("Destination") != urls["acs"]:
        raise SamlRefused("destination", "the response has no Destination naming this connection's ACS")
    if urls["entity_id"] not in response.get_audiences():
        raise SamlRefused("audience", "the assertion has no AudienceRestriction naming this connection's SP")
    confirmations = OneLogin_Saml2_XML.query(
        response.document,
        "/samlp:Response/saml:Assertion/saml:Subject/saml:SubjectConfirmation"
        f"[@Method='{C.CM_BEARER}']/saml:SubjectConfirmationData",
    )
    if not confirmations or any(
        scd.get("InResponseTo") != in_response_to or scd.get("Recipient") != urls["acs"]
        for scd in confirmations
    ):
        raise SamlRefused(
            "subject-confirmation",
            "the signed SubjectConfirmationData does not answer our request at this ACS",
        )
    return response


def _reason_of(exc: OneLogin_Saml2_ValidationError) -> str:
    code = exc.code
    E = OneLogin_Saml2_ValidationError
    if code in (E.INVALID_SIGNATURE, E.NO_SIGNATURE_FOUND, E.NO_SIGNED_ASSERTION, E.NO_SIGNED_MESSAGE):
        return "signature"
    if code == E.WRONG_NUMBER_OF_ASSERTIONS:
        return "assertion-count"
    if code == E.WRONG_AUDIENCE:
        return "audience"
    if code in (E.WRONG_DESTINATION, E.EMPTY_DESTINATION):
        return "destination"
    if code in (E.ASSERTION_EXPIRED, E.ASSERTION_TOO_EARLY, E.SESSION_EXPIRED):
        return "expired"
    if code == E.WRONG_SUBJECTCONFIRMATION:
        return "subject-confirmation"
    if code == E.WRONG_ISSUER:
        return "issuer"
    if code == E.WRONG_INRESPONSETO:
        return "unknown-in-response-to"
    if code == E.INVALID_XML_FORMAT:
        return "schema"
    if code == E.DEPRECATED_SIGNATURE_METHOD or code == E.DEPRECATED_DIGEST_METHOD:
        return "deprecated-algorithm"
    return "invalid"


def saml_response_accept(
    *, connection: SamlConnection, request_data: dict[str, Any], ip: str | None
) -> SamlLogin:
    """Verify the SAMLResponse POSTed to ``connection``'s ACS and find or provision its user.

    Returns a SamlLogin (the view then calls ``django.contrib.auth.login``). Raises SamlRefused with a
    reason; the refusal is recorded as ``sso.saml.refused`` (with ``ip``) after everything this attempt
    wrote was rolled back, so a refused assertion leaves no user, membership, identity or person. A
    success is recorded as ``sso.saml.login`` in the same transaction as what it created."""
    try:
        return _accept(connection=connection, request_data=request_data, ip=ip)
    except SamlRefused as exc:
        _refusal_record(connection, exc, ip)
        raise


@transaction.atomic
def _accept(*, connection: SamlConnection, request_data: dict[str, Any], ip: str | None) -> SamlLogin:
    response = _validated(connection, request_data, request_data["post_data"].get("SAMLResponse", ""))
    in_response_to = response.document.get("InResponseTo")
    now = timezone.now()
    # Replay: the assertion id, under a unique constraint, until its NotOnOrAfter (plus the skew).
    assertion_id = response.get_assertion_id()
    expiry = response.get_assertion_not_on_or_after()
    keep_until = (
        dt.datetime.fromtimestamp(expiry, tz=dt.UTC) if expiry else now + dt.timedelta(hours=1)
    ) + dt.timedelta(seconds=settings.SAML_CLOCK_SKEW_SECONDS)
    try:
        with transaction.atomic():
            SamlAssertionSeen.objects.create(
                connection=connection, assertion_id=assertion_id, not_on_or_after=keep_until
            )
    except IntegrityError as exc:
        raise SamlRefused("replay", f"assertion {assertion_id} was already used") from exc
    SamlAssertionSeen.objects.filter(not_on_or_after__lt=now).delete()
    # InResponseTo: one of our unexpired AuthnRequests for this connection, consumed once.
    consumed, _ = SamlRequest.objects.filter(
        request_id=in_response_to, connection=connection, kind="authn", expires_at__gt=now
    ).delete()
    if not consumed:
        raise SamlRefused(
            "unknown-in-response-to", f"InResponseTo {in_response_to!r} is not a request we issued here"
        )
    name_id = response.get_nameid() or ""
    if not name_id:
        raise SamlRefused("no-name-id", "the assertion has no NameID")
    name_id_format = response.get_nameid_format() or ""
    attributes = response.get_attributes()
    login = _user_for(
        connection=connection,
        name_id=name_id,
        name_id_format=name_id_format,
        attributes=attributes,
    )
    login.session_index = response.get_session_index() or ""
    security_event_record(
        verb="sso.saml.login",
        user_id=login.user.pk,
        provider_id=owner_provider_id(connection),
        tenant_id=connection.tenant_id,
        ip=ip,
        details={"connection": str(connection.pk), "name_id": name_id, "created": login.created},
    )
    return login


def mapped_role(connection: SsoOwner, attributes: dict[str, list[str]]) -> str:
    """The tenant role of a user created by a first sign-in: the first rule whose attribute (SAML
    attribute or OIDC claim) holds its value, else the connection's default role."""
    for rule in connection.role_rules:
        values = attributes.get(rule["attribute"]) or []
        if rule["value"] in values:
            return rule["role"]
    return connection.default_role or TenantRole.END_USER


def _user_for(
    *, connection: SamlConnection, name_id: str, name_id_format: str, attributes: dict[str, list[str]]
) -> SamlLogin:
    """The user of this subject: by SamlIdentity, else an eligible existing account, else a new one."""
    identity = (
        SamlIdentity.objects.select_related("user")
        .filter(connection=connection, idp_entity_id=connection.idp_entity_id, name_id=name_id)
        .first()
    )
    if identity is not None:
        user = identity.user
        eligible_check(connection, user, linking=False)
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["last_login_at"])
        return SamlLogin(
            user=user, created=False, name_id=name_id, name_id_format=name_id_format, session_index=""
        )
    email = _first(attributes, EMAIL_ATTRIBUTES)
    if not email and name_id_format == C.NAMEID_EMAIL_ADDRESS:
        email = name_id
    user, created = user_provision(
        connection=connection,
        email=email,
        full_name=_first(attributes, NAME_ATTRIBUTES),
        attributes=attributes,
        saml_connection_id=connection.pk,
    )
    SamlIdentity.objects.create(
        connection=connection,
        idp_entity_id=connection.idp_entity_id,
        name_id=name_id,
        name_id_format=name_id_format,
        user=user,
        last_login_at=timezone.now(),
    )
    return SamlLogin(
        user=user, created=created, name_id=name_id, name_id_format=name_id_format, session_index=""
    )


def user_provision(
    *,
    connection: SsoOwner,
    email: str,
    full_name: str,
    attributes: dict[str, list[str]],
    saml_connection_id: Any = None,
    oidc_provider_id: str | None = None,
) -> tuple[User, bool]:
    """Just-in-time provisioning for a subject new to ``connection`` (SAML or OIDC), inside the caller's
    transaction: returns (user, created).

    The email (lower-cased) must be valid, in the connection's domains when it lists any, and not one of
    the provider's own SSO domains on a tenant connection. An existing account with that email is linked
    only when ``eligible_check`` (linking) allows it; else a new user is created. Tenant connection: a
    TenantMembership with ``mapped_role`` (when missing) and the tenant's person; provider connection: a
    technician ProviderMembership without any grant (ARCHITECTURE.md "Words"). ``saml_connection_id`` /
    ``oidc_provider_id``: the connection being signed in through, so an identity there is not "another
    connection's". The address is marked verified (the IdP vouches for it). Raises SsoRefused (``no-email``, ``email-domain``, ``provider-domain``,
    ``other-owner``, ``other-identity``, ``inactive``, ``conflict``)."""
    email = email.strip().lower()
    try:
        validate_email(email)
    except ValidationError as exc:
        raise SsoRefused("no-email", "the sign-in names no valid email address") from exc
    domain = email.rpartition("@")[2]
    if connection.email_domains and domain not in connection.email_domains:
        raise SsoRefused("email-domain", f"{domain} is not a domain of this connection")
    tenant = connection.tenant
    if tenant is not None and _provider_domain(tenant.provider_id, domain):
        raise SsoRefused("provider-domain", f"{domain} is the provider's own domain (its technicians' IdP)")
    existing = User.objects.filter(email=email).first()
    created = existing is None
    if existing is not None:
        eligible_check(
            connection,
            existing,
            linking=True,
            saml_connection_id=saml_connection_id,
            oidc_provider_id=oidc_provider_id,
        )
        user = existing
    else:
        try:
            user = user_create(email=email, password=None, full_name=full_name[:200], email_verified=True)
        except Conflict as exc:  # created by a concurrent first sign-in: the next attempt links it
            raise SsoRefused("conflict", "the user was created concurrently; sign in again") from exc
    # The connection's IdP vouches for the address (a signed assertion; for OIDC ``email_verified``):
    # without a verified address allauth would refuse to add an authenticator, so a user who must use
    # MFA could never set it up.
    EmailAddress.objects.filter(user=user, email=email, verified=False).update(verified=True)
    if tenant is not None:
        if not TenantMembership.objects.filter(user=user, tenant=tenant).exists():
            tenant_membership_set(user=user, tenant=tenant, role=mapped_role(connection, attributes))
        with tenant_context(tenant):
            person_for_user(user_id=user.pk, display_name=user.full_name or user.email, email=user.email)
    elif created:
        assert connection.provider is not None
        provider_membership_set(
            user=user, provider=connection.provider, role=ProviderRole.TECHNICIAN, all_clients=False
        )
    return user, created


def eligible_check(
    connection: SsoOwner,
    user: User,
    *,
    linking: bool,
    saml_connection_id: Any = None,
    oidc_provider_id: str | None = None,
) -> None:
    """May ``connection`` (SAML or OIDC) sign ``user`` in? Only into its own owner, never a platform
    operator.

    Tenant connection: no provider membership (technicians sign in through their provider), no
    membership of any other tenant; a linked user must still hold a membership here. Provider
    connection: a member of this provider only, no tenant memberships. ``linking`` (a first login whose
    email matches an existing account): also refused when the account already has an identity at another
    connection (a SamlIdentity elsewhere than ``saml_connection_id``, a SocialAccount elsewhere than
    ``oidc_provider_id``). Raises SsoRefused ``other-owner``/``inactive``/``no-membership``/
    ``other-identity``."""
    from allauth.socialaccount.models import SocialAccount

    if not user.is_active:
        raise SsoRefused("inactive", "the user is deactivated", user_id=user.pk)
    if user.is_staff or user.is_superuser:
        raise SsoRefused(
            "other-owner", "platform operators never sign in through a customer's IdP", user_id=user.pk
        )
    provider_membership = ProviderMembership.objects.filter(user=user).first()
    tenant_ids = set(TenantMembership.objects.filter(user=user).values_list("tenant_id", flat=True))
    if connection.tenant_id is not None:
        if provider_membership is not None:
            raise SsoRefused("other-owner", "the email belongs to a technician", user_id=user.pk)
        if tenant_ids - {connection.tenant_id}:
            raise SsoRefused(
                "other-owner", "the email belongs to a member of another tenant", user_id=user.pk
            )
        if not linking and connection.tenant_id not in tenant_ids:
            raise SsoRefused("no-membership", "the user no longer belongs to this tenant", user_id=user.pk)
    else:
        if tenant_ids:
            raise SsoRefused("other-owner", "the email belongs to a client's user", user_id=user.pk)
        if provider_membership is None:
            reason = "other-owner" if linking else "no-membership"
            raise SsoRefused(reason, "the user is no member of this provider", user_id=user.pk)
        if provider_membership.provider_id != connection.provider_id:
            raise SsoRefused("other-owner", "the email belongs to another provider's user", user_id=user.pk)
    if linking and (
        SamlIdentity.objects.filter(user=user).exclude(connection_id=saml_connection_id).exists()
        or SocialAccount.objects.filter(user=user).exclude(provider=oidc_provider_id or "").exists()
    ):
        raise SsoRefused(
            "other-identity", "the account is bound to another connection's identity", user_id=user.pk
        )


# --- logout ------------------------------------------------------------------------------------------


def saml_logout_start(
    *,
    connection: SamlConnection,
    request_data: dict[str, Any],
    name_id: str,
    name_id_format: str,
    session_index: str,
) -> str | None:
    """SP-initiated single logout (SAML 2.0 profiles §4.4): the IdP URL with a signed LogoutRequest for
    this subject and session, or None when the IdP has no SLO URL. The request id is stored like an
    AuthnRequest's, so the IdP's LogoutResponse must answer it."""
    if not connection.idp_slo_url:
        return None
    auth = OneLogin_Saml2_Auth(request_data, old_settings=saml_settings(connection, for_logout=True))
    url: str = auth.logout(
        return_to="/",
        name_id=name_id,
        session_index=session_index or None,
        name_id_format=name_id_format or None,
    )
    SamlRequest.objects.create(
        request_id=auth.get_last_request_id(),
        connection=connection,
        kind="logout",
        expires_at=timezone.now() + dt.timedelta(seconds=settings.SAML_REQUEST_TTL_SECONDS),
    )
    return url


def saml_logout_response_accept(
    *, connection: SamlConnection, request_data: dict[str, Any], ip: str | None
) -> None:
    """The IdP's LogoutResponse (HTTP-Redirect, signed) to a LogoutRequest we sent: its InResponseTo must
    be one of our unexpired logout requests for this connection, consumed once; python3-saml checks the
    signature, issuer, destination and status. Raises SamlRefused (recorded as ``sso.saml.refused``)."""
    from onelogin.saml2.logout_response import OneLogin_Saml2_Logout_Response

    auth = OneLogin_Saml2_Auth(request_data, old_settings=saml_settings(connection, for_logout=True))
    try:
        try:
            document = OneLogin_Saml2_Logout_Response(
                auth.get_settings(), request_data["get_data"]["SAMLResponse"]
            ).document
        except Exception as exc:
            raise SamlRefused(
                "malformed", f"the logout response does not parse: {type(exc).__name__}"
            ) from exc
        in_response_to = document.get("InResponseTo") or ""
        consumed, _ = SamlRequest.objects.filter(
            request_id=in_response_to, connection=connection, kind="logout", expires_at__gt=timezone.now()
        ).delete()
        if not consumed:
            raise SamlRefused("unknown-in-response-to", "the logout response answers no request of ours")
        auth.process_slo(request_id=in_response_to, keep_local_session=True)
        if auth.get_errors():
            raise SamlRefused("logout-response", auth.get_last_error_reason() or ", ".join(auth.get_errors()))
    except SamlRefused as exc:
        _refusal_record(connection, exc, ip)
        raise


def saml_logout_request_accept(
    *,
    connection: SamlConnection,
    request_data: dict[str, Any],
    session_subject: dict[str, str],
    end_session: Any,
    ip: str | None,
) -> str:
    """An IdP-initiated LogoutRequest (HTTP-Redirect; signed, ``wantMessagesSigned``): when it names the
    subject this browser's session came from (``session_subject``: connection and NameID, stored at
    sign-in), ``end_session()`` is called. Returns the IdP URL carrying our signed LogoutResponse.
    Raises SamlRefused (recorded) when the request is not valid (SAML 2.0 profiles §4.4.4)."""
    from onelogin.saml2.logout_request import OneLogin_Saml2_Logout_Request
    from onelogin.saml2.utils import OneLogin_Saml2_Utils

    auth = OneLogin_Saml2_Auth(request_data, old_settings=saml_settings(connection, for_logout=True))

    def delete_session() -> None:
        xml = OneLogin_Saml2_Utils.decode_base64_and_inflate(request_data["get_data"]["SAMLRequest"])
        subject = OneLogin_Saml2_Logout_Request.get_nameid(xml)
        if (
            session_subject.get("connection") == str(connection.pk)
            and session_subject.get("name_id") == subject
        ):
            end_session()

    try:
        url = auth.process_slo(delete_session_cb=delete_session)
        if auth.get_errors() or not url:
            raise SamlRefused("logout-request", auth.get_last_error_reason() or ", ".join(auth.get_errors()))
    except SamlRefused as exc:
        _refusal_record(connection, exc, ip)
        raise
    except Exception as exc:
        refusal = SamlRefused("logout-request", f"{type(exc).__name__}: {exc}")
        _refusal_record(connection, refusal, ip)
        raise refusal from exc
    return str(url)


def _refusal_record(connection: SamlConnection, exc: SamlRefused, ip: str | None) -> None:
    security_event_record(
        verb="sso.saml.refused",
        user_id=exc.user_id,
        provider_id=owner_provider_id(connection),
        tenant_id=connection.tenant_id,
        ip=ip,
        details={"connection": str(connection.pk), "reason": exc.reason, "detail": exc.detail[:500]},
    )
