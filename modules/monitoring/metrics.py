"""Metrics: raw samples, hourly roll-ups, retention. Tenant plane; bulk SQL, no query per sample.

- Raw samples are inserted with ``ON CONFLICT (id) DO NOTHING RETURNING``: the report id is the key,
  so a batch applied twice inserts each sample once, and only the newly inserted samples feed the roll-up
  and the alert evaluation.
- Roll-ups (per agent per UTC hour: sample count, average and maximum of each metric) are merged with
  ``INSERT ... ON CONFLICT DO UPDATE``: averages weighted by sample counts, maxima by GREATEST. A late
  sample older than the raw retention still counts in its hour's roll-up.
- ``metrics_expire`` deletes raw samples older than MONITORING_RAW_RETENTION_HOURS and roll-ups older
  than MONITORING_ROLLUP_RETENTION_DAYS (settings; 48 hours and 90 days by default).
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection

from .models import MetricRollup, MetricSample

# A sample stamped further in the future than this is refused (the agent's clock is wrong).
FUTURE_TOLERANCE = dt.timedelta(minutes=5)


@dataclass(frozen=True)
class Sample:
    """One metrics report as stored: percentages 0-100, ``disk`` the fullest disk (None without disks)."""

    id: uuid.UUID
    agent_id: uuid.UUID
    ci_id: uuid.UUID
    at: dt.datetime
    cpu: float
    memory: float
    disk: float | None
    load1: float
    stopped: tuple[str, ...]


def sample_from_report(
    *, report_id: uuid.UUID, agent_id: uuid.UUID, ci_id: uuid.UUID, at: dt.datetime, data: dict[str, Any]
) -> Sample:
    """A metrics report's ``data`` (agent_gateway/schemas/metrics.json) as a Sample."""
    disks = [d["percent"] for d in data["disks"]]
    stopped = sorted({s["name"] for s in data.get("services", []) if s["status"] == "stopped"})
    return Sample(
        id=report_id,
        agent_id=agent_id,
        ci_id=ci_id,
        at=at,
        cpu=float(data["cpu_percent"]),
        memory=float(data["memory_percent"]),
        disk=float(max(disks)) if disks else None,
        load1=float(data["load"][0]),
        stopped=tuple(stopped),
    )


def samples_insert(*, samples: list[Sample], now: dt.datetime) -> list[Sample]:
    """Insert samples in one statement and merge them into the hourly roll-ups in another. Samples
    stamped more than FUTURE_TOLERANCE after ``now`` or older than the roll-up retention are dropped.
    Returns the samples actually inserted (those not there before)."""
    oldest = now - dt.timedelta(days=settings.MONITORING_ROLLUP_RETENTION_DAYS)
    kept = [s for s in samples if oldest <= s.at <= now + FUTURE_TOLERANCE]
    if not kept:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO monitoring_metricsample (id, agent_id, ci_id, at, cpu, memory, disk, load1, stopped)"
            " SELECT r.id, r.agent_id, r.ci_id, r.at, r.cpu, r.memory, r.disk, r.load1,"
            " string_to_array(r.stopped, ',')"
            " FROM unnest(%s::uuid[], %s::uuid[], %s::uuid[], %s::timestamptz[], %s::float8[], %s::float8[],"
            " %s::float8[], %s::float8[], %s::text[]) AS r(id, agent_id, ci_id, at, cpu, memory, disk, load1, stopped)"
            " ON CONFLICT (id) DO NOTHING RETURNING id",
            [
                [s.id for s in kept],
                [s.agent_id for s in kept],
                [s.ci_id for s in kept],
                [s.at for s in kept],
                [s.cpu for s in kept],
                [s.memory for s in kept],
                [s.disk for s in kept],
                [s.load1 for s in kept],
                # Service names match ^[A-Za-z0-9@._-]{1,128}$ (the schema), so a comma never occurs in one.
                [",".join(s.stopped) for s in kept],
            ],
        )
        inserted = {row[0] for row in cursor.fetchall()}
        if inserted:
            _rollup_merge(cursor, sorted(inserted))
    return [s for s in kept if s.id in inserted]


