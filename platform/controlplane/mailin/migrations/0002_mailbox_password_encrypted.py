"""IMAP mailbox passwords encrypted at rest: a Fernet token column replaces the plain one; existing
passwords are encrypted on the way (and decrypted back when the migration is reversed)."""

from typing import Any

from django.db import migrations, models


def _checks_now(schema_editor: Any) -> None:
    """Run the foreign key checks the updates queued (PostgreSQL queues them for rows inserted in this same
    transaction), so the column change that follows is not refused for pending trigger events."""
    schema_editor.execute("SET CONSTRAINTS ALL IMMEDIATE")
    schema_editor.execute("SET CONSTRAINTS ALL DEFERRED")


def encrypt_existing(apps: Any, schema_editor: Any) -> None:
    from controlplane.mailin.crypto import secret_encrypt

    InboundMailbox = apps.get_model("mailin", "InboundMailbox")
    for mailbox in InboundMailbox.objects.using(schema_editor.connection.alias).order_by("pk"):
        mailbox.password_encrypted = secret_encrypt(mailbox.password)
        mailbox.save(update_fields=["password_encrypted"])
    _checks_now(schema_editor)


def decrypt_existing(apps: Any, schema_editor: Any) -> None:
    from controlplane.mailin.crypto import secret_decrypt

    InboundMailbox = apps.get_model("mailin", "InboundMailbox")
    for mailbox in InboundMailbox.objects.using(schema_editor.connection.alias).order_by("pk"):
        mailbox.password = secret_decrypt(mailbox.password_encrypted)
        mailbox.save(update_fields=["password"])
    _checks_now(schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("mailin", "0001_initial"),
    ]

    operations = [
        migrations.AddField(
            model_name="inboundmailbox",
            name="password_encrypted",
            field=models.TextField(default=""),
            preserve_default=False,
        ),
        migrations.RunPython(encrypt_existing, decrypt_existing),
        # A default, so that reversing the removal can add the column back to existing rows.
        migrations.AlterField(
            model_name="inboundmailbox",
            name="password",
            field=models.CharField(default="", max_length=255),
        ),
        migrations.RemoveField(
            model_name="inboundmailbox",
            name="password",
        ),
    ]
