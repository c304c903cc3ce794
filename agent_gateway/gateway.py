"""The agent gateway: an ASGI application for agents' HTTP requests (docs/decisions/0018-agent-gateway.md).

Served by uvicorn (``agent_gateway.asgi:application``). Hot paths (``POST /agent/v1/reports``, ``GET
/agent/v1/commands``) touch no ORM and no Django request machinery: headers are checked against the
credential cache, the signature is verified with Ed25519, the body is validated with compiled schemas,
and the writes go through the group-commit batcher. Cold paths (enrolment, rotation, command results) run
the Django services in a worker thread (``sync_to_async``). The tenant of every request is the one of the
credential that signed it.

Background tasks of the process: the batcher, ``LISTEN agent_gateway`` (credential and command changes
made anywhere), and the "seen" writer (last seen time and address, every ``SEEN_FLUSH_SECONDS``).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import close_old_connections, connections
from psycopg_pool import AsyncConnectionPool

from controlplane.problems import DomainError

from . import services
from .batcher import Batcher, Outcome
from .credentials import AgentAuth, CredentialCache
from .models import AgentStatus, CredentialState
from .signing import (
    BadEncoding,
    b64url,
    b64url_decode,
    key_id_of,
    public_key_load,
    signature_valid,
    signed_string,
    signing_key,
)
from .validation import REPORT_TYPES, SCHEMA_DIR, Invalid, reports_parse

log = logging.getLogger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

CLOCK_SKEW_SECONDS = 300
NONCE = re.compile(r"^[A-Za-z0-9_-]{16,32}$")
SEEN_FLUSH_SECONDS = 5.0
RATE_PER_MINUTE = 120  # requests per agent per process (token bucket)
ENROL_RATE_PER_MINUTE = 30  # enrolment attempts per client address per process
REFUSAL_AUDIT_EVERY = 60.0  # seconds between audit rows for the same (agent, reason)
LIMITS = {  # body bytes per endpoint (413 beyond)
    "enrol": 64 * 1024,
    "reports": 1024 * 1024,
    "result": 128 * 1024,
    "credentials": 4 * 1024,
    "commands": 0,
}
INTERVALS = {"heartbeat": 60, "metrics": 60, "inventory": 21600, "poll": 60}
ROTATE_AFTER_DAYS = 30
# Refusals the handlers raise without auditing them themselves (the signature checks audit their own).
AUDITED_HERE = frozenset({"too-large", "rate-limited", "invalid-input"})
SCHEMA_PATH = re.compile(r"^/agent/v1/schemas/([a-z]+)\.json$")
COMMAND_RESULT_PATH = re.compile(r"^/agent/v1/commands/([0-9a-fA-F-]{36})/result$")

PENDING_COMMANDS_SQL = """
SELECT c.id, c.payload, c.signature, k.key_id
FROM agent_gateway_command c JOIN agent_gateway_signingkey k ON k.id = c.signing_key_id
WHERE c.agent_id = %s AND c.status IN ('queued', 'delivered') AND c.expires_at > now()
ORDER BY c.approved_at, c.id
"""
DELIVERED_SQL = """
UPDATE agent_gateway_command SET status = 'delivered', delivered_at = now()
WHERE id = ANY(%s) AND status = 'queued'
"""
AGENTS_WITH_COMMANDS_SQL = """
SELECT DISTINCT agent_id FROM agent_gateway_command
WHERE status IN ('queued', 'delivered') AND expires_at > now()
"""
SEEN_SQL = """
UPDATE agent_gateway_agent AS a SET last_seen_at = v.ts, last_ip = v.ip::inet
FROM unnest(%s::uuid[], %s::timestamptz[], %s::text[]) AS v(id, ts, ip)
WHERE a.id = v.id AND (a.last_seen_at IS NULL OR a.last_seen_at < v.ts)
"""


class Refusal(Exception):
    """A refused request: the problem+json answer's status, type slug and title."""

    def __init__(self, status: int, slug: str, title: str, *, detail: str = "", **extra: Any) -> None:
        super().__init__(title)
        self.status, self.slug, self.title, self.detail, self.extra = status, slug, title, detail, extra


@dataclass(slots=True)
class Signed:
    """A request whose signature verified: the agent, its tenant, the key and nonce used."""

    agent_id: uuid.UUID
    tenant_id: int
    key_id: str
    nonce: str
    auth: AgentAuth


