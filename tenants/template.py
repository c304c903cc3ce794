"""The template schema every tenant is provisioned from, and the DDL script read off it.

Why: creating a tenant by running every migration takes seconds per tenant; django-tenants'
``clone_schema`` SQL function has broken on a new PostgreSQL major before (#246) and copies data
as-is. Instead the template schema is migrated on every deploy (``migrate_platform``) and its final
shape is read from the catalogs (``pg_get_constraintdef``, ``pg_get_indexdef``, ``format_type``:
stable across PostgreSQL 15-18) into one DDL script plus the template's rows (migration records and
seed data). Provisioning runs that script in one transaction. The script is cached per process, keyed by
the template's applied-migrations fingerprint, so a deploy that adds a migration is picked up at once
(the "stale template" trap). See docs/decisions/0003-provisioning-from-a-template-snapshot.md.
"""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.management import call_command
from django.db import connection, transaction
from django.db.migrations.loader import MigrationLoader
from psycopg import sql


class UnsupportedTemplateObject(RuntimeError):
    """The template holds an object kind the snapshot does not copy (view, function, trigger, type...)."""


def template_schema() -> str:
    """Name of the template schema (setting ``TENANT_TEMPLATE_SCHEMA``)."""
    return str(settings.TENANT_TEMPLATE_SCHEMA)


@cache
def tenant_app_labels() -> tuple[str, ...]:
    """App labels of ``TENANT_APPS``, sorted."""
    names = set(settings.TENANT_APPS)
    return tuple(sorted(config.label for config in apps.get_app_configs() if config.name in names))


def _fingerprint(pairs: list[tuple[str, str]]) -> str:
    return hashlib.sha256("\n".join(f"{app}.{name}" for app, name in sorted(pairs)).encode()).hexdigest()