def _rollup_merge(cursor: Any, sample_ids: list[uuid.UUID]) -> None:
    """Merge the given (newly inserted) samples into their hours' roll-ups."""

    cursor.execute(
        "INSERT INTO monitoring_metricrollup AS r (agent_id, ci_id, hour, samples, cpu_avg, cpu_max,"
        " memory_avg, memory_max, disk_avg, disk_max, load1_avg, load1_max)"
        " SELECT s.agent_id, (array_agg(s.ci_id ORDER BY s.at DESC))[1],"
        " date_trunc('hour', s.at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC', count(*), avg(s.cpu), max(s.cpu),"
        " avg(s.memory), max(s.memory), avg(s.disk), max(s.disk), avg(s.load1), max(s.load1)"
        " FROM monitoring_metricsample s WHERE s.id = ANY(%s::uuid[])"
        " GROUP BY s.agent_id, date_trunc('hour', s.at AT TIME ZONE 'UTC')"
        " ON CONFLICT (agent_id, hour) DO UPDATE SET ci_id = EXCLUDED.ci_id,"
        # Averages weighted by sample counts; a NULL average (no disks) takes the other side.
        " cpu_avg = CASE WHEN r.cpu_avg IS NULL THEN EXCLUDED.cpu_avg"
        " WHEN EXCLUDED.cpu_avg IS NULL THEN r.cpu_avg"
        " ELSE (r.cpu_avg * r.samples + EXCLUDED.cpu_avg * EXCLUDED.samples) / (r.samples + EXCLUDED.samples)"
        " END, cpu_max = GREATEST(r.cpu_max, EXCLUDED.cpu_max),"
        " memory_avg = CASE WHEN r.memory_avg IS NULL THEN EXCLUDED.memory_avg"
        " WHEN EXCLUDED.memory_avg IS NULL THEN r.memory_avg"
        " ELSE (r.memory_avg * r.samples + EXCLUDED.memory_avg * EXCLUDED.samples) / (r.samples + EXCLUDED.samples)"
        " END, memory_max = GREATEST(r.memory_max, EXCLUDED.memory_max),"
        " disk_avg = CASE WHEN r.disk_avg IS NULL THEN EXCLUDED.disk_avg"
        " WHEN EXCLUDED.disk_avg IS NULL THEN r.disk_avg"
        " ELSE (r.disk_avg * r.samples + EXCLUDED.disk_avg * EXCLUDED.samples) / (r.samples + EXCLUDED.samples)"
        " END, disk_max = GREATEST(r.disk_max, EXCLUDED.disk_max),"
        " load1_avg = CASE WHEN r.load1_avg IS NULL THEN EXCLUDED.load1_avg"
        " WHEN EXCLUDED.load1_avg IS NULL THEN r.load1_avg"
        " ELSE (r.load1_avg * r.samples + EXCLUDED.load1_avg * EXCLUDED.samples) / (r.samples + EXCLUDED.samples)"
        " END, load1_max = GREATEST(r.load1_max, EXCLUDED.load1_max),"
        " samples = r.samples + EXCLUDED.samples",
        [sample_ids],
    )


def metrics_expire(*, now: dt.datetime) -> tuple[int, int]:
    """Delete raw samples older than MONITORING_RAW_RETENTION_HOURS and roll-ups whose hour began more
    than MONITORING_ROLLUP_RETENTION_DAYS before ``now`` (aware). Returns (samples, roll-ups) deleted.
    Safe to run twice."""
    raw_cutoff = now - dt.timedelta(hours=settings.MONITORING_RAW_RETENTION_HOURS)
    rollup_cutoff = now - dt.timedelta(days=settings.MONITORING_ROLLUP_RETENTION_DAYS)
    samples, _ = MetricSample.objects.filter(at__lt=raw_cutoff).delete()
    rollups, _ = MetricRollup.objects.filter(hour__lt=rollup_cutoff).delete()
    return samples, rollups
