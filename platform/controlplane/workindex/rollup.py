"""What the daily rollup counts, per record type: one definition used both by the live increments (when a
record is opened or resolved) and by the nightly rebuild from the tenant schema, so the two agree.

- ``opened``: records whose ``opened_at`` falls on the day (the tenant's local date);
- ``resolved``: records whose resolution time falls on the day: incidents and problems by ``resolved_at``
  (a reopen clears it, so the count is taken back), service requests by ``closed_at`` once fulfilled;
- ``acknowledged`` / ``acknowledge_seconds``: of those resolved records, the ones with an acknowledgement,
  and the sum of whole seconds from ``opened_at`` to it. The acknowledgement is the earliest activity
  entry of the record matching ``ack``: for incidents and problems the first time the record left state
  ``new`` or got an assignee (ITIL's "time to acknowledge"; ServiceNow's incident ``Assigned``/``Work in
  progress`` metric); for service requests the first time one of its fulfilment tasks was assigned to a
  person, started or closed;
- ``resolve_seconds``: sum of whole seconds from ``opened_at`` to the resolution time.

Negative spans (a backdated import) count as 0 seconds. SQL fragments name the record's table as ``r``
and the activity entry as ``e``; they are constants, never built from input.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.apps import apps


@dataclass(frozen=True)
class RollupSource:
    record_type: str
    model: str  # app_label.ModelName of the tenant model
    opened: str  # SQL: the opening time of r
    resolved: str  # SQL: the resolution time of r, NULL while unresolved
    ack: str  # SQL predicate over the activity entry e of r

    @property
    def table(self) -> str:
        return str(apps.get_model(self.model)._meta.db_table)


STATE_OR_ASSIGNEE = (
    "((e.changes->'state'->>1) IS NOT NULL AND (e.changes->'state'->>1) <> 'new')"
    " OR (e.changes->'assigned_to'->>1) IS NOT NULL"
)
TASK_WORKED = (
    "e.verb IN ('task.start', 'task.complete', 'task.skip')"
    " OR (e.verb = 'task.updated' AND (e.changes->'assigned_to'->>1) IS NOT NULL)"
)

ROLLUP_SOURCES: dict[str, RollupSource] = {
    source.record_type: source
    for source in (
        RollupSource("incident", "incidents.Incident", "r.opened_at", "r.resolved_at", STATE_OR_ASSIGNEE),
        RollupSource("problem", "problems.Problem", "r.opened_at", "r.resolved_at", STATE_OR_ASSIGNEE),
        RollupSource(
            "service_request",
            "service_requests.ServiceRequest",
            "r.opened_at",
            "CASE WHEN r.state = 'fulfilled' THEN r.closed_at END",
            TASK_WORKED,
        ),
    )
}


def acknowledged_sql(source: RollupSource, record: str) -> str:
    """SQL of the acknowledgement time of the record whose id is the SQL expression ``record``."""
    return (
        "(SELECT min(e.at) FROM records_activityentry e"  # noqa: S608 - constants only
        f" WHERE e.record_id = {record} AND e.record_type = '{source.record_type}' AND ({source.ack}))"
    )


def rebuild_sql(source: RollupSource) -> str:
    """SQL of one source's rollup rows ``(day, opened, resolved, acknowledged, acknowledge_seconds,
    resolve_seconds)`` for days >= %(since)s in time zone %(tz)s."""
    return (
        f"WITH r0 AS (SELECT r.id, {source.opened} AS opened_at, {source.resolved} AS resolved_at"  # noqa: S608
        f" FROM {source.table} r),"
        " o AS (SELECT (opened_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n FROM r0"
        "  WHERE (opened_at AT TIME ZONE %(tz)s)::date >= %(since)s GROUP BY 1),"
        " s AS (SELECT (r.resolved_at AT TIME ZONE %(tz)s)::date AS day, count(*) AS n, count(a.at) AS ack_n,"
        "  COALESCE(sum(GREATEST(0, floor(extract(epoch FROM a.at - r.opened_at)))), 0)::bigint AS ack_s,"
        "  COALESCE(sum(GREATEST(0, floor(extract(epoch FROM r.resolved_at - r.opened_at)))), 0)::bigint"
        "   AS res_s"
        f"  FROM r0 r LEFT JOIN LATERAL (SELECT {acknowledged_sql(source, 'r.id')} AS at) a ON true"
        "  WHERE r.resolved_at IS NOT NULL AND (r.resolved_at AT TIME ZONE %(tz)s)::date >= %(since)s"
        "  GROUP BY 1)"
        " SELECT COALESCE(o.day, s.day), COALESCE(o.n, 0), COALESCE(s.n, 0), COALESCE(s.ack_n, 0),"
        " COALESCE(s.ack_s, 0), COALESCE(s.res_s, 0) FROM o FULL JOIN s ON s.day = o.day ORDER BY 1"
    )
