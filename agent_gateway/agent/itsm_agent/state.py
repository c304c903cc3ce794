"""The agent's state directory: identity, keys, pinned server key, and the optional config file.

Layout (the directory is 0700, every file 0600; all writes are temp file + fsync + rename, so a crash
leaves either the old or the new file, never half of one)::

    <state dir>/state.json         identity and bookkeeping (State); its presence means "enrolled"
    <state dir>/keys/<key id>.key  Ed25519 private keys (PKCS#8 PEM): the current one, and during a
                                   rotation the previous one until the new key has been used once
    <state dir>/config.json        optional overrides written by an administrator (Config)
    <state dir>/spool/             reports waiting to be sent (spool.py)
    <state dir>/results/           command results waiting to be posted (commands.py)

The state directory is ``--state-dir``, else ``$ITSM_AGENT_STATE_DIR``, else /var/lib/itsm-agent. The
enrolment token is never stored.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import IO, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

DEFAULT_STATE_DIR = "/var/lib/itsm-agent"
STATE_DIR_ENV = "ITSM_AGENT_STATE_DIR"
STATE_FILE = "state.json"
CONFIG_FILE = "config.json"
KEYS_DIR = "keys"
EXECUTED_LIMIT = 1000  # command ids kept to refuse replays (the brief: the last 1,000)
DEFAULT_INTERVALS = {"heartbeat": 60, "metrics": 60, "inventory": 21600, "poll": 60}
INTERVAL_BOUNDS = (10, 7 * 24 * 3600)  # seconds; outside this a value is a typo, not a wish
SERVICE_NAME = re.compile(r"^[A-Za-z0-9@._-]{1,128}$")  # metrics.json services[].name; 0018 restart_service
BUILTIN_COMMANDS = frozenset({"collect_inventory", "restart_service", "run_script", "rotate_credential"})
_KEY_ID = re.compile(r"^[0-9a-f]{16}$")

log = logging.getLogger(__name__)


class StateError(Exception):
    """The state directory or one of its files is missing, unreadable or malformed (message says which)."""


def resolve_state_dir(cli_value: str | None) -> Path:
    """``--state-dir``, else $ITSM_AGENT_STATE_DIR, else /var/lib/itsm-agent."""
    return Path(cli_value or os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR)


def ensure_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if needed and make it 0700 (it holds keys and reports)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(path, 0o700)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Write ``data`` to ``path`` crash-safely: a temp file in the same directory, fsync, rename, fsync dir."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


@contextlib.contextmanager
def exclusive_lock(state_dir: Path) -> Iterator[None]:
    """Hold ``<state dir>/lock`` (flock) so two agents never share one identity and spool.

    Raises StateError when another process holds it.
    """
    ensure_private_dir(state_dir)
    handle: IO[bytes] = open(state_dir / "lock", "ab")  # noqa: SIM115 (held for the whole block)
    try:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise StateError(f"another itsm-agent is running with state directory {state_dir}") from exc
        yield
    finally:
        handle.close()


@dataclass
class State:
    """What the agent knows about itself and its server (state.json).

    Times are Unix seconds (float, UTC); intervals are seconds; ``clock_offset`` is seconds to add to the
    local clock to get the server's (learned from a ``clock-skew`` refusal).
    """

    agent_id: str
    key_id: str
    server_url: str
    server_key: str  # base64url raw 32 bytes, pinned at enrolment
    server_key_id: str
    intervals: dict[str, int]
    rotate_after_days: int
    enrolled_at: float
    status: str = "active"  # as the enrolment answered: active | pending
    key_created_at: float = 0.0
    previous_key_id: str | None = None  # kept until the first request signed with key_id succeeds
    clock_offset: float = 0.0
    last_contact: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    executed_commands: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2, sort_keys=True).encode("utf-8")

    @classmethod
    def from_json(cls, data: bytes) -> State:
        try:
            raw = json.loads(data)
            state = cls(**{name: raw[name] for name in cls.__dataclass_fields__ if name in raw})
        except (ValueError, TypeError, KeyError) as exc:
            raise StateError(f"state.json is malformed: {exc}") from exc
        for name in (state.key_id, state.server_key_id, state.previous_key_id):
            if name is not None and not _KEY_ID.fullmatch(name):
                raise StateError("state.json is malformed: a key id is not 16 hex digits")
        return state

    def remember_executed(self, command_id: str) -> None:
        """Record a command id as run (before it runs: at most once), keeping the last 1,000."""
        if command_id not in self.executed_commands:
            self.executed_commands.append(command_id)
        del self.executed_commands[:-EXECUTED_LIMIT]


class StateStore:
    """Reads and writes one state directory (see the module docstring for its layout)."""

    def __init__(self, state_dir: Path) -> None:
        self.dir = state_dir

    @property
    def state_path(self) -> Path:
        return self.dir / STATE_FILE

    @property
    def keys_dir(self) -> Path:
        return self.dir / KEYS_DIR

    def is_enrolled(self) -> bool:
        return self.state_path.exists()

    def load(self) -> State:
        """The saved state; raises StateError if the agent is not enrolled or the file is unreadable."""
        try:
            data = self.state_path.read_bytes()
        except FileNotFoundError as exc:
            raise StateError(f"not enrolled (no {self.state_path}); run `itsm-agent enroll` first") from exc
        except OSError as exc:
            raise StateError(f"cannot read {self.state_path}: {exc.strerror}") from exc
        return State.from_json(data)

    def save(self, state: State) -> None:
        ensure_private_dir(self.dir)
        atomic_write(self.state_path, state.to_json())

    def key_path(self, key_id: str) -> Path:
        if not _KEY_ID.fullmatch(key_id):
            raise StateError("a key id is 16 hex digits")
        return self.keys_dir / f"{key_id}.key"

    def save_key(self, key_id: str, private_key: Ed25519PrivateKey) -> None:
        """Store a private key as PKCS#8 PEM, mode 0600, in a 0700 directory."""
        ensure_private_dir(self.dir)
        ensure_private_dir(self.keys_dir)
        pem = private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        atomic_write(self.key_path(key_id), pem)

    def load_key(self, key_id: str) -> Ed25519PrivateKey:
        """The private key with this key id; raises StateError if missing or not an Ed25519 key."""
        path = self.key_path(key_id)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except FileNotFoundError as exc:
            raise StateError(f"the private key {path} is missing") from exc
        except (OSError, ValueError) as exc:
            raise StateError(f"the private key {path} is unreadable") from exc
        if not isinstance(key, Ed25519PrivateKey):
            raise StateError(f"{path} is not an Ed25519 key")
        return key

    def delete_key(self, key_id: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.key_path(key_id).unlink()
        if self.keys_dir.exists():
            _fsync_dir(self.keys_dir)

    def remove_stray_keys(self, state: State) -> None:
        """Delete key files that the state no longer names (left by a crash in the middle of a rotation)."""
        keep = {state.key_id, state.previous_key_id}
        if not self.keys_dir.exists():
            return
        for path in self.keys_dir.glob("*.key"):
            if path.stem not in keep:
                log.info("removing the unused key file %s", path.name)
                path.unlink()


@dataclass(frozen=True)
class Config:
    """Administrator overrides from ``<state dir>/config.json`` (every key optional).

    - ``intervals``: ``{"heartbeat"|"metrics"|"inventory"|"poll": seconds}``, 10 s to 7 days, overriding
      what the server gave at enrolment;
    - ``services``: systemd unit names whose state each metrics report carries (^[A-Za-z0-9@._-]{1,128}$);
    - ``spool_max_bytes``: the offline spool's bound (default 50 MB, at least 1 MiB);
    - ``allowed_commands``: narrows the built-in allow-list (never widens it);
    - ``script_timeout_seconds``: run_script's time limit (default 300).
    """

    intervals: dict[str, int] = field(default_factory=dict)
    services: tuple[str, ...] = ()
    spool_max_bytes: int = 50 * 1000 * 1000
    allowed_commands: frozenset[str] = BUILTIN_COMMANDS
    script_timeout_seconds: int = 300

    @classmethod
    def load(cls, state_dir: Path) -> Config:
        """Read config.json if present; raises StateError naming the bad key (a typo must not pass silently)."""
        path = state_dir / CONFIG_FILE
        try:
            raw = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except (OSError, ValueError) as exc:
            raise StateError(f"cannot read {path}: {exc}") from exc
        return cls.from_dict(raw, source=str(path))

    @classmethod
    def from_dict(cls, raw: Any, *, source: str = "config") -> Config:
        if not isinstance(raw, dict):
            raise StateError(f"{source}: expected a JSON object")
        unknown = set(raw) - {
            "intervals",
            "services",
            "spool_max_bytes",
            "allowed_commands",
            "script_timeout_seconds",
        }
        if unknown:
            raise StateError(f"{source}: unknown keys {sorted(unknown)}")
        intervals = raw.get("intervals", {})
        if not isinstance(intervals, dict):
            raise StateError(f"{source}: intervals must be an object")
        for name, value in intervals.items():
            if name not in DEFAULT_INTERVALS:
                raise StateError(f"{source}: intervals.{name} is not one of {sorted(DEFAULT_INTERVALS)}")
            if not _is_int(value) or not INTERVAL_BOUNDS[0] <= value <= INTERVAL_BOUNDS[1]:
                raise StateError(f"{source}: intervals.{name} must be whole seconds from 10 to 604800")
        services = raw.get("services", [])
        if not isinstance(services, list) or not all(isinstance(s, str) for s in services):
            raise StateError(f"{source}: services must be a list of unit names")
        bad = [s for s in services if not SERVICE_NAME.fullmatch(s)]
        if bad:
            raise StateError(f"{source}: service names must match ^[A-Za-z0-9@._-]{{1,128}}$: {bad[:3]}")
        spool_max = raw.get("spool_max_bytes", cls.spool_max_bytes)
        if not _is_int(spool_max) or spool_max < 1024 * 1024:
            raise StateError(f"{source}: spool_max_bytes must be an integer of at least 1048576")
        allowed = raw.get("allowed_commands", sorted(BUILTIN_COMMANDS))
        if not isinstance(allowed, list) or not all(isinstance(s, str) for s in allowed):
            raise StateError(f"{source}: allowed_commands must be a list of command kinds")
        if set(allowed) - BUILTIN_COMMANDS:
            raise StateError(f"{source}: allowed_commands may only name {sorted(BUILTIN_COMMANDS)}")
        timeout = raw.get("script_timeout_seconds", cls.script_timeout_seconds)
        if not _is_int(timeout) or not 1 <= timeout <= 86400:
            raise StateError(f"{source}: script_timeout_seconds must be whole seconds from 1 to 86400")
        return cls(
            intervals=dict(intervals),
            services=tuple(dict.fromkeys(services)),
            spool_max_bytes=spool_max,
            allowed_commands=frozenset(allowed),
            script_timeout_seconds=timeout,
        )


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
