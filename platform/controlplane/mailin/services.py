"""Email in, control-plane writes: inbound addresses and mailboxes, storing received messages whole,
enqueuing their processing in the tenant, and polling IMAP mailboxes.

Storing comes first: a message is written (raw bytes, envelope, UTC time) in its own transaction before
anything parses it, and its processing is enqueued after commit with the tenant's schema named
explicitly (``send_to_tenant``; tenant-schemas-celery #132). A message that cannot be read is kept and
marked ``failed`` by processing, never dropped; ``mailin_sweep`` re-enqueues any message left
``received`` (a worker died) and fails it after MAX_ATTEMPTS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import imaplib
import logging
import ssl
import uuid
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import IntegrityError, transaction
from django.utils import timezone
from django_tenants.utils import tenant_context

from controlplane.celery import send_to_tenant
from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, NotFound, PermissionDenied
from modules.records.actor import Actor
from modules.records.services import activity_record
from tenants.models import Tenant

from .crypto import SecretUnreadable, secret_decrypt, secret_encrypt, secret_rotate
from .models import InboundAddress, InboundMailbox, InboundMessage

logger = logging.getLogger(__name__)

# Activity entries about a tenant's inbound addresses hang off this fixed id in the tenant's history.
MAILIN_SETTINGS_ID = uuid.uuid5(uuid.NAMESPACE_URL, "msp-itsm:mailin-settings")
MAX_ATTEMPTS = 3  # processing enqueued this many times without finishing: the message is failed
STALE_AFTER = dt.timedelta(minutes=10)  # a message still ``received`` this long after its last enqueue
IMAP_BATCH = 100  # at most this many messages per mailbox per poll
IMAP_TIMEOUT_SECONDS = 30


class AddressTaken(Conflict):
    slug = "address-taken"
    title = "This inbound address is already in use"


def _require_provider_staff(actor: Actor) -> None:
    """Inbound addresses are the provider's plumbing: its owners, admins and technicians with access to
    the tenant manage them (the routing middleware checked the access)."""
    if not actor.may(P.MAILBOX_MANAGE):
        raise PermissionDenied("only the provider's technicians and admins manage inbound addresses")


def _normalised_address(address: str, field: str = "address") -> str:
    value = address.strip().lower()
    try:
        EmailValidator()(value)
    except ValidationError as exc:
        raise InvalidInput(
            f"{address!r} is not an email address",
            errors=[{"field": field, "message": "not an email address"}],
        ) from exc
    return value


def _catalog_item_check(*, tenant: Tenant, actor: Actor, catalog_item_id: uuid.UUID | None) -> None:
    from modules.requests import selectors as request_selectors

    if catalog_item_id is None:
        raise InvalidInput(
            "a service request address needs a catalog item",
            errors=[{"field": "catalog_item_id", "message": "required for service_request"}],
        )
    with tenant_context(tenant):
        try:
            item = request_selectors.catalog_item_get(actor=actor, catalog_item_id=catalog_item_id)
        except NotFound:
            item = None
    if item is None or not item.active:
        raise InvalidInput(
            "no such active catalog item",
            errors=[{"field": "catalog_item_id", "message": "no such active item"}],
        )


def _log(*, tenant: Tenant, actor: Actor, verb: str, changes: dict[str, object]) -> None:
    with tenant_context(tenant):
        activity_record(
            actor=actor,
            verb=verb,
            record_type="mailin_settings",
            record_id=MAILIN_SETTINGS_ID,
            changes=changes,
        )


@transaction.atomic
def inbound_address_create(
    *,
    actor: Actor,
    tenant: Tenant,
    address: str,
    creates: str = InboundAddress.Creates.INCIDENT,
    catalog_item_id: uuid.UUID | None = None,
    mailbox: dict[str, Any] | None = None,
) -> InboundAddress:
    """Route mail for ``address`` (stored lower-case) to ``tenant``; new messages become ``creates``
    (incident, or service_request ordering the tenant's active catalog item ``catalog_item_id``).
    ``mailbox``: optional IMAP settings, the keyword arguments of ``inbound_mailbox_set``.

    Raises PermissionDenied (not provider staff), InvalidInput (not an address, unknown ``creates``,
    missing or unknown catalog item), AddressTaken (409, the address routes somewhere already). Logs
    ``inbound_address.created`` in the tenant's history.
    """
    _require_provider_staff(actor)
    value = _normalised_address(address)
    if creates not in InboundAddress.Creates.values:
        raise InvalidInput(
            f"unknown kind {creates!r}",
            errors=[{"field": "creates", "message": f"one of {', '.join(InboundAddress.Creates.values)}"}],
        )
    if creates == InboundAddress.Creates.SERVICE_REQUEST:
        _catalog_item_check(tenant=tenant, actor=actor, catalog_item_id=catalog_item_id)
    else:
        catalog_item_id = None
    if InboundAddress.objects.filter(address=value).exists():
        raise AddressTaken(f"{value} is already an inbound address")
    try:
        with transaction.atomic():
            row = InboundAddress.objects.create(
                tenant=tenant,
                address=value,
                creates=creates,
                catalog_item_id=catalog_item_id,
                created_by_user_id=actor.user_id,
            )
    except IntegrityError as exc:  # created concurrently
        raise AddressTaken(f"{value} is already an inbound address") from exc
    _log(
        tenant=tenant,
        actor=actor,
        verb="inbound_address.created",
        changes={"address": [None, value], "creates": [None, creates]},
    )
    if mailbox is not None:
        inbound_mailbox_set(actor=actor, address=row, **mailbox)
    return row


@transaction.atomic
def inbound_address_delete(*, actor: Actor, address: InboundAddress) -> None:
    """Stop routing ``address`` (its mailbox goes with it; stored messages stay, without the link).
    Raises PermissionDenied (not provider staff). Logs ``inbound_address.deleted`` in the tenant."""
    _require_provider_staff(actor)
    tenant = address.tenant
    value = address.address
    address.delete()
    _log(tenant=tenant, actor=actor, verb="inbound_address.deleted", changes={"address": [value, None]})


@transaction.atomic
def inbound_mailbox_set(
    *,
    actor: Actor,
    address: InboundAddress,
    host: str,
    username: str,
    password: str,
    port: int = 993,
    security: str = InboundMailbox.Security.TLS,
    folder: str = "INBOX",
    enabled: bool = True,
) -> InboundMailbox:
    """Create or replace the IMAP mailbox polled for ``address`` (port 1-65535; security tls, starttls or
    none). The password is stored encrypted (``crypto.secret_encrypt``). Raises PermissionDenied (not
    provider staff) and InvalidInput naming each bad field. Logs ``inbound_mailbox.set`` (never the
    password) in the tenant."""
    _require_provider_staff(actor)
    errors = []
    if not host.strip():
        errors.append({"field": "host", "message": "required"})
    if not username:
        errors.append({"field": "username", "message": "required"})
    if not 1 <= port <= 65535:
        errors.append({"field": "port", "message": "1-65535"})
    if security not in InboundMailbox.Security.values:
        errors.append({"field": "security", "message": f"one of {', '.join(InboundMailbox.Security.values)}"})
    if not folder.strip():
        errors.append({"field": "folder", "message": "required"})
    if errors:
        raise InvalidInput("the mailbox settings are invalid", errors=errors)
    mailbox, _ = InboundMailbox.objects.update_or_create(
        address=address,
        defaults={
            "host": host.strip(),
            "port": port,
            "security": security,
            "username": username,
            "password_encrypted": secret_encrypt(password),
            "folder": folder.strip(),
            "enabled": enabled,
            "last_error": "",
        },
    )
    _log(
        tenant=address.tenant,
        actor=actor,
        verb="inbound_mailbox.set",
        changes={"address": address.address, "host": mailbox.host, "port": port, "username": username},
    )
    return mailbox


@transaction.atomic
def inbound_mailbox_rekey() -> tuple[int, list[int]]:
    """Re-encrypt every stored IMAP password under the current key (``MAILIN_SECRET_KEY``; the step of a
    key rotation after the old secret was put in the fallbacks, decision 0009). Rows are locked while
    they change; running it twice is harmless. Returns (how many were re-encrypted, the ids of mailboxes
    whose password no configured key decrypts: those stay as they are and need their password set
    again)."""
    rotated, unreadable = 0, []
    for mailbox in InboundMailbox.objects.select_for_update().order_by("pk"):
        try:
            token = secret_rotate(mailbox.password_encrypted)
        except SecretUnreadable:
            unreadable.append(mailbox.pk)
            continue
        InboundMailbox.objects.filter(pk=mailbox.pk).update(password_encrypted=token)
        rotated += 1
    return rotated, unreadable


def _enqueue(message: InboundMessage) -> None:
    """Send the tenant's processing task for ``message`` after commit, naming the tenant's schema."""
    from modules.mailin.tasks import inbound_message_process_task

    tenant = message.tenant
    if tenant is None:
        return
    schema, message_id = tenant.schema_name, message.pk
    transaction.on_commit(
        lambda: send_to_tenant(inbound_message_process_task, schema_name=schema, message_id=message_id)
    )


@transaction.atomic
def inbound_message_store(
    *,
    raw: bytes,
    via: str,
    address: InboundAddress,
    envelope_sender: str = "",
    envelope_recipients: Iterable[str] = (),
    mailbox: InboundMailbox | None = None,
    source_key: str = "",
) -> tuple[InboundMessage, bool]:
    """Store one received message whole for ``address``'s tenant and enqueue its processing on commit.

    ``raw``: the bytes as received. ``source_key`` (IMAP: ``<UIDVALIDITY>:<UID>``) with ``mailbox``
    dedupes under a unique constraint: storing the same mailbox message again returns the stored row and
    False (re-enqueuing it if it is still ``received``, which processing tolerates). Returns (message,
    created).
    """
    row = InboundMessage(
        tenant_id=address.tenant_id,
        address=address,
        mailbox=mailbox,
        via=via,
        raw=raw,
        size=len(raw),
        envelope_sender=envelope_sender[:512],
        envelope_recipients=sorted({r.lower() for r in envelope_recipients}),
        source_key=source_key,
        attempts=1,
    )
    try:
        with transaction.atomic():
            row.save()
    except IntegrityError:
        if mailbox is None or not source_key:
            raise
        existing = InboundMessage.objects.select_related("tenant").get(mailbox=mailbox, source_key=source_key)
        if existing.status == InboundMessage.Status.RECEIVED:
            _enqueue(existing)  # its first enqueue may have been lost with the crash
        return existing, False
    row.tenant = address.tenant
    _enqueue(row)
    logger.info(
        "stored inbound message %s (%s bytes, sha256 %s) for %s",
        row.pk,
        row.size,
        hashlib.sha256(raw).hexdigest()[:16],
        address.address,
    )
    return row, True


def smtp_message_store(
    *, raw: bytes, envelope_sender: str, recipients: Iterable[str]
) -> list[InboundMessage]:
    """Store a message the SMTP listener accepted: one row per tenant among ``recipients`` (the RCPT TO
    addresses, each already checked to be an inbound address), with that tenant's recipients as its
    envelope. Recipients no longer known are skipped. Returns the rows, in address order."""
    wanted = sorted({r.strip().lower() for r in recipients})
    by_tenant: dict[int, list[InboundAddress]] = {}
    for row in InboundAddress.objects.select_related("tenant").filter(address__in=wanted).order_by("address"):
        by_tenant.setdefault(row.tenant_id, []).append(row)
    stored = []
    with transaction.atomic():
        for addresses in by_tenant.values():
            message, _ = inbound_message_store(
                raw=raw,
                via=InboundMessage.Via.SMTP,
                address=addresses[0],
                envelope_sender=envelope_sender,
                envelope_recipients=[a.address for a in addresses],
            )
            stored.append(message)
    return stored


def _imap_connect(mailbox: InboundMailbox) -> imaplib.IMAP4:
    if mailbox.security == InboundMailbox.Security.TLS:
        return imaplib.IMAP4_SSL(
            mailbox.host, mailbox.port, ssl_context=ssl.create_default_context(), timeout=IMAP_TIMEOUT_SECONDS
        )
    client = imaplib.IMAP4(mailbox.host, mailbox.port, timeout=IMAP_TIMEOUT_SECONDS)
    if mailbox.security == InboundMailbox.Security.STARTTLS:
        client.starttls(ssl_context=ssl.create_default_context())
    return client


def _quoted(folder: str) -> str:
    return '"' + folder.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _fetched_bytes(data: list[object]) -> bytes | None:
    for item in data:
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes):
            return item[1]
    return None


def mailbox_poll(*, mailbox: InboundMailbox) -> int:
    """Fetch the unseen messages of one IMAP mailbox (RFC 3501, stdlib ``imaplib``), store each whole,
    then flag it ``\\Seen``; returns how many new messages were stored.

    Each message is stored (and committed) before it is flagged, and its row is unique per mailbox and
    ``UIDVALIDITY:UID``: a poll that dies between the two stores nothing twice the next time. Fetching
    uses ``BODY.PEEK[]``, which does not set ``\\Seen`` itself. At most IMAP_BATCH messages per poll.
    A connection or login error, or a password no configured key decrypts, is kept in ``last_error``
    (and logged), not raised.
    """
    address = mailbox.address
    stored = 0
    error = ""
    try:
        client = _imap_connect(mailbox)
        try:
            client.login(mailbox.username, secret_decrypt(mailbox.password_encrypted))
            status, _ = client.select(_quoted(mailbox.folder))
            if status != "OK":
                raise imaplib.IMAP4.error(f"cannot select folder {mailbox.folder!r}")
            validity = (client.response("UIDVALIDITY")[1] or [b"0"])[0]
            uid_validity = validity.decode() if isinstance(validity, bytes) else "0"
            status, found = client.uid("SEARCH", "UNSEEN")
            uids = found[0].split()[:IMAP_BATCH] if status == "OK" and found and found[0] else []
            for uid in uids:
                status, data = client.uid("FETCH", uid, "(BODY.PEEK[])")
                raw = _fetched_bytes(list(data)) if status == "OK" else None
                if raw is None:
                    continue  # expunged meanwhile
                _, created = inbound_message_store(
                    raw=raw,
                    via=InboundMessage.Via.IMAP,
                    address=address,
                    envelope_recipients=[address.address],
                    mailbox=mailbox,
                    source_key=f"{uid_validity}:{uid.decode()}",
                )
                stored += int(created)
                client.uid("STORE", uid, "+FLAGS", "(\\Seen)")
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()
    except (imaplib.IMAP4.error, OSError, ssl.SSLError, SecretUnreadable) as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        logger.warning("polling mailbox %s for %s failed: %s", mailbox.pk, address.address, error)
    InboundMailbox.objects.filter(pk=mailbox.pk).update(last_polled_at=timezone.now(), last_error=error)
    return stored


def mailin_sweep(*, now: dt.datetime | None = None) -> tuple[list[int], int, int]:
    """The minute's work in public: which mailboxes to poll, and messages left ``received``.

    Returns (ids of the enabled mailboxes of active tenants, messages re-enqueued, messages failed).
    A message still ``received`` STALE_AFTER after its enqueue is enqueued again (processing is safe to
    run twice) until it has been enqueued MAX_ATTEMPTS times; then it is failed with the reason, as is a
    message whose tenant is gone. ``now`` is UTC.
    """
    now = now or timezone.now()
    mailboxes = list(
        InboundMailbox.objects.filter(enabled=True, address__tenant__status=Tenant.Status.ACTIVE)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    requeued = failed = 0
    stale = InboundMessage.objects.filter(
        status=InboundMessage.Status.RECEIVED, enqueued_at__lt=now - STALE_AFTER
    )
    for message_id in stale.order_by("pk").values_list("pk", flat=True)[:1000]:
        with transaction.atomic():
            message = (
                InboundMessage.objects.select_for_update(skip_locked=True, of=("self",))
                .select_related("tenant")
                .filter(pk=message_id, status=InboundMessage.Status.RECEIVED)
                .first()
            )
            if message is None:
                continue
            if message.tenant is None or message.attempts >= MAX_ATTEMPTS:
                message.status = InboundMessage.Status.FAILED
                message.reason = (
                    "the message's tenant no longer exists"
                    if message.tenant is None
                    else f"processing did not finish after {message.attempts} attempts"
                )
                message.processed_at = now
                message.save(update_fields=["status", "reason", "processed_at"])
                failed += 1
                continue
            message.attempts += 1
            message.enqueued_at = now
            message.save(update_fields=["attempts", "enqueued_at"])
            _enqueue(message)
            requeued += 1
    return mailboxes, requeued, failed
