"""The real agent (``itsm-agent``, a separate process) against the real gateway (uvicorn on 127.0.0.1) and
the test database (issue 7, "Done when"): it enrols, reports this machine's real inventory and metrics,
which the report task turns into a CI; a metric rule raises an incident that resolves itself when the
condition clears; an approved script runs and its result comes back; a tampered command is refused by
the agent (nothing runs) and audited; a gateway restart loses none of the reports the agent buffered."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone
from django_tenants.utils import tenant_context

from agent_gateway.models import Agent, Command, CommandStatus, Report
from agent_gateway.services import command_approve, command_request
from agent_gateway.tasks import agent_offline_check, agent_reports_process
from controlplane.accounts.models import SecurityEvent
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.incidents.models import Incident
from modules.monitoring.models import Alert
from modules.monitoring.services import alert_rule_create, script_approve, script_create

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


def seen_since(agent: Agent, moment: dt.datetime) -> None:
    """Wait until the gateway has written that ``agent`` was seen at or after ``moment`` (it writes
    last-seen times every few seconds)."""
    deadline = time.monotonic() + 15
    while True:
        seen = Agent.objects.get(pk=agent.pk).last_seen_at
        if seen is not None and seen >= moment:
            return
        assert time.monotonic() < deadline, "the gateway never wrote the agent's last-seen time"
        time.sleep(0.2)


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
        assert bad.payload is not None
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


def test_reports_become_a_ci_an_offline_alert_raises_and_clears_an_incident_and_a_script_runs(
    world: World, tmp_path: Path
) -> None:
    gateway = gateway_start()
    try:
        state = tmp_path / "agent"
        enrolled_at = timezone.now()
        agent = enrol(gateway, world, state, site="London office")
        itsm_agent(state, "run", "--once")
        assert agent_reports_process(tenant_id=world.tenant.pk) == 3
        assert not Report.objects.exists()
        hostname = Agent.objects.get(pk=agent.pk).hostname
        with tenant_context(world.tenant):
            computer = ConfigurationItem.objects.get(external_ref=f"agent:{agent.pk}")
            assert computer.ci_class == "computer" and computer.attributes.get("os")
            site = ConfigurationItem.objects.get(external_ref="site:London office")
            assert CIRelationship.objects.filter(source=site, target=computer, rel_type="contains").exists()
            admin = world.actor(world.admin, "admin")
            tech = world.actor(world.tech, "technician")
            alert_rule_create(actor=admin, name="Agent silent", kind="offline", minutes=5)
        assert hostname
        # Ten minutes on, the agent has not reported: the offline rule opens an incident on its CI.
        seen_since(agent, enrolled_at)
        later = timezone.now() + dt.timedelta(minutes=10)
        agent_offline_check(now=later)
        with tenant_context(world.tenant):
            alert = Alert.objects.get(state="open")
            assert alert.incident_id is not None
            incident = Incident.objects.get(pk=alert.incident_id)
            assert incident.is_open and incident.category == "monitoring"
        # It reports again: the condition clears and the incident resolves itself, with a note.
        back_online = timezone.now()
        itsm_agent(state, "run", "--once")
        seen_since(agent, back_online)
        agent_offline_check(now=timezone.now())
        with tenant_context(world.tenant):
            incident.refresh_from_db()
            assert not incident.is_open, incident.state
            assert Alert.objects.get(pk=alert.pk).state == "cleared"
            # An approved script from the library, asked by one person and approved by another.
            script = script_create(
                actor=tech,
                name="Say hello",
                interpreter="sh",
                body='echo "hello $ITSM_PARAM_WHO"\n',
                parameters=["WHO"],
            )
            script_approve(actor=admin, script=script, version=script.version)
            command = command_request(
                actor=tech,
                agent=agent,
                kind="run_script",
                script_id=script.pk,
                params={"WHO": "world; rm -rf /"},
            )
            command_approve(actor=admin, command=command)
        itsm_agent(state, "run", "--once")
        command.refresh_from_db()
        assert command.status == CommandStatus.SUCCEEDED, (command.status, command.reason, command.output)
        assert command.exit_code == 0 and command.output.strip() == "hello world; rm -rf /"
        verbs = set(
            SecurityEvent.objects.filter(details__command=str(command.pk)).values_list("verb", flat=True)
        )
        assert verbs == {"agent.command.requested", "agent.command.approved", "agent.command.succeeded"}
    finally:
        gateway.stop()
