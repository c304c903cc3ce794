"""The SMTP listener the provider's MTA delivers inbound mail to (aiosmtpd; ``manage.py mail_listen``).

RCPT TO is accepted only for inbound addresses of active tenants; anything else gets ``550 5.1.1`` so
the MTA bounces it to the sender (RFC 5321 section 3.3). DATA stores the message whole and answers 250
only after the row is committed; a storage failure answers ``451 4.3.0`` so the MTA keeps the message and
retries (RFC 5321 section 4.2.5): a message is never lost between the MTA and us.

The handler's hooks run in aiosmtpd's event loop; the database work runs in a worker thread
(``sync_to_async``), with Django's usual connection housekeeping around it.
"""

from __future__ import annotations

import logging
from typing import Any

from aiosmtpd.controller import Controller
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections

from tenants.models import Tenant

from . import services
from .models import InboundAddress

logger = logging.getLogger(__name__)


def _known(address: str) -> bool:
    close_old_connections()
    try:
        return InboundAddress.objects.filter(
            address=address.strip().lower(), tenant__status=Tenant.Status.ACTIVE
        ).exists()
    finally:
        close_old_connections()


def _store(raw: bytes, sender: str, recipients: list[str]) -> list[int]:
    close_old_connections()
    try:
        return [
            m.pk for m in services.smtp_message_store(raw=raw, envelope_sender=sender, recipients=recipients)
        ]
    finally:
        close_old_connections()


class InboundHandler:
    """aiosmtpd handler: RCPT checks the address, DATA stores the message."""

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        try:
            known = await sync_to_async(_known, thread_sensitive=False)(address)
        except Exception:
            logger.exception("checking inbound address %s failed", address)
            return "451 4.3.0 Temporary failure, try again later"
        if not known:
            return f"550 5.1.1 <{address}>: no such inbound address"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", errors="surrogateescape")
        sender = "" if envelope.mail_from in (None, "", "<>") else str(envelope.mail_from)  # <>: null sender
        try:
            stored = await sync_to_async(_store, thread_sensitive=False)(
                bytes(raw), sender, list(envelope.rcpt_tos)
            )
        except Exception:
            logger.exception("storing a message from %s failed", envelope.mail_from)
            return "451 4.3.0 Could not store the message, try again later"
        if not stored:
            return "550 5.1.1 No inbound address left among the recipients"
        return f"250 2.0.0 Stored as {','.join(str(pk) for pk in stored)}"


def controller(*, host: str | None = None, port: int | None = None) -> Controller:
    """An aiosmtpd Controller for InboundHandler on ``host``:``port`` (defaults MAILIN_SMTP_HOST and
    MAILIN_SMTP_PORT, 127.0.0.1:2525), accepting messages up to MAILIN_MAX_MESSAGE_BYTES (larger ones get
    aiosmtpd's 552) and UTF-8 addresses (SMTPUTF8, RFC 6531). Call ``start()`` and ``stop()``; aiosmtpd
    cannot take port 0, so tests pick a free port first."""
    return Controller(
        InboundHandler(),
        hostname=host or settings.MAILIN_SMTP_HOST,
        port=port or settings.MAILIN_SMTP_PORT,
        data_size_limit=settings.MAILIN_MAX_MESSAGE_BYTES,
        enable_SMTPUTF8=True,
        ident="msp-itsm mail-in",
    )
