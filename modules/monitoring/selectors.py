"""Monitoring reads, always given the actor. ``agents.read`` sees alert rules, alerts, the script
library and devices' metrics; anyone else gets PermissionDenied on lists and NotFound on single rows
(as for a missing id)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import QuerySet

from controlplane.permissions import P
from controlplane.problems import NotFound, PermissionDenied
from modules.records.actor import Actor

from .models import Alert, AlertRule, Script

RECENT_ALERTS = 100


def may_read(actor: Actor) -> bool:
    return actor.may(P.AGENTS_READ)


def _require_reader(actor: Actor) -> None:
    if not may_read(actor):
        raise PermissionDenied("only those who may see endpoint agents see monitoring")


def alert_rule_list(*, actor: Actor) -> QuerySet[AlertRule]:
    _require_reader(actor)
    return AlertRule.objects.all()


def alert_rule_get(*, actor: Actor, rule_id: uuid.UUID | str) -> AlertRule:
    """One rule. NotFound for a missing id and for actors without ``agents.read``."""
    rule = AlertRule.objects.filter(pk=rule_id).first() if may_read(actor) else None
    if rule is None:
        raise NotFound("no such alert rule")
    return rule


def alert_list(*, actor: Actor, state: str | None = None, limit: int = RECENT_ALERTS) -> list[Alert]:
    """Alerts newest first (``state`` "open" or "cleared" to narrow), at most ``limit``."""
    _require_reader(actor)
    qs = Alert.objects.select_related("ci", "incident", "rule")
    if state:
        qs = qs.filter(state=state)
    return list(qs[:limit])


def ci_alert_list(*, actor: Actor, ci_id: uuid.UUID) -> list[Alert]:
    """The open alerts of one CI (empty for actors without ``agents.read``)."""
    if not may_read(actor):
        return []
    return list(Alert.objects.filter(ci_id=ci_id, state=Alert.State.OPEN).select_related("incident"))


def script_list(*, actor: Actor) -> QuerySet[Script]:
    _require_reader(actor)
    return Script.objects.all()


def script_get(*, actor: Actor, script_id: uuid.UUID | str) -> Script:
    script = Script.objects.filter(pk=script_id).first() if may_read(actor) else None
    if script is None:
        raise NotFound("no such script")
    return script


@dataclass(frozen=True)
class Series:
    """A device's metrics over a period for a chart: ``labels`` (UTC times as text) and, per metric,
    one value per label (percentages; average of the bucket). ``buckets`` says how long each is."""

    labels: list[str]
    cpu: list[float]
    memory: list[float]
    disk: list[float]
    bucket_minutes: int

    @property
    def empty(self) -> bool:
        return not self.labels


def _series(sql: str, params: list[Any], label: str, bucket_minutes: int) -> Series:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return Series(
        labels=[at.strftime(label) for at, *_ in rows],
        cpu=[round(float(cpu or 0), 1) for _, cpu, _, _ in rows],
        memory=[round(float(memory or 0), 1) for _, _, memory, _ in rows],
        disk=[round(float(disk or 0), 1) for _, _, _, disk in rows],
        bucket_minutes=bucket_minutes,
    )


def ci_metrics_get(*, actor: Actor, agent_id: uuid.UUID, now: dt.datetime) -> tuple[Series, Series] | None:
    """The last 24 hours from the raw samples (15-minute averages) and the last 30 days from the hourly
    roll-ups (6-hour averages of the hourly averages) of agent ``agent_id`` (read on its (agent, time)
    indexes);
    None for actors without ``agents.read``. Buckets are UTC; empty series when nothing was reported."""
    if not may_read(actor):
        return None
    day = _series(
        "SELECT to_timestamp(floor(extract(epoch FROM at) / 900) * 900) AS bucket, avg(cpu), avg(memory), avg(disk)"
        " FROM monitoring_metricsample WHERE agent_id = %s AND at >= %s AND at <= %s GROUP BY bucket ORDER BY bucket",
        [agent_id, now - dt.timedelta(hours=24), now],
        "%H:%M",
        15,
    )
    month = _series(
        "SELECT to_timestamp(floor(extract(epoch FROM hour) / 21600) * 21600) AS bucket, avg(cpu_avg),"
        " avg(memory_avg), avg(disk_avg) FROM monitoring_metricrollup WHERE agent_id = %s AND hour >= %s"
        " AND hour <= %s GROUP BY bucket ORDER BY bucket",
        [agent_id, now - dt.timedelta(days=30), now],
        "%d %b %H:%M",
        360,
    )
    return day, month
