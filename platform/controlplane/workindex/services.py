"""Writes to the cross-client work index. Called by tenant-plane services inside their own transaction,
so the index commits or rolls back with the record (../shared/ARCHITECTURE.md).

The tenant is the connection's current tenant (set by the routing middleware, ``tenant_context`` or
tenant-schemas-celery), never an argument a caller could get wrong.
"""

from __future__ import annotations

import datetime as dt
import importlib
import uuid
import zoneinfo
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tenants.utils import tenant_context

from .models import ROLLUP_TOTALS_LOCK, TenantDailyRollup, TenantWakeup, WorkGroupMember, WorkItem
from .rollup import ROLLUP_SOURCES, acknowledged_sql, rebuild_sql

if TYPE_CHECKING:
    from tenants.models import Tenant


class NoTenant(RuntimeError):
    """A work index write ran outside a tenant (in public or the template schema)."""


@dataclass(frozen=True)
class WorkEntry:
    """What the index keeps of one record. ``title`` is cut to 160 characters; persons and groups are
    tenant-local ids; ``assigned_user_id`` is the assignee person's control-plane user id, if any."""

    record_type: str
    record_id: uuid.UUID
    number: str
    title: str
    state: str
    is_open: bool
    opened_at: dt.datetime
    priority: int | None = None
    assigned_person_id: uuid.UUID | None = None
    assigned_user_id: int | None = None
    assignment_group_id: uuid.UUID | None = None


def current_tenant_ids() -> tuple[int, int]:
    """(tenant id, provider id) of the connection's tenant. Raises NoTenant in public or the template."""
    tenant = getattr(connection, "tenant", None)
    if (
        tenant is None
        or getattr(tenant, "pk", None) is None
        or getattr(connection, "schema_name", "public") == "public"
    ):
        raise NoTenant("work index writes need a tenant")
    return tenant.pk, tenant.provider_id


def workindex_upsert(*, entry: WorkEntry) -> None:
    """Write the record's row (open) or delete it (no longer open), in one statement. SLA columns are left
    as they are; ``modules.sla`` sets them with ``workindex_sla_set`` after it recomputes the record's
    timers. Uses the connection's tenant (NoTenant in public)."""
    workindex_upsert_many(entries=[entry])


def workindex_sla_set(
    *,
    record_id: uuid.UUID,
    response_due_at: dt.datetime | None,
    resolution_due_at: dt.datetime | None,
    sla_paused: bool,
    breached: bool,
    next_escalation_at: dt.datetime | None,
) -> bool:
    """Set the SLA columns of an open record's row (UTC datetimes). ``sla_due_at`` is the earlier of the
    two deadlines. Returns False when the record has no row (it is not open): nothing is written."""
    current_tenant_ids()
    dues = [d for d in (response_due_at, resolution_due_at) if d is not None]
    updated = WorkItem.objects.filter(record_id=record_id).update(
        response_due_at=response_due_at,
        resolution_due_at=resolution_due_at,
        sla_due_at=min(dues) if dues else None,
        sla_paused=sla_paused,
        breached=breached,
        next_escalation_at=next_escalation_at,
    )
    return updated > 0


ENTRY_FIELDS = (
    "record_type",
    "number",
    "title",
    "state",
    "priority",
    "assigned_person_id",
    "assigned_user_id",
    "assignment_group_id",
    "opened_at",
)
# Batch size of workindex_upsert_many: one statement per batch.
UPSERT_BATCH = 5000


