"""Tenant lifecycle: provisioning from the template snapshot. Control plane."""

from __future__ import annotations

import re
import secrets
from typing import Any

import dns.exception
import dns.nameserver
import dns.resolver
import uuid_utils
from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, PermissionDenied
from controlplane.providers.models import Provider
from controlplane.zones import zone_valid
from modules.records.actor import Actor

from .models import Domain, Tenant, TenantAuditEntry, TenantBranding
from .template import template_snapshot
from .validation import AA_CONTRAST, WHITE, colour_normalise, contrast_ratio, hostname_normalise, logo_type

SLUG_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{0,38}[a-z0-9]$")
# Slugs that would collide with hosts or paths of the platform itself.
RESERVED_SLUGS = frozenset(
    {"www", "api", "app", "admin", "console", "public", "static", "media", "mail", "portal", "t", "accounts"}
)


class TenantSlugTaken(Conflict):
    slug = "tenant-slug-taken"
    title = "Tenant slug already in use"


def new_schema_name() -> str:
    """A server-generated schema name: ``t_`` + 32 hex digits of a UUIDv7 (never from customer input)."""
    return f"t_{uuid_utils.uuid7().hex}"


def tenant_validate(*, slug: str, name: str, time_zone: str) -> None:
    """Raise InvalidInput naming the field if slug, name or time zone is unacceptable."""
    errors = []
    if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS:
        errors.append({"field": "slug", "message": "2-40 lower-case letters, digits or '-', not reserved"})
    if not name.strip():
        errors.append({"field": "name", "message": "required"})
    if not zone_valid(time_zone):
        errors.append({"field": "time_zone", "message": f"unknown IANA time zone {time_zone!r}"})
    if errors:
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)


def tenant_provision(
    *, provider: Provider, name: str, slug: str, time_zone: str = "UTC", locale: str = "en-gb"
) -> Tenant:
    """Create a client tenant: its row, its portal domain and its schema, in one transaction.

    The schema is built from the template snapshot (tenants.template), so it has every migration the
    template has. Raises InvalidInput for a bad slug/name/time zone and TenantSlugTaken if the slug is
    in use; in both cases nothing is written.
    """
    tenant_validate(slug=slug, name=name, time_zone=time_zone)
    if getattr(connection, "schema_name", "public") != "public":
        raise RuntimeError("tenants are provisioned from the public schema")  # as TenantMixin.save insists
    snapshot = template_snapshot()
    try:
        with transaction.atomic():
            tenant = tenant_register(
                provider=provider,
                name=name,
                slug=slug,
                time_zone=time_zone,
                locale=locale,
                schema_name=new_schema_name(),
                migration_state=snapshot.migration_state,
            )
            with connection.cursor() as cursor:
                cursor.execute(snapshot.statements_for(tenant.schema_name).as_string(cursor.connection))
    except IntegrityError as exc:
        raise TenantSlugTaken(f"a tenant with slug {slug!r} already exists") from exc
    return tenant


def tenant_register(
    *,
    provider: Provider,
    name: str,
    slug: str,
    time_zone: str,
    locale: str,
    schema_name: str,
    migration_state: str,
) -> Tenant:
    """Write a tenant's rows (the tenant and its primary portal domain) for a schema that is built in the
    same transaction (tenant_provision) or already exists at ``migration_state`` (the test suite's pool of
    pre-built schemas). Input is validated by the caller; a taken slug raises IntegrityError.
    """
    tenant = Tenant(
        provider=provider,
        name=name.strip(),
        slug=slug,
        schema_name=schema_name,
        time_zone=time_zone,
        locale=locale,
        migration_state=migration_state,
    )
    # One INSERT each. TenantMixin.save would add a case-insensitive uniqueness query for the schema name
    # (ours are generated UUIDv7s) and DomainMixin.save would demote other primary domains (a new tenant has
    # none). A taken slug fails right here, before any DDL runs.
    Tenant.objects.bulk_create([tenant])
    Domain.objects.bulk_create(
        [
            Domain(
                domain=f"{slug}.{settings.PORTAL_BASE_DOMAIN}",
                tenant=tenant,
                is_primary=True,
                verified_at=timezone.now(),  # ours: the platform's own wildcard name
            )
        ]
    )
    return tenant


# Branding and custom domains. Both are control-plane rows of the tenant; the actor is the one the routing
# middleware built for the request (console: provider role; portal: tenant role).

CHALLENGE_PREFIX = "_itsm-challenge"


def _audit(*, actor: Actor, tenant: Tenant, verb: str, changes: dict[str, Any]) -> TenantAuditEntry:
    return TenantAuditEntry.objects.create(
        tenant=tenant,
        verb=verb,
        actor_user_id=actor.user_id,
        actor_role=actor.role,
        source=actor.source,
        changes=changes,
    )


def _require_connection_tenant(tenant: Tenant) -> None:
    """The actor was built for the connection's tenant; a service asked to change another is refused."""
    current = getattr(connection, "tenant", None)
    if getattr(current, "pk", None) != tenant.pk:
        raise PermissionDenied("the actor does not act in this tenant")


