"""The SMTP entrance end to end: smtplib -> the aiosmtpd listener -> the stored message -> the tenant
task on a real Celery worker -> the incident or comment."""

from __future__ import annotations

import smtplib

import pytest
from django_tenants.utils import tenant_context

from conftest import make_user
from controlplane.mailin.models import InboundMessage
from modules.incidents.models import Incident
from modules.mailin.tests.factories import address_for, email_bytes
from modules.people.models import Person
from modules.records.models import Comment
from tenants.models import Tenant

from .conftest import wait_until


def send(
    port: int, raw: bytes, recipients: list[str], sender: str = "carol@client.example"
) -> dict[str, object]:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        return dict(client.sendmail(sender, recipients, raw))


def settled(count: int) -> bool:
    return InboundMessage.objects.exclude(status="received").count() == count


def tenant_rows(tenant: Tenant) -> tuple[int, int, int]:
    with tenant_context(tenant):
        return Incident.objects.count(), Person.objects.count(), Comment.objects.count()


def test_mail_to_an_inbound_address_becomes_an_incident_and_its_reply_a_comment(
    committed_tenants: tuple[Tenant, Tenant], listener: int, worker: None
) -> None:
    acme, globex = committed_tenants
    tech = make_user("tech@northwind.example")
    address_for(acme, tech, "help@acme.example")
    address_for(globex, tech, "help@globex.example")
    before_globex = tenant_rows(globex)

    assert send(listener, email_bytes(to="help@acme.example"), ["HELP@acme.example"]) == {}
    assert wait_until(lambda: settled(1))
    with tenant_context(acme):
        incident = Incident.objects.get()
        caller = Person.objects.get(email="carol@client.example")
        assert (incident.short_description, incident.caller_id, incident.contact_type) == (
            "Printer on floor 3 is jammed",
            caller.pk,
            "email",
        )
    first = InboundMessage.objects.get()
    assert (first.via, first.envelope_sender, first.envelope_recipients) == (
        "smtp",
        "carol@client.example",
        ["help@acme.example"],
    )
    assert (first.status, first.result_id, first.tenant_id) == ("processed", incident.pk, acme.pk)

    reply = email_bytes(subject=f"Re: [{incident.number}] Printer", body="Fixed itself.\n")
    send(listener, reply, ["help@acme.example"])
    assert wait_until(lambda: settled(2))
    with tenant_context(acme):
        assert list(Comment.objects.values_list("record_id", "body", "author_id")) == [
            (incident.pk, "Fixed itself.", caller.pk)
        ]
        assert Incident.objects.count() == 1
    assert tenant_rows(globex) == before_globex  # nothing sent to acme reached globex


def test_unknown_recipients_are_refused_with_550_and_nothing_is_stored(
    committed_tenants: tuple[Tenant, Tenant], listener: int
) -> None:
    acme, _ = committed_tenants
    address_for(acme, make_user("tech@northwind.example"), "help@acme.example")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(listener, email_bytes(to="nobody@acme.example"), ["nobody@acme.example"])
    code, text = refused.value.recipients["nobody@acme.example"]
    assert (code, text) == (550, b"5.1.1 <nobody@acme.example>: no such inbound address")
    assert InboundMessage.objects.count() == 0

    partly = send(listener, email_bytes(), ["help@acme.example", "sales@acme.example"])
    assert list(partly) == ["sales@acme.example"]
    assert list(InboundMessage.objects.values_list("envelope_recipients", flat=True)) == [
        ["help@acme.example"]
    ]


def test_one_message_to_two_tenants_is_stored_once_for_each(
    committed_tenants: tuple[Tenant, Tenant], listener: int, worker: None
) -> None:
    acme, globex = committed_tenants
    tech = make_user("tech@northwind.example")
    address_for(acme, tech, "help@acme.example")
    address_for(acme, tech, "it@acme.example")
    address_for(globex, tech, "help@globex.example")

    send(listener, email_bytes(), ["it@acme.example", "help@globex.example", "help@acme.example"])
    assert wait_until(lambda: settled(2))
    rows = InboundMessage.objects.order_by("tenant__slug")
    assert [(m.tenant_id, m.envelope_recipients, m.status) for m in rows] == [
        (acme.pk, ["help@acme.example", "it@acme.example"], "processed"),
        (globex.pk, ["help@globex.example"], "processed"),
    ]
    assert tenant_rows(acme)[0] == tenant_rows(globex)[0] == 1


def test_an_unparseable_message_is_kept_whole_and_failed(
    committed_tenants: tuple[Tenant, Tenant], listener: int, worker: None
) -> None:
    acme, _ = committed_tenants
    address_for(acme, make_user("tech@northwind.example"), "help@acme.example")
    garbage = b"\x00\x01\x02 not an email\r\n\xff\xfe\xfd\x89PNG\r\n\x1a\r\n"

    send(listener, garbage, ["help@acme.example"], sender="")
    assert wait_until(lambda: settled(1))
    message = InboundMessage.objects.get()
    assert bytes(message.raw) == garbage
    assert (message.status, message.reason, message.envelope_sender) == (
        "failed",
        "MessageUnreadable: no sender address could be read from the From header",
        "",
    )
    assert tenant_rows(acme)[0] == 0