@cache
def expected_migration_state() -> str:
    """SHA-256 fingerprint of every tenant-app migration in the code (hex, 64 chars)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    labels = set(tenant_app_labels())
    return _fingerprint([key for key in loader.disk_migrations if key[0] in labels])


def schema_migration_state(schema_name: str) -> str:
    """Fingerprint of the tenant-app migrations recorded in ``schema_name``.django_migrations."""
    with connection.cursor() as cursor:
        cursor.execute(
            sql.SQL("SELECT app, name FROM {}.django_migrations WHERE app = ANY(%s)").format(
                sql.Identifier(schema_name)
            ),
            [list(tenant_app_labels())],
        )
        return _fingerprint([(app, name) for app, name in cursor.fetchall()])


def template_migrate(*, verbosity: int = 0) -> str:
    """Create the template schema if needed and apply the tenant apps' migrations to it.

    Returns the template's migration fingerprint. Run on every deploy by ``migrate_platform``.
    """
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(template_schema())))
    call_command(
        "migrate_schemas", tenant=True, schema_name=template_schema(), interactive=False, verbosity=verbosity
    )
    return schema_migration_state(template_schema())


@dataclass(frozen=True)
class Snapshot:
    """The template read off the catalogs: ``ddl`` runs with ``search_path`` set to the new schema."""

    migration_state: str
    ddl: str
    tables_with_rows: tuple[str, ...]
    identity_columns: tuple[tuple[str, str], ...]

    def statements_for(self, schema_name: str) -> sql.Composed:
        """The whole provisioning script for a new schema ``schema_name``, as one composed statement."""
        schema = sql.Identifier(schema_name)
        template = sql.Identifier(template_schema())
        parts: list[sql.Composable] = [
            sql.SQL("CREATE SCHEMA {}; SET LOCAL search_path TO {};\n").format(schema, schema),
            sql.SQL(self.ddl),
        ]
        for table in self.tables_with_rows:
            parts.append(
                sql.SQL("INSERT INTO {}.{} SELECT * FROM {}.{};\n").format(
                    schema, sql.Identifier(table), template, sql.Identifier(table)
                )
            )
        for table, column in self.identity_columns:
            parts.append(
                sql.SQL(
                    "SELECT setval(pg_get_serial_sequence({qualified}, {column}),"
                    " coalesce((SELECT max({col}) FROM {schema}.{table}), 0) + 1, false);\n"
                ).format(
                    qualified=sql.Literal(f'"{schema_name}"."{table}"'),
                    column=sql.Literal(column),
                    col=sql.Identifier(column),
                    schema=schema,
                    table=sql.Identifier(table),
                )
            )
        # Provisioning runs on public (TenantMixin.save insists); put the path back for the rest of the
        # transaction, where django-tenants believes it still is.
        parts.append(sql.SQL("SET LOCAL search_path TO public;\n"))
        return sql.Composed(parts)


_snapshot_lock = threading.Lock()
_snapshots: dict[str, Snapshot] = {}


def template_snapshot() -> Snapshot:
    """The snapshot for the template as it is now (cached per process by migration fingerprint).

    Raises UnsupportedTemplateObject if the template holds objects the snapshot cannot copy.
    """
    state = schema_migration_state(template_schema())
    with _snapshot_lock:
        if state not in _snapshots:
            _snapshots.clear()
            _snapshots[state] = read_snapshot(state)
        return _snapshots[state]


def read_snapshot(state: str) -> Snapshot:
    """Read the template's DDL and row-holding tables from the catalogs (``state`` labels the result).

    Raises UnsupportedTemplateObject if the template holds anything but tables, indexes, constraints
    and identity sequences (views, functions, triggers, types, comments), or does not exist.
    """
    name = template_schema()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT oid FROM pg_namespace WHERE nspname = %s", [name])
        row = cursor.fetchone()
        if row is None:
            raise UnsupportedTemplateObject(f"template schema {name!r} does not exist; run migrate_platform")
        nsp = row[0]
        _refuse_unsupported(cursor, nsp)
        # Unqualified names in the generated DDL: resolve them against the template while reading.
        cursor.execute(sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(name)))
        cursor.execute(
            "SELECT c.oid, c.relname FROM pg_class c WHERE c.relnamespace = %s AND c.relkind = 'r' "
            "ORDER BY c.relname",
            [nsp],
        )
        tables = cursor.fetchall()
        creates: list[str] = []
        keys: list[str] = []
        foreign: list[str] = []
        indexes: list[str] = []
        identity: list[tuple[str, str]] = []
        with_rows: list[str] = []
        for oid, table in tables:
            cursor.execute(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attidentity,"
                " pg_get_expr(d.adbin, d.adrelid), a.attgenerated,"
                " CASE WHEN a.attcollation <> t.typcollation THEN quote_ident(co.collname) END"
                " FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum"
                " JOIN pg_type t ON t.oid = a.atttypid LEFT JOIN pg_collation co ON co.oid = a.attcollation"
                " WHERE a.attrelid = %s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
                [oid],
            )
            columns = []
            for column, type_name, not_null, ident, default, generated, collation in cursor.fetchall():
                text = f"{_quote(column)} {type_name}"
                if collation:  # a field's db_collation
                    text += f" COLLATE {collation}"
                if generated:
                    text += f" GENERATED ALWAYS AS ({default}) STORED"
                elif ident:
                    text += (
                        " GENERATED ALWAYS AS IDENTITY"
                        if ident == "a"
                        else " GENERATED BY DEFAULT AS IDENTITY"
                    )
                    identity.append((table, column))
                elif default is not None:
                    text += f" DEFAULT {default}"
                if not_null:
                    text += " NOT NULL"
                columns.append(text)
            creates.append(f"CREATE TABLE {_quote(table)} ({', '.join(columns)});")
            cursor.execute(
                "SELECT conname, contype, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s AND contype IN ('p', 'u', 'c', 'x', 'f') ORDER BY contype, conname",
                [oid],
            )
            for conname, contype, definition in cursor.fetchall():
                statement = f"ALTER TABLE {_quote(table)} ADD CONSTRAINT {_quote(conname)} {definition};"
                (foreign if contype == "f" else keys).append(statement)
            cursor.execute(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i WHERE i.indrelid = %s AND NOT EXISTS"
                " (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid"
                " AND c.contype IN ('p', 'u', 'x')) ORDER BY i.indexrelid",
                [oid],
            )
            indexes.extend(f"{definition};" for (definition,) in cursor.fetchall())
            cursor.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
            if cursor.fetchone()[0]:
                with_rows.append(table)
        cursor.execute("SET LOCAL search_path TO public")
    # pg_get_indexdef always qualifies the table; the script runs with search_path on the new schema.
    for qualified in (f" ON {_quote(name)}.", f" ON {name}."):
        indexes = [statement.replace(qualified, " ON ") for statement in indexes]
    ddl = "\n".join([*creates, *keys, *indexes, *foreign]) + "\n"
    if f"{_quote(name)}." in ddl or f"{name}." in ddl:
        raise UnsupportedTemplateObject("the template DDL still names the template schema")
    return Snapshot(
        migration_state=state,
        ddl=ddl,
        tables_with_rows=tuple(with_rows),
        identity_columns=tuple(pair for pair in identity if pair[0] in with_rows),
    )


def _refuse_unsupported(cursor: Any, nsp: int) -> None:
    """Raise UnsupportedTemplateObject unless the schema holds only tables, indexes and identity sequences."""
    cursor.execute(
        "SELECT c.relname, c.relkind FROM pg_class c WHERE c.relnamespace = %s AND c.relkind NOT IN ('r', 'i')"
        " AND NOT (c.relkind = 'S' AND EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid"
        " AND d.deptype = 'i'))",
        [nsp],
    )
    others = cursor.fetchall()
    cursor.execute(
        "SELECT 'function ' || proname FROM pg_proc WHERE pronamespace = %s UNION ALL"
        " SELECT 'type ' || typname FROM pg_type t WHERE typnamespace = %s AND typtype IN ('e', 'd', 'r', 'm')"
        " UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger g JOIN pg_class c ON c.oid = g.tgrelid"
        " WHERE c.relnamespace = %s AND NOT g.tgisinternal"
        " UNION ALL SELECT 'comment on ' || c.relname FROM pg_description d JOIN pg_class c ON c.oid = d.objoid"
        " WHERE d.classoid = 'pg_class'::regclass AND c.relnamespace = %s",
        [nsp, nsp, nsp, nsp],
    )
    others += cursor.fetchall()
    if others:
        raise UnsupportedTemplateObject(f"template holds objects the snapshot does not copy: {others}")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
