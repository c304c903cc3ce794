"""Helpers for the monitoring tests: agents' reports as the gateway hands them over."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

from modules.monitoring.ingest import AgentReport, reports_apply
from modules.records.models import uuid7

T0 = dt.datetime(2026, 12, 2, 9, 0, tzinfo=dt.UTC)
AGENT = uuid.UUID("01900000-0000-7000-8000-00000000000a")


def metrics_data(
    *,
    cpu: float = 10.0,
    memory: float = 20.0,
    disks: tuple[float, ...] = (30.0,),
    stopped: tuple[str, ...] = (),
) -> dict[str, Any]:
    services = [{"name": name, "status": "stopped"} for name in stopped] + [
        {"name": "sshd", "status": "running"}
    ]
    return {
        "cpu_percent": cpu,
        "memory_percent": memory,
        "disks": [{"mount": f"/d{i}", "percent": p} for i, p in enumerate(disks)],
        "load": [0.5, 0.4, 0.3],
        "services": services,
    }


def report(
    kind: str, at: dt.datetime, data: dict[str, Any], *, agent: uuid.UUID = AGENT, site: str = ""
) -> AgentReport:
    return AgentReport(
        id=uuid7(), agent_id=agent, hostname="web-01", site=site, type=kind, collected_at=at, data=data
    )


def minutes(start: int, stop: int, *, agent: uuid.UUID = AGENT, **values: Any) -> None:
    """Apply one metrics report per minute from T0+start to T0+stop (inclusive), one batch each, as the
    gateway would every few seconds; ``now`` is each report's time."""
    for minute in range(start, stop + 1):
        at = T0 + dt.timedelta(minutes=minute)
        reports_apply(reports=[report("metrics", at, metrics_data(**values), agent=agent)], now=at)


def at(minute: int) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minute)
