"""Building test emails and inbound addresses for the email-in tests."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.mailin.models import InboundAddress, InboundMessage
from controlplane.mailin.services import inbound_address_create, inbound_message_store
from tenants.models import Tenant


def email_bytes(
    *,
    sender: str = "Carol Caller <carol@client.example>",
    to: str = "help@acme.example",
    subject: str = "Printer on floor 3 is jammed",
    body: str | None = "It jams on every page.\n",
    html: str | None = None,
    headers: dict[str, str] | None = None,
    attachments: list[tuple[str, bytes, str]] = (),  # type: ignore[assignment]
    message_id: str | None = None,
) -> bytes:
    """An RFC 5322 message as bytes with CRLF line ends: text and/or HTML body, extra headers,
    attachments ``(file name, data, "maintype/subtype")``."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Message-ID"] = message_id or make_msgid(domain="client.example")
    for name, value in (headers or {}).items():
        message[name] = value
    if body is not None:
        message.set_content(body)
    if html is not None:
        if body is None:
            message.set_content(html, subtype="html")
        else:
            message.add_alternative(html, subtype="html")
    for file_name, data, content_type in attachments:
        maintype, subtype = content_type.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=file_name)
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))  # CRLF, as on the wire


def address_for(tenant: Tenant, user: User, address: str, **kwargs: Any) -> InboundAddress:
    """An inbound address of ``tenant`` made by technician ``user`` through the service."""
    with tenant_context(tenant):
        actor = actor_in(tenant, user)
    return inbound_address_create(actor=actor, tenant=tenant, address=address, **kwargs)


def stored(
    address: InboundAddress, raw: bytes, *, envelope_sender: str = "carol@client.example"
) -> InboundMessage:
    """Store ``raw`` as received over SMTP for ``address`` (processing is enqueued only on commit)."""
    message, created = inbound_message_store(
        raw=raw,
        via="smtp",
        address=address,
        envelope_sender=envelope_sender,
        envelope_recipients=[address.address],
    )
    assert created
    return message


def reply_id(record_id: uuid.UUID, domain: str = "itsm.localhost") -> str:
    """A Message-ID of one of our outbound emails about ``record_id`` (the threading contract)."""
    return f"<{uuid.uuid4().hex}.{record_id}@{domain}>"
