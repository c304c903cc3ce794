"""Fixtures of the gateway's tests: the real gateway (uvicorn serving agent_gateway.gateway on 127.0.0.1
and a free port, in a thread of the test process, on the test database), a committed tenant with a
technician and an administrator, and ``AgentClient``, which signs requests as 0018 says.

The gateway reads through its own connections, so these tests commit (``transactional_db``); the tenant
schemas they provision are dropped afterwards."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.db import connection
from django_tenants.utils import tenant_context
from psycopg import sql

from agent_gateway.gateway import Gateway
from agent_gateway.models import EnrolmentToken
from agent_gateway.services import enrolment_token_create
from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set
from controlplane.providers.models import Provider
from modules.records.actor import Actor
from tenants.models import Tenant


def _b64(data: bytes) -> str:
    import base64

    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class GatewayServer:
    url: str
    app: Gateway
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def gateway_start(app: Gateway | None = None, port: int | None = None) -> GatewayServer:
    """A running gateway in a thread; returns once it answers."""
    app = app or Gateway()
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan="on", log_level="warning", http="httptools"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the gateway did not start")
        time.sleep(0.02)
    return GatewayServer(url=f"http://127.0.0.1:{port}", app=app, server=server, thread=thread)


@pytest.fixture
def gateway(transactional_db: None) -> Iterator[GatewayServer]:
    running = gateway_start()
    yield running
    running.stop()


@dataclass
class World:
    provider: Provider
    tenant: Tenant
    other: Tenant
    tech: User
    admin: User

    def actor(self, user: User, role: str, tenant: Tenant | None = None) -> Actor:
        return actor_in(tenant or self.tenant, user, role=role)

    def token(self, **options: Any) -> str:
        with tenant_context(self.tenant):
            _, token = enrolment_token_create(
                actor=self.actor(self.tech, "technician"), tenant=self.tenant, **options
            )
        return token


@pytest.fixture
def world(transactional_db: None, tenant_make: Callable[..., Tenant]) -> Iterator[World]:
    provider = Provider.objects.create(name="Northwind MSP", slug="northwind")
    tenant = tenant_make(provider=provider, name="Acme Corp", slug="acme")
    other = tenant_make(provider=provider, name="Globex", slug="globex")
    tech = make_user("tech@northwind.example")
    provider_membership_set(user=tech, provider=provider, role="technician", all_clients=True)
    admin = make_user("admin@northwind.example")
    provider_membership_set(user=admin, provider=provider, role="admin")
    yield World(provider=provider, tenant=tenant, other=other, tech=tech, admin=admin)
    with connection.cursor() as cursor:
        for schema in (tenant.schema_name, other.schema_name):
            cursor.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


@dataclass
class AgentClient:
    """An agent as the tests drive it: its key, its id once enrolled, and signed requests."""

    url: str
    key: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    agent_id: str = ""
    key_id: str = ""
    server_key: str = ""

    @property
    def public(self) -> bytes:
        return self.key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    def headers(
        self,
        method: str,
        path: str,
        body: bytes,
        *,
        key: Ed25519PrivateKey | None = None,
        agent_id: str | None = None,
        timestamp: int | None = None,
        nonce: str | None = None,
    ) -> dict[str, str]:
        key = key or self.key
        public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = nonce or _b64(secrets.token_bytes(16))
        message = "\n".join(
            ["itsm-agent-v1", method, path, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]
        ).encode()
        return {
            "X-Agent-Id": agent_id if agent_id is not None else self.agent_id,
            "X-Agent-Key-Id": hashlib.sha256(public).hexdigest()[:16],
            "X-Agent-Timestamp": str(timestamp),
            "X-Agent-Nonce": nonce,
            "X-Agent-Signature": _b64(key.sign(message)),
            "Content-Type": "application/json",
        }

    def send(
        self, method: str, path: str, value: Any = None, *, body: bytes | None = None, **options: Any
    ) -> httpx.Response:
        if body is None:
            body = b"" if value is None else json.dumps(value).encode()
        extra = options.pop("extra_headers", {})
        headers = {**self.headers(method, path, body, **options), **extra}
        return httpx.request(method, self.url + path, content=body, headers=headers, timeout=10)

    def enrol(self, token: str, hostname: str = "web-01") -> httpx.Response:
        value = {
            "token": token,
            "public_key": _b64(self.public),
            "hostname": hostname,
            "os": "linux",
            "agent_version": "0.1.0",
        }
        response = self.send("POST", "/agent/v1/enrol", value, agent_id="enrol")
        if response.status_code == 201:
            answer = response.json()
            self.agent_id, self.key_id, self.server_key = (
                answer["agent_id"],
                answer["key_id"],
                answer["server_key"],
            )
        return response


def report(kind: str = "heartbeat", **data: Any) -> dict[str, Any]:
    """A valid report of ``kind`` (``data`` overrides fields)."""
    defaults: dict[str, dict[str, Any]] = {
        "heartbeat": {"uptime_seconds": 3600, "agent_version": "0.1.0"},
        "metrics": {
            "cpu_percent": 12.5,
            "memory_percent": 40.0,
            "disks": [{"mount": "/", "percent": 71.0}],
            "load": [0.1, 0.2, 0.3],
        },
    }
    return {
        "id": str(uuid.uuid4()),
        "type": kind,
        "collected_at": dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z"),
        "data": {**defaults[kind], **data},
    }


def tokens_of(tenant: Tenant) -> list[EnrolmentToken]:
    return list(EnrolmentToken.objects.filter(tenant=tenant))
