"""Turning stored inbound messages into records, comments, or ignored/failed messages, on the real
database (the SMTP and IMAP entrances are tested in platform/controlplane/mailin/tests)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import IntegrityError, connection
from django.test import override_settings
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.mailin.models import InboundAddress, InboundMessage
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from modules.mailin.services import inbound_message_process, reply_actor
from modules.notifications.models import Notification
from modules.people.models import Group, GroupMembership, Person
from modules.people.services import person_for_email
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, Attachment, Comment
from modules.requests.models import ServiceRequest
from modules.requests.services import catalog_category_create, catalog_item_create, request_submit
from tenants.models import Tenant

from .factories import address_for, email_bytes, reply_id, stored


@pytest.fixture(autouse=True)
def media(tmp_path: Path) -> Iterator[Path]:
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


@pytest.fixture
def help_a(tenant_a: Tenant, tech_a: User) -> InboundAddress:
    return address_for(tenant_a, tech_a, "Help@Acme.example")


def carol(tenant: Tenant) -> Person:
    """The sender of ``email_bytes()`` as a person of ``tenant``'s directory (call inside its context)."""
    return person_for_email(email="carol@client.example", display_name="Carol Caller")


def process(tenant: Tenant, message: InboundMessage) -> InboundMessage:
    with tenant_context(tenant):
        result = inbound_message_process(message_id=message.pk)
    assert result is not None
    return result


def counts(tenant: Tenant) -> dict[str, int]:
    with tenant_context(tenant):
        return {
            "incidents": Incident.objects.count(),
            "comments": Comment.objects.count(),
            "persons": Person.objects.count(),
            "requests": ServiceRequest.objects.count(),
            "attachments": Attachment.objects.count(),
        }


def test_a_new_message_opens_an_incident_with_the_sender_as_a_new_caller(
    tenant_a: Tenant, help_a: InboundAddress
) -> None:
    message = process(tenant_a, stored(help_a, email_bytes()))

    with tenant_context(tenant_a):
        incident = Incident.objects.get()
        caller = Person.objects.get(email="carol@client.example")
        assert (incident.short_description, incident.description) == (
            "Printer on floor 3 is jammed",
            "It jams on every page.",
        )
        assert (incident.caller_id, incident.opened_by_id, incident.contact_type) == (
            caller.pk,
            caller.pk,
            "email",
        )
        assert caller.display_name == "Carol Caller"
        entry = ActivityEntry.objects.get(record_id=incident.pk, verb="incident.created")
        assert (entry.source, entry.actor_person_id) == ("email", caller.pk)
    assert help_a.address == "help@acme.example"
    assert (message.status, message.reason) == ("processed", f"new incident {incident.number}")
    assert (message.result_type, message.result_id, message.result_number) == (
        "incident",
        incident.pk,
        "INC0000001",
    )
    assert (message.from_address, message.subject) == ("carol@client.example", "Printer on floor 3 is jammed")


def test_a_known_sender_is_matched_by_email_case_insensitively(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_a):
        technician = actor_in(tenant_a, tech_a).person
    process(tenant_a, stored(help_a, email_bytes(sender="Tech <TECH.A@Northwind.Example>")))

    with tenant_context(tenant_a):
        assert Incident.objects.get().caller_id == technician.pk  # type: ignore[union-attr]
        assert Person.objects.filter(email__iexact="tech.a@northwind.example").count() == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"In-Reply-To": "{reply}"},
        {"References": "<unrelated@client.example> <record.{id}@itsm.localhost>"},
        {"References": "<record.{id}@ITSM.localhost>", "In-Reply-To": "<other@client.example>"},
    ],
)
def test_a_reply_by_message_id_becomes_a_public_comment_by_the_sender(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress, headers: dict[str, str]
) -> None:
    with tenant_context(tenant_a):
        incident = incident_create(
            actor=actor_in(tenant_a, tech_a), short_description="VPN drops", caller=carol(tenant_a)
        )
    reply = reply_id(incident.pk)
    filled = {k: v.format(reply=reply, id=incident.pk) for k, v in headers.items()}
    body = "It works again, thanks.\n\nOn Mon, 3 Mar 2025 at 10:00, Service Desk <desk@itsm.localhost> wrote:\n> Please try again.\n> Regards\n"
    message = process(
        tenant_a, stored(help_a, email_bytes(subject="Re: your ticket", body=body, headers=filled))
    )

    with tenant_context(tenant_a):
        comment = Comment.objects.get()
        assert (comment.record_type, comment.record_id, comment.body) == (
            "incident",
            incident.pk,
            "It works again, thanks.",
        )
        assert comment.is_work_note is False
        assert comment.author == Person.objects.get(email="carol@client.example")
        assert Incident.objects.count() == 1
    assert (message.status, message.result_type, message.result_id, message.result_number) == (
        "processed",
        "incident",
        incident.pk,
        incident.number,
    )
    assert message.reason == f"reply: comment added to {incident.number}"


