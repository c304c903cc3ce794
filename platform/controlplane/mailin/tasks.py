"""Celery entry points of email in that run in public: the minute's sweep (beat) and one mailbox's poll.
Neither touches tenant data; processing is sent to each message's tenant by the services."""

from __future__ import annotations

from controlplane.celery import app

from . import services
from .models import InboundMailbox


@app.task(acks_late=True)
def mailin_sweep_task() -> int:
    """Beat entry, every minute: send one poll task per enabled IMAP mailbox of an active tenant, and
    re-enqueue (or fail) messages left unprocessed. Returns how many polls were sent."""
    mailboxes, _, _ = services.mailin_sweep()
    for mailbox_id in mailboxes:
        mailin_imap_poll_task.delay(mailbox_id=mailbox_id)
    return len(mailboxes)


@app.task(acks_late=True)
def mailin_imap_poll_task(*, mailbox_id: int) -> int:
    """Poll one IMAP mailbox (tolerates it being gone). Returns how many new messages were stored. Safe
    to run twice, also at once: a mailbox message is stored once per UIDVALIDITY:UID."""
    mailbox = InboundMailbox.objects.select_related("address__tenant").filter(pk=mailbox_id).first()
    if mailbox is None or not mailbox.enabled:
        return 0
    return services.mailbox_poll(mailbox=mailbox)