def branding_update(
    *,
    actor: Actor,
    tenant: Tenant,
    portal_title: str,
    welcome_text: str,
    primary_color: str,
    accent_color: str,
    logo: bytes | None = None,
    logo_remove: bool = False,
) -> TenantBranding:
    """Set the tenant's portal branding; records ``branding.updated`` with the changed fields.

    Who: the provider's owner, admin or technician who entered the tenant, or the tenant's client admin
    (PermissionDenied for anyone else; nothing is written). Colours are ``#rrggbb`` and each must reach
    WCAG 2.x AA contrast (4.5:1) against white, since the portal draws white text on both (the header
    on the primary colour, buttons on the accent). ``logo`` is the new logo's bytes (PNG, JPEG, GIF or
    WebP by its magic number, at most 512 KiB; tenants.validation.logo_type), stored under
    ``<schema>/branding/``; ``logo_remove`` drops the current one. Raises InvalidInput naming each bad
    field, with the measured ratio for a colour; nothing is written then. Call inside the tenant's
    context (the routing middleware's or ``tenant_context``).
    """
    if not actor.may(P.BRANDING_MANAGE):
        raise PermissionDenied("only the client admin or the provider's staff change the branding")
    _require_connection_tenant(tenant)
    errors: list[dict[str, str]] = []
    colours: dict[str, str] = {}
    for field, value, use in (
        ("primary_color", primary_color, "white text on the primary colour"),
        ("accent_color", accent_color, "white text on the accent colour"),
    ):
        try:
            colours[field] = colour_normalise(value)
        except ValueError as exc:
            errors.append({"field": field, "message": str(exc)})
            continue
        ratio = contrast_ratio(colours[field], WHITE)
        if ratio < AA_CONTRAST:
            errors.append(
                {
                    "field": field,
                    "message": f"{use} has a contrast of {ratio:.2f}:1; WCAG AA needs at least"
                    f" {AA_CONTRAST}:1. Choose a darker colour.",
                }
            )
    title = portal_title.strip()
    if len(title) > 80:
        errors.append({"field": "portal_title", "message": "at most 80 characters"})
    welcome = welcome_text.strip()
    if len(welcome) > 2000:
        errors.append({"field": "welcome_text", "message": "at most 2000 characters"})
    mime = ""
    if logo is not None:
        try:
            mime = logo_type(logo)
        except ValueError as exc:
            errors.append({"field": "logo", "message": str(exc)})
    if errors:
        raise InvalidInput("; ".join(f"{e['field']}: {e['message']}" for e in errors), errors=errors)

    # The file is written first, under a fresh name; if the rows fail to commit it is deleted again (a
    # rollback of an enclosing transaction can still leave an unreferenced file: harmless, never served).
    stored = ""
    if logo is not None:
        name = f"{tenant.schema_name}/branding/logo-{uuid_utils.uuid7().hex}"
        stored = default_storage.save(name, ContentFile(logo))
    try:
        with transaction.atomic():
            branding, _ = TenantBranding.objects.select_for_update().get_or_create(tenant=tenant)
            wanted = {"portal_title": title, "welcome_text": welcome, **colours}
            changes: dict[str, Any] = {
                f: [getattr(branding, f), v] for f, v in wanted.items() if getattr(branding, f) != v
            }
            for field, value in wanted.items():
                setattr(branding, field, value)
            old_logo = branding.logo_name
            if stored:
                branding.logo_name, branding.logo_type = stored, mime
                changes["logo"] = [bool(old_logo), f"{mime}, {len(logo or b'')} bytes"]
            elif logo_remove and old_logo:
                branding.logo_name = branding.logo_type = ""
                changes["logo"] = [True, False]
            branding.save()
            if old_logo and old_logo != branding.logo_name:
                transaction.on_commit(lambda: default_storage.delete(old_logo))
            if changes:
                _audit(actor=actor, tenant=tenant, verb="branding.updated", changes=changes)
    except BaseException:
        if stored:
            default_storage.delete(stored)
        raise
    return branding


class DomainTaken(Conflict):
    slug = "domain-taken"
    title = "Hostname already in use"


class DomainNotProven(InvalidInput):
    slug = "domain-not-proven"
    title = "The DNS proof was not found"


def domain_challenge_name(domain: Domain) -> str:
    """The TXT record name that proves control of ``domain``: ``_itsm-challenge.<host>``."""
    return f"{CHALLENGE_PREFIX}.{domain.domain}"


def domain_challenge_value(domain: Domain) -> str:
    """The TXT record value: ``itsm-verify=<token>`` (the row's random token)."""
    return f"itsm-verify={domain.challenge_token}"


def _require_domain_role(actor: Actor) -> None:
    if not actor.may(P.DOMAIN_MANAGE):
        raise PermissionDenied("only the provider's owners and admins manage a client's domains")