def test_a_reply_by_the_number_in_the_subject_becomes_a_comment(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_a):
        incident = incident_create(
            actor=actor_in(tenant_a, tech_a), short_description="VPN drops", caller=carol(tenant_a)
        )
    body = "Still broken.\n\n-----Original Message-----\nFrom: desk\nSent: Monday\n\nold text\n"
    process(tenant_a, stored(help_a, email_bytes(subject=f"RE: [{incident.number}] VPN drops", body=body)))
    process(tenant_a, stored(help_a, email_bytes(subject=f"AW: {incident.number.lower()} again", body="Hi")))

    with tenant_context(tenant_a):
        assert list(Comment.objects.values_list("record_id", "body")) == [
            (incident.pk, "Still broken."),
            (incident.pk, "Hi"),
        ]
        assert Incident.objects.count() == 1


def test_a_number_of_no_record_here_opens_a_new_incident(tenant_a: Tenant, help_a: InboundAddress) -> None:
    message = process(tenant_a, stored(help_a, email_bytes(subject="Re: [INC0000777] old ticket")))

    with tenant_context(tenant_a):
        assert list(Incident.objects.values_list("number", "short_description")) == [
            ("INC0000001", "Re: [INC0000777] old ticket")
        ]
        assert Comment.objects.count() == 0
    assert message.result_number == "INC0000001"


AUTOMATIC = [
    ({"Auto-Submitted": "auto-replied"}, {}, "automatic message: Auto-Submitted: auto-replied (RFC 3834)"),
    (
        {"Auto-Submitted": "auto-generated; owner-email=x@y"},
        {},
        "automatic message: Auto-Submitted: auto-generated (RFC 3834)",
    ),
    ({"X-Autoreply": "yes"}, {}, "automatic reply: X-Autoreply header"),
    ({"X-Autorespond": "Out of office"}, {}, "automatic reply: X-Autorespond header"),
    ({"Precedence": "bulk"}, {}, "automatic message: Precedence: bulk"),
    ({"Precedence": "junk"}, {}, "automatic message: Precedence: junk"),
    ({"Return-Path": "<>"}, {}, "bounce: empty Return-Path (RFC 5321)"),
    (
        {},
        {"subject": "Out of Office: back on Monday"},
        "automatic reply: subject 'Out of Office: back on Monday'",
    ),
    ({}, {"subject": "Automatic reply: Printer"}, "automatic reply: subject 'Automatic reply: Printer'"),
    ({}, {"sender": "MAILER-DAEMON@mx.client.example"}, "bounce: sent by mailer-daemon@mx.client.example"),
    ({}, {"sender": "postmaster@client.example"}, "bounce: sent by postmaster@client.example"),
]


@pytest.mark.parametrize(("headers", "fields", "reason"), AUTOMATIC)
def test_auto_replies_and_bounces_are_ignored_with_the_reason_and_create_nothing(
    tenant_a: Tenant, help_a: InboundAddress, headers: dict[str, str], fields: dict[str, Any], reason: str
) -> None:
    before = counts(tenant_a)
    message = process(tenant_a, stored(help_a, email_bytes(headers=headers, **fields)))

    assert (message.status, message.reason) == ("ignored", reason)
    assert (message.result_type, message.result_id) == ("", None)
    assert counts(tenant_a) == before


def test_auto_submitted_no_is_a_person_writing(tenant_a: Tenant, help_a: InboundAddress) -> None:
    message = process(tenant_a, stored(help_a, email_bytes(headers={"Auto-Submitted": "no"})))
    assert message.status == "processed"


