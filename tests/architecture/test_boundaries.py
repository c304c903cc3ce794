"""Boundaries that keep tenants apart and the layout readable (../shared/ARCHITECTURE.md, STYLE.md "Habits")."""

from __future__ import annotations

import re
from pathlib import Path

from django.conf import settings
from django.db import connection

from tenants.models import Tenant
from tenants.template import expected_migration_state, schema_migration_state, template_schema

ROOT = Path(__file__).resolve().parents[2]
OUR_PREFIXES = ("accounts_", "providers_", "tenants_", "people_", "records_", "incidents_")
TENANT_RECORDS = (
    "people_person",
    "people_group",
    "records_comment",
    "records_activityentry",
    "incidents_incident",
)
# Third-party tables whose keys are not ours to choose, with the type they use.
THIRD_PARTY_KEYS = {
    "auth_group": "integer",  # django.contrib.auth
    "auth_permission": "integer",
    "django_admin_log": "integer",  # django.contrib.admin
    "django_content_type": "integer",  # django.contrib.contenttypes
    "django_session": "character varying(40)",  # session_key
    "account_emailaddress": "integer",  # django-allauth
    "account_emailconfirmation": "integer",
}


def source_files() -> list[Path]:
    files = []
    for top in ("platform", "tenants", "modules"):
        files += [p for p in (ROOT / top).rglob("*.py") if "migrations" not in p.parts]
    return files


def primary_key_types(schema: str) -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, string_agg(format_type(a.atttypid, a.atttypmod), ',')"
            " FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace"
            " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
            " WHERE i.indisprimary AND n.nspname = %s GROUP BY c.relname",
            [schema],
        )
        return dict(cursor.fetchall())


def test_platform_is_a_source_folder_not_a_package() -> None:
    """A platform/__init__.py would shadow the standard library's `platform` (uuid, Celery, pytest break)."""
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_no_foreign_key_leaves_a_tenant_schema(tenant_a: Tenant) -> None:
    """Tenant schemas refer to control-plane rows by id only: exportable with pg_dump -n, shardable."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, c.conname, fn.nspname FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " JOIN pg_class f ON f.oid = c.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace"
            " WHERE c.contype = 'f' AND n.nspname = ANY(%s)",
            [[template_schema(), tenant_a.schema_name]],
        )
        foreign_keys = cursor.fetchall()
    assert len(foreign_keys) > 10  # the query sees the tenant's own foreign keys
    assert [fk for fk in foreign_keys if fk[0] != fk[2]] == []


def test_keys_are_uuid_or_bigint(db: None) -> None:
    """Records have platform-unique UUIDv7 ids; other keys of ours are bigint; third-party tables listed."""
    public = primary_key_types("public")
    template = primary_key_types(template_schema())
    exceptions = {t: k for t, k in {**public, **template}.items() if k not in ("uuid", "bigint")}
    third_party = {t: k for t, k in exceptions.items() if not t.startswith(OUR_PREFIXES)}
    assert third_party == {t: k for t, k in THIRD_PARTY_KEYS.items() if t in public}
    assert set(THIRD_PARTY_KEYS) <= set(public), "an allow-listed table no longer exists: trim the list"
    assert [t for t in exceptions if t.startswith(OUR_PREFIXES)] == []
    assert {t: template[t] for t in TENANT_RECORDS} == dict.fromkeys(TENANT_RECORDS, "uuid")


def test_only_routing_switches_schemas() -> None:
    """Only the routing middleware and tenant_context switch schemas (ARCHITECTURE.md)."""
    pattern = re.compile(r"\.(set_schema|set_tenant|set_schema_to_public)\(")
    hits = [
        f"{p.relative_to(ROOT)}:{n}"
        for p in source_files()
        for n, line in enumerate(p.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_modules_reach_other_modules_through_services_not_models() -> None:
    """A module reaches another through its services and selectors; the shared tenant parts (people,
    records) are the only models every module may use directly."""
    shared = {"people", "records"}
    pattern = re.compile(r"^from modules\.(\w+)\.models import", re.MULTILINE)
    crossings = []
    for module in (ROOT / "modules").iterdir():
        if not (module / "apps.py").exists():
            continue
        for path in module.rglob("*.py"):
            if "migrations" in path.parts or "tests" in path.parts:
                continue
            crossings += [
                f"{path.relative_to(ROOT)} -> {other}"
                for other in pattern.findall(path.read_text())
                if other != module.name and other not in shared
            ]
    assert crossings == []


def test_tenant_apps_stay_out_of_public(db: None) -> None:
    """django-tenants #846: a tenant table missing from a schema silently falls back to public."""
    assert set(settings.TENANT_APPS).isdisjoint(settings.SHARED_APPS)
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        public_tables = [row[0] for row in cursor.fetchall()]
    assert [t for t in public_tables if t.startswith(("people_", "records_", "incidents_"))] == []


def test_the_template_is_at_the_code_s_migrations(db: None) -> None:
    """The template is migrated on every deploy, so new tenants get every migration (stale-template trap)."""
    assert schema_migration_state(template_schema()) == expected_migration_state()