def domain_add(*, actor: Actor, tenant: Tenant, hostname: str) -> Domain:
    """Add a custom portal hostname for the tenant, pending until its TXT proof is verified.

    The hostname is normalised (tenants.validation.hostname_normalise: lower case, IDNA, no port) and must
    not be a console host, a name under ``PORTAL_BASE_DOMAIN`` (those are the platform's own, made at
    provisioning) or any tenant's existing domain (DomainTaken). The row gets a random 32-hex-digit
    challenge token. Provider owners and admins only (PermissionDenied). Records ``domain.added``.
    Raises InvalidInput (field ``hostname``); nothing is written on any error.
    """
    _require_domain_role(actor)
    _require_connection_tenant(tenant)
    try:
        host = hostname_normalise(hostname)
    except ValueError as exc:
        raise InvalidInput(str(exc), errors=[{"field": "hostname", "message": str(exc)}]) from exc
    base = settings.PORTAL_BASE_DOMAIN.lower()
    if host in {h.lower() for h in settings.CONSOLE_HOSTS} or host == base or host.endswith(f".{base}"):
        message = f"{host} belongs to the platform itself"
        raise InvalidInput(message, errors=[{"field": "hostname", "message": message}])
    try:
        with transaction.atomic():
            domain = Domain.objects.create(
                domain=host, tenant=tenant, is_primary=False, challenge_token=secrets.token_hex(16)
            )
            _audit(actor=actor, tenant=tenant, verb="domain.added", changes={"domain": [None, host]})
    except IntegrityError as exc:
        message = f"{host} is already in use"
        raise DomainTaken(message, errors=[{"field": "hostname", "message": message}]) from exc
    return domain


def _resolver() -> dns.resolver.Resolver:
    """A resolver asking ``settings.DOMAIN_VERIFY_NAMESERVERS`` (``"ip"`` or ``"ip:port"``) when set, else
    the system's (/etc/resolv.conf). ``DOMAIN_VERIFY_TIMEOUT`` seconds per look-up."""
    servers: list[str] = list(getattr(settings, "DOMAIN_VERIFY_NAMESERVERS", []) or [])
    resolver = dns.resolver.Resolver(configure=not servers)
    if servers:
        nameservers: list[dns.nameserver.Nameserver] = []
        for server in servers:
            if server.startswith("["):  # [::1]:5353
                address, _, port = server[1:].partition("]:")
            elif server.count(":") == 1:  # 127.0.0.1:5353
                address, _, port = server.partition(":")
            else:  # a bare IPv4 or IPv6 address
                address, port = server, "53"
            nameservers.append(dns.nameserver.Do53Nameserver(address, int(port or 53)))
        resolver.nameservers = nameservers
    resolver.lifetime = float(getattr(settings, "DOMAIN_VERIFY_TIMEOUT", 5.0))
    resolver.cache = None
    return resolver


def domain_txt_values(name: str) -> list[str]:
    """The TXT strings published at ``name`` (each record's strings joined, as RFC 7208 reads them).
    Empty when the name or the record does not exist. Raises DomainNotProven when no answer came
    (timeout, no nameserver answering)."""
    try:
        answer = _resolver().resolve(name, "TXT", search=False)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
        raise DomainNotProven(f"the DNS look-up of {name} failed: {exc.__class__.__name__}") from exc
    return [b"".join(rdata.strings).decode("utf-8", "replace") for rdata in answer]


def domain_verify(*, actor: Actor, domain: Domain) -> Domain:
    """Look up ``TXT _itsm-challenge.<host>`` and mark the domain verified when one record equals
    ``itsm-verify=<token>``; from then on the routing middleware serves the tenant's portal there (and the
    TLS ``ask`` endpoint answers yes). Records ``domain.verified``. An already verified domain is returned
    as it is. Raises DomainNotProven saying whether the record was missing or held another value, and
    PermissionDenied for anyone but the provider's owners and admins; nothing is written then."""
    _require_domain_role(actor)
    _require_connection_tenant(domain.tenant)
    if domain.is_verified:
        return domain
    name, expected = domain_challenge_name(domain), domain_challenge_value(domain)
    values = domain_txt_values(name)
    if expected not in values:
        detail = (
            f"no TXT record at {name}"
            if not values
            else f"the TXT record at {name} holds {', '.join(repr(v[:80]) for v in values)}, not {expected!r}"
        )
        raise DomainNotProven(detail)
    with transaction.atomic():
        domain.verified_at = timezone.now()
        domain.save(update_fields=["verified_at"])
        _audit(
            actor=actor,
            tenant=domain.tenant,
            verb="domain.verified",
            changes={"domain": [None, domain.domain]},
        )
    return domain


def domain_remove(*, actor: Actor, domain: Domain) -> None:
    """Remove a custom domain of the tenant (the portal stops answering there). The primary domain made at
    provisioning cannot be removed (InvalidInput). Provider owners and admins only. Records
    ``domain.removed``."""
    _require_domain_role(actor)
    _require_connection_tenant(domain.tenant)
    if domain.is_primary:
        raise InvalidInput("the platform's own portal hostname cannot be removed")
    with transaction.atomic():
        _audit(
            actor=actor,
            tenant=domain.tenant,
            verb="domain.removed",
            changes={"domain": [domain.domain, None]},
        )
        domain.delete()
