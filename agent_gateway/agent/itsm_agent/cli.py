"""``itsm-agent``: enroll, run, status.

Exit codes: 0 success; 1 ``status`` of an agent that is not enrolled, or a ``run --once`` round with a
failed request; 2 an error the command could not get past (its message on stderr names what failed).
"""

from __future__ import annotations

import argparse
import logging
import platform
import signal
import socket
import sys
import time
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from itsm_agent import __version__
from itsm_agent.client import GatewayClient, GatewayError, Signer, TransientError, check_server_url
from itsm_agent.signing import EncodingError, b64url_decode, b64url_encode, key_id, public_raw
from itsm_agent.spool import spool_usage
from itsm_agent.state import (
    DEFAULT_INTERVALS,
    INTERVAL_BOUNDS,
    Config,
    State,
    StateError,
    StateStore,
    ensure_private_dir,
    exclusive_lock,
    resolve_state_dir,
)

log = logging.getLogger("itsm_agent")


class CliError(Exception):
    """Ends the command with exit code 2 and this message."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="itsm-agent", description="The endpoint agent of the MSP ITSM platform."
    )
    parser.add_argument("--version", action="version", version=f"itsm-agent {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = parser.add_subparsers(dest="command", required=True)

    def state_dir_option(sub: argparse.ArgumentParser) -> None:
        sub.add_argument(
            "--state-dir",
            help="where identity, keys and the spool live (default $ITSM_AGENT_STATE_DIR or /var/lib/itsm-agent)",
        )

    enroll = commands.add_parser("enroll", help="enrol this machine with an enrolment token")
    enroll.add_argument("--server", required=True, help="the gateway's URL, e.g. https://itsm.example.com")
    enroll.add_argument(
        "--token",
        required=True,
        help="the enrolment token (itsm_enr_...), or - to read it from stdin (kept out of ps and shell history); never stored",
    )
    enroll.add_argument(
        "--server-key",
        help="pin the server's command-signing key (base64url), checked against the answer; write"
        " --server-key=KEY, since a key may begin with -",
    )
    state_dir_option(enroll)
    run = commands.add_parser("run", help="report and run commands until stopped")
    run.add_argument(
        "--once", action="store_true", help="one round (collect, send, poll, run commands) and exit"
    )
    state_dir_option(run)
    status = commands.add_parser("status", help="print identity, spool and last contact")
    state_dir_option(status)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry nothing we need
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    state_dir = resolve_state_dir(args.state_dir)
    try:
        if args.command == "enroll":
            return enroll(state_dir, server=args.server, token=args.token, server_key=args.server_key)
        if args.command == "run":
            return run(state_dir, once=args.once)
        return status(state_dir)
    except (CliError, StateError) as exc:
        print(f"itsm-agent: {exc}", file=sys.stderr)
        return 2
    except PermissionError as exc:
        print(f"itsm-agent: permission denied: {exc.filename} (run as root?)", file=sys.stderr)
        return 2


def enroll(state_dir: Path, *, server: str, token: str, server_key: str | None) -> int:
    """Make a key pair, POST /agent/v1/enrol signed with it (agent id "enrol"), check the answer, store
    the state (never the token). Raises CliError naming what failed; nothing is stored on failure."""
    try:
        server = check_server_url(server)
    except ValueError as exc:
        raise CliError(str(exc)) from exc
    if token == "-":  # noqa: S105 (the stdin marker, not a password)
        token = sys.stdin.readline()
    if not token.strip():
        raise CliError("the enrolment token is empty")
    pinned: bytes | None = None
    if server_key is not None:
        try:
            pinned = b64url_decode(server_key)
        except EncodingError as exc:
            raise CliError("--server-key is not unpadded base64url") from exc
        if len(pinned) != 32:
            raise CliError("--server-key must be a 32-byte Ed25519 public key")
    store = StateStore(state_dir)
    with exclusive_lock(state_dir):
        if store.is_enrolled():
            agent = store.load().agent_id
            raise CliError(
                f"already enrolled as agent {agent} (state directory {state_dir}); remove it to enrol again"
            )
        private_key = Ed25519PrivateKey.generate()
        raw = public_raw(private_key)
        kid = key_id(raw)
        client = GatewayClient(server, Signer("enrol", kid, private_key))
        try:
            answer = client.enrol(
                token=token.strip(),
                public_key=b64url_encode(raw),
                hostname=socket.gethostname()[:253] or "unknown",
                os_name=platform.system().lower() or "unknown",
            )
        except TransientError as exc:
            raise CliError(f"enrolment failed: {exc}") from exc
        except GatewayError as exc:
            detail = exc.body.get("detail") if isinstance(exc.body.get("detail"), str) else ""
            raise CliError(
                f"enrolment refused by {server}: {exc.status} {exc.title}"
                + (f": {detail[:300]}" if detail else "")
            ) from exc
        finally:
            client.close()
        state = _state_from_answer(answer, server=server, key_id=kid, pinned=pinned)
        state.clock_offset = client.clock_offset  # learnt from a clock-skew answer, if there was one
        # The key first: a state.json without its key would look enrolled and be broken.
        store.save_key(kid, private_key)
        store.save(state)
    tenant = answer.get("tenant", {}).get("name") if isinstance(answer.get("tenant"), dict) else None
    print(
        f"enrolled as agent {state.agent_id} ({state.status})"
        + (f" for {tenant}" if tenant else "")
        + f"; state in {state_dir}"
    )
    if state.status == "pending":
        print("the agent waits for approval in the console; `itsm-agent run` keeps its reports until then")
    return 0


def _state_from_answer(answer: dict[str, Any], *, server: str, key_id: str, pinned: bytes | None) -> State:
    """Check the enrolment answer (0018) and make the State; raises CliError for anything off."""
    from itsm_agent.signing import key_id as compute_key_id

    def bad(what: str) -> CliError:
        return CliError(f"the server's enrolment answer is not usable: {what}; nothing was stored")

    try:
        agent_id = str(uuid.UUID(str(answer.get("agent_id"))))
    except ValueError as exc:
        raise bad("agent_id is not a UUID") from exc
    if answer.get("key_id") != key_id:
        raise bad("key_id is not this agent's key")
    try:
        server_raw = b64url_decode(str(answer.get("server_key")))
        server_key_id = compute_key_id(server_raw)
    except EncodingError as exc:
        raise bad("server_key is not a base64url Ed25519 key") from exc
    if answer.get("server_key_id") != server_key_id:
        raise bad("server_key_id does not match server_key")
    if pinned is not None and server_raw != pinned:
        raise CliError(
            "the server's command-signing key is not the one given with --server-key; nothing was stored"
        )
    intervals = dict(DEFAULT_INTERVALS)
    given = answer.get("intervals", {})
    if isinstance(given, dict):
        for name in DEFAULT_INTERVALS:
            value = given.get(name)
            if (
                isinstance(value, int)
                and not isinstance(value, bool)
                and INTERVAL_BOUNDS[0] <= value <= INTERVAL_BOUNDS[1]
            ):
                intervals[name] = value
    rotate_after = answer.get("rotate_after_days", 30)
    if not isinstance(rotate_after, int) or isinstance(rotate_after, bool) or not 0 <= rotate_after <= 3650:
        rotate_after = 30
    status = answer.get("status") if answer.get("status") in ("active", "pending") else "active"
    now = time.time()
    return State(
        agent_id=agent_id,
        key_id=key_id,
        server_url=server,
        server_key=b64url_encode(server_raw),
        server_key_id=server_key_id,
        intervals=intervals,
        rotate_after_days=rotate_after,
        enrolled_at=now,
        status=str(status),
        key_created_at=now,
    )


def run(state_dir: Path, *, once: bool) -> int:
    """The report loop (loop.Agent); ``once``: one round, exit 0 if every request succeeded, else 1."""
    from itsm_agent.loop import Agent  # psutil and the collectors load only for `run`

    store = StateStore(state_dir)
    if not store.is_enrolled():
        raise CliError(f"not enrolled (no {store.state_path}); run `itsm-agent enroll` first")
    config = Config.load(state_dir)
    ensure_private_dir(state_dir)
    with exclusive_lock(state_dir):
        agent = Agent(store, config)
        try:
            if once:
                code = agent.run_once()
                if code:
                    print(
                        f"itsm-agent: the round had errors; last: {agent.round_errors[-1]}", file=sys.stderr
                    )
                return code
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, lambda *_: agent.request_stop())
            log.info(
                "itsm-agent %s running as agent %s, server %s",
                __version__,
                agent.state.agent_id,
                agent.state.server_url,
            )
            agent.run_forever()
            log.info("stopped")
            return 0
        finally:
            agent.close()


def _when(timestamp: float | None) -> str:
    return (
        "never"
        if timestamp is None
        else datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    )


def status(state_dir: Path) -> int:
    """Print identity, spool and contact; 0 if enrolled, else 1."""
    store = StateStore(state_dir)
    if not store.is_enrolled():
        print(f"not enrolled (state directory {state_dir})")
        return 1
    state = store.load()
    reports, size = spool_usage(state_dir / "spool")
    lines = [
        ("agent id", state.agent_id),
        ("server", state.server_url),
        (
            "key id",
            state.key_id
            + (
                f" (rotation: previous key {state.previous_key_id} kept until first use)"
                if state.previous_key_id
                else ""
            ),
        ),
        ("status", state.status),
        ("enrolled at", _when(state.enrolled_at)),
        ("spool", f"{reports} reports, {size} bytes"),
        ("last contact", _when(state.last_contact)),
        ("last error", f"{state.last_error} ({_when(state.last_error_at)})" if state.last_error else "none"),
    ]
    for label, value in lines:
        print(f"{label + ':':<14}{value}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
