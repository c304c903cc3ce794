"""Command verification (0018) and execution: every reason to refuse is refused and nothing runs; a good
command runs for real."""

from __future__ import annotations

import hashlib
import json
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from itsm_agent.cli import main
from itsm_agent.commands import OUTPUT_LIMIT, Command, CommandRejected, run_script, tail_text, verify
from itsm_agent.signing import public_key_from_b64
from itsm_agent.state import BUILTIN_COMMANDS, StateStore

from .agent_fake_gateway import FakeGateway, b64u, unb64u

AGENT = str(uuid.uuid4())


def script(body: str, interpreter: str = "sh") -> dict[str, str]:
    return {
        "name": "t",
        "interpreter": interpreter,
        "body": body,
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }


def check(
    gateway: FakeGateway, envelope: Any, *, executed: tuple[str, ...] = (), allowed: Any = BUILTIN_COMMANDS
) -> Command:
    return verify(
        envelope,
        server_key=public_key_from_b64(gateway.server_key_b64),
        server_key_id=gateway.server_key_id,
        agent_id=AGENT,
        allowed=allowed,
        executed=executed,
    )


def tamper(envelope: dict[str, str], **changes: Any) -> dict[str, str]:
    payload = json.loads(unb64u(envelope["payload"]))
    payload.update(changes)
    return {**envelope, "payload": b64u(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode())}


def test_a_correctly_signed_command_passes() -> None:
    gateway = FakeGateway()
    command = check(
        gateway,
        gateway.envelope(agent_id=AGENT, kind="run_script", params={"name": "x"}, script=script("true")),
    )
    assert command.kind == "run_script" and command.params == {"name": "x"}
    assert command.approved_by == "lead@msp.example"
    assert check(
        gateway, gateway.envelope(agent_id=AGENT, kind="restart_service", params={"service": "nginx@a.b-c_d"})
    ).kind


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (
            lambda g: tamper(g.envelope(agent_id=AGENT, kind="collect_inventory"), kind="run_script"),
            "signature invalid",
        ),
        (
            lambda g: g.envelope(
                agent_id=AGENT, kind="collect_inventory", signer=Ed25519PrivateKey.generate()
            ),
            "signature invalid",
        ),
        (
            lambda g: {**g.envelope(agent_id=AGENT, kind="collect_inventory"), "key_id": "0" * 16},
            "other than the pinned",
        ),
        (lambda g: g.envelope(agent_id=str(uuid.uuid4()), kind="collect_inventory"), "another agent"),
        (lambda g: g.envelope(agent_id=AGENT, kind="collect_inventory", expires_in=-1), "expired"),
        (lambda g: g.envelope(agent_id=AGENT, kind="reboot"), "not allowed"),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="restart_service", params={"service": "a; rm -rf /"}),
            "service must be a service unit",
        ),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="restart_service", params={"service": "--now"}),
            "service must be a service unit",
        ),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="restart_service", params={"service": "reboot.target"}),
            "service must be a service unit",
        ),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="run_script", params={"x": 1}, script=script("true")),
            "must be a string",
        ),
        (
            lambda g: g.envelope(
                agent_id=AGENT, kind="run_script", params={"A=B": "1"}, script=script("true")
            ),
            "parameter name",
        ),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="restart_service", params={"service": "nginx\n"}),
            "service must be a service unit",
        ),
        (
            lambda g: g.envelope(
                agent_id=AGENT, kind="run_script", params={"X\n": "1"}, script=script("true")
            ),
            "parameter name",
        ),
        (
            lambda g: g.envelope(
                agent_id=AGENT, kind="run_script", params={"a": "1", "A": "2"}, script=script("true")
            ),
            "differ only in case",
        ),
        (
            lambda g: g.envelope(
                agent_id=AGENT, kind="run_script", script={**script("true"), "body": "rm -rf /"}
            ),
            "sha256",
        ),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="run_script", script=script("true", "bash")),
            "interpreter",
        ),
        (lambda g: g.envelope(agent_id=AGENT, kind="run_script", script=None), "script must have"),
        (
            lambda g: g.envelope(agent_id=AGENT, kind="collect_inventory", script=script("true")),
            "carries no script",
        ),
        (lambda g: "not an envelope", "malformed"),
    ],
)
def test_each_broken_rule_rejects(make: Any, reason: str) -> None:
    gateway = FakeGateway()
    with pytest.raises(CommandRejected) as info:
        check(gateway, make(gateway))
    assert reason in info.value.reason