# Django's OPTIONS that are libpq connection parameters (TLS above all), passed on to the gateway's pool.
LIBPQ_OPTIONS = frozenset(
    {
        "sslmode",
        "sslrootcert",
        "sslcert",
        "sslkey",
        "sslcrl",
        "connect_timeout",
        "application_name",
        "options",
    }
)


def conninfo() -> str:
    """psycopg connection string of Django's default database (the test database under pytest)."""
    db = settings.DATABASES["default"]
    options = {k: str(v) for k, v in (db.get("OPTIONS") or {}).items() if k in LIBPQ_OPTIONS}
    return psycopg.conninfo.make_conninfo(
        dbname=db["NAME"],
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=str(db.get("PORT") or "") or None,
        **options,
    )


class Gateway:
    """The ASGI application (one per process). ``startup``/``shutdown`` run from the ASGI lifespan."""

    def __init__(self) -> None:
        self.pool: AsyncConnectionPool | None = None
        self.cache: CredentialCache | None = None
        self.batcher: Batcher | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.with_commands: set[uuid.UUID] = set()
        self.command_notes = 0  # bumped by every "cmd:" notification (see poll)
        self.seen: dict[uuid.UUID, tuple[dt.datetime, str | None]] = {}
        self.buckets: dict[uuid.UUID | str, tuple[float, float]] = {}
        self.audited: dict[tuple[str, str], float] = {}
        self.ready = asyncio.Event()

    # --- lifespan ------------------------------------------------------------------------------------

    async def startup(self) -> None:
        self.pool = AsyncConnectionPool(
            conninfo(), min_size=2, max_size=10, open=False, kwargs={"autocommit": True}
        )
        await self.pool.open(wait=True)
        self.cache = CredentialCache(self.pool)
        self.batcher = Batcher(self.pool)
        await self._load_with_commands()
        self.tasks = [
            asyncio.create_task(self.batcher.run(), name="agent-batcher"),
            asyncio.create_task(self._listen(), name="agent-listen"),
            asyncio.create_task(self._seen_writer(), name="agent-seen"),
        ]
        self.ready.set()

    async def shutdown(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._seen_flush()
        if self.pool is not None:
            await self.pool.close()
        # The services' thread holds Django's own connection: close it with the process's work.
        await sync_to_async(connections.close_all)()

    async def _load_with_commands(self) -> None:
        assert self.pool is not None
        async with self.pool.connection() as conn:
            rows = await (await conn.execute(AGENTS_WITH_COMMANDS_SQL)).fetchall()
        self.with_commands = {row[0] for row in rows}

    async def _listen(self) -> None:
        """``LISTEN agent_gateway``: ``cred:<id>`` drops a cached credential, ``cmd:<id>`` marks an agent
        as having commands. After a lost connection everything cached is dropped and reloaded, since
        notifications sent meanwhile are lost."""
        assert self.cache is not None
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(conninfo(), autocommit=True) as conn:
                    await conn.execute("LISTEN agent_gateway")
                    self.cache.clear()
                    await self._load_with_commands()
                    async for note in conn.notifies():
                        kind, _, value = note.payload.partition(":")
                        with contextlib.suppress(ValueError):
                            agent_id = uuid.UUID(value)
                            if kind == "cred":
                                self.cache.drop(agent_id)
                            elif kind == "cmd":
                                self.command_notes += 1
                                self.with_commands.add(agent_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("agent gateway LISTEN connection lost; reconnecting")
                await asyncio.sleep(1.0)

    async def _seen_writer(self) -> None:
        while True:
            await asyncio.sleep(SEEN_FLUSH_SECONDS)
            try:
                await self._seen_flush()
            except Exception:
                log.exception("agent gateway could not write last-seen times")

    async def _seen_flush(self) -> None:
        if not self.seen or self.pool is None:
            return
        seen, self.seen = self.seen, {}
        ids = list(seen)
        async with self.pool.connection() as conn:
            await conn.execute(SEEN_SQL, (ids, [seen[i][0] for i in ids], [seen[i][1] for i in ids]))

    # --- ASGI ----------------------------------------------------------------------------------------

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            status, body, headers = await self._dispatch(scope, receive)
        except Refusal as refusal:
            if refusal.slug in AUDITED_HERE:
                await self._refusal_from_headers(scope, refusal)
            status, body, headers = _problem(refusal)
        except Exception:
            log.exception("agent gateway error on %s %s", scope.get("method"), scope.get("path"))
            status, body, headers = _problem(
                Refusal(503, "unavailable", "The gateway cannot take this now; try again"),
                retry_after=5,
            )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as exc:
                    log.exception("agent gateway failed to start")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _dispatch(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        method, path = scope["method"], scope["path"]
        if path == "/agent/v1/reports" and method == "POST":
            return await self.reports(scope, receive)
        if path == "/agent/v1/commands" and method == "GET":
            return await self.poll(scope, receive)
        match = COMMAND_RESULT_PATH.match(path)
        if match and method == "POST":
            return await self.result(scope, receive, uuid.UUID(match.group(1)))
        schema = SCHEMA_PATH.match(path)
        if schema and method == "GET":
            return _schema(schema.group(1))
        if path == "/agent/v1/enrol" and method == "POST":
            return await self.enrol(scope, receive)
        if path == "/agent/v1/credentials" and method == "POST":
            return await self.rotate(scope, receive)
        if (
            path in ("/agent/v1/reports", "/agent/v1/commands", "/agent/v1/enrol", "/agent/v1/credentials")
            or match
        ):
            raise Refusal(405, "method-not-allowed", "Method not allowed")
        raise Refusal(404, "not-found", "Not found")

    # --- endpoints -----------------------------------------------------------------------------------

    async def reports(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """``POST /agent/v1/reports``: 202 with accepted and duplicate ids once the reports are durable."""
        body = await _read_body(scope, receive, LIMITS["reports"])
        signed = await self._verify(scope, body)
        try:
            reports = reports_parse(body, now=dt.datetime.now(dt.UTC))
        except Invalid as exc:
            raise Refusal(422, "invalid-input", "Invalid reports", errors=exc.errors) from exc
        outcome = await self._commit(signed, reports)
        return _json(
            202,
            {
                "accepted": [str(i) for i in outcome.accepted],
                "duplicates": [str(i) for i in outcome.duplicates],
            },
        )

    async def poll(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """``GET /agent/v1/commands``: the agent's signed commands (usually none, with no query)."""
        body = await _read_body(scope, receive, LIMITS["commands"])
        signed = await self._verify(scope, body)
        await self._commit(signed, [])
        commands: list[dict[str, str]] = []
        if signed.agent_id in self.with_commands:
            assert self.pool is not None
            notes = self.command_notes
            async with self.pool.connection() as conn:
                rows = await (await conn.execute(PENDING_COMMANDS_SQL, (signed.agent_id,))).fetchall()
                if rows:
                    await conn.execute(DELIVERED_SQL, ([row[0] for row in rows],))
            if not rows and notes == self.command_notes:  # no command was announced meanwhile
                self.with_commands.discard(signed.agent_id)
            commands = [
                {"payload": b64url(bytes(row[1])), "signature": b64url(bytes(row[2])), "key_id": row[3]}
                for row in rows
            ]
        return _json(200, {"commands": commands, "poll_after": INTERVALS["poll"]})

    async def result(
        self, scope: Scope, receive: Receive, command_id: uuid.UUID
    ) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """``POST /agent/v1/commands/<id>/result``."""
        body = await _read_body(scope, receive, LIMITS["result"])
        signed = await self._verify(scope, body)
        await self._commit(signed, [])
        data = _json_object(body)
        exit_code = data.get("exit_code")
        if exit_code is not None and (not isinstance(exit_code, int) or isinstance(exit_code, bool)):
            raise Refusal(
                422,
                "invalid-input",
                "Invalid result",
                errors=[{"field": "exit_code", "message": "an integer"}],
            )
        for name in ("status", "output", "reason"):
            if not isinstance(data.get(name, ""), str):
                raise Refusal(
                    422, "invalid-input", "Invalid result", errors=[{"field": name, "message": "text"}]
                )
        try:
            await _sync(services.command_result_record)(
                agent_id=signed.agent_id,
                command_id=command_id,
                status=str(data.get("status", "")),
                exit_code=exit_code,
                output=str(data.get("output", "")),
                reason=str(data.get("reason", "")),
                ip=_client(scope),
            )
        except DomainError as exc:
            raise Refusal(exc.status, exc.slug, exc.title, detail=exc.detail, **exc.extra) from exc
        return _json(200, {"status": "recorded"})

    async def enrol(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """``POST /agent/v1/enrol``: signed with the new key (``X-Agent-Id: enrol``)."""
        self._rate(f"enrol:{_client(scope)}", ENROL_RATE_PER_MINUTE)
        body = await _read_body(scope, receive, LIMITS["enrol"])
        data = _json_object(body)
        errors = [
            {"field": name, "message": "required text"}
            for name in ("token", "public_key", "hostname", "os", "agent_version")
            if not isinstance(data.get(name), str) or not data.get(name)
        ]
        if errors:
            raise Refusal(422, "invalid-input", "Invalid enrolment", errors=errors)
        try:
            raw = b64url_decode(data["public_key"])
            public = public_key_load(raw)
        except BadEncoding as exc:
            raise Refusal(
                422,
                "invalid-input",
                "Invalid enrolment",
                errors=[{"field": "public_key", "message": str(exc)}],
            ) from exc
        headers = _headers(scope)
        if headers.get("x-agent-id") != "enrol" or headers.get("x-agent-key-id") != key_id_of(raw):
            raise Refusal(401, "signature-invalid", "Sign the enrolment with the new key (X-Agent-Id: enrol)")
        _check_clock(headers)
        if not signature_valid(
            public, headers.get("x-agent-signature", ""), _signed_string(scope, headers, body)
        ):
            raise Refusal(401, "signature-invalid", "The request's signature is not valid")
        try:
            agent, credential, token = await _sync(services.agent_enrol)(
                token=data["token"],
                public_key=raw,
                hostname=data["hostname"],
                os=data["os"],
                agent_version=data["agent_version"],
                ip=_client(scope),
            )
            key_row, _ = await _sync(signing_key)()
        except DomainError as exc:
            raise Refusal(exc.status, exc.slug, exc.title, detail=exc.detail) from exc
        tenant_name = await sync_to_async(lambda: token.tenant.name)()
        return _json(
            201,
            {
                "agent_id": str(agent.pk),
                "key_id": credential.key_id,
                "status": agent.status,
                "tenant": {"name": tenant_name},
                "server_key": b64url(bytes(key_row.public_key)),
                "server_key_id": key_row.key_id,
                "intervals": INTERVALS,
                "rotate_after_days": ROTATE_AFTER_DAYS,
            },
        )

    async def rotate(self, scope: Scope, receive: Receive) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
        """``POST /agent/v1/credentials``: the agent's next public key, signed with its active key."""
        body = await _read_body(scope, receive, LIMITS["credentials"])
        signed = await self._verify(scope, body)
        await self._commit(signed, [])
        if signed.auth.keys[signed.key_id].state != CredentialState.ACTIVE:
            raise Refusal(409, "conflict", "Rotate with the active key")
        data = _json_object(body)
        try:
            raw = b64url_decode(str(data.get("public_key", "")))
            public_key_load(raw)
        except BadEncoding as exc:
            raise Refusal(
                422, "invalid-input", "Invalid key", errors=[{"field": "public_key", "message": str(exc)}]
            ) from exc
        try:
            credential = await _sync(services.credential_rotate)(
                agent_id=signed.agent_id, public_key=raw, ip=_client(scope)
            )
        except DomainError as exc:
            raise Refusal(exc.status, exc.slug, exc.title, detail=exc.detail) from exc
        return _json(201, {"key_id": credential.key_id})

    # --- authentication ------------------------------------------------------------------------------

    async def _verify(self, scope: Scope, body: bytes) -> Signed:
        """Check the request's signature headers (0018, "Signed requests"); refusals raise Refusal and
        are audited (at most once a minute per agent and reason)."""
        assert self.cache is not None
        headers = _headers(scope)
        try:
            agent_id = uuid.UUID(headers.get("x-agent-id", ""))
        except ValueError as exc:
            raise Refusal(401, "agent-unknown", "Unknown agent") from exc
        key_id = headers.get("x-agent-key-id", "")
        nonce = headers.get("x-agent-nonce", "")
        _check_clock(headers)
        if not NONCE.match(nonce):
            raise Refusal(401, "signature-invalid", "X-Agent-Nonce must be 16 to 32 base64url characters")
        auth = await self.cache.get(agent_id)
        key = auth.keys.get(key_id)
        if auth.agent_id is None or key is None:
            # Unauthenticated: counted per address (made-up ids must not each buy an audit row).
            await self._audit_refusal(
                "agent-unknown", None, None, _client(scope), claimed_agent=str(agent_id)
            )
            raise Refusal(401, "agent-unknown", "Unknown agent")
        if not signature_valid(
            key.public, headers.get("x-agent-signature", ""), _signed_string(scope, headers, body)
        ):
            await self._refused(scope, "signature-invalid", agent_id, auth.tenant_id)
            raise Refusal(401, "signature-invalid", "The request's signature is not valid")
        if auth.status in (AgentStatus.REVOKED, AgentStatus.REJECTED) or key.state == CredentialState.REVOKED:
            await self._refused(scope, "agent-revoked", agent_id, auth.tenant_id)
            raise Refusal(401, "agent-revoked", "This agent was revoked")
        if key.state == CredentialState.SUPERSEDED:
            await self._refused(scope, "credential-superseded", agent_id, auth.tenant_id, key_id=key_id)
            raise Refusal(
                401, "credential-superseded", "This key was replaced; a copy of this agent is refused"
            )
        if not auth.tenant_active:
            raise Refusal(403, "tenant-suspended", "This client's service is suspended", retry_after=3600)
        if auth.status == AgentStatus.PENDING:
            raise Refusal(
                403, "agent-pending", "This agent waits for a technician's approval", retry_after=300
            )
        if key.state == CredentialState.PENDING:
            await _sync(services.credential_activate)(agent_id=agent_id, key_id=key_id, ip=_client(scope))
            self.cache.drop(agent_id)
            auth = await self.cache.get(agent_id)
        self._rate(agent_id)
        self.seen[agent_id] = (dt.datetime.now(dt.UTC), _client(scope))
        return Signed(agent_id=agent_id, tenant_id=auth.tenant_id, key_id=key_id, nonce=nonce, auth=auth)

    async def _commit(self, signed: Signed, reports: list[Any]) -> Outcome:
        """The request's nonce (and reports) through the batcher; a replay is refused and audited."""
        assert self.batcher is not None
        outcome = await self.batcher.submit(
            agent_id=signed.agent_id, tenant_id=signed.tenant_id, nonce=signed.nonce, reports=reports
        )
        if outcome.replayed:
            await self._audit_refusal("replayed", signed.agent_id, signed.tenant_id, None)
            raise Refusal(401, "replayed", "This request was already received")
        return outcome

    def _rate(self, key: uuid.UUID | str, per_minute: int | None = None) -> None:
        """A token bucket per agent (``RATE_PER_MINUTE``) or, for enrolments, per client address
        (``ENROL_RATE_PER_MINUTE``): that many requests a minute, refilled continuously; beyond, 429."""
        rate = float(per_minute or RATE_PER_MINUTE)
        now = time.monotonic()
        tokens, at = self.buckets.get(key, (rate, now))
        tokens = min(rate, tokens + (now - at) * rate / 60.0)
        if tokens < 1.0:
            self.buckets[key] = (tokens, now)
            raise Refusal(
                429, "rate-limited", "Too many requests", retry_after=int((1.0 - tokens) * 60.0 / rate) + 1
            )
        self.buckets[key] = (tokens - 1.0, now)
        if len(self.buckets) > 500_000:  # forget idle buckets rather than grow without bound
            self.buckets.clear()

    async def _refusal_from_headers(self, scope: Scope, refusal: Refusal) -> None:
        """Audit a refusal decided beside the signature check (rate-limited, invalid: the agent is
        known) or before it (too large: the agent id is only a claim, so the refusal is counted per
        address and attributed to no tenant)."""
        claimed = _headers(scope).get("x-agent-id", "")[:64]
        if refusal.slug == "too-large":
            await self._audit_refusal(
                refusal.slug, None, None, _client(scope), claimed_agent=claimed, path=scope["path"]
            )
            return
        try:
            agent_id = uuid.UUID(claimed)
        except ValueError:
            return
        auth = self.cache.entries.get(agent_id) if self.cache is not None else None
        await self._refused(
            scope, refusal.slug, agent_id, auth.tenant_id if auth else None, path=scope["path"]
        )

    async def _refused(
        self, scope: Scope, reason: str, agent_id: uuid.UUID, tenant_id: int | None, **details: Any
    ) -> None:
        await self._audit_refusal(reason, agent_id, tenant_id, _client(scope), **details)

    async def _audit_refusal(
        self, reason: str, agent_id: uuid.UUID | None, tenant_id: int | None, ip: str | None, **details: Any
    ) -> None:
        """One audit row per (agent, or address when no agent is proven, and reason) a minute."""
        key = (str(agent_id) if agent_id is not None else f"ip:{ip}", reason)
        now = time.monotonic()
        if now - self.audited.get(key, -REFUSAL_AUDIT_EVERY) < REFUSAL_AUDIT_EVERY:
            return
        self.audited[key] = now
        if len(self.audited) > 100_000:
            self.audited.clear()
        try:
            await _sync(services.refusal_record)(
                reason=reason, agent_id=agent_id, tenant_id=tenant_id, ip=ip, **details
            )
        except Exception:
            log.exception("could not audit a refused agent request")


def _sync(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """``function`` run on Django's thread for sync code, with connections that went stale (a database
    restart, CONN_MAX_AGE) replaced first, as Django does around each request."""

    def run(*args: Any, **kwargs: Any) -> Any:
        close_old_connections()
        return function(*args, **kwargs)

    return sync_to_async(run)


# --- HTTP helpers --------------------------------------------------------------------------------------


def _headers(scope: Scope) -> dict[str, str]:
    return {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]}


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


def _path_with_query(scope: Scope) -> str:
    raw = scope.get("raw_path") or scope["path"].encode()
    query = scope.get("query_string") or b""
    return (raw + (b"?" + query if query else b"")).decode("latin-1")


def _signed_string(scope: Scope, headers: dict[str, str], body: bytes) -> bytes:
    return signed_string(
        method=scope["method"],
        path=_path_with_query(scope),
        timestamp=headers.get("x-agent-timestamp", ""),
        nonce=headers.get("x-agent-nonce", ""),
        body=body,
    )


def _check_clock(headers: dict[str, str]) -> None:
    try:
        timestamp = int(headers.get("x-agent-timestamp", ""))
    except ValueError as exc:
        raise Refusal(401, "signature-invalid", "X-Agent-Timestamp must be Unix seconds") from exc
    if abs(time.time() - timestamp) > CLOCK_SKEW_SECONDS:
        raise Refusal(401, "clock-skew", "The request's time is more than 300 s from the server's (see Date)")


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 beyond ``limit`` bytes: at once when Content-Length says so,
    else as soon as the chunks read exceed it."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-length":
            try:
                declared = int(value)
            except ValueError as exc:
                raise Refusal(400, "bad-request", "Bad Content-Length") from exc
            if declared > limit:
                raise Refusal(413, "too-large", f"The body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Refusal(400, "bad-request", "The client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise Refusal(413, "too-large", f"The body is larger than {limit} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            return b"".join(chunks)


def _schema(name: str) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """``GET /agent/v1/schemas/<type>.json``: the published JSON Schema of a report type (no signature
    needed: they are public documents)."""
    if name not in REPORT_TYPES:
        raise Refusal(404, "not-found", "No such schema")
    body = (SCHEMA_DIR / f"{name}.json").read_bytes()
    return (
        200,
        body,
        [(b"content-type", b"application/schema+json"), (b"content-length", str(len(body)).encode())],
    )


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Refusal(422, "invalid-input", "The body is not JSON") from exc
    if not isinstance(data, dict):
        raise Refusal(422, "invalid-input", "The body must be a JSON object")
    return data


def _json(status: int, value: Any) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    body = json.dumps(value, separators=(",", ":")).encode()
    return (
        status,
        body,
        [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
    )


def _problem(
    refusal: Refusal, *, retry_after: int | None = None
) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    extra = dict(refusal.extra)
    retry = extra.pop("retry_after", retry_after)
    document: dict[str, Any] = {
        "type": f"/problems/{refusal.slug}",
        "title": refusal.title,
        "status": refusal.status,
    }
    if refusal.detail:
        document["detail"] = refusal.detail
    document.update(extra)
    body = json.dumps(document, separators=(",", ":")).encode()
    headers = [(b"content-type", b"application/problem+json"), (b"content-length", str(len(body)).encode())]
    if retry is not None:
        headers.append((b"retry-after", str(retry).encode()))
    return refusal.status, body, headers
