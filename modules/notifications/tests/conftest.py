"""Real peers for notification tests: an SMTP server (aiosmtpd) and an HTTP server receiving webhooks,
each on a free port of 127.0.0.1; a tenant committed for real (for workers and concurrent connections);
the task messages a test publishes to the real broker."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from celery.signals import before_task_publish
from django.db import connection
from psycopg import sql

from controlplane.celery import app
from controlplane.providers.models import Provider
from tenants.models import Tenant
from tenants.services import tenant_provision


def free_port() -> int:
    """A port nobody listens on right now (aiosmtpd cannot take port 0)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Mailbox:
    """Every message the SMTP server accepted, parsed, with its envelope recipients."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.recipients: list[list[str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = message_from_bytes(envelope.content, policy=policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        self.recipients.append(list(envelope.rcpt_tos))
        return "250 Message accepted"

    @staticmethod
    def text(message: EmailMessage) -> str:
        """The text/plain body with line ends as "\n" (SMTP sends CRLF)."""
        body = message.get_body(preferencelist=("plain",))
        return body.get_content().replace("\r\n", "\n") if body is not None else ""

    @staticmethod
    def html(message: EmailMessage) -> str:
        body = message.get_body(preferencelist=("html",))
        return body.get_content().replace("\r\n", "\n") if body is not None else ""


@pytest.fixture
def smtp(settings: Any) -> Iterator[Mailbox]:
    """A real SMTP server; Django's SMTP backend pointed at it."""
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_USE_TLS = "127.0.0.1", port, False
    settings.DEFAULT_FROM_EMAIL = "desk@northwind.example"
    try:
        yield mailbox
    finally:
        controller.stop()


class Receiver:
    """A webhook receiver: answers each POST with the next status of ``statuses`` (the last one
    repeats) and keeps every request's path, headers and raw body."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.requests: list[dict[str, Any]] = []
        self.url = ""

    def answer(self) -> int:
        index = min(len(self.requests) - 1, len(self.statuses) - 1)
        return self.statuses[index]

    def bodies(self) -> list[Any]:
        return [json.loads(r["body"]) for r in self.requests]


@pytest.fixture
def receiver(settings: Any) -> Iterator[Any]:
    """``receiver(statuses)``: start a real HTTP server (http.server in a thread) answering POSTs with
    ``statuses`` in turn. Private hosts are allowed for webhooks while it runs (127.0.0.1)."""
    settings.WEBHOOK_ALLOW_PRIVATE_HOSTS = True
    servers: list[ThreadingHTTPServer] = []

    def start(statuses: list[int]) -> Receiver:
        receiver = Receiver(statuses)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
                status = receiver.answer()
                payload = f"status {status} from receiver".encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                return

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        servers.append(server)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/itsm"
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def committed_tenant(transactional_db: None) -> Iterator[Tenant]:
    """A tenant committed for real (a worker or another thread has its own connection), dropped afterwards."""
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenant = tenant_provision(provider=provider, name="Acme Corp", slug="acme")
    yield tenant
    with connection.cursor() as cursor:
        cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name)))


def wait_for(condition: Callable[[], bool]) -> None:
    """Poll ``condition`` every 0.2 s until it holds, at most 30 s (the caller asserts it afterwards)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not condition():
        time.sleep(0.2)


@pytest.fixture
def published() -> Iterator[list[tuple[str, str | None]]]:
    """``(task name, tenant schema)`` of every task message published to the real broker during the
    test (Celery's ``before_task_publish`` signal, the tenant from the ``_schema_name`` header). The test
    queue is purged afterwards, so no later worker runs them."""
    sent: list[tuple[str, str | None]] = []

    def record(sender: str | None = None, headers: dict[str, Any] | None = None, **_: Any) -> None:
        sent.append((str(sender), (headers or {}).get("_schema_name")))

    before_task_publish.connect(record, weak=False)
    try:
        yield sent
    finally:
        before_task_publish.disconnect(record)
        app.control.purge()
