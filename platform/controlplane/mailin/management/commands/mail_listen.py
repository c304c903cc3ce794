"""``manage.py mail_listen [--host H] [--port P]``: serve the inbound SMTP listener until stopped."""

from __future__ import annotations

import signal
import threading
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from controlplane.mailin.smtp import controller


class Command(BaseCommand):
    help = "Accept inbound mail for the tenants' inbound addresses over SMTP (aiosmtpd) until Ctrl-C."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default=settings.MAILIN_SMTP_HOST, help="interface (MAILIN_SMTP_HOST)")
        parser.add_argument(
            "--port", type=int, default=settings.MAILIN_SMTP_PORT, help="port (MAILIN_SMTP_PORT)"
        )

    def handle(self, *args: Any, host: str, port: int, **options: Any) -> None:
        stopped = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stopped.set())
        server = controller(host=host, port=port)
        server.start()
        self.stdout.write(f"Accepting inbound mail on {host}:{port} (Ctrl-C stops).")
        try:
            stopped.wait()
        finally:
            server.stop()