def delivery_status_report() -> bytes:
    """A non-delivery report as MTAs send them (RFC 3464): multipart/report; report-type=delivery-status."""
    return (
        b"From: Mail Delivery System <bounces@mx.client.example>\r\n"
        b"To: help@acme.example\r\n"
        b"Subject: Your message could not be delivered\r\n"
        b"Message-ID: <dsn-1@mx.client.example>\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b1"\r\n\r\n'
        b"--b1\r\nContent-Type: text/plain\r\n\r\nDelivery to carol@gone.example failed.\r\n"
        b"--b1\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.client.example\r\n\r\nFinal-Recipient: rfc822; carol@gone.example\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n\r\n"
        b"--b1--\r\n"
    )


def test_a_delivery_status_bounce_is_ignored(tenant_a: Tenant, help_a: InboundAddress) -> None:
    before = counts(tenant_a)
    message = process(tenant_a, stored(help_a, delivery_status_report()))

    assert (message.status, message.reason) == (
        "ignored",
        "bounce or receipt: multipart/report; report-type=delivery-status (RFC 3464)",
    )
    assert counts(tenant_a) == before


def test_a_null_envelope_sender_is_a_bounce(tenant_a: Tenant, help_a: InboundAddress) -> None:
    message = process(tenant_a, stored(help_a, email_bytes(), envelope_sender=""))
    assert (message.status, message.reason) == ("ignored", "bounce: null envelope sender <> (RFC 5321)")


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"message_id": "<abc.123@itsm.localhost>"}, "loop: the Message-ID is our own (itsm.localhost)"),
        ({"headers": {"X-Loop": "itsm.localhost"}}, "loop: X-Loop names itsm.localhost"),
        ({"sender": "Desk <HELP@acme.example>"}, "loop: sent by an inbound address (help@acme.example)"),
    ],
)
def test_loops_are_ignored(
    tenant_a: Tenant, help_a: InboundAddress, fields: dict[str, Any], reason: str
) -> None:
    before = counts(tenant_a)
    message = process(tenant_a, stored(help_a, email_bytes(**fields)))

    assert (message.status, message.reason) == ("ignored", reason)
    assert counts(tenant_a) == before


def test_more_messages_than_the_limit_from_one_sender_are_ignored(
    tenant_a: Tenant, help_a: InboundAddress, settings: Any
) -> None:
    settings.MAILIN_SENDER_LIMIT = 2
    outcomes = [process(tenant_a, stored(help_a, email_bytes(subject=f"Alert {n}"))) for n in range(3)]
    other = process(tenant_a, stored(help_a, email_bytes(sender="dave@client.example")))

    assert [m.status for m in outcomes] == ["processed", "processed", "ignored"]
    assert (
        outcomes[2].reason
        == "rate limit: 2 earlier messages from carol@client.example within 10 minutes (limit 2)"
    )
    assert other.status == "processed"
    with tenant_context(tenant_a):
        assert Incident.objects.count() == 3


def test_an_html_only_body_becomes_safe_text(tenant_a: Tenant, help_a: InboundAddress) -> None:
    html = (
        "<html><head><style>p { color: red }</style><script>steal(document.cookie)</script></head>"
        "<body><p>Outlook <b>crashes</b> on start &amp; shows <i>0x80040154</i>.</p>"
        '<script type="text/javascript">alert("x")</script><img src="x" onerror="alert(1)">'
        '<p>See <a href="https://kb.client.example/42">the article</a>.</p></body></html>'
    )
    process(tenant_a, stored(help_a, email_bytes(body=None, html=html)))

    with tenant_context(tenant_a):
        description = Incident.objects.get().description
    assert description == (
        "Outlook crashes on start & shows 0x80040154.\n\nSee [the article](https://kb.client.example/42)."
    )


def test_attachments_are_kept_and_a_refused_one_is_reported(tenant_a: Tenant, help_a: InboundAddress) -> None:
    raw = email_bytes(
        attachments=[
            ("printer.log", b"jam at tray 2\n", "text/plain"),
            (
                "invoice.pdf",
                b"MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff" + b"\x00" * 64,
                "application/pdf",
            ),
        ]
    )
    message = process(tenant_a, stored(help_a, raw))

    with tenant_context(tenant_a):
        incident = Incident.objects.get()
        attachment = Attachment.objects.get()
        assert (attachment.record_id, attachment.file_name, attachment.size) == (
            incident.pk,
            "printer.log",
            14,
        )
    assert message.status == "processed"
    assert [e["file_name"] for e in message.attachment_errors] == ["invoice.pdf"]
    assert "not accepted" in message.attachment_errors[0]["message"]


