"""A tiny real HTTP gateway for the agent's tests (http.server on 127.0.0.1, a free port, in a thread).

It checks every request's signature with verification code written here, independently of
itsm_agent.signing, straight from 0018: so a broken signer fails the tests. It keeps what it received so
tests can assert on it, and it signs command envelopes with its own Ed25519 key.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

TOKEN = "itsm_enr_test_token_0123456789"
_RESULT_PATH = re.compile(r"^/agent/v1/commands/([0-9a-f-]{36})/result$")


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64u(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def raw_public(key: Ed25519PrivateKey | Ed25519PublicKey) -> bytes:
    public = key.public_key() if isinstance(key, Ed25519PrivateKey) else key
    return public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def kid(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass
class Seen:
    """One request as the gateway received it (after its signature was checked)."""

    method: str
    path: str
    agent_id: str
    key_id: str
    body: Any


@dataclass
class FakeGateway:
    server_private: Ed25519PrivateKey = field(default_factory=Ed25519PrivateKey.generate)
    clock_offset: float = 0.0  # server time minus real time
    enrol_status: str = "active"
    intervals: dict[str, int] = field(
        default_factory=lambda: {"heartbeat": 60, "metrics": 60, "inventory": 21600, "poll": 60}
    )
    keys: dict[str, dict[str, Ed25519PublicKey]] = field(default_factory=dict)  # agent id → key id → key
    key_state: dict[str, str] = field(default_factory=dict)  # key id → active | pending | superseded
    nonces: set[tuple[str, str]] = field(default_factory=set)
    seen: list[Seen] = field(default_factory=list)
    refusals: list[tuple[int, str]] = field(default_factory=list)  # (status, problem type) answered
    reports: dict[str, dict[str, Any]] = field(default_factory=dict)
    queued: list[dict[str, str]] = field(default_factory=list)  # envelopes for the next poll
    results: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    scripted: deque[tuple[str, int, dict[str, str], dict[str, Any]]] = field(default_factory=deque)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    # -- helpers for tests -----------------------------------------------------------------------------

    @property
    def server_key_b64(self) -> str:
        return b64u(raw_public(self.server_private))

    @property
    def server_key_id(self) -> str:
        return kid(raw_public(self.server_private))

    def now(self) -> float:
        return time.time() + self.clock_offset

    def script(
        self, path: str, status: int, body: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next request to ``path`` with this instead (after the signature check)."""
        self.scripted.append((path, status, headers or {}, body))

    def envelope(
        self,
        *,
        agent_id: str,
        kind: str,
        params: dict[str, Any] | None = None,
        script: dict[str, Any] | None = None,
        expires_in: float = 3600,
        command_id: str | None = None,
        signer: Ed25519PrivateKey | None = None,
    ) -> dict[str, str]:
        """A command envelope signed as 0018 says (canonical JSON payload, Ed25519 over its bytes)."""
        issued = datetime.now(UTC)
        payload = {
            "id": command_id or str(uuid.uuid4()),
            "agent_id": agent_id,
            "kind": kind,
            "params": params or {},
            "script": script,
            "issued_at": issued.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "expires_at": (issued + timedelta(seconds=expires_in)).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "requested_by": "tech@msp.example",
            "approved_by": "lead@msp.example",
        }
        data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        signature = (signer or self.server_private).sign(data)
        return {"payload": b64u(data), "signature": b64u(signature), "key_id": self.server_key_id}

    # -- the independent verification (0018, "Signed requests") --------------------------------------

    def check(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, str, str, str]:
        """(status, problem type or "", agent id, key id)."""
        agent_id = headers.get("X-Agent-Id", "")
        key_id = headers.get("X-Agent-Key-Id", "")
        timestamp = headers.get("X-Agent-Timestamp", "")
        nonce = headers.get("X-Agent-Nonce", "")
        signature = headers.get("X-Agent-Signature", "")
        if agent_id == "enrol":
            if path != "/agent/v1/enrol":
                return 401, "agent-unknown", agent_id, key_id
            try:
                public = Ed25519PublicKey.from_public_bytes(unb64u(json.loads(body)["public_key"]))
            except (ValueError, KeyError):
                return 422, "invalid", agent_id, key_id
            if kid(raw_public(public)) != key_id:
                return 401, "signature-invalid", agent_id, key_id
        else:
            public_or_none = self.keys.get(agent_id, {}).get(key_id)
            if public_or_none is None:
                return 401, "agent-unknown", agent_id, key_id
            public = public_or_none
            if self.key_state.get(key_id) == "superseded":
                return 401, "credential-superseded", agent_id, key_id
        if not re.fullmatch(r"[A-Za-z0-9_-]{22}", nonce) or len(unb64u(nonce)) != 16:
            return 401, "signature-invalid", agent_id, key_id
        message = "\n".join(
            ["itsm-agent-v1", method, path, timestamp, nonce, hashlib.sha256(body).hexdigest()]
        ).encode()
        try:
            public.verify(unb64u(signature), message)
        except (InvalidSignature, ValueError):
            return 401, "signature-invalid", agent_id, key_id
        if not timestamp.isdigit() or abs(self.now() - int(timestamp)) > 300:
            return 401, "clock-skew", agent_id, key_id
        if (agent_id, nonce) in self.nonces:
            return 401, "replayed", agent_id, key_id
        self.nonces.add((agent_id, nonce))
        if (
            agent_id != "enrol" and self.key_state.get(key_id) == "pending"
        ):  # first use: active, old superseded
            for other, state in list(self.key_state.items()):
                if other in self.keys[agent_id] and other != key_id and state == "active":
                    self.key_state[other] = "superseded"
            self.key_state[key_id] = "active"
        return 200, "", agent_id, key_id

    # -- the endpoints ---------------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, headers: Any, body: bytes
    ) -> tuple[int, dict[str, str], dict[str, Any]]:
        with self.lock:
            status, problem, agent_id, key_id = self.check(method, path, headers, body)
            if status != 200:
                self.refusals.append((status, problem))
                return (
                    status,
                    {},
                    {
                        "type": f"https://itsm.example/problems/{problem}",
                        "title": problem.replace("-", " ").capitalize(),
                        "status": status,
                    },
                )
            payload: Any = json.loads(body) if body else {}
            self.seen.append(Seen(method, path, agent_id, key_id, payload))
            if self.scripted and self.scripted[0][0] == path:
                _, status, extra, answer = self.scripted.popleft()
                return status, extra, answer
            if method == "POST" and path == "/agent/v1/enrol":
                if payload["token"] != TOKEN:
                    return (
                        401,
                        {},
                        {
                            "type": "https://itsm.example/problems/enrolment-token-invalid",
                            "title": "Enrolment token invalid",
                            "status": 401,
                            "detail": "Ask your provider for a new token.",
                        },
                    )
                new_agent = str(uuid.uuid4())
                self.keys[new_agent] = {
                    key_id: Ed25519PublicKey.from_public_bytes(unb64u(payload["public_key"]))
                }
                self.key_state[key_id] = "active"
                return (
                    201,
                    {},
                    {
                        "agent_id": new_agent,
                        "key_id": key_id,
                        "status": self.enrol_status,
                        "tenant": {"name": "Acme Corp"},
                        "server_key": self.server_key_b64,
                        "server_key_id": self.server_key_id,
                        "intervals": self.intervals,
                        "rotate_after_days": 30,
                    },
                )
            if method == "POST" and path == "/agent/v1/reports":
                accepted: list[str] = []
                duplicates: list[str] = []
                for report in payload["reports"]:
                    (duplicates if report["id"] in self.reports else accepted).append(report["id"])
                    self.reports[report["id"]] = report
                return 202, {}, {"accepted": accepted, "duplicates": duplicates}
            if method == "GET" and path == "/agent/v1/commands":
                commands, self.queued = self.queued, []
                return 200, {}, {"commands": commands, "poll_after": 60}
            if method == "POST" and (match := _RESULT_PATH.match(path)):
                self.results.setdefault(match.group(1), []).append(payload)
                return 200, {}, {}
            if method == "POST" and path == "/agent/v1/credentials":
                raw = unb64u(payload["public_key"])
                new_id = kid(raw)
                self.keys[agent_id][new_id] = Ed25519PublicKey.from_public_bytes(raw)
                self.key_state[new_id] = "pending"
                return 201, {}, {"key_id": new_id}
            return 404, {}, {"type": "about:blank", "title": "Not found", "status": 404}

    def paths(self) -> list[str]:
        return [s.path for s in self.seen]


def start(gateway: FakeGateway) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def date_time_string(self, timestamp: float | None = None) -> str:
            return formatdate(gateway.now(), usegmt=True)

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            status, extra, answer = gateway.answer(self.command, self.path, self.headers, body)
            data = json.dumps(answer).encode()
            self.send_response(status)
            ctype = "application/problem+json" if status >= 400 else "application/json"
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            for name, value in extra.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        do_GET = _handle
        do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    gateway.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
