"""Celery entry point of email processing. Runs in the tenant named in its message (sent from public by
controlplane.mailin with ``send_to_tenant``)."""

from __future__ import annotations

from controlplane.celery import app, require_tenant

from . import services


@app.task(acks_late=True)
def inbound_message_process_task(*, message_id: int) -> str | None:
    """Process stored inbound message ``message_id`` in this tenant; returns its status (None: not a
    message of this tenant). Safe to run twice: a message already handled is left alone."""
    require_tenant()
    message = services.inbound_message_process(message_id=message_id)
    return message.status if message is not None else None
