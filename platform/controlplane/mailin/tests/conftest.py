"""Real peers for the email-in tests: committed tenants (the SMTP listener and the Celery worker run in
threads with their own database connections), a Celery worker, the SMTP listener and an IMAP server
(pymap's in-memory backend, a subprocess) on free ports."""

from __future__ import annotations

import imaplib
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from celery.contrib.testing.worker import start_worker
from django.db import connection
from django.test import override_settings
from psycopg import sql

from controlplane.celery import app
from controlplane.mailin.smtp import controller
from controlplane.providers.models import Provider
from tenants.models import Tenant
from tenants.services import tenant_provision


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (aiosmtpd cannot bind port 0 itself)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(check: Callable[[], bool], seconds: float = 30) -> bool:
    """Poll ``check`` every 0.1 s until it is true or ``seconds`` pass; returns its last answer."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


@pytest.fixture
def media(tmp_path: Path) -> Iterator[Path]:
    with override_settings(MEDIA_ROOT=tmp_path):
        yield tmp_path


@pytest.fixture
def committed_tenants(transactional_db: None) -> Iterator[tuple[Tenant, Tenant]]:
    """Two tenants committed for real, their schemas dropped afterwards."""
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenants = (
        tenant_provision(provider=provider, name="Acme Corp", slug="acme"),
        tenant_provision(provider=provider, name="Globex", slug="globex"),
    )
    yield tenants
    with connection.cursor() as cursor:
        for tenant in tenants:
            cursor.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(tenant.schema_name))
            )


@pytest.fixture
def worker(media: Path) -> Iterator[None]:
    """A real Celery worker (solo pool, in a thread) on the test broker."""
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=30):
        yield


@pytest.fixture
def listener() -> Iterator[int]:
    """The inbound SMTP listener on a free port; yields the port."""
    port = free_port()
    server = controller(host="127.0.0.1", port=port)
    server.start()
    try:
        yield port
    finally:
        server.stop()


@dataclass(frozen=True)
class ImapServer:
    port: int
    user: str
    password: str

    def client(self) -> imaplib.IMAP4:
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=10)
        client.login(self.user, self.password)
        return client

    def append(self, raw: bytes, flags: str | None = None) -> None:
        client = self.client()
        try:
            status, _ = client.append("INBOX", flags, None, raw)
            assert status == "OK"
        finally:
            client.logout()

    def unseen(self) -> list[bytes]:
        client = self.client()
        try:
            client.select("INBOX")
            status, data = client.uid("SEARCH", "UNSEEN")
            assert status == "OK"
            return data[0].split() if data and data[0] else []
        finally:
            client.logout()

    def unflag(self, uid: str) -> None:
        """Clear \\Seen on message ``uid``: what a poll that died between storing and flagging leaves."""
        client = self.client()
        try:
            client.select("INBOX")
            status, _ = client.uid("STORE", uid, "-FLAGS", "(\\Seen)")
            assert status == "OK"
        finally:
            client.logout()


@pytest.fixture
def imap_server() -> Iterator[ImapServer]:
    """A real IMAP4rev1 server: pymap with its in-memory dict backend, one user, plain text on loopback."""
    port = free_port()
    server = ImapServer(port=port, user="servicedesk", password="imap-test-password")
    pymap = Path(sys.executable).with_name("pymap")
    command = [str(pymap), "--host", "127.0.0.1", "--port", str(port), "dict"]
    process = subprocess.Popen(  # noqa: S603 - a fixed command line of our own
        [*command, "--demo-user", server.user, "--demo-password", server.password],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def ready() -> bool:
        try:
            server.client().logout()
            return True
        except OSError:
            return False

    try:
        assert wait_until(ready, seconds=20), "pymap did not start"
        yield server
    finally:
        process.terminate()
        process.wait(timeout=10)


def mailbox_settings(server: ImapServer, **overrides: Any) -> dict[str, Any]:
    """The keyword arguments of inbound_mailbox_set for ``server``."""
    return {
        "host": "127.0.0.1",
        "port": server.port,
        "security": "none",
        "username": server.user,
        "password": server.password,
        "folder": "INBOX",
        **overrides,
    }
