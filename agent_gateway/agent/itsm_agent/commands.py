"""Signed commands: verification exactly as 0018 says ("GET /agent/v1/commands"), then execution.

An envelope ``{"payload": b64url(canonical JSON), "signature": b64url, "key_id": server key id}`` runs only
when all hold, checked in this order, the first failure being the reason reported:

1. the envelope's ``key_id`` is the pinned server key's and the Ed25519 signature of the payload bytes
   verifies with the pinned key (nothing in an unverified payload is trusted);
2. the payload is a JSON object with a UUID ``id``; ``agent_id`` is this agent's;
3. ``expires_at`` (RFC 3339 UTC) is in the future;
4. ``kind`` is in the allow-list (built in, optionally narrowed by config ``allowed_commands``);
5. ``params`` match the kind (restart_service: ``{"service": ^[A-Za-z0-9@._-]{1,128}$}``; run_script:
   names ^[A-Za-z_][A-Za-z0-9_]{0,63}$ and string values, passed as ITSM_PARAM_<NAME>; the others: none);
6. run_script carries ``script {name, interpreter: sh|python, body, sha256}`` whose sha256 is the body's;
   the other kinds carry ``script: null``;
7. the id was not run before (the state keeps the last 1,000 ids, recorded before a command runs).

Otherwise the agent posts ``rejected`` with the reason and runs nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from itsm_agent.collect import rfc3339
from itsm_agent.signing import EncodingError, b64url_decode
from itsm_agent.state import BUILTIN_COMMANDS, SERVICE_NAME, atomic_write, ensure_private_dir

# Units that are not services: "restart a service" never reaches reboot.target or poweroff.target.
NOT_A_SERVICE = re.compile(r"\.(target|socket|mount|automount|swap|timer|path|slice|scope|device)$")

OUTPUT_LIMIT = 64 * 1024  # bytes of output kept (the tail), 0018
RESTART_TIMEOUT = 120  # seconds for `systemctl restart`
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
_SCRIPT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
INTERPRETERS = {"sh": ["/bin/sh"], "python": [sys.executable]}


class CommandRejected(Exception):
    """A command that failed verification. ``reason`` is reported to the server; ``command_id`` is the id
    if one could be read (a UUID), else None."""

    def __init__(self, reason: str, command_id: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.command_id = command_id


@dataclass(frozen=True)
class Command:
    """A verified command (its fields as in the signed payload)."""

    id: str
    kind: str
    params: dict[str, str]
    script: dict[str, str] | None
    expires_at: datetime
    requested_by: str
    approved_by: str


def _uuid_or_none(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return str(uuid.UUID(value)) if str(uuid.UUID(value)) == value.lower() else None
    except ValueError:
        return None


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def unverified_id(envelope: Any) -> str | None:
    """The command id in an envelope that failed verification, if it is a UUID (to report ``rejected``
    against it; the server ignores ids that are not this agent's)."""
    try:
        payload = json.loads(b64url_decode(envelope["payload"]))
        return _uuid_or_none(payload.get("id"))
    except (TypeError, KeyError, ValueError, AttributeError):
        return None


def verify(
    envelope: Any,
    *,
    server_key: Ed25519PublicKey,
    server_key_id: str,
    agent_id: str,
    allowed: Collection[str],
    executed: Collection[str],
    now: datetime | None = None,
) -> Command:
    """Verify one envelope (module docstring); returns the Command or raises CommandRejected."""
    if not isinstance(envelope, dict) or not all(
        isinstance(envelope.get(k), str) for k in ("payload", "signature", "key_id")
    ):
        raise CommandRejected("malformed envelope")
    guess = unverified_id(envelope)
    if envelope["key_id"] != server_key_id:
        raise CommandRejected("signed with a key other than the pinned server key", guess)
    try:
        payload_bytes = b64url_decode(envelope["payload"])
        signature = b64url_decode(envelope["signature"])
    except EncodingError as exc:
        raise CommandRejected("malformed envelope", guess) from exc
    try:
        server_key.verify(signature, payload_bytes)
    except InvalidSignature as exc:
        raise CommandRejected("signature invalid", guess) from exc
    try:
        payload = json.loads(payload_bytes)
    except ValueError as exc:
        raise CommandRejected("payload is not JSON", guess) from exc
    if not isinstance(payload, dict):
        raise CommandRejected("payload is not a JSON object")
    command_id = _uuid_or_none(payload.get("id"))
    if command_id is None:
        raise CommandRejected("payload id is not a UUID")
    if payload.get("agent_id") != agent_id:
        raise CommandRejected("addressed to another agent", command_id)
    expires_at = _parse_time(payload.get("expires_at"))
    if expires_at is None:
        raise CommandRejected("expires_at is not an RFC 3339 time", command_id)
    if expires_at <= (now or datetime.now(UTC)):
        raise CommandRejected("expired", command_id)
    kind = payload.get("kind")
    if not isinstance(kind, str) or kind not in BUILTIN_COMMANDS or kind not in allowed:
        raise CommandRejected(f"command kind {str(kind)[:40]!r} is not allowed on this agent", command_id)
    params = payload.get("params")
    if not isinstance(params, dict):
        raise CommandRejected("params is not an object", command_id)
    _check_params(kind, params, command_id)
    script = _check_script(kind, payload.get("script"), command_id)
    if command_id in executed:
        raise CommandRejected("already run (replayed command id)", command_id)
    return Command(
        id=command_id,
        kind=kind,
        params=params,
        script=script,
        expires_at=expires_at,
        requested_by=str(payload.get("requested_by", ""))[:254],
        approved_by=str(payload.get("approved_by", ""))[:254],
    )


def _check_params(kind: str, params: dict[str, Any], command_id: str) -> None:
    if kind == "restart_service":
        service = params.get("service")
        if (
            set(params) != {"service"}
            or not isinstance(service, str)
            or not SERVICE_NAME.fullmatch(service)
            or service.startswith("-")
            or NOT_A_SERVICE.search(service)
        ):
            raise CommandRejected(
                "params: service must be a service unit matching ^[A-Za-z0-9@._-]{1,128}$", command_id
            )
    elif kind == "run_script":
        if len({name.upper() for name in params}) != len(params):
            raise CommandRejected(
                "params: two names differ only in case (ITSM_PARAM_ names are upper case)", command_id
            )
        for name, value in params.items():
            if not _PARAM_NAME.fullmatch(name):
                raise CommandRejected(f"params: {name[:64]!r} is not a valid parameter name", command_id)
            if not isinstance(value, str) or "\x00" in value or len(value) > 32 * 1024:
                raise CommandRejected(f"params: {name} must be a string (no NUL, at most 32 KiB)", command_id)
    elif params:
        raise CommandRejected(f"params: {kind} takes none", command_id)


def _check_script(kind: str, script: Any, command_id: str) -> dict[str, str] | None:
    if kind != "run_script":
        if script is not None:
            raise CommandRejected(f"{kind} carries no script", command_id)
        return None
    if not isinstance(script, dict) or not all(
        isinstance(script.get(k), str) for k in ("name", "interpreter", "body", "sha256")
    ):
        raise CommandRejected("script must have name, interpreter, body and sha256", command_id)
    if script["interpreter"] not in INTERPRETERS:
        raise CommandRejected("script interpreter must be sh or python", command_id)
    if hashlib.sha256(script["body"].encode("utf-8")).hexdigest() != script["sha256"]:
        raise CommandRejected("script sha256 does not match its body", command_id)
    return script


def tail_text(data: bytes, limit: int = OUTPUT_LIMIT) -> str:
    """The last ``limit`` bytes of output as text, at most ``limit`` bytes once UTF-8 encoded."""
    text = data[-limit:].decode("utf-8", "replace")
    while len(text.encode("utf-8")) > limit:
        text = text[len(text) // 64 + 1 :]
    return text


@dataclass
class Outcome:
    """What running a command gave: ``status`` succeeded | failed, exit code (None when nothing ran to
    exit), the output's tail and a reason for a failure."""

    status: str
    exit_code: int | None = None
    output: str = ""
    reason: str = ""


def run_process(argv: list[str], *, env: dict[str, str], timeout: float, cwd: str | None = None) -> Outcome:
    """Run ``argv`` (never a shell) in its own session, stdout and stderr together, keeping the last 64 KiB.

    On timeout the whole process group is killed and the outcome is ``failed`` with reason ``timed out``.
    """
    try:
        proc = subprocess.Popen(  # noqa: S603 (an argv list, never a shell)
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
    except OSError as exc:
        return Outcome(status="failed", reason=f"cannot start {argv[0]}: {exc.strerror}")
    buffer = bytearray()

    def drain() -> None:
        assert proc.stdout is not None
        while chunk := os.read(proc.stdout.fileno(), 65536):
            buffer.extend(chunk)
            if len(buffer) > 2 * OUTPUT_LIMIT:
                del buffer[:-OUTPUT_LIMIT]

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    timed_out = False
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, 9)
        proc.wait()
    reader.join(timeout=5)
    output = tail_text(bytes(buffer))
    if timed_out:
        return Outcome(
            status="failed", exit_code=proc.returncode, output=output, reason=f"timed out after {timeout:g} s"
        )
    if proc.returncode == 0:
        return Outcome(status="succeeded", exit_code=0, output=output)
    return Outcome(
        status="failed", exit_code=proc.returncode, output=output, reason=f"exit code {proc.returncode}"
    )


def run_script(command: Command, *, work_dir: Path, timeout: float) -> Outcome:
    """Write the script body to a 0700 temp file in ``work_dir`` and run it with its interpreter; params
    become environment variables ITSM_PARAM_<UPPERNAME> (never spliced into the script). The file is
    deleted afterwards."""
    assert command.script is not None
    ensure_private_dir(work_dir)
    fd, path = tempfile.mkstemp(
        prefix="script-", suffix=".py" if command.script["interpreter"] == "python" else ".sh", dir=work_dir
    )
    try:
        os.fchmod(fd, 0o700)
        with os.fdopen(fd, "wb") as handle:
            handle.write(command.script["body"].encode("utf-8"))
        env = dict(_SCRIPT_ENV, HOME=str(work_dir), ITSM_COMMAND_ID=command.id)
        env.update({f"ITSM_PARAM_{name.upper()}": value for name, value in command.params.items()})
        return run_process(
            [*INTERPRETERS[command.script["interpreter"]], path], env=env, timeout=timeout, cwd=str(work_dir)
        )
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def restart_service(command: Command) -> Outcome:
    """``systemctl restart -- NAME`` (argv list; the name was checked against the pattern)."""
    return run_process(
        ["systemctl", "restart", "--", command.params["service"]],
        env=dict(_SCRIPT_ENV),
        timeout=RESTART_TIMEOUT,
    )


def result_body(outcome: Outcome, *, started_at: float, finished_at: float) -> dict[str, Any]:
    """The body of POST /commands/<id>/result (0018)."""
    body: dict[str, Any] = {
        "status": outcome.status,
        "output": outcome.output,
        "reason": outcome.reason[:1000],
        "started_at": rfc3339(started_at),
        "finished_at": rfc3339(finished_at),
    }
    if outcome.exit_code is not None:
        body["exit_code"] = outcome.exit_code
    return body


def rejected_body(reason: str, *, status: str = "rejected") -> dict[str, Any]:
    """A result that ran nothing (``rejected``, or ``failed`` for an interrupted run), timed now."""
    now = time.time()
    return result_body(Outcome(status=status, reason=reason), started_at=now, finished_at=now)


class ResultOutbox:
    """Command results waiting to be posted, one file each (``results/<command id>.json``), so a result
    survives an outage or a restart. Bounded to the newest 1,000."""

    LIMIT = 1000

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        ensure_private_dir(directory)

    def put(self, command_id: str, body: dict[str, Any]) -> None:
        atomic_write(self.dir / f"{command_id}.json", json.dumps(body).encode("utf-8"))
        files = sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime)
        for stale in files[: -self.LIMIT]:
            stale.unlink()

    def items(self) -> list[tuple[str, dict[str, Any]]]:
        out = []
        for path in sorted(self.dir.glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                out.append((path.stem, json.loads(path.read_bytes())))
            except (OSError, ValueError):
                path.unlink()
        return out

    def has(self, command_id: str) -> bool:
        return (self.dir / f"{command_id}.json").exists()

    def done(self, command_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.dir / f"{command_id}.json").unlink()


Executor = Callable[[Command], Outcome]