def test_replayed_and_narrowed_kinds_are_rejected() -> None:
    gateway = FakeGateway()
    envelope = gateway.envelope(agent_id=AGENT, kind="collect_inventory")
    command = check(gateway, envelope)
    with pytest.raises(CommandRejected, match="already run"):
        check(gateway, envelope, executed=(command.id,))
    with pytest.raises(CommandRejected, match="not allowed"):
        check(gateway, envelope, allowed=frozenset({"rotate_credential"}))


def test_a_payload_with_an_expiry_without_time_zone_is_rejected() -> None:
    gateway = FakeGateway()
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%S")
    envelope = gateway.envelope(agent_id=AGENT, kind="collect_inventory")
    payload = json.loads(unb64u(envelope["payload"])) | {"expires_at": later}
    data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    signed = {
        "payload": b64u(data),
        "signature": b64u(gateway.server_private.sign(data)),
        "key_id": gateway.server_key_id,
    }
    with pytest.raises(CommandRejected, match="RFC 3339"):
        check(gateway, signed)


# -- through the agent: a refused command runs nothing, and the server hears why ---------------------------

MARKER_SCRIPT = 'touch "$ITSM_PARAM_TARGET"'


@pytest.mark.parametrize(
    ("breakage", "reason"),
    [
        ("tampered", "signature invalid"),
        ("wrong key", "signature invalid"),
        ("other agent", "addressed to another agent"),
        ("expired", "expired"),
        ("not allowed", "command kind 'run_script' is not allowed on this agent"),
        ("hash mismatch", "script sha256 does not match its body"),
        ("replayed", "already run (replayed command id)"),
    ],
)
def test_a_refused_command_has_no_side_effect(
    gateway: FakeGateway, enrolled: StateStore, tmp_path: Path, breakage: str, reason: str
) -> None:
    agent_id = enrolled.load().agent_id
    marker = tmp_path / "ran"
    params = {"target": str(marker)}
    good = gateway.envelope(agent_id=agent_id, kind="run_script", params=params, script=script(MARKER_SCRIPT))
    if breakage == "replayed":
        gateway.queued = [good]
        assert main(["run", "--once", "--state-dir", str(enrolled.dir)]) == 0
        assert marker.exists()
        marker.unlink()
        envelope = good
    elif breakage == "tampered":
        envelope = tamper(good, params={"target": str(tmp_path / "elsewhere")})
        marker = tmp_path / "elsewhere"
    elif breakage == "wrong key":
        envelope = gateway.envelope(
            agent_id=agent_id,
            kind="run_script",
            params=params,
            script=script(MARKER_SCRIPT),
            signer=Ed25519PrivateKey.generate(),
        )
    elif breakage == "other agent":
        envelope = gateway.envelope(
            agent_id=str(uuid.uuid4()), kind="run_script", params=params, script=script(MARKER_SCRIPT)
        )
    elif breakage == "expired":
        envelope = gateway.envelope(
            agent_id=agent_id, kind="run_script", params=params, script=script(MARKER_SCRIPT), expires_in=-5
        )
    elif breakage == "not allowed":
        (enrolled.dir / "config.json").write_text(json.dumps({"allowed_commands": ["collect_inventory"]}))
        envelope = good
    else:
        envelope = gateway.envelope(
            agent_id=agent_id,
            kind="run_script",
            params=params,
            script={**script(MARKER_SCRIPT), "body": MARKER_SCRIPT + " # more"},
        )
    gateway.queued = [envelope]
    assert main(["run", "--once", "--state-dir", str(enrolled.dir)]) == 0
    assert not marker.exists()
    command_id = json.loads(unb64u(envelope["payload"]))["id"]
    result = gateway.results[command_id][-1]
    assert (result["status"], result["reason"]) == ("rejected", reason)
    assert "exit_code" not in result
    assert not (enrolled.dir / "scripts").exists() or not list((enrolled.dir / "scripts").iterdir())


