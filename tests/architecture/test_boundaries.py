"""Boundaries that keep tenants apart and the layout readable.

Rules from ../shared/ARCHITECTURE.md ("Rules that keep tenants apart", "Layers"), ../shared/STYLE.md
("Habits": an architecture test keeps the boundaries) and the django-tenants traps in
../shared/PITFALLS.md. Catalog queries always take schema names as parameters.
"""

from __future__ import annotations

import re
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.db import connection

from tenants.models import Tenant
from tenants.template import (
    expected_migration_state,
    schema_migration_state,
    template_schema,
    tenant_app_labels,
)

ROOT = Path(__file__).resolve().parents[2]

# Tables of our own apps: their keys are ours to choose (probe_ is the tests-only tenant app).
OUR_APPS = ("accounts", "providers", "tenants", "sso", "workindex", "mailin", "dashboards", "probe")


def our_prefixes() -> tuple[str, ...]:
    """Table prefixes of our own apps: the control-plane apps above and every tenant module."""
    return tuple(f"{label}_" for label in (*OUR_APPS, *tenant_app_labels()))


def tenant_record_tables() -> list[str]:
    """Tables of tenant records: every concrete model of a tenant app built on records.Record. They must
    have platform-unique, time-ordered UUID keys (ARCHITECTURE.md)."""
    from modules.records.models import Record

    return sorted(
        model._meta.db_table
        for label in tenant_app_labels()
        for model in apps.get_app_config(label).get_models()
        if issubclass(model, Record)
    )


# Third-party tables whose primary key is neither uuid nor bigint: table -> the key's type. Exact: every
# table here exists, and every such table is here. Celery's kombu_* tables are not: the test settings put
# the SQLAlchemy broker on DATABASE_URL's own database, never on the test database.
THIRD_PARTY_KEYS = {
    "auth_group": "integer",  # django.contrib.auth: AutoField fixed in its own migrations
    "auth_permission": "integer",  # django.contrib.auth: AutoField fixed in its own migrations
    "django_admin_log": "integer",  # django.contrib.admin: AutoField fixed in its own migrations
    "django_content_type": "integer",  # django.contrib.contenttypes: AutoField fixed in its migrations
    "django_session": "character varying(40)",  # django.contrib.sessions: the session key is the key
    "account_emailaddress": "integer",  # django-allauth: AutoField fixed in its own migrations
    "account_emailconfirmation": "integer",  # django-allauth: AutoField fixed in its own migrations
    "socialaccount_socialaccount": "integer",  # django-allauth (OIDC sign-in): AutoField in its migrations
    "socialaccount_socialapp": "integer",  # django-allauth: AutoField fixed in its own migrations
    "socialaccount_socialtoken": "integer",  # django-allauth: AutoField fixed in its own migrations
}
# Models every tenant module may use directly: the shared tenant parts (directory and record plumbing).
SHARED_TENANT_MODELS = {"people", "records"}
# Files that write or are entry points (ARCHITECTURE.md "Layers"); they must not write another module's models.
WRITING_FILES = ("services.py", "api.py", "views.py", "tasks.py")
SCHEMA_SWITCH = re.compile(r"\.set_schema\(|\.set_tenant\(|\.set_schema_to_public\(")
# The routing middleware may switch schemas (it does so through tenant_context today).
SCHEMA_SWITCH_ALLOWED = {"tenants/routing.py"}
MODELS_IMPORT = re.compile(
    r"^\s*(?:from modules\.(\w+)\.models import|from modules\.(\w+) import models\b|import modules\.(\w+)\.models)",
    re.MULTILINE,
)


def python_files(*tops: str) -> list[Path]:
    """Every .py file under ``tops`` (relative to the repository root), without migrations and .venv."""
    files: list[Path] = []
    for top in tops:
        path = ROOT / top
        candidates = [path] if path.is_file() else sorted(path.rglob("*.py"))
        files += [p for p in candidates if not {"migrations", ".venv"} & set(p.relative_to(ROOT).parts)]
    return files


