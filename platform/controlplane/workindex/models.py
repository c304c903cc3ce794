"""The cross-client work index: one narrow row per open record of every tenant. Control plane (`public`).

Written by the tenant plane's services in the same transaction as the record (both schemas live in one
database; see ../shared/ARCHITECTURE.md, "Seeing across tenants without breaking isolation"). Read by the
technician's queue and the SLA escalation sweep, so neither loops over schemas. A row never holds a
description, a comment or an attachment: only what a queue row shows and what a sweep needs.

Tenant-local ids (records, persons, groups) are plain UUID columns: they point into a tenant schema,
where no constraint can reach. Control-plane ids (tenant, provider, user) are real foreign keys or ids.
"""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models.functions import Coalesce

# The queue orders by the next SLA deadline with rows without one last: ``COALESCE(sla_due_at,
# NO_DEADLINE)``. The same expression leads the queue indexes, so a page is one index range scan.
NO_DEADLINE = dt.datetime(9999, 12, 31, tzinfo=dt.UTC)


def due_key() -> Coalesce:
    """The queue's first sort key: ``sla_due_at`` (UTC), with no deadline last."""
    return Coalesce(models.F("sla_due_at"), models.Value(NO_DEADLINE, output_field=models.DateTimeField()))


class WorkItem(models.Model):
    """One open record of one tenant. Deleted when the record leaves its open states.

    SLA columns are written by ``modules.sla`` (all UTC): ``response_due_at`` and ``resolution_due_at``
    are the running timers' deadlines (null when the timer is absent, stopped or paused); ``sla_due_at``
    is the earliest of them (the queue's order; a breached timer's deadline is in the past, so it sorts
    first); ``next_escalation_at`` is when the sweep must next act on this record (null: nothing due).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, related_name="+")
    record_type = models.CharField(max_length=40)
    record_id = models.UUIDField(unique=True)  # UUIDv7: unique across the whole platform
    number = models.CharField(max_length=20)
    title = models.CharField(max_length=160)
    state = models.CharField(max_length=30)
    priority = models.PositiveSmallIntegerField(null=True)
    assigned_person_id = models.UUIDField(null=True)
    assigned_user_id = models.BigIntegerField(null=True)  # the assignee's control-plane user, if any
    assignment_group_id = models.UUIDField(null=True)
    opened_at = models.DateTimeField()
    updated_at = models.DateTimeField()
    response_due_at = models.DateTimeField(null=True)
    resolution_due_at = models.DateTimeField(null=True)
    sla_due_at = models.DateTimeField(null=True)
    sla_paused = models.BooleanField(default=False)
    breached = models.BooleanField(default=False)
    next_escalation_at = models.DateTimeField(null=True)

    class Meta:
        indexes = [
            models.Index(fields=["tenant", "sla_due_at"], name="work_tenant_due"),
            models.Index(fields=["assigned_user_id", "sla_due_at"], name="work_assignee_due"),
            models.Index(fields=["tenant", "assignment_group_id"], name="work_tenant_group"),
            models.Index(
                fields=["next_escalation_at"],
                name="work_escalation_due",
                condition=models.Q(next_escalation_at__isnull=False),
            ),
            # The technician's queue (selectors.workindex_queue): by provider (all clients or grants),
            # by tenant, by record type and by assignee (the filters), each in queue order.
            models.Index(
                models.F("provider"),
                due_key(),
                models.F("opened_at"),
                models.F("id"),
                name="work_queue_provider",
            ),
            models.Index(
                models.F("tenant"), due_key(), models.F("opened_at"), models.F("id"), name="work_queue_tenant"
            ),
            models.Index(
                models.F("provider"),
                models.F("record_type"),
                due_key(),
                models.F("opened_at"),
                models.F("id"),
                name="work_queue_type",
            ),
            models.Index(
                models.F("assigned_user_id"),
                due_key(),
                models.F("opened_at"),
                models.F("id"),
                name="work_queue_assignee",
            ),
            # The backlog chart's partial hours at its bucket edges (dashboards.selectors).
            models.Index(fields=["provider", "opened_at"], name="work_provider_opened"),
        ]

    def __str__(self) -> str:
        return f"{self.number} ({self.tenant_id})"


class WorkGroupMember(models.Model):
    """A control-plane user's membership of a tenant's assignment group: what "my groups" means in the
    queue. Kept by ``modules.people`` services in the same transaction as the tenant's GroupMembership."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    group_id = models.UUIDField()
    user_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "group_id", "user_id"], name="uniq_work_group_member")
        ]
        indexes = [models.Index(fields=["user_id"], name="work_group_member_user")]