def test_an_unreadable_message_is_kept_whole_and_failed(tenant_a: Tenant, help_a: InboundAddress) -> None:
    garbage = b"\x00\xff\xfe garbage that is no email at all \x89PNG\r\n\x1a\n" + bytes(range(256))
    before = counts(tenant_a)
    message = process(tenant_a, stored(help_a, garbage))

    assert (message.status, message.reason) == (
        "failed",
        "MessageUnreadable: no sender address could be read from the From header",
    )
    assert bytes(InboundMessage.objects.get(pk=message.pk).raw) == garbage
    assert counts(tenant_a) == before


def test_processing_twice_changes_nothing_the_second_time(tenant_a: Tenant, help_a: InboundAddress) -> None:
    message = stored(help_a, email_bytes())
    first = process(tenant_a, message)
    second = process(tenant_a, message)

    assert (first.status, second.status, second.result_id) == ("processed", "processed", first.result_id)
    with tenant_context(tenant_a):
        assert Incident.objects.count() == 1


def test_a_service_request_address_orders_its_catalog_item_for_the_sender(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        item = catalog_item_create(
            actor=actor, name="Mailbox access", category=catalog_category_create(actor=actor, name="Access")
        )
    address = address_for(
        tenant_a, tech_a, "access@acme.example", creates="service_request", catalog_item_id=item.pk
    )
    message = process(
        tenant_a, stored(address, email_bytes(subject="Need the finance mailbox", body="Please."))
    )

    with tenant_context(tenant_a):
        request = ServiceRequest.objects.get()
        caller = Person.objects.get(email="carol@client.example")
        assert request.requested_for_id == caller.pk
        assert list(Comment.objects.values_list("record_id", "body", "author_id")) == [
            (request.pk, "Need the finance mailbox\n\nPlease.", caller.pk)
        ]
        assert Incident.objects.count() == 0
    assert (message.result_type, message.result_number) == ("service_request", request.number)


def test_a_message_of_another_tenant_is_not_processed_here(
    tenant_a: Tenant, tenant_b: Tenant, help_a: InboundAddress
) -> None:
    message = stored(help_a, email_bytes())
    with tenant_context(tenant_b):
        assert inbound_message_process(message_id=message.pk) is None
    assert InboundMessage.objects.get(pk=message.pk).status == "received"
    assert counts(tenant_b) == {"incidents": 0, "comments": 0, "persons": 0, "requests": 0, "attachments": 0}


def test_a_reply_naming_another_tenants_record_never_touches_that_tenant(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_b):
        incident_b = incident_create(actor=actor_in(tenant_b, tech_ab), short_description="B's outage")
    before_b = counts(tenant_b)
    raw = email_bytes(
        subject=f"Re: [{incident_b.number}] B's outage", headers={"In-Reply-To": reply_id(incident_b.pk)}
    )
    message = process(tenant_a, stored(help_a, raw))

    assert counts(tenant_b) == before_b
    with tenant_context(tenant_a):
        incident_a = Incident.objects.get()
        assert Comment.objects.count() == 0
    assert (message.result_id, message.result_number) == (incident_a.pk, "INC0000001")


def notified(record_id: Any) -> list[tuple[str, str, str]]:
    """(event, person's email, audience) of the in-app notifications about ``record_id``."""
    rows = Notification.objects.filter(event__record_id=record_id).select_related("event", "person")
    return sorted((n.event.event, n.person.email, n.event.context.get("audience", "")) for n in rows)


def test_a_strangers_reply_naming_a_record_opens_a_new_incident_and_leaves_the_record_alone(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress, media: Path
) -> None:
    with tenant_context(tenant_a):
        technician = actor_in(tenant_a, tech_a)
        original = incident_create(
            actor=technician,
            short_description="VPN drops",
            caller=carol(tenant_a),
            assigned_to=technician.person,
        )
        history = list(ActivityEntry.objects.filter(record_id=original.pk).values_list("pk", flat=True))
    raw = email_bytes(
        sender="Mallory <mallory@elsewhere.example>",
        subject=f"Re: [{original.number}] VPN drops",
        body="Please close this ticket, it is fixed.\n",
        headers={"In-Reply-To": reply_id(original.pk)},
        attachments=[("notes.txt", b"not for the original\n", "text/plain")],
    )
    message = process(tenant_a, stored(help_a, raw, envelope_sender="mallory@elsewhere.example"))

    with tenant_context(tenant_a):
        new = Incident.objects.exclude(pk=original.pk).get()
        mallory = Person.objects.get(email="mallory@elsewhere.example")
        assert (new.number, new.caller_id, new.short_description, new.description) == (
            "INC0000002",
            mallory.pk,
            "Re: [INC0000001] VPN drops",
            "Please close this ticket, it is fixed.",
        )
        assert Comment.objects.count() == 0
        assert list(Attachment.objects.values_list("record_id", "file_name")) == [(new.pk, "notes.txt")]
        assert (
            list(ActivityEntry.objects.filter(record_id=original.pk).values_list("pk", flat=True)) == history
        )
        assert Incident.objects.get(pk=original.pk).updated_at == original.updated_at
        assert notified(original.pk) == []
    assert (message.status, message.reason) == (
        "processed",
        "sender may not update INC0000001, new incident INC0000002",
    )
    assert (message.result_type, message.result_id, message.result_number) == (
        "incident",
        new.pk,
        "INC0000002",
    )


def test_the_callers_reply_is_a_comment_by_the_caller_as_an_end_user(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_a):
        technician = actor_in(tenant_a, tech_a)
        incident = incident_create(
            actor=technician,
            short_description="VPN drops",
            caller=carol(tenant_a),
            assigned_to=technician.person,
        )
    raw = email_bytes(subject=f"RE: [{incident.number}] VPN drops", body="Still broken after the update.\n")
    message = process(tenant_a, stored(help_a, raw))

    with tenant_context(tenant_a):
        comment = Comment.objects.get()
        entry = ActivityEntry.objects.get(record_id=incident.pk, verb="comment.added")
        caller = carol(tenant_a)
        assert (comment.record_id, comment.author_id, comment.body, comment.is_work_note) == (
            incident.pk,
            caller.pk,
            "Still broken after the update.",
            False,
        )
        assert (entry.actor_person_id, entry.actor_user_id, entry.source) == (caller.pk, None, "email")
        # As the caller: the assignee is told (a technician's comment would tell the caller instead).
        assert notified(incident.pk) == [("record.commented", "tech.a@northwind.example", "console")]
        author = reply_actor(kind="incident", record=incident, person=caller)
        assert author == Actor(user_id=None, person=caller, role="end_user", source="email")
        assert Incident.objects.count() == 1
    assert (message.status, message.reason) == ("processed", f"reply: comment added to {incident.number}")


def test_the_assignees_reply_is_a_comment_by_the_technician(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_a):
        technician = actor_in(tenant_a, tech_a)
        incident = incident_create(
            actor=technician,
            short_description="VPN drops",
            caller=carol(tenant_a),
            assigned_to=technician.person,
        )
    raw = email_bytes(
        sender="Tech A <Tech.A@northwind.example>",
        subject="Re: VPN drops",
        body="Please restart the client and try again.\n\n> quoted notification\n",
        headers={"References": f"<record.{incident.pk}@itsm.localhost>"},
        attachments=[("steps.txt", b"1. restart\n", "text/plain")],
    )
    message = process(tenant_a, stored(help_a, raw, envelope_sender="tech.a@northwind.example"))

    with tenant_context(tenant_a):
        comment = Comment.objects.get()
        assert (comment.record_id, comment.author_id, comment.body) == (
            incident.pk,
            technician.person_id,
            "Please restart the client and try again.",
        )
        entry = ActivityEntry.objects.get(record_id=incident.pk, verb="comment.added")
        assert (entry.actor_person_id, entry.actor_user_id, entry.source) == (
            technician.person_id,
            tech_a.pk,
            "email",
        )
        attachment = Attachment.objects.get()
        assert (attachment.record_id, attachment.uploaded_by_id) == (incident.pk, technician.person_id)
        # As a technician: the caller is told, on the portal.
        assert notified(incident.pk) == [("record.commented", "carol@client.example", "portal")]
        assert technician.person is not None
        author = reply_actor(kind="incident", record=incident, person=technician.person)
        assert author == Actor(user_id=tech_a.pk, person=technician.person, role="technician", source="email")
        stranger = person_for_email(email="mallory@elsewhere.example")
        assert reply_actor(kind="incident", record=incident, person=stranger) is None
    assert (message.status, message.result_id) == ("processed", incident.pk)


def test_a_member_of_the_assignment_group_may_reply_and_a_member_of_another_group_may_not(
    tenant_a: Tenant, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_a):
        network, desk = Group.objects.create(name="Network"), Group.objects.create(name="Desk")
        nina = person_for_email(email="nina@northwind.example", display_name="Nina Network")
        dave = person_for_email(email="dave@northwind.example", display_name="Dave Desk")
        GroupMembership.objects.create(group=network, person=nina)
        GroupMembership.objects.create(group=desk, person=dave)
        incident = incident_create(
            actor=actor_in(tenant_a, make_user("lead@northwind.example")),
            short_description="Switch down",
            caller=carol(tenant_a),
            assignment_group=network,
        )
    subject = f"Re: [{incident.number}] Switch down"
    nina_says = process(
        tenant_a, stored(help_a, email_bytes(sender="nina@northwind.example", subject=subject))
    )
    dave_says = process(
        tenant_a, stored(help_a, email_bytes(sender="dave@northwind.example", subject=subject))
    )

    with tenant_context(tenant_a):
        assert list(Comment.objects.values_list("record_id", "author_id")) == [(incident.pk, nina.pk)]
        assert Incident.objects.get(number="INC0000002").caller_id == dave.pk
    assert nina_says.reason == f"reply: comment added to {incident.number}"
    assert dave_says.reason == f"sender may not update {incident.number}, new incident INC0000002"


def test_replies_to_a_service_request_from_the_requester_and_the_fulfilment_group_comment_others_do_not(
    tenant_a: Tenant, tech_a: User, help_a: InboundAddress
) -> None:
    with tenant_context(tenant_a):
        technician = actor_in(tenant_a, tech_a)
        fulfilment = Group.objects.create(name="Fulfilment")
        assert technician.person is not None
        GroupMembership.objects.create(group=fulfilment, person=technician.person)
        item = catalog_item_create(
            actor=technician,
            name="Monitor",
            category=catalog_category_create(actor=technician, name="Hardware"),
            fulfilment_group=fulfilment,
        )
        request = request_submit(
            actor=technician, items=[{"catalog_item": item}], requested_for=carol(tenant_a)
        )
    subject = f"Re: [{request.number}] Monitor"
    outcomes = [
        process(tenant_a, stored(help_a, email_bytes(sender=sender, subject=subject, body=f"{n}\n")))
        for n, sender in enumerate(
            ["carol@client.example", "tech.a@northwind.example", "mallory@elsewhere.example"], start=1
        )
    ]

    with tenant_context(tenant_a):
        authors = Comment.objects.filter(record_id=request.pk).values_list("author__email", "body")
        assert list(authors) == [("carol@client.example", "1"), ("tech.a@northwind.example", "2")]
        assert list(Incident.objects.values_list("number", "caller__email")) == [
            ("INC0000001", "mallory@elsewhere.example")
        ]
    assert [m.reason for m in outcomes] == [
        f"reply: comment added to {request.number}",
        f"reply: comment added to {request.number}",
        f"sender may not update {request.number}, new incident INC0000001",
    ]


def test_processing_that_fails_after_storing_attachments_leaves_no_file(
    tenant_a: Tenant, help_a: InboundAddress, media: Path
) -> None:
    # The outcome cannot be written (as when the database refuses the last statement): the work rolls
    # back after the attachments were stored, and their files must go with it.
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE mailin_inboundmessage ADD CONSTRAINT test_refuse_processed"
            " CHECK (status <> 'processed') NOT VALID"
        )
    raw = email_bytes(attachments=[("printer.log", b"jam at tray 2\n", "text/plain")])
    message = stored(help_a, raw)
    before = counts(tenant_a)

    with tenant_context(tenant_a), pytest.raises(IntegrityError, match="test_refuse_processed"):
        inbound_message_process(message_id=message.pk)

    assert [p for p in media.rglob("*") if p.is_file()] == []  # none under <schema>/attachments
    assert counts(tenant_a) == before
    assert InboundMessage.objects.get(pk=message.pk).status == "received"  # the sweep tries again
