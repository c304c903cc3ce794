"""What the tenant plane does with agents' reports: the interface the agent gateway calls.

The gateway's worker (``agent_reports_process``, docs/decisions/0018-agent-gateway.md) calls
``reports_apply`` inside ``tenant_context(tenant)`` and one transaction with up to 2,000 reports, and
``offline_evaluate`` every minute; the command service calls ``script_for_command``. Each is safe to run
twice on the same input (raw samples are keyed by report id, discovery compares fingerprints, alerts
are evaluated only for newly inserted samples). A per-tenant advisory lock serialises them, so two
workers never create the same CI or open the same alert twice.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection, transaction

from modules.cmdb.discovery import Device, Inventory, computers_ensure, inventories_apply

from . import alerts, metrics
from .services import ApprovedScript, script_for_command

__all__ = ["AgentReport", "ApprovedScript", "offline_evaluate", "reports_apply", "script_for_command"]


@dataclass(frozen=True)
class AgentReport:
    id: uuid.UUID  # the report id (made by the agent)
    agent_id: uuid.UUID  # control-plane agent id
    hostname: str  # the agent's host name as enrolled (names its CI before the first inventory)
    site: str  # the site named on the agent's enrolment token, "" if none
    type: str  # "heartbeat" | "inventory" | "metrics"
    collected_at: dt.datetime  # aware, UTC
    data: dict[str, Any]  # already valid against agent_gateway/schemas/<type>.json


def _lock() -> None:
    """Serialise monitoring writes of this tenant until the transaction ends (advisory locks are
    database-wide, so the key names the schema)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtext(%s))",
            [f"monitoring:{getattr(connection, 'schema_name', 'public')}"],
        )


@transaction.atomic
def reports_apply(*, reports: list[AgentReport], now: dt.datetime) -> None:
    """Apply a batch of reports (any mix of types and agents; ``now`` aware UTC):

    1. every reporting agent gets its computer CI if it has none (``cmdb.discovery.computers_ensure``);
    2. inventories go to discovery (``cmdb.discovery.inventories_apply``);
    3. metrics become raw samples and hourly roll-ups (``metrics.samples_insert``);
    4. the sample rules are evaluated for the agents with new samples (``alerts``).
    Heartbeats do nothing beyond 1: "last seen" is the gateway's.
    """
    if not reports:
        return
    _lock()
    devices: dict[uuid.UUID, Device] = {}
    for report in reports:
        devices[report.agent_id] = Device(report.agent_id, report.hostname, report.site)
    computers = computers_ensure(devices=devices.values(), now=now)
    inventories_apply(
        inventories=[
            Inventory(r.agent_id, r.hostname, r.site, r.collected_at, r.data)
            for r in reports
            if r.type == "inventory"
        ],
        now=now,
    )
    samples = [
        metrics.sample_from_report(
            report_id=r.id,
            agent_id=r.agent_id,
            ci_id=computers[r.agent_id].pk,
            at=r.collected_at,
            data=r.data,
        )
        for r in reports
        if r.type == "metrics"
    ]
    inserted = metrics.samples_insert(samples=samples, now=now)
    latest: dict[uuid.UUID, dt.datetime] = {}
    for sample in inserted:
        latest[sample.agent_id] = max(sample.at, latest.get(sample.agent_id, sample.at))
    alerts.sample_rules_evaluate(latest=latest, computers=computers, now=now)


@transaction.atomic
def offline_evaluate(*, agents: dict[uuid.UUID, tuple[str, dt.datetime | None]], now: dt.datetime) -> None:
    """agent id -> (hostname, last seen at or None) for every active agent of this tenant. Opens,
    repeats and clears offline alerts (``alerts.offline_rules_evaluate``); an agent that fires before it
    ever reported gets its computer CI named ``hostname``."""
    _lock()

    def computers_for(agent_ids: Any) -> dict[uuid.UUID, Any]:
        return computers_ensure(devices=[Device(a, agents[a][0]) for a in agent_ids], now=now)

    alerts.offline_rules_evaluate(
        last_seen={agent_id: seen for agent_id, (_, seen) in agents.items()},
        computers_for=computers_for,
        now=now,
    )