def workindex_upsert_many(*, entries: list[WorkEntry]) -> tuple[int, int]:
    """Write many records' rows at once (after an import): open entries are upserted in one statement per
    5,000, the others' rows deleted. Same columns as ``workindex_upsert``; SLA columns are left as they
    are. Uses the connection's tenant (NoTenant in public). Returns (rows written, rows deleted)."""
    tenant_id, provider_id = current_tenant_ids()
    closed = [e.record_id for e in entries if not e.is_open]
    deleted = WorkItem.objects.filter(record_id__in=closed).delete()[0] if closed else 0
    rows = [e for e in entries if e.is_open]
    now = timezone.now()
    written = 0
    for start in range(0, len(rows), UPSERT_BATCH):
        batch = rows[start : start + UPSERT_BATCH]
        columns: list[list[object]] = [[getattr(e, f) for e in batch] for f in ("record_id", *ENTRY_FIELDS)]
        columns[3] = [title[:160] for title in columns[3]]  # type: ignore[index]
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO workindex_workitem (tenant_id, provider_id, updated_at, sla_paused, breached,"
                " record_id, record_type, number, title, state, priority, assigned_person_id,"
                " assigned_user_id, assignment_group_id, opened_at)"
                " SELECT %s, %s, %s, false, false, * FROM unnest(%s::uuid[], %s::varchar[], %s::varchar[],"
                " %s::varchar[], %s::varchar[], %s::smallint[], %s::uuid[], %s::bigint[], %s::uuid[],"
                " %s::timestamptz[])"
                " ON CONFLICT (record_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,"
                " provider_id = EXCLUDED.provider_id, record_type = EXCLUDED.record_type,"
                " number = EXCLUDED.number, title = EXCLUDED.title, state = EXCLUDED.state,"
                " priority = EXCLUDED.priority, assigned_person_id = EXCLUDED.assigned_person_id,"
                " assigned_user_id = EXCLUDED.assigned_user_id,"
                " assignment_group_id = EXCLUDED.assignment_group_id, opened_at = EXCLUDED.opened_at,"
                " updated_at = EXCLUDED.updated_at",
                [tenant_id, provider_id, now, *columns],
            )
            written += cursor.rowcount
    return written, deleted


def workindex_group_member_set(*, group_id: uuid.UUID, user_id: int, member: bool) -> None:
    """Record (``member=True``) or forget that control-plane user ``user_id`` is a member of the tenant's
    assignment group ``group_id``: what "my groups" means in the queue. Idempotent. Called by
    ``modules.people`` in the transaction that changes the tenant's GroupMembership."""
    tenant_id, _ = current_tenant_ids()
    if member:
        WorkGroupMember.objects.get_or_create(tenant_id=tenant_id, group_id=group_id, user_id=user_id)
    else:
        WorkGroupMember.objects.filter(tenant_id=tenant_id, group_id=group_id, user_id=user_id).delete()


# Wake-ups: when a tenant next has background work of a kind (``TenantWakeup``)


def workindex_wakeup_set(*, kind: str, due_at: dt.datetime) -> None:
    """Make sure the connection's tenant is woken for ``kind`` (``notifications``...) at ``due_at`` (UTC)
    at the latest: inserts the tenant's row, or keeps the earlier of its time and ``due_at``
    (``INSERT ... ON CONFLICT DO UPDATE SET due_at = LEAST(existing, new)``, one atomic statement, so
    concurrent writers never move a wake-up later). Call it in the transaction that creates the work,
    so the wake-up commits or rolls back with it. Raises NoTenant in public or the template schema."""
    tenant_id, _ = current_tenant_ids()
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO workindex_tenantwakeup (tenant_id, kind, due_at) VALUES (%s, %s, %s)"
            " ON CONFLICT (tenant_id, kind)"
            " DO UPDATE SET due_at = LEAST(workindex_tenantwakeup.due_at, EXCLUDED.due_at)",
            [tenant_id, kind, due_at],
        )


def workindex_wakeup_recompute(
    *, kind: str, earliest: Callable[[], dt.datetime | None]
) -> dt.datetime | None:
    """Set the connection's tenant's wake-up of ``kind`` to ``earliest()`` (UTC; the tenant's next due
    work, read from its schema), or delete it when that is None (nothing pending). Returns that time.

    Runs in one transaction that first locks the tenant's row (``SELECT ... FOR UPDATE``) and only then
    calls ``earliest``. A concurrent writer of new work (``workindex_wakeup_set`` in its own
    transaction) either committed before the lock was granted, so ``earliest`` (a new statement under
    READ COMMITTED, Django's default) sees its work, or waits for this transaction and then lowers the
    time again with LEAST (or re-inserts the deleted row). Without a row to lock, a time is written with
    ``workindex_wakeup_set`` (LEAST with a concurrent insert) and nothing is deleted. So no pending work
    is ever left without a wake-up. Raises NoTenant in public or the template schema."""
    tenant_id, _ = current_tenant_ids()
    with transaction.atomic():
        held = (
            TenantWakeup.objects.select_for_update()
            .filter(tenant_id=tenant_id, kind=kind)
            .values_list("pk", flat=True)
            .first()
        )
        due_at = earliest()
        if held is None:
            if due_at is not None:
                workindex_wakeup_set(kind=kind, due_at=due_at)
        elif due_at is None:
            TenantWakeup.objects.filter(pk=held).delete()
        else:
            TenantWakeup.objects.filter(pk=held).update(due_at=due_at)
    return due_at


