"""Email in, tenant plane: turn one stored InboundMessage into a new incident or service request, or a
public comment on the record it answers, or ignore it with the reason.

Order of the checks (each from a source named in ``parsing``):
1. the message must be readable (a sender address in From), else ``failed`` with the error;
2. automatic messages (auto-replies, bounces, read receipts; RFC 3834, RFC 3464, RFC 5321) are ignored;
3. loops are ignored: our own Message-ID domain, an ``X-Loop`` header naming it, a sender that is one
   of the platform's inbound addresses, and more than MAILIN_SENDER_LIMIT messages from one sender to
   this tenant within MAILIN_SENDER_WINDOW_MINUTES;
4. a reply (our Message-ID in In-Reply-To/References, else a record number in the subject, of a record
   of this tenant) becomes a public comment by the sender, quoted history stripped, but only when the
   sender may update that record (``reply_actor``): as its caller / requested-for (the record's own
   end-user selector finds it for them; the comment is theirs as an end user), or as its assignee or a
   member of its assignment group (for a request: of one of its fulfilment tasks; the comment is theirs
   as a technician). Anyone else's reply does not touch the record: it becomes a new record as in 5,
   with the refusal in the reason, as ServiceNow's inbound actions do when the sender does not match;
5. anything else becomes what the address creates (ServiceNow's inbound email actions do the same:
   a new incident, caller = the sender, contact type email; or a request for a catalog item).
Attachments go through the records' attachment rules; a refused file is listed on the message and the
rest is still processed. Everything happens in one transaction with the message's status update, and a
message already processed, ignored or failed is left alone, so the task is safe to run twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.db import DatabaseError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from controlplane.mailin.models import InboundAddress, InboundMessage
from controlplane.problems import DomainError, NotFound
from modules.incidents import selectors as incident_selectors
from modules.incidents import services as incident_services
from modules.people.models import Person
from modules.people.services import person_for_email
from modules.records.actor import Actor
from modules.records.services import attachment_add, attachment_files_atomic
from modules.requests import selectors as request_selectors
from modules.requests import services as request_services

from .parsing import (
    ParsedEmail,
    automatic_reason,
    our_message_id,
    parse,
    record_ids_in,
    strip_quoted,
    subject_numbers,
)

logger = logging.getLogger(__name__)
S = InboundMessage.Status


@dataclass(frozen=True)
class Replyable:
    """A record kind an email reply may comment on: fetch by id and by number (as the given actor, so an
    end user's actor finds only what that end user may see), comment, and ``works_on(person, record)``:
    whether the person is the record's assignee or a member of its assignment group."""

    prefix: str
    get: Callable[[Actor, uuid.UUID], Any]
    get_by_number: Callable[[Actor, str], Any]
    comment: Callable[[Actor, Any, str], Any]
    works_on: Callable[[Person, Any], bool]


def _incident_works_on(person: Person, incident: Any) -> bool:
    """The person is the incident's assignee or a member of its assignment group."""
    if incident.assigned_to_id == person.pk:
        return True
    group_id = incident.assignment_group_id
    return group_id is not None and person.groups.filter(pk=group_id).exists()


def _request_works_on(person: Person, request: Any) -> bool:
    """The person is the assignee of one of the request's fulfilment tasks or a member of one's group
    (a service request has no assignee of its own; its tasks are worked, as ServiceNow's sc_task)."""
    tasks = request_selectors.task_list(actor=Actor.system(source="email"), request=request)
    return tasks.filter(Q(assigned_to_id=person.pk) | Q(assignment_group__in=person.groups.all())).exists()


REPLYABLE: dict[str, Replyable] = {
    "incident": Replyable(
        prefix="INC",
        get=lambda actor, pk: incident_selectors.incident_get(actor=actor, incident_id=pk),
        get_by_number=lambda actor, n: incident_selectors.incident_get_by_number(actor=actor, number=n),
        comment=lambda actor, r, body: incident_services.incident_comment(actor=actor, incident=r, body=body),
        works_on=_incident_works_on,
    ),
    "service_request": Replyable(
        prefix="REQ",
        get=lambda actor, pk: request_selectors.service_request_get(actor=actor, service_request_id=pk),
        get_by_number=lambda actor, n: request_selectors.service_request_get_by_number(actor=actor, number=n),
        comment=lambda actor, r, body: request_services.request_comment(actor=actor, request=r, body=body),
        works_on=_request_works_on,
    ),
}


def _reply_targets(parsed: ParsedEmail) -> Iterator[tuple[str, Any]]:
    """The records of this tenant that ``parsed`` answers, best first: by our Message-IDs, then by the
    numbers in the subject. Another tenant's id or number finds nothing here (each lookup runs in this
    schema). The lookup itself is the system's; ``reply_actor`` decides whether the sender may write."""
    system = Actor.system(source="email")
    for record_id in record_ids_in(parsed.thread_ids, domain=settings.EMAIL_MESSAGE_DOMAIN):
        for kind, replyable in REPLYABLE.items():
            try:
                yield kind, replyable.get(system, record_id)
            except NotFound:
                continue
    by_prefix = {r.prefix: (kind, r) for kind, r in REPLYABLE.items()}
    for number in subject_numbers(parsed.subject, tuple(by_prefix)):
        kind, replyable = next((v for p, v in by_prefix.items() if number.startswith(p)))
        try:
            yield kind, replyable.get_by_number(system, number)
        except NotFound:
            continue


def reply_actor(*, kind: str, record: Any, person: Person) -> Actor | None:
    """Who ``person`` (the sender of an email reply) is on ``record`` (an incident or service request of
    this tenant, ``kind`` a key of REPLYABLE), as the actor their comment is written with, or None when
    they may not update it.

    - The record's own end-user selector (``incident_get`` / ``service_request_get``) finds it for an
      ``end_user`` actor of the person: the caller of an incident; the requested-for, opener or an
      approver of a request. The actor is that end user (role ``end_user``, source ``email``), so the
      history and notifications treat the comment as the caller's.
    - Else the person is the record's assignee or a member of its assignment group (``works_on``;
      technicians answering a notification by email): a technician actor of the person (role
      ``technician``, source ``email``), never the system.
    - Else None: the message must not touch the record. ServiceNow's inbound actions likewise update a
      record only for a matching sender and otherwise open a new one.

    The sender is who the From header names; like every email-to-ticket system this trusts From (the
    MTA's SPF/DKIM/DMARC checks are what stops forged senders; decision 0009)."""
    replyable = REPLYABLE[kind]
    end_user = Actor(user_id=person.user_id, person=person, role="end_user", source="email")
    try:
        replyable.get(end_user, record.pk)
        return end_user
    except NotFound:
        pass
    if replyable.works_on(person, record):
        return Actor(user_id=person.user_id, person=person, role="technician", source="email")
    return None


def _loop_reason(message: InboundMessage, parsed: ParsedEmail) -> str:
    domain = settings.EMAIL_MESSAGE_DOMAIN
    if parsed.message_id and our_message_id(parsed.message_id, domain=domain):
        return f"loop: the Message-ID is our own ({domain})"
    loop_values = [str(v).lower() for v in parsed.message.get_all("X-Loop", [])]
    if any(domain.lower() in value for value in loop_values):
        return f"loop: X-Loop names {domain}"
    if InboundAddress.objects.filter(address=parsed.from_address).exists():
        return f"loop: sent by an inbound address ({parsed.from_address})"
    window = dt.timedelta(minutes=settings.MAILIN_SENDER_WINDOW_MINUTES)
    recent = (
        InboundMessage.objects.filter(
            tenant=message.tenant,
            from_address=parsed.from_address,
            received_at__gte=message.received_at - window,
            received_at__lte=message.received_at,
        )
        .exclude(pk=message.pk)
        .count()
    )
    if recent >= settings.MAILIN_SENDER_LIMIT:
        return (
            f"rate limit: {recent} earlier messages from {parsed.from_address} within "
            f"{settings.MAILIN_SENDER_WINDOW_MINUTES} minutes (limit {settings.MAILIN_SENDER_LIMIT})"
        )
    return ""


def _attach(
    message: InboundMessage, parsed: ParsedEmail, actor: Actor, record_type: str, record_id: uuid.UUID
) -> None:
    """Attach every file through ``attachment_add``; a refused one (type, size, count) is listed in
    ``message.attachment_errors`` and the others are still kept."""
    errors = []
    for attachment in parsed.attachments:
        try:
            attachment_add(
                actor=actor,
                record_type=record_type,
                record_id=record_id,
                upload=ContentFile(attachment.data, name=attachment.file_name),
            )
        except DomainError as exc:
            errors.append({"file_name": attachment.file_name, "message": exc.detail})
    message.attachment_errors = errors


def _create(message: InboundMessage, parsed: ParsedEmail, actor: Actor, caller: Person) -> tuple[str, Any]:
    address = message.address
    subject = parsed.subject or f"Email from {parsed.from_address}"
    if address is not None and address.creates == InboundAddress.Creates.SERVICE_REQUEST:
        request = request_services.request_submit(
            actor=actor, items=[{"catalog_item": address.catalog_item_id}], requested_for=caller
        )
        request_services.request_comment(actor=actor, request=request, body=f"{subject}\n\n{parsed.text}")
        return "service_request", request
    incident = incident_services.incident_create(
        actor=actor,
        short_description=subject[:160],
        description=parsed.text,
        caller=caller,
        contact_type="email",
    )
    return "incident", incident


def _handle(message: InboundMessage) -> None:
    """Decide and write; sets the outcome fields on ``message`` (saved by the caller)."""
    parsed = parse(bytes(message.raw))
    message.from_address = parsed.from_address[:254]
    message.subject = parsed.subject[:300]
    message.message_id = parsed.message_id[:998]
    null_sender = message.via == InboundMessage.Via.SMTP and message.envelope_sender in ("", "<>")
    reason = automatic_reason(parsed, null_envelope_sender=null_sender) or _loop_reason(message, parsed)
    if reason:
        message.status, message.reason = S.IGNORED, reason
        return
    caller = person_for_email(email=parsed.from_address, display_name=parsed.from_name)
    intake = Actor(user_id=caller.user_id, person=caller, role="system", source="email")
    refused = None
    for kind, record in _reply_targets(parsed):
        author = reply_actor(kind=kind, record=record, person=caller)
        if author is None:
            refused = refused or record
            continue
        body = strip_quoted(parsed.text)
        if not body and not parsed.attachments:
            message.status, message.reason = S.IGNORED, f"an empty reply to {record.number}"
            return
        if body:
            REPLYABLE[kind].comment(author, record, body)
        message.reason = f"reply: comment added to {record.number}"
        _attach(message, parsed, author, kind, record.pk)
        break
    else:
        # A new record, by the email intake (the system, as the address's rule says) for the sender.
        kind, record = _create(message, parsed, intake, caller)
        created = f"new {kind.replace('_', ' ')} {record.number}"
        message.reason = f"sender may not update {refused.number}, {created}" if refused else created
        _attach(message, parsed, intake, kind, record.pk)
    message.status = S.PROCESSED
    message.result_type, message.result_id, message.result_number = kind, record.pk, record.number


def _locked(message_id: int) -> InboundMessage | None:
    """The message, locked, if it belongs to the tenant this connection is in (else None)."""
    schema = getattr(connection, "schema_name", "public")
    return (
        InboundMessage.objects.select_for_update(of=("self",))
        .select_related("address")
        .filter(pk=message_id, tenant__schema_name=schema)
        .first()
    )


def inbound_message_process(*, message_id: int, now: dt.datetime | None = None) -> InboundMessage | None:
    """Process stored message ``message_id`` in the current tenant (see the module docstring).

    Returns the message with its outcome (status processed, ignored or failed; ``reason``; the
    resulting record's type, id and number), or None when no such message belongs to this tenant. A
    message no longer ``received`` is returned untouched (safe to run twice; the row lock serialises two
    runs at once). Database errors propagate (the message stays ``received`` and the sweep retries it);
    any other error (unreadable message, a refused write such as a catalog item with required answers)
    rolls the work back and marks the message ``failed`` with the error, in its own transaction. Either
    way no attachment file stored by the rolled-back work stays on disk (``attachment_files_atomic``).
    """
    now = now or timezone.now()
    try:
        with attachment_files_atomic():  # a rollback removes the attachment files stored meanwhile
            message = _locked(message_id)
            if message is None or message.status != S.RECEIVED:
                return message
            _handle(message)
            message.processed_at = now
            message.save()
            return message
    except DatabaseError:
        raise
    except Exception as exc:  # anything else fails the message, which stays stored whole
        error = exc.detail if isinstance(exc, DomainError) else str(exc)
        logger.warning("inbound message %s failed: %s: %s", message_id, type(exc).__name__, error)
        with transaction.atomic():
            message = _locked(message_id)
            if message is None or message.status != S.RECEIVED:
                return message
            message.status = S.FAILED
            message.reason = f"{type(exc).__name__}: {error}"[:5000]
            message.processed_at = now
            message.save(update_fields=["status", "reason", "processed_at"])
            return message
