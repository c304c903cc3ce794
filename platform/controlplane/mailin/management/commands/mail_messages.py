"""``manage.py mail_messages``: list stored inbound messages (by default the failed ones), or write one
message's raw bytes to stdout with ``--raw ID`` (e.g. ``> message.eml``) to see why it failed."""

from __future__ import annotations

import sys
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from controlplane.mailin.models import InboundMessage
from controlplane.mailin.selectors import inbound_message_problems


class Command(BaseCommand):
    help = "List failed (or --status) inbound messages of every tenant, or dump one with --raw ID."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status", action="append", choices=InboundMessage.Status.values, help="default: failed"
        )
        parser.add_argument("--tenant", help="a tenant slug")
        parser.add_argument("--limit", type=int, default=100)
        parser.add_argument("--raw", type=int, metavar="ID", help="write message ID's raw bytes to stdout")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["raw"] is not None:
            message = InboundMessage.objects.filter(pk=options["raw"]).first()
            if message is None:
                raise CommandError(f"no inbound message {options['raw']}")
            sys.stdout.buffer.write(bytes(message.raw))
            sys.stdout.flush()
            return
        rows = inbound_message_problems(
            statuses=options["status"] or [InboundMessage.Status.FAILED],
            tenant_slug=options["tenant"],
            limit=options["limit"],
        )
        for m in rows:
            tenant = m.tenant.slug if m.tenant is not None else "-"
            self.stdout.write(
                f"{m.pk}\t{m.received_at.isoformat()}\t{tenant}\t{m.via}\t{m.status}\t"
                f"{m.from_address or m.envelope_sender or '-'}\t{m.size}\t{m.reason}"
            )
