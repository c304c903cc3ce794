"""Migration 0002 encrypts the IMAP passwords stored before it (and decrypts them when reversed), run
with Django's migration executor on the test database's public schema."""

from __future__ import annotations

from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from controlplane.mailin.crypto import secret_decrypt
from tenants.models import Tenant

BEFORE = [("mailin", "0001_initial")]
AFTER = [("mailin", "0002_mailbox_password_encrypted")]


def migrate(targets: list[tuple[str, str]]) -> MigrationExecutor:
    """Migrate public to ``targets``; the test's own inserts are checked first (their deferred foreign
    key checks would otherwise block ALTER TABLE in this one test transaction)."""
    with connection.cursor() as cursor:
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return MigrationExecutor(connection)


def columns() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema = 'public'"
            " AND table_name = 'mailin_inboundmailbox' AND column_name LIKE 'password%%' ORDER BY 1"
        )
        return [row[0] for row in cursor.fetchall()]


def test_existing_passwords_are_encrypted_by_the_migration_and_decrypted_when_reversed(
    tenant_a: Tenant,
) -> None:
    executor = migrate(BEFORE)
    old = executor.loader.project_state(BEFORE[0]).apps
    address = old.get_model("mailin", "InboundAddress").objects.create(
        tenant_id=tenant_a.pk, address="desk@acme.example"
    )
    mailbox = old.get_model("mailin", "InboundMailbox").objects.create(
        address_id=address.pk, host="127.0.0.1", username="desk", password="plain-before-0002"
    )
    assert columns() == ["password"]

    migrate(AFTER)
    assert columns() == ["password_encrypted"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT password_encrypted FROM mailin_inboundmailbox WHERE id = %s", [mailbox.pk])
        token = cursor.fetchone()[0]
    assert "plain-before-0002" not in token
    assert secret_decrypt(token) == "plain-before-0002"

    migrate(BEFORE)
    with connection.cursor() as cursor:
        cursor.execute("SELECT password FROM mailin_inboundmailbox WHERE id = %s", [mailbox.pk])
        assert cursor.fetchone()[0] == "plain-before-0002"
    migrate(AFTER)
    assert columns() == ["password_encrypted"]