# The daily rollup

ROLLUP_COUNTERS = frozenset(
    {
        "opened",
        "resolved",
        "acknowledged",
        "acknowledge_seconds",
        "resolve_seconds",
        "sla_met",
        "sla_breached",
        "satisfaction_sum",
        "satisfaction_count",
    }
)


def _time_zone() -> str:
    """The IANA time zone of the connection's tenant."""
    return str(connection.tenant.time_zone)  # type: ignore[attr-defined]  # set by django-tenants


def workindex_local_day(at: dt.datetime) -> dt.date:
    """The tenant's local calendar date (``Tenant.time_zone``, IANA) of the aware datetime ``at``: the day
    a rollup counts it on. Uses the connection's tenant (NoTenant in public)."""
    current_tenant_ids()
    return at.astimezone(zoneinfo.ZoneInfo(_time_zone())).date()


def _rollup_lock(tenant_id: int) -> None:
    """Take the tenant's running-totals lock (held to commit) before writing its rollup rows: the
    ``workindex_rollup_totals`` trigger takes it too, after the rows are locked (decision 0014)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [ROLLUP_TOTALS_LOCK, tenant_id % 2147483647])


def workindex_rollup_add(*, record_type: str, day: dt.date, **increments: int) -> None:
    """Add ``increments`` (counter column -> whole number, negative to take a count back) to the tenant's
    rollup row of ``day`` (its local date) and ``record_type``, creating the row. One atomic
    ``INSERT ... ON CONFLICT DO UPDATE SET x = x + n``, so concurrent writers never lose a count; a
    counter never goes below 0. Counters: ROLLUP_COUNTERS (seconds are whole seconds). Raises TypeError
    for an unknown counter. Uses the connection's tenant (NoTenant in public)."""
    unknown = sorted(set(increments) - ROLLUP_COUNTERS)
    if unknown:
        raise TypeError(f"unknown rollup counters: {', '.join(unknown)}")
    if not any(increments.values()):
        return
    tenant_id, provider_id = current_tenant_ids()
    _rollup_lock(tenant_id)
    names = sorted(increments)
    # Column names come from the fixed set above; every value is a parameter.
    insert_columns = ", ".join(names)
    placeholders = ", ".join(["GREATEST(0, %s)"] * len(names))
    updates = ", ".join(f"{n} = GREATEST(0, workindex_tenantdailyrollup.{n} + %s)" for n in names)
    zeros = ", ".join(f"{n}" for n in sorted(ROLLUP_COUNTERS - set(names)))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO workindex_tenantdailyrollup (tenant_id, provider_id, day, record_type, {insert_columns}"  # noqa: S608
            + (f", {zeros}" if zeros else "")
            + f") VALUES (%s, %s, %s, %s, {placeholders}"
            + (", 0" * len(ROLLUP_COUNTERS - set(names)))
            + f") ON CONFLICT (tenant_id, day, record_type) DO UPDATE SET {updates}",
            [
                tenant_id,
                provider_id,
                day,
                record_type,
                *(increments[n] for n in names),
                *(increments[n] for n in names),
            ],
        )


