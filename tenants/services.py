"""Tenant lifecycle: provisioning from the template snapshot. Control plane."""

from __future__ import annotations

import re
import zoneinfo

import uuid_utils
from django.conf import settings
from django.db import IntegrityError, connection, transaction

from controlplane.problems import Conflict, InvalidInput
from controlplane.providers.models import Provider

from .models import Domain, Tenant
from .template import template_snapshot

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


def _known_time_zone(name: str) -> bool:
    """True for an IANA zone name. Loading one zone is cheap; listing them all scans the disk (~15 ms)."""
    if not name or name.startswith(("/", ".")) or ".." in name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def tenant_validate(*, slug: str, name: str, time_zone: str) -> None:
    """Raise InvalidInput naming the field if slug, name or time zone is unacceptable."""
    errors = []
    if not SLUG_PATTERN.match(slug) or slug in RESERVED_SLUGS:
        errors.append({"field": "slug", "message": "2-40 lower-case letters, digits or '-', not reserved"})
    if not name.strip():
        errors.append({"field": "name", "message": "required"})
    if not _known_time_zone(time_zone):
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
            tenant = Tenant(
                provider=provider,
                name=name.strip(),
                slug=slug,
                schema_name=new_schema_name(),
                time_zone=time_zone,
                locale=locale,
                migration_state=snapshot.migration_state,
            )
            # One INSERT each. TenantMixin.save would add a case-insensitive uniqueness query for the schema
            # name (ours are generated UUIDv7s) and DomainMixin.save would demote other primary domains (a
            # new tenant has none). A taken slug fails right here, before any DDL runs.
            Tenant.objects.bulk_create([tenant])
            Domain.objects.bulk_create(
                [Domain(domain=f"{slug}.{settings.PORTAL_BASE_DOMAIN}", tenant=tenant, is_primary=True)]
            )
            with connection.cursor() as cursor:
                cursor.execute(snapshot.statements_for(tenant.schema_name).as_string(cursor.connection))
    except IntegrityError as exc:
        raise TenantSlugTaken(f"a tenant with slug {slug!r} already exists") from exc
    return tenant
