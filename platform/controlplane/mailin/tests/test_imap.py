"""The IMAP entrance against a real IMAP server (pymap): unseen messages are stored whole once, flagged
seen, and processed in their tenant; the beat sweep drives the whole chain on a real worker."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.db import connection
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.mailin.crypto import secret_decrypt
from controlplane.mailin.models import InboundMailbox, InboundMessage
from controlplane.mailin.services import inbound_address_create, inbound_mailbox_rekey, mailbox_poll
from controlplane.mailin.tasks import mailin_sweep_task
from modules.incidents.models import Incident
from modules.mailin.services import inbound_message_process
from modules.mailin.tests.factories import email_bytes
from modules.people.models import Person
from tenants.models import Tenant

from .conftest import ImapServer, mailbox_settings, wait_until


def imap_address(tenant: Tenant, user: User, server: ImapServer, **overrides: object) -> InboundMailbox:
    with tenant_context(tenant):
        actor = actor_in(tenant, user)
    address = inbound_address_create(
        actor=actor, tenant=tenant, address="desk@acme.example", mailbox=mailbox_settings(server, **overrides)
    )
    return InboundMailbox.objects.select_related("address__tenant").get(address=address)


def test_the_poller_stores_each_unseen_message_once_and_flags_it_seen(
    tenant_a: Tenant, tech_a: User, imap_server: ImapServer, media: Path
) -> None:
    mailbox = imap_address(tenant_a, tech_a, imap_server)
    already_read = email_bytes(subject="Read by a person already")
    new = email_bytes(subject="Laptop will not boot", body="Black screen.\n")
    imap_server.append(already_read, flags="(\\Seen)")
    imap_server.append(new)

    assert mailbox_poll(mailbox=mailbox) == 1
    message = InboundMessage.objects.get()
    assert bytes(message.raw) == new
    assert (message.via, message.mailbox_id, message.tenant_id, message.envelope_recipients) == (
        "imap",
        mailbox.pk,
        tenant_a.pk,
        ["desk@acme.example"],
    )
    assert message.source_key.endswith(":102")  # <UIDVALIDITY>:<UID>; pymap numbers from 101
    assert imap_server.unseen() == []
    mailbox.refresh_from_db()
    assert (mailbox.last_error, mailbox.last_polled_at is not None) == ("", True)

    # A poll that died after storing but before flagging leaves the message unseen: nothing is stored twice.
    imap_server.unflag("102")
    assert imap_server.unseen() == [b"102"]
    assert mailbox_poll(mailbox=mailbox) == 0
    assert InboundMessage.objects.count() == 1
    assert imap_server.unseen() == []

    with tenant_context(tenant_a):
        processed = inbound_message_process(message_id=message.pk)
        incident = Incident.objects.get()
        assert (incident.short_description, incident.caller) == (
            "Laptop will not boot",
            Person.objects.get(email="carol@client.example"),
        )
    assert processed is not None
    assert (processed.status, processed.result_id) == ("processed", incident.pk)


def test_a_mailbox_that_refuses_the_login_keeps_the_error_and_stores_nothing(
    tenant_a: Tenant, tech_a: User, imap_server: ImapServer
) -> None:
    mailbox = imap_address(tenant_a, tech_a, imap_server, password="wrong-password")
    imap_server.append(email_bytes())

    assert mailbox_poll(mailbox=mailbox) == 0
    mailbox.refresh_from_db()
    assert mailbox.last_error.startswith("error: ")
    assert InboundMessage.objects.count() == 0
    assert len(imap_server.unseen()) == 1


def test_the_beat_sweep_polls_the_mailbox_and_the_worker_opens_the_incident(
    committed_tenants: tuple[Tenant, Tenant], imap_server: ImapServer, worker: None
) -> None:
    acme, globex = committed_tenants
    imap_address(acme, make_user("tech@northwind.example"), imap_server)
    imap_server.append(email_bytes(subject="Scanner offline"))

    mailin_sweep_task.delay()  # sent from public, like beat
    assert wait_until(lambda: InboundMessage.objects.filter(status="processed").count() == 1)
    with tenant_context(acme):
        assert list(Incident.objects.values_list("short_description", "contact_type")) == [
            ("Scanner offline", "email")
        ]
    with tenant_context(globex):
        assert Incident.objects.count() == 0
    assert imap_server.unseen() == []


def stored_password_column(mailbox: InboundMailbox) -> str:
    """What the database holds for the mailbox's password, read with SQL (no model in between)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT password_encrypted FROM mailin_inboundmailbox WHERE id = %s", [mailbox.pk])
        return str(cursor.fetchone()[0])


def test_the_password_is_encrypted_at_rest_and_the_poller_still_logs_in(
    tenant_a: Tenant, tech_a: User, imap_server: ImapServer, media: Path
) -> None:
    mailbox = imap_address(tenant_a, tech_a, imap_server)
    column = stored_password_column(mailbox)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM mailin_inboundmailbox WHERE mailin_inboundmailbox::text LIKE %s",
            [f"%{imap_server.password}%"],
        )
        assert cursor.fetchone()[0] == 0  # in no column of the row
    assert imap_server.password not in column and imap_server.password.encode().hex() not in column
    assert column.startswith("gAAAAA")  # a Fernet token (version byte 0x80)
    assert secret_decrypt(column) == imap_server.password
    assert "password" not in [f.name for f in InboundMailbox._meta.get_fields()]

    imap_server.append(email_bytes(subject="Encrypted at rest"))
    assert mailbox_poll(mailbox=mailbox) == 1
    mailbox.refresh_from_db()
    assert mailbox.last_error == ""


def test_a_key_rotation_keeps_the_poller_logging_in_and_a_lost_key_is_reported(
    tenant_a: Tenant, tech_a: User, imap_server: ImapServer, settings: Any
) -> None:
    mailbox = imap_address(tenant_a, tech_a, imap_server)  # encrypted under the key from SECRET_KEY
    before = stored_password_column(mailbox)
    imap_server.append(email_bytes(subject="One"))

    settings.MAILIN_SECRET_KEY = "a-new-mailin-secret-0123456789"
    settings.MAILIN_SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]  # the old one, decrypt only
    assert mailbox_poll(mailbox=mailbox) == 1
    assert inbound_mailbox_rekey() == (1, [])
    after = stored_password_column(mailbox)
    assert after != before and imap_server.password not in after

    settings.MAILIN_SECRET_KEY_FALLBACKS = []  # the old secret is gone: the rekeyed token still opens
    mailbox.refresh_from_db()
    imap_server.append(email_bytes(subject="Two"))
    assert mailbox_poll(mailbox=mailbox) == 1

    settings.MAILIN_SECRET_KEY = "yet-another-secret-never-used-before"  # a lost key
    mailbox.refresh_from_db()
    imap_server.append(email_bytes(subject="Three"))
    assert mailbox_poll(mailbox=mailbox) == 0
    mailbox.refresh_from_db()
    assert mailbox.last_error == (
        "SecretUnreadable: the stored secret cannot be decrypted with MAILIN_SECRET_KEY"
    )
    assert inbound_mailbox_rekey() == (0, [mailbox.pk])
    assert stored_password_column(mailbox) == after  # left as it was
    assert InboundMessage.objects.count() == 2 and len(imap_server.unseen()) == 1