def _seconds(start: dt.datetime, end: dt.datetime) -> int:
    """Whole seconds from ``start`` to ``end`` (floor), 0 when negative: as the rebuild's SQL counts."""
    return max(0, (end - start) // dt.timedelta(seconds=1))


def workindex_rollup_record(
    *,
    record_type: str,
    record_id: uuid.UUID,
    opened_at: dt.datetime,
    resolved_before: dt.datetime | None,
    resolved_after: dt.datetime | None,
) -> None:
    """Keep the rollup current when a record's resolution time changes (call after writing the change's
    activity entry, in the same transaction): a newly set ``resolved_after`` counts one resolution on its
    local day, with the seconds to resolve and, if the record was acknowledged, to acknowledge (rules in
    ``rollup.py``); a cleared or moved ``resolved_before`` (a reopen) takes its count back. Nothing when
    both are equal. Raises KeyError for a record type without a rollup source."""
    if resolved_before == resolved_after:
        return
    source = ROLLUP_SOURCES[record_type]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {acknowledged_sql(source, '%s')}", [record_id])
        acknowledged_at = cursor.fetchone()[0]
    for sign, resolved_at in ((-1, resolved_before), (1, resolved_after)):
        if resolved_at is None:
            continue
        increments = {"resolved": sign, "resolve_seconds": sign * _seconds(opened_at, resolved_at)}
        if acknowledged_at is not None:
            increments["acknowledged"] = sign
            increments["acknowledge_seconds"] = sign * _seconds(opened_at, acknowledged_at)
        workindex_rollup_add(record_type=record_type, day=workindex_local_day(resolved_at), **increments)


def workindex_rollup_opened(*, record_type: str, opened_at: dt.datetime) -> None:
    """Count one record opened at ``opened_at`` (UTC) on the tenant's local day of it."""
    workindex_rollup_add(record_type=record_type, day=workindex_local_day(opened_at), opened=1)


REBUILT_COUNTERS = ("opened", "resolved", "acknowledged", "acknowledge_seconds", "resolve_seconds")


# Rollup counters another module owns, rebuilt by that module's function in the same transaction as the
# rest: ``function(since=<local date>, time_zone=<IANA>) -> {(record_type, day): {counter: n}}``.
ROLLUP_CONTRIBUTORS: dict[tuple[str, ...], str] = {
    ("sla_met", "sla_breached"): "modules.sla.selectors.sla_rollup_counts",
    ("satisfaction_sum", "satisfaction_count"): "modules.incidents.selectors.satisfaction_rollup_counts",
}
# Other control-plane counters rebuilt with the rollup, in the same transaction:
# ``function(since=<local date>, time_zone=<IANA>)`` (the dashboards' category counter).
ROLLUP_REBUILD_HOOKS: tuple[str, ...] = ("controlplane.dashboards.services.dashboard_category_rebuild",)


def _rollup_replace(
    tenant_id: int,
    provider_id: int,
    since: dt.date,
    types: list[str],
    columns: tuple[str, ...],
    counts: dict[tuple[str, dt.date], dict[str, int]],
) -> None:
    """Set ``columns`` of the tenant's rollup rows from ``since`` on to ``counts`` (zero where absent), in
    two set-based statements (each fires the summary triggers once, not once a row)."""
    TenantDailyRollup.objects.filter(tenant_id=tenant_id, record_type__in=types, day__gte=since).update(
        **dict.fromkeys(columns, 0)
    )
    rows = [
        (record_type, day, *(int(values.get(c, 0)) for c in columns))
        for (record_type, day), values in sorted(counts.items())
        if record_type in types
    ]
    if not rows:
        return
    others = sorted(ROLLUP_COUNTERS - set(columns))
    with connection.cursor() as cursor:
        cursor.execute(
            # Column names come from the fixed counter sets; every value is a parameter.
            f"INSERT INTO workindex_tenantdailyrollup (tenant_id, provider_id, record_type, day, {', '.join(columns)}"  # noqa: S608
            + "".join(f", {c}" for c in others)
            + ") SELECT %s, %s, t.*"
            + ", 0" * len(others)
            + " FROM unnest(%s::varchar[], %s::date[]"
            + ", %s::bigint[]" * len(columns)
            + ") AS t ON CONFLICT (tenant_id, day, record_type) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in columns),
            [tenant_id, provider_id, *(list(c) for c in zip(*rows, strict=True))],
        )


@transaction.atomic
def workindex_rollup_rebuild(
    *, days: int = 400, record_types: list[str] | None = None, now: dt.datetime | None = None
) -> int:
    """Recompute the tenant's rollup counters (REBUILT_COUNTERS) of the last ``days`` local days (today
    included) from its schema, for ``record_types`` (default: every ROLLUP_SOURCES type), in one
    transaction. Counters other modules own are rebuilt by their ROLLUP_CONTRIBUTORS (SLA outcomes by
    modules.sla, satisfaction by modules.incidents' survey table); rows left all zero are deleted. Uses the connection's tenant (NoTenant in public). Returns the rows written."""
    tenant_id, provider_id = current_tenant_ids()
    _rollup_lock(tenant_id)
    types = record_types or sorted(ROLLUP_SOURCES)
    since = workindex_local_day(now or timezone.now()) - dt.timedelta(days=days - 1)
    rows: list[tuple[object, ...]] = []
    with connection.cursor() as cursor:
        for record_type in types:
            source = ROLLUP_SOURCES[record_type]
            cursor.execute(rebuild_sql(source), {"tz": _time_zone(), "since": since})
            rows += [(record_type, *row) for row in cursor.fetchall()]
    window = TenantDailyRollup.objects.filter(tenant_id=tenant_id, record_type__in=types, day__gte=since)
    window.update(**dict.fromkeys(REBUILT_COUNTERS, 0))
    if rows:
        columns = list(zip(*rows, strict=True))
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO workindex_tenantdailyrollup (tenant_id, provider_id, record_type, day, opened,"
                " resolved, acknowledged, acknowledge_seconds, resolve_seconds, sla_met, sla_breached,"
                " satisfaction_sum, satisfaction_count)"
                " SELECT %s, %s, t.*, 0, 0, 0, 0 FROM unnest(%s::varchar[], %s::date[], %s::int[], %s::int[],"
                " %s::int[], %s::bigint[], %s::bigint[]) AS t"
                " ON CONFLICT (tenant_id, day, record_type) DO UPDATE SET opened = EXCLUDED.opened,"
                " resolved = EXCLUDED.resolved, acknowledged = EXCLUDED.acknowledged,"
                " acknowledge_seconds = EXCLUDED.acknowledge_seconds, resolve_seconds = EXCLUDED.resolve_seconds",
                [tenant_id, provider_id, *(list(c) for c in columns)],
            )
    for owned, path in ROLLUP_CONTRIBUTORS.items():
        counts = import_string(path)(since=since, time_zone=_time_zone())
        _rollup_replace(tenant_id, provider_id, since, types, owned, counts)
    for path in ROLLUP_REBUILD_HOOKS:
        import_string(path)(since=since, time_zone=_time_zone())
    window.filter(
        **dict.fromkeys(REBUILT_COUNTERS, 0),
        sla_met=0,
        sla_breached=0,
        satisfaction_sum=0,
        satisfaction_count=0,
    ).delete()
    return len(rows)


# Reconciliation

# Per record type, the function listing the expected entries of every open record of the current tenant.
WORK_SOURCES: dict[str, str] = {
    "incident": "modules.incidents.workindex.incident_open_work_entries",
    "service_request": "modules.requests.workindex.service_request_open_work_entries",
    "fulfilment_task": "modules.requests.workindex.fulfilment_task_open_work_entries",
    "problem": "modules.problems.workindex.problem_open_work_entries",
    "change": "modules.changes.workindex.change_open_work_entries",
}
# Record types whose SLA timers modules.sla keeps (its sla_refresh fills a re-created row's SLA columns).
SLA_RECORD_TYPES = ("incident", "service_request")


KINDS = ("missing", "stale", "extra")


@dataclass(frozen=True)
class Difference:
    """One difference between the index and a tenant schema. ``kind``: ``missing`` (an open record
    without a row), ``stale`` (a row whose ``fields`` differ from the record) or ``extra`` (a row without
    an open record). Group members are ``record_type="group_member"``, ``record_id`` the group id and
    ``number`` ``user <id>``."""

    kind: str
    record_type: str
    record_id: uuid.UUID
    number: str
    fields: tuple[str, ...] = ()

    def __str__(self) -> str:
        """``missing incident INC0000042 (<id>)``; a stale row ends with ``: <column>, <column>``."""
        suffix = f": {', '.join(self.fields)}" if self.fields else ""
        return f"{self.kind} {self.record_type} {self.number} ({self.record_id}){suffix}"


@dataclass
class ReconcileReport:
    tenant: str
    differences: list[Difference]
    fixed: bool

    def counts(self) -> dict[str, int]:
        return {k: sum(d.kind == k for d in self.differences) for k in KINDS}


def _entry_values(entry: WorkEntry, tenant_id: int, provider_id: int) -> dict[str, object]:
    values: dict[str, object] = {f: getattr(entry, f) for f in ENTRY_FIELDS}
    values["title"] = entry.title[:160]
    return {"tenant_id": tenant_id, "provider_id": provider_id, **values}


def _sla_refresh(entry: WorkEntry) -> None:
    """Let modules.sla fill the SLA columns of a re-created row, when that module is installed."""
    if entry.record_type not in SLA_RECORD_TYPES:
        return
    try:
        sla = importlib.import_module("modules.sla.services")
    except ImportError:
        return
    sla.sla_refresh(record_type=entry.record_type, record_id=entry.record_id)


def _reconcile_current(tenant_slug: str, fix: bool) -> ReconcileReport:
    tenant_id, provider_id = current_tenant_ids()
    expected: dict[uuid.UUID, WorkEntry] = {}
    for path in WORK_SOURCES.values():
        list_entries: Callable[[], Iterable[WorkEntry]] = import_string(path)
        expected.update((e.record_id, e) for e in list_entries())
    rows = {
        row.record_id: row
        for chunk in _chunks(list(expected), 5000)
        for row in WorkItem.objects.filter(record_id__in=chunk)
    }
    rows.update({row.record_id: row for row in WorkItem.objects.filter(tenant_id=tenant_id)})
    differences: list[Difference] = []
    now = timezone.now()
    for record_id, entry in expected.items():
        row = rows.get(record_id)
        if row is None:
            differences.append(Difference("missing", entry.record_type, record_id, entry.number))
            if fix:
                workindex_upsert(entry=entry)
                _sla_refresh(entry)
            continue
        want = _entry_values(entry, tenant_id, provider_id)
        stale = {f: v for f, v in want.items() if getattr(row, f) != v}
        if stale:
            differences.append(Difference("stale", entry.record_type, record_id, entry.number, tuple(stale)))
            if fix:  # only the differing columns: SLA columns stay as modules.sla set them
                WorkItem.objects.filter(pk=row.pk).update(**stale, updated_at=now)
    extras = [row for record_id, row in rows.items() if record_id not in expected]
    for row in extras:
        differences.append(Difference("extra", row.record_type, row.record_id, row.number))
    if fix and extras:
        WorkItem.objects.filter(pk__in=[row.pk for row in extras]).delete()
    differences += _reconcile_group_members(tenant_id, fix)
    differences.sort(key=lambda d: (KINDS.index(d.kind), d.record_type, d.number, str(d.record_id)))
    return ReconcileReport(tenant=tenant_slug, differences=differences, fixed=fix)


def _reconcile_group_members(tenant_id: int, fix: bool) -> list[Difference]:
    from modules.people.models import GroupMembership

    expected = set(
        GroupMembership.objects.filter(person__user_id__isnull=False).values_list(
            "group_id", "person__user_id"
        )
    )
    rows = {
        (row.group_id, row.user_id): row.pk for row in WorkGroupMember.objects.filter(tenant_id=tenant_id)
    }
    missing = sorted(expected - set(rows), key=str)
    extra = sorted(set(rows) - expected, key=str)
    if fix:
        WorkGroupMember.objects.bulk_create(
            WorkGroupMember(tenant_id=tenant_id, group_id=g, user_id=int(u or 0)) for g, u in missing
        )
        WorkGroupMember.objects.filter(pk__in=[rows[key] for key in extra]).delete()
    return [Difference("missing", "group_member", g, f"user {u}") for g, u in missing] + [
        Difference("extra", "group_member", g, f"user {u}") for g, u in extra
    ]


def _chunks(items: list[uuid.UUID], size: int) -> Iterator[list[uuid.UUID]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def workindex_reconcile(*, tenant: Tenant, fix: bool = True) -> ReconcileReport:
    """Compare the work index with ``tenant``'s schema and, with ``fix``, make the index match, in one
    transaction. The expected rows are rebuilt from the open records by each module's entry function
    (WORK_SOURCES); group members from the tenant's GroupMembership of persons linked to users.

    Reports every difference (``missing``, ``stale`` with the differing columns, ``extra``). SLA columns
    (deadlines, paused, breached, next escalation) belong to modules.sla: they are not compared, and a
    fix rewrites only the differing columns; a missing row is re-created and its SLA columns refilled by
    ``modules.sla.services.sla_refresh`` when that module is installed. Runs from public; enters the
    tenant with ``tenant_context``."""
    with transaction.atomic(), tenant_context(tenant):
        return _reconcile_current(tenant.slug, fix)
