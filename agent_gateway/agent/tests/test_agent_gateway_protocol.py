"""The agent against a real tiny gateway that checks each request's signature independently:
enrolment, report batches, refusals, backoff, clock skew, key rotation and the status command."""

from __future__ import annotations

import fcntl
import hashlib
import io
import json
import os
import random
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from itsm_agent.cli import main
from itsm_agent.loop import Agent
from itsm_agent.state import Config, StateStore

from .agent_fake_gateway import TOKEN, FakeGateway, kid, unb64u


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_once(store: StateStore) -> int:
    return main(["run", "--once", "--state-dir", str(store.dir)])


def test_enrol_stores_identity_and_key_but_never_the_token(
    gateway: FakeGateway, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "enroll",
            "--server",
            gateway.url + "/",
            "--token",
            TOKEN,
            f"--server-key={gateway.server_key_b64}",  # a base64url key may begin with "-"
            "--state-dir",
            str(state_dir),
        ]
    )
    assert code == 0
    state = StateStore(state_dir).load()
    [enrol] = gateway.seen
    assert (enrol.method, enrol.path, enrol.agent_id) == ("POST", "/agent/v1/enrol", "enrol")
    assert (
        enrol.key_id == state.key_id
        and enrol.body["token"] == TOKEN
        and enrol.body["agent_version"] == "0.1.0"
    )
    assert state.agent_id in gateway.keys and state.server_key_id == gateway.server_key_id
    assert state.server_url == gateway.url and state.rotate_after_days == 30
    assert state.intervals == {"heartbeat": 60, "metrics": 60, "inventory": 21600, "poll": 60}
    assert mode(state_dir) == 0o700
    assert mode(state_dir / "state.json") == 0o600
    key_file = state_dir / "keys" / f"{state.key_id}.key"
    assert mode(key_file) == 0o600 and mode(state_dir / "keys") == 0o700
    for path in state_dir.rglob("*"):
        if path.is_file():
            assert TOKEN.encode() not in path.read_bytes()
    out = capsys.readouterr()
    assert f"enrolled as agent {state.agent_id} (active) for Acme Corp" in out.out
    assert TOKEN not in out.out + out.err
    # A second enrolment into the same state directory is refused, and keeps the identity.
    assert main(["enroll", "--server", gateway.url, "--token", TOKEN, "--state-dir", str(state_dir)]) == 2
    assert "already enrolled" in capsys.readouterr().err
    assert StateStore(state_dir).load().agent_id == state.agent_id


def test_enrol_errors_name_what_failed_and_store_nothing(
    gateway: FakeGateway, state_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["enroll", "--server", gateway.url, "--token", "itsm_enr_wrong", "--state-dir", str(state_dir)])
        == 2
    )
    err = capsys.readouterr().err
    assert "enrolment refused" in err and "401 Enrolment token invalid" in err and "Ask your provider" in err
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    assert (
        main(
            [
                "enroll",
                "--server",
                f"http://127.0.0.1:{closed_port}",
                "--token",
                TOKEN,
                "--state-dir",
                str(state_dir),
            ]
        )
        == 2
    )
    assert "cannot reach http://127.0.0.1:" in capsys.readouterr().err
    other_key = FakeGateway().server_key_b64
    assert (
        main(
            [
                "enroll",
                "--server",
                gateway.url,
                "--token",
                TOKEN,
                f"--server-key={other_key}",
                "--state-dir",
                str(state_dir),
            ]
        )
        == 2
    )
    assert "not the one given with --server-key" in capsys.readouterr().err
    assert (
        main(
            ["enroll", "--server", "http://itsm.example.com", "--token", TOKEN, "--state-dir", str(state_dir)]
        )
        == 2
    )
    assert "plain http is only allowed to this machine" in capsys.readouterr().err
    assert (
        main(
            [
                "enroll",
                "--server",
                "https://itsm.example.com/x",
                "--token",
                TOKEN,
                "--state-dir",
                str(state_dir),
            ]
        )
        == 2
    )
    assert "https://host[:port] only" in capsys.readouterr().err
    assert (
        main(
            [
                "enroll",
                "--server",
                gateway.url,
                "--token",
                TOKEN,
                "--server-key",
                "abc=",
                "--state-dir",
                str(state_dir),
            ]
        )
        == 2
    )
    assert not (state_dir / "state.json").exists()
    assert not list((state_dir / "keys").glob("*")) if (state_dir / "keys").exists() else True