def primary_keys(schema: str) -> dict[str, str | None]:
    """Table -> type(s) of its primary key columns (comma-separated; None: no primary key) in ``schema``."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname, string_agg(format_type(a.atttypid, a.atttypmod), ',' ORDER BY a.attnum)"
            " FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " LEFT JOIN pg_index i ON i.indrelid = c.oid AND i.indisprimary"
            " LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey)"
            " WHERE n.nspname = %s AND c.relkind IN ('r', 'p') GROUP BY c.relname",
            [schema],
        )
        return dict(cursor.fetchall())


def tables_in(schema: str) -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", [schema])
        return {row[0] for row in cursor.fetchall()}


def test_platform_is_a_source_folder_not_a_package() -> None:
    """platform/ is a source folder, never a package: a platform/__init__.py would shadow the standard
    library's ``platform`` (STYLE.md "Habits"; docs/decisions/0001-source-layout.md)."""
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_no_foreign_key_leaves_a_tenant_schema(tenant_a: Tenant) -> None:
    """A tenant schema has no database foreign keys into public (or any other schema): it refers to
    control-plane rows by id, so it stays exportable with pg_dump -n and shardable (ARCHITECTURE.md
    "Rules that keep tenants apart")."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nspname, t.relname, c.conname, fn.nspname, f.relname FROM pg_constraint c"
            " JOIN pg_class t ON t.oid = c.conrelid JOIN pg_namespace n ON n.oid = t.relnamespace"
            " JOIN pg_class f ON f.oid = c.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace"
            " WHERE c.contype = 'f' AND n.nspname = ANY(%s)",
            [[template_schema(), tenant_a.schema_name]],
        )
        foreign_keys = cursor.fetchall()
    schemas_with_keys = {fk[0] for fk in foreign_keys}
    assert schemas_with_keys == {template_schema(), tenant_a.schema_name}  # the query is not vacuous
    assert [fk for fk in foreign_keys if fk[3] != fk[0]] == []


def test_keys_are_uuid_or_bigint(db: None) -> None:
    """Records have platform-unique UUIDv7 ids, other keys of ours are bigint, third-party tables are
    the listed exceptions (ARCHITECTURE.md "Rules that keep tenants apart")."""
    public, template = primary_keys("public"), primary_keys(template_schema())
    assert [t for t in THIRD_PARTY_KEYS if t.startswith(our_prefixes())] == []
    missing = set(THIRD_PARTY_KEYS) - set(public) - set(template)
    assert missing == set(), "an allow-listed table no longer exists: trim the list"
    # Django's database cache exists only without Redis (settings.CACHES): keyed by its cache key, it
    # holds rate-limit counters, never records.
    public.pop("django_cache", None)
    # The agent gateway's replay window (agent_gateway.Nonce): keyed by (agent id, nonce) itself, an
    # unlogged table of the last 10 minutes' request nonces, never records.
    public.pop("agent_gateway_nonce", None)
    others = [(t, k) for keys in (public, template) for t, k in keys.items() if k not in ("uuid", "bigint")]
    assert sorted(others, key=str) == sorted(THIRD_PARTY_KEYS.items(), key=str)
    records = tenant_record_tables()
    assert {"people_person", "records_comment", "incidents_incident"} <= set(records)
    assert {t: template.get(t) for t in records} == dict.fromkeys(records, "uuid")


def test_only_routing_switches_schemas() -> None:
    """Only the routing middleware and tenant_context switch schemas; nothing else calls set_schema,
    set_tenant or set_schema_to_public (ARCHITECTURE.md "Rules that keep tenants apart")."""
    files = python_files("platform", "tenants", "sso", "agent_gateway", "modules", "tests", "conftest.py")
    assert len(files) > 50  # the scan sees the source tree
    hits = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in files
        if path.relative_to(ROOT).as_posix() not in SCHEMA_SWITCH_ALLOWED
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if SCHEMA_SWITCH.search(line)
    ]
    assert hits == []


def test_modules_do_not_write_other_modules_models() -> None:
    """A module reaches another module through its services and selectors, never its models; only the
    shared tenant parts (people, records) may be imported by every module (ARCHITECTURE.md "Layers")."""
    modules = sorted(p for p in (ROOT / "modules").iterdir() if (p / "apps.py").exists())
    assert {p.name for p in modules} >= {"incidents", "people", "records"}
    crossings = []
    for module in modules:
        for path in (module / name for name in WRITING_FILES):
            text = path.read_text() if path.exists() else ""
            for match in MODELS_IMPORT.finditer(text):
                other = next(group for group in match.groups() if group)
                if other != module.name and other not in SHARED_TENANT_MODELS:
                    line = text.count("\n", 0, match.start()) + 1
                    crossings.append(f"{path.relative_to(ROOT)}:{line} imports modules.{other}.models")
    assert crossings == []


def test_tenant_apps_stay_out_of_public(db: None) -> None:
    """Data apps are in TENANT_APPS only, never SHARED_APPS, and none of their tables exists in public: a
    tenant table missing from a schema silently falls back to public (django-tenants #846, PITFALLS.md)."""
    assert [app for app in settings.TENANT_APPS if app in settings.SHARED_APPS] == []
    prefixes = tuple(f"{label}_" for label in tenant_app_labels())
    assert {"people_", "records_", "incidents_"} <= set(prefixes)
    assert sorted(t for t in tables_in("public") if t.startswith(prefixes)) == []


def test_the_template_holds_every_tenant_table_at_the_code_s_migrations(db: None) -> None:
    """The template is migrated on every deploy, so it holds every tenant app's tables and its
    migration records match the code: new tenants never start stale (ARCHITECTURE.md "Rules that keep
    tenants apart"; PITFALLS.md "Stale template schema")."""
    expected = {
        model._meta.db_table
        for label in tenant_app_labels()
        for model in apps.get_app_config(label).get_models(include_auto_created=True)
        if model._meta.managed and not model._meta.proxy
    }
    assert set(tenant_record_tables()) <= expected
    assert sorted((expected | {"django_migrations"}) - tables_in(template_schema())) == []
    assert schema_migration_state(template_schema()) == expected_migration_state()