class TenantDailyRollup(models.Model):
    """Per tenant, per record type, per day (the tenant's local date): what cross-client dashboards read.

    ``opened`` counts records opened that day; ``resolved`` records resolved (or fulfilled) that day, with
    the sums of their seconds to acknowledge and to resolve (means = sum / count); ``sla_met`` and
    ``sla_breached`` count resolution SLAs stopped that day; satisfaction is a sum and count of 1-5 scores.
    Kept current on close by the tenant services and rebuilt nightly from the tenant schemas.
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    provider = models.ForeignKey("providers.Provider", on_delete=models.CASCADE, related_name="+")
    day = models.DateField()
    record_type = models.CharField(max_length=40)
    opened = models.PositiveIntegerField(default=0)
    resolved = models.PositiveIntegerField(default=0)
    acknowledged = models.PositiveIntegerField(default=0)
    acknowledge_seconds = models.BigIntegerField(default=0)
    resolve_seconds = models.BigIntegerField(default=0)
    sla_met = models.PositiveIntegerField(default=0)
    sla_breached = models.PositiveIntegerField(default=0)
    satisfaction_sum = models.PositiveIntegerField(default=0)
    satisfaction_count = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "day", "record_type"], name="uniq_rollup_day")
        ]
        indexes = [models.Index(fields=["provider", "day"], name="rollup_provider_day")]


class TenantWakeup(models.Model):
    """When a tenant next has background work of one ``kind`` (``notifications``: a pending delivery's
    retry): one row per (tenant, kind), absent when the tenant has nothing pending of that kind.

    Beat reads the due rows (``due_at`` <= now, UTC) in one indexed query and sends a task to those
    tenants only, so an idle tenant costs nothing (../shared/ARCHITECTURE.md, "Seeing across tenants").
    Tenant services lower ``due_at`` in the transaction that creates the work
    (``services.workindex_wakeup_set``); the tenant's own task moves it to its next due time or deletes
    the row afterwards (``services.workindex_wakeup_recompute``).
    """

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=40)
    due_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "kind"], name="uniq_tenant_wakeup")]
        indexes = [models.Index(fields=["kind", "due_at"], name="tenant_wakeup_due")]

    def __str__(self) -> str:
        return f"{self.kind} of {self.tenant_id} at {self.due_at.isoformat()}"


# Summaries the cross-client dashboard reads instead of thousands of per-tenant rows. They are kept by
# PostgreSQL triggers on their source tables (migration 0004; decision 0014), in the same transaction as
# every write of the source, whatever wrote it (the live services, the nightly rebuild, a reconcile, a
# tenant's deletion): no code path can forget them. STRIPES spreads the provider-wide counters over rows
# (stripe = tenant id % STRIPES) so the tenants of one provider do not all queue on one row lock. Their
# foreign keys have no index of their own: each unique constraint leads with that column.
STRIPES = 8
# pg_advisory_xact_lock(ROLLUP_TOTALS_LOCK, tenant id): one writer of a tenant's running totals at a time.
# The trigger takes it; the services take it before their first rollup write, so no writer holds a daily
# row's lock while it waits for this one (which could deadlock with a holder of this lock wanting that row).
ROLLUP_TOTALS_LOCK = 7301


class TenantRollupTotal(models.Model):
    """A running total of one tenant's ``TenantDailyRollup`` rows, every record type summed: each counter
    is the sum over the days <= ``day``. A window's sum is ``total(end) - total(start - 1)``, where
    ``total(x)`` is the tenant's latest row with ``day <= x`` (zeros when none): two index probes a
    tenant, whatever the window. Kept by the ``workindex_rollup_totals`` trigger; never written by code."""

    tenant = models.ForeignKey("tenants.Tenant", on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    opened = models.BigIntegerField(default=0)
    resolved = models.BigIntegerField(default=0)
    acknowledged = models.BigIntegerField(default=0)
    acknowledge_seconds = models.BigIntegerField(default=0)
    resolve_seconds = models.BigIntegerField(default=0)
    sla_met = models.BigIntegerField(default=0)
    sla_breached = models.BigIntegerField(default=0)
    satisfaction_sum = models.BigIntegerField(default=0)
    satisfaction_count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "day"], name="uniq_rollup_total_day")]


class ProviderDailyRollup(models.Model):
    """Records opened and resolved on ``day`` (each tenant's local date) in every tenant of ``provider``
    whose id % STRIPES is ``stripe``: the cross-client volume chart of a user who sees every client.
    Kept by the ``workindex_rollup_totals`` trigger."""

    provider = models.ForeignKey(
        "providers.Provider", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    day = models.DateField()
    stripe = models.PositiveSmallIntegerField()
    opened = models.BigIntegerField(default=0)
    resolved = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["provider", "day", "stripe"], name="uniq_provider_rollup_day")
        ]


class ProviderBacklogHour(models.Model):
    """Open records (``WorkItem`` rows) of ``provider``'s tenants whose id % STRIPES is ``stripe``, by the
    UTC hour ``opened_hour`` their record was opened in: the backlog-age chart of a user who sees every
    client (the partial hours at the buckets' edges are counted from WorkItem). Kept by the
    ``workindex_backlog_hours`` trigger; rows that fall to 0 are deleted."""

    provider = models.ForeignKey(
        "providers.Provider", on_delete=models.CASCADE, related_name="+", db_index=False
    )
    stripe = models.PositiveSmallIntegerField()
    opened_hour = models.DateTimeField()
    open_records = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["provider", "opened_hour", "stripe"], name="uniq_provider_backlog_hour"
            )
        ]
