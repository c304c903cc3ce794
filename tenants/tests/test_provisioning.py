"""Provisioning from the template snapshot, the deploy migration, and the stale-template trap."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django_tenants.utils import tenant_context

from controlplane.problems import InvalidInput
from controlplane.providers.models import Provider
from modules.incidents.models import PriorityRule, ResolutionCode
from tenants.models import Domain, Tenant
from tenants.services import TenantSlugTaken, tenant_provision
from tenants.template import (
    UnsupportedTemplateObject,
    expected_migration_state,
    read_snapshot,
    template_schema,
)


def schema_tables(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def schema_columns(schema: str, table: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = %s AND table_name = %s",
            [schema, table],
        )
        return {row[0] for row in cursor.fetchall()}


def schema_objects(schema: str) -> dict[str, int]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT (SELECT count(*) FROM pg_indexes WHERE schemaname = %s),"
            " (SELECT count(*) FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace"
            "  WHERE n.nspname = %s AND c.contype <> 'n')",
            [schema, schema],
        )
        indexes, constraints = cursor.fetchone()
    return {"indexes": indexes, "constraints": constraints}


def schema_exists(schema: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", [schema])
        return cursor.fetchone() is not None


def test_provision_builds_the_template_schema_with_its_rows(provider: Provider) -> None:
    tenant = tenant_provision(provider=provider, name="Acme Corp", slug="acme", time_zone="Europe/London")

    assert tenant.schema_name.startswith("t_") and len(tenant.schema_name) == 34
    assert schema_tables(tenant.schema_name) == schema_tables(template_schema())
    assert schema_objects(tenant.schema_name) == schema_objects(template_schema())
    assert Domain.objects.get(tenant=tenant).domain == "acme.localhost"
    assert tenant.migration_state == expected_migration_state()
    with tenant_context(tenant):
        assert PriorityRule.objects.count() == 9
        seeded = set(ResolutionCode.objects.values_list("pk", flat=True))
        # identity sequences continue after the copied rows
        added = ResolutionCode.objects.create(code="added", label="Added")
        assert added.pk > max(seeded)


def test_schema_name_is_generated_by_the_server(provider: Provider) -> None:
    first = tenant_provision(provider=provider, name="One", slug="one")
    second = tenant_provision(provider=provider, name="Two", slug="two")
    assert first.schema_name != second.schema_name
    assert "one" not in first.schema_name


def test_provisioning_the_same_slug_twice_fails_and_changes_nothing(provider: Provider) -> None:
    tenant_provision(provider=provider, name="Acme Corp", slug="acme")
    tenants_before = list(Tenant.objects.values_list("schema_name", flat=True))
    domains_before = Domain.objects.count()
    schemas_before = tenant_schema_count()

    with pytest.raises(TenantSlugTaken) as excinfo:
        tenant_provision(provider=provider, name="Acme again", slug="acme")

    assert excinfo.value.status == 409
    assert list(Tenant.objects.values_list("schema_name", flat=True)) == tenants_before
    assert Domain.objects.count() == domains_before
    assert tenant_schema_count() == schemas_before


def tenant_schema_count() -> int:
    """Schemas named like a tenant's (the test session's pooled schemas included)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_namespace WHERE nspname LIKE 't\\_%%'")
        return int(cursor.fetchone()[0])


@pytest.mark.parametrize(
    ("slug", "name", "time_zone", "field"),
    [
        ("Acme", "Acme", "UTC", "slug"),
        ("a", "Acme", "UTC", "slug"),
        ("api", "Acme", "UTC", "slug"),
        ("acme; drop schema public", "Acme", "UTC", "slug"),
        ("acme", " ", "UTC", "name"),
        ("acme", "Acme", "Mars/Olympus", "time_zone"),
    ],
)
def test_bad_tenant_input_is_rejected_naming_the_field(
    provider: Provider, slug: str, name: str, time_zone: str, field: str
) -> None:
    with pytest.raises(InvalidInput) as excinfo:
        tenant_provision(provider=provider, name=name, slug=slug, time_zone=time_zone)
    assert [e["field"] for e in excinfo.value.extra["errors"]] == [field]
    assert Tenant.objects.count() == 0


def test_provision_tenant_command(provider: Provider) -> None:
    out = io.StringIO()
    call_command("provision_tenant", provider="northwind", name="Acme Corp", slug="acme", stdout=out)
    tenant = Tenant.objects.get(slug="acme")
    assert f"provisioned acme (schema {tenant.schema_name})" in out.getvalue()

    with pytest.raises(CommandError, match="slug 'acme' already exists"):
        call_command("provision_tenant", provider="northwind", name="Acme again", slug="acme")
    with pytest.raises(CommandError, match="--provider: no provider with slug 'nope'"):
        call_command("provision_tenant", provider="nope", name="X", slug="xyz")
    assert Tenant.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_a_tenant_created_after_a_new_migration_has_its_columns(provider: Provider) -> None:
    """The stale-template trap: the template is migrated on deploy, and the snapshot follows it."""
    template = template_schema()
    created: list[Tenant] = []
    try:
        # The template as it was before the probe app's 0002 existed.
        call_command(
            "migrate_schemas",
            "probe",
            "0001",
            tenant=True,
            schema_name=template,
            interactive=False,
            verbosity=0,
        )
        assert "added_later" not in schema_columns(template, "probe_proberecord")
        old = tenant_provision(provider=provider, name="Before", slug="before")
        created.append(old)
        assert "added_later" not in schema_columns(old.schema_name, "probe_proberecord")
        assert old.migration_state != expected_migration_state()

        # Deploy: migrate_platform migrates the template, then every tenant behind.
        call_command("migrate_platform", verbosity=0)
        new = tenant_provision(provider=provider, name="After", slug="after")
        created.append(new)
        assert "added_later" in schema_columns(new.schema_name, "probe_proberecord")
        old.refresh_from_db()
        assert "added_later" in schema_columns(old.schema_name, "probe_proberecord")
        assert old.migration_state == new.migration_state == expected_migration_state()
    finally:
        for tenant in created:
            tenant.delete(force_drop=True)
        call_command("migrate_schemas", tenant=True, schema_name=template, interactive=False, verbosity=0)
    assert not any(schema_exists(t.schema_name) for t in created)


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE VIEW {schema}.open_incidents AS SELECT 1 AS one",
        "CREATE FUNCTION {schema}.answer() RETURNS int LANGUAGE sql AS 'SELECT 42'",
        "COMMENT ON TABLE {schema}.incidents_incident IS 'kept nowhere'",
    ],
)
def test_template_objects_the_snapshot_cannot_copy_stop_provisioning(
    provider: Provider, statement: str
) -> None:
    """Better no tenant than a tenant silently missing part of its schema."""
    with connection.cursor() as cursor:
        cursor.execute(statement.format(schema=template_schema()))
    with pytest.raises(UnsupportedTemplateObject):
        read_snapshot("test")
    assert Tenant.objects.count() == 0


def test_column_collations_are_copied(provider: Provider) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f'ALTER TABLE {template_schema()}.people_person ADD COLUMN sort_key text COLLATE "C"')
    assert '"sort_key" text COLLATE "C"' in read_snapshot("test").ddl