def test_state_dir_comes_from_the_environment_and_the_token_from_stdin(
    gateway: FakeGateway, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ITSM_AGENT_STATE_DIR", str(tmp_path / "from-env"))
    monkeypatch.setattr("sys.stdin", io.StringIO(TOKEN + "\n"))
    assert main(["enroll", "--server", gateway.url, "--token", "-"]) == 0
    assert gateway.seen[0].body["token"] == TOKEN
    assert (tmp_path / "from-env" / "state.json").exists()
    assert main(["status"]) == 0


def test_one_round_sends_three_valid_reports_and_empties_the_spool(
    gateway: FakeGateway, enrolled: StateStore
) -> None:
    assert run_once(enrolled) == 0
    state = enrolled.load()
    assert sorted(r["type"] for r in gateway.reports.values()) == ["heartbeat", "inventory", "metrics"]
    metrics = next(r for r in gateway.reports.values() if r["type"] == "metrics")
    assert metrics["data"]["services"] == [
        {"name": "ssh", "status": metrics["data"]["services"][0]["status"]}
    ]
    assert gateway.paths() == ["/agent/v1/enrol", "/agent/v1/reports", "/agent/v1/commands"]
    assert all(s.agent_id == state.agent_id and s.key_id == state.key_id for s in gateway.seen[1:])
    assert list((enrolled.dir / "spool").glob("*.json")) == []
    assert state.last_contact is not None and time.time() - state.last_contact < 60
    assert gateway.refusals == []


def test_duplicates_leave_the_spool_too(gateway: FakeGateway, enrolled: StateStore) -> None:
    agent = Agent(enrolled, Config())
    try:
        agent.collect("heartbeat")
        [report] = agent.spool.batch()
        gateway.reports[report["id"]] = report  # the server already has it (its answer was lost)
        agent.flush()
        assert len(agent.spool) == 0
    finally:
        agent.close()


def test_an_invalid_report_goes_to_rejected_and_the_others_are_sent(
    gateway: FakeGateway, enrolled: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    agent = Agent(enrolled, Config())
    try:
        for kind in ("heartbeat", "metrics", "heartbeat"):
            agent.collect(kind)
        bad = agent.spool.batch()[1]
        gateway.script(
            "/agent/v1/reports",
            422,
            {
                "type": "https://itsm.example/problems/invalid",
                "title": "Invalid reports",
                "status": 422,
                "errors": [{"field": "reports[1].data.cpu_percent", "message": "must be <= 100"}],
            },
        )
        agent.flush()
        assert len(agent.spool) == 0
        assert bad["id"] not in gateway.reports and len(gateway.reports) == 2
        [rejected] = (enrolled.dir / "spool" / "rejected").iterdir()
        assert json.loads(rejected.read_text())["id"] == bad["id"]
        assert (
            "refused a metrics report as invalid" in caplog.text
            and "reports[1].data.cpu_percent" in caplog.text
        )
    finally:
        agent.close()


def test_server_errors_keep_the_reports_and_back_off_honouring_retry_after(
    gateway: FakeGateway, enrolled: StateStore
) -> None:
    agent = Agent(enrolled, Config(), rng=random.Random(3))
    try:
        gateway.script(
            "/agent/v1/reports",
            503,
            {"type": "about:blank", "title": "Unavailable", "status": 503},
            {"Retry-After": "7"},
        )
        assert agent.run_once() == 1
        assert len(agent.spool) == 3 and gateway.reports == {}
        assert agent.blocked() and 6 < agent.blocked_until - time.monotonic() <= 7
        assert gateway.paths() == ["/agent/v1/enrol", "/agent/v1/reports"]  # no poll while backing off
        assert "503 Unavailable" in (enrolled.load().last_error or "")
        agent.blocked_until = 0.0  # the wait is over
        agent.flush()
        assert len(agent.spool) == 0 and len(gateway.reports) == 3
        assert agent.backoff.failures == 0
    finally:
        agent.close()


def test_a_pending_agent_keeps_its_reports(gateway: FakeGateway, enrolled: StateStore) -> None:
    gateway.script(
        "/agent/v1/reports",
        403,
        {"type": "https://itsm.example/problems/agent-pending", "title": "Pending", "status": 403},
    )
    assert run_once(enrolled) == 1
    assert len(list((enrolled.dir / "spool").glob("*.json"))) == 3
    assert enrolled.load().status == "pending"
    assert run_once(enrolled) == 0
    assert len(gateway.reports) == 6
    assert enrolled.load().status == "active"


def test_clock_skew_is_corrected_from_the_date_header_and_retried_once(
    gateway: FakeGateway, enrolled: StateStore
) -> None:
    gateway.clock_offset = 1000.0  # the server's clock is 1000 s ahead of ours
    assert run_once(enrolled) == 0
    assert gateway.refusals == [(401, "clock-skew")]
    assert len(gateway.reports) == 3
    assert 998 <= enrolled.load().clock_offset <= 1002  # kept for the next run
    assert run_once(enrolled) == 0
    assert gateway.refusals == [(401, "clock-skew")]


def test_a_rotate_credential_command_switches_keys_and_drops_the_old_one_after_first_use(
    gateway: FakeGateway, enrolled: StateStore
) -> None:
    before = enrolled.load()
    envelope = gateway.envelope(agent_id=before.agent_id, kind="rotate_credential")
    gateway.queued = [envelope]
    assert run_once(enrolled) == 0
    after = enrolled.load()
    assert after.key_id != before.key_id and after.previous_key_id is None
    assert [p.name for p in (enrolled.dir / "keys").iterdir()] == [f"{after.key_id}.key"]
    assert gateway.key_state == {before.key_id: "superseded", after.key_id: "active"}
    rotation = next(s for s in gateway.seen if s.path == "/agent/v1/credentials")
    assert rotation.key_id == before.key_id and kid(unb64u(rotation.body["public_key"])) == after.key_id
    [result] = next(iter(gateway.results.values()))
    assert result["status"] == "succeeded" and gateway.seen[-1].key_id == after.key_id
    assert run_once(enrolled) == 0  # and the new key keeps working
    assert gateway.refusals == []


def test_a_rotation_survives_a_lost_confirmation(gateway: FakeGateway, enrolled: StateStore) -> None:
    """Registered but not yet used: both key files stay; the next successful request finishes it."""
    agent = Agent(enrolled, Config())
    try:
        old = agent.state.key_id
        agent.rotate()
        state = enrolled.load()
        assert state.previous_key_id == old and state.key_id != old
        assert sorted(p.stem for p in (enrolled.dir / "keys").iterdir()) == sorted([old, state.key_id])
    finally:
        agent.close()
    agent = Agent(enrolled, Config())  # a restart in between
    try:
        agent.collect("heartbeat")
        agent.flush()
        assert enrolled.load().previous_key_id is None
        assert [p.stem for p in (enrolled.dir / "keys").iterdir()] == [agent.state.key_id]
    finally:
        agent.close()


def test_scheduled_rotation_after_rotate_after_days(gateway: FakeGateway, enrolled: StateStore) -> None:
    state = enrolled.load()
    state.key_created_at = time.time() - 31 * 86400
    enrolled.save(state)
    assert run_once(enrolled) == 0
    assert enrolled.load().key_id != state.key_id
    assert gateway.key_state[state.key_id] == "superseded"


def test_status_reports_identity_spool_and_contact(
    gateway: FakeGateway, enrolled: StateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    gateway.script("/agent/v1/reports", 500, {"type": "about:blank", "title": "Boom", "status": 500})
    assert run_once(enrolled) == 1
    capsys.readouterr()
    assert main(["status", "--state-dir", str(enrolled.dir)]) == 0
    out = capsys.readouterr().out
    state = enrolled.load()
    assert f"agent id:     {state.agent_id}" in out
    assert f"server:       {gateway.url}" in out
    assert f"key id:       {state.key_id}" in out
    assert "spool:        3 reports, " in out
    assert "last contact: never" in out
    assert "last error:   POST /agent/v1/reports: 500 Boom" in out
    assert main(["status", "--state-dir", str(enrolled.dir / "nothing")]) == 1


def test_a_bad_config_stops_run_with_a_message(
    enrolled: StateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (enrolled.dir / "config.json").write_text(json.dumps({"services": ["ok", "bad name"], "intervalls": {}}))
    assert run_once(enrolled) == 2
    assert "unknown keys ['intervalls']" in capsys.readouterr().err


def test_run_without_enrolment_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--once", "--state-dir", str(tmp_path / "none")]) == 2
    assert "not enrolled" in capsys.readouterr().err


def test_two_agents_cannot_share_a_state_directory(
    enrolled: StateStore, capsys: pytest.CaptureFixture[str]
) -> None:
    with open(enrolled.dir / "lock", "ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        assert run_once(enrolled) == 2
    assert "another itsm-agent is running" in capsys.readouterr().err
    assert os.path.exists(enrolled.dir / "state.json")


def test_the_loop_reports_on_its_intervals_and_runs_long_commands_beside_them(
    gateway: FakeGateway, enrolled: StateStore, tmp_path: Path
) -> None:
    agent = Agent(enrolled, Config(), rng=random.Random(5))
    agent.intervals = {"heartbeat": 0.3, "metrics": 0.3, "inventory": 60, "poll": 0.3}
    marker = tmp_path / "done"
    body = f"sleep 3; touch {marker}"  # meanwhile heartbeats (every 0.3 s) go on
    script = {
        "name": "s",
        "interpreter": "sh",
        "body": body,
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }
    gateway.queued = [gateway.envelope(agent_id=agent.state.agent_id, kind="run_script", script=script)]
    thread = threading.Thread(target=agent.run_forever)
    thread.start()
    try:
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not gateway.results:
            time.sleep(0.1)
        heartbeats_while_the_script_ran = [r for r in gateway.reports.values() if r["type"] == "heartbeat"]
    finally:
        agent.request_stop()
        thread.join(timeout=10)
        agent.close()
    assert not thread.is_alive()
    assert marker.exists()
    [[result]] = list(gateway.results.values())  # the final result only, never the interim one
    assert result["status"] == "succeeded"
    assert len(heartbeats_while_the_script_ran) >= 3
    assert {r["type"] for r in gateway.reports.values()} == {"heartbeat", "metrics", "inventory"}
    assert gateway.paths().count("/agent/v1/commands") == 1  # the answer said poll_after 60


def test_a_crash_while_a_command_runs_is_reported_as_interrupted_and_it_never_runs_again(
    gateway: FakeGateway, enrolled: StateStore, tmp_path: Path
) -> None:
    pid_file = tmp_path / "script.pid"
    body = f"echo $$ > {pid_file}; sleep 30"
    script = {
        "name": "s",
        "interpreter": "sh",
        "body": body,
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }
    envelope = gateway.envelope(agent_id=enrolled.load().agent_id, kind="run_script", script=script)
    gateway.queued = [envelope]
    agent = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "itsm_agent.cli", "run", "--state-dir", str(enrolled.dir)],
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not pid_file.exists():
            time.sleep(0.1)
        assert pid_file.exists(), "the script never started"
        time.sleep(0.2)
    finally:
        agent.kill()  # SIGKILL: no chance to clean up
        agent.wait()
    script_pid = int(pid_file.read_text())
    os.killpg(script_pid, signal.SIGKILL)  # the script runs in its own session; systemd would kill the cgroup
    gateway.queued = [envelope]  # the server delivers it again: it got no answer
    assert run_once(enrolled) == 0
    command_id = json.loads(unb64u(envelope["payload"]))["id"]
    [result] = gateway.results[command_id]
    assert (result["status"], result["reason"]) == ("failed", "interrupted: the agent stopped while it ran")


def test_sigterm_stops_the_running_agent_cleanly(gateway: FakeGateway, enrolled: StateStore) -> None:
    agent = subprocess.Popen(  # noqa: S603 (our own interpreter and arguments)
        [sys.executable, "-m", "itsm_agent.cli", "run", "--state-dir", str(enrolled.dir)],
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and "/agent/v1/commands" not in gateway.paths():
            time.sleep(0.1)
        agent.send_signal(signal.SIGTERM)
        _, err = agent.communicate(timeout=15)
    finally:
        if agent.poll() is None:
            agent.kill()
    assert agent.returncode == 0
    assert b"stopped" in err and TOKEN.encode() not in err
    assert enrolled.load().last_contact is not None