def test_a_good_script_runs_with_its_params_and_the_result_is_posted(
    gateway: FakeGateway, enrolled: StateStore, tmp_path: Path
) -> None:
    agent_id = enrolled.load().agent_id
    marker = tmp_path / "ran"
    envelope = gateway.envelope(
        agent_id=agent_id, kind="run_script", params={"target": str(marker)}, script=script(MARKER_SCRIPT)
    )
    gateway.queued = [envelope]
    assert main(["run", "--once", "--state-dir", str(enrolled.dir)]) == 0
    assert marker.exists()
    command_id = json.loads(unb64u(envelope["payload"]))["id"]
    [result] = gateway.results[command_id]
    assert result["status"] == "succeeded" and result["exit_code"] == 0
    assert command_id in enrolled.load().executed_commands
    assert not list((enrolled.dir / "scripts").iterdir())  # the temp file is gone


def test_collect_inventory_sends_an_inventory_report_now(gateway: FakeGateway, enrolled: StateStore) -> None:
    gateway.queued = [gateway.envelope(agent_id=enrolled.load().agent_id, kind="collect_inventory")]
    assert main(["run", "--once", "--state-dir", str(enrolled.dir)]) == 0
    kinds = [r["type"] for r in gateway.reports.values()]
    assert kinds.count("inventory") == 2  # the round's and the command's
    assert [r["status"] for rs in gateway.results.values() for r in rs] == ["succeeded"]


# -- run_script for real -------------------------------------------------------------------------------------


def command(body: str, interpreter: str = "sh", **params: str) -> Command:
    return Command(
        id=str(uuid.uuid4()),
        kind="run_script",
        params=params,
        script=script(body, interpreter),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        requested_by="a",
        approved_by="b",
    )


def test_run_script_captures_exit_code_and_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SECRET_FROM_PARENT", "s3cret")  # the agent's environment is not the script's
    body = 'echo "hello $ITSM_PARAM_WHO"; echo oops >&2; test -z "$SECRET_FROM_PARENT" || echo leaked; exit 3'
    outcome = run_script(command(body, who="world"), work_dir=tmp_path / "scripts", timeout=10)
    assert outcome.status == "failed" and outcome.exit_code == 3
    assert outcome.output == "hello world\noops\n"
    assert outcome.reason == "exit code 3"
    ok = run_script(
        command(
            "import os, sys; print(os.environ['ITSM_PARAM_N'], sys.argv[0].endswith('.py'))", "python", n="5"
        ),
        work_dir=tmp_path / "scripts",
        timeout=10,
    )
    assert (ok.status, ok.exit_code, ok.output) == ("succeeded", 0, "5 True\n")
    assert oct((tmp_path / "scripts").stat().st_mode & 0o777) == "0o700"
    assert list((tmp_path / "scripts").iterdir()) == []


def test_run_script_does_not_splice_params_into_the_script(tmp_path: Path) -> None:
    outcome = run_script(
        command('echo "$ITSM_PARAM_X"', x="$(touch pwned); `touch pwned2`"), work_dir=tmp_path, timeout=10
    )
    assert outcome.output == "$(touch pwned); `touch pwned2`\n"
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "pwned2").exists()


def test_run_script_times_out_and_kills_the_process_group(tmp_path: Path) -> None:
    started = time.monotonic()
    outcome = run_script(
        command(f"echo started; sleep 30 & sleep 30; touch {tmp_path}/late"), work_dir=tmp_path, timeout=0.5
    )
    assert time.monotonic() - started < 10
    assert outcome.status == "failed" and outcome.reason == "timed out after 0.5 s"
    assert outcome.output == "started\n"
    time.sleep(0.2)
    assert not (tmp_path / "late").exists()


def test_output_keeps_the_last_64_kib(tmp_path: Path) -> None:
    body = f"{sys.executable} -c \"import sys; sys.stdout.write('a' * 200000 + 'END')\""
    outcome = run_script(command(body), work_dir=tmp_path, timeout=10)
    assert outcome.status == "succeeded"
    assert len(outcome.output.encode()) == OUTPUT_LIMIT and outcome.output.endswith("aEND")
    assert len(tail_text("é".encode() * 40000).encode()) <= OUTPUT_LIMIT
