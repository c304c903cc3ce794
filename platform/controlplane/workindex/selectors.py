"""Reads of the cross-client work index: the technician's queue across every client they may enter.

The queue reads only control-plane tables (the index, tenants, memberships): no tenant schema is
touched, so its cost does not grow with the number of tenants. Opening a row enters the tenant through
the console (``/t/<slug>/...``), where the routing middleware checks the membership again.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import uuid
from collections import defaultdict
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, F, Field, Func, QuerySet, Value
from django.db.models.expressions import RawSQL
from django.db.models.lookups import GreaterThan
from django.utils import timezone

from controlplane.accounts.models import ProviderMembership, TenantGrant, User
from controlplane.problems import InvalidInput, PermissionDenied
from modules.records.registry import kind_get
from tenants.models import Tenant

from .models import NO_DEADLINE, TenantWakeup, WorkItem, due_key

MAX_LIMIT = 200
MAX_DUE_WITHIN_HOURS = 24 * 366
# Console paths (below /t/<slug>/) of the record types that are not registered record kinds.
TASK_PATH = "requests/tasks/{record_id}/"
RECORD_LABELS = {
    "incident": "Incident",
    "service_request": "Service request",
    "fulfilment_task": "Catalog task",
    "problem": "Problem",
    "change": "Change",
}


class Row(Func):
    """A row constructor, ``ROW(a, b, c)``: compared as a whole (``ROW(...) > ROW(...)``), which an index
    on the same columns serves as a range (keyset pagination)."""

    function = "ROW"
    output_field = Field()


def my_groups_condition(*, user_id: int) -> RawSQL:
    """``(tenant, assignment group)`` is one of the user's WorkGroupMember rows. Written as ``= ANY(ARRAY(
    subquery))`` rather than EXISTS: the array is computed once, so the planner keeps walking the queue
    index in order and stops after a page, instead of joining every row of the user's groups (a third of
    the index for a technician in every client's service desk) and sorting them (bench_queue.py)."""
    return RawSQL(
        '(ROW("workindex_workitem"."tenant_id", "workindex_workitem"."assignment_group_id")'
        " = ANY(ARRAY(SELECT ROW(m.tenant_id, m.group_id) FROM workindex_workgroupmember m"
        " WHERE m.user_id = %s)))",
        [user_id],
        output_field=BooleanField(),
    )


def console_path(*, record_type: str, record_id: uuid.UUID, number: str) -> str:
    """The console path of an indexed record below ``/t/<slug>/`` (the registered kind's
    ``console_path``; fulfilment tasks open their request through ``requests/tasks/<id>/``)."""
    if record_type == "fulfilment_task":
        return TASK_PATH.format(record_id=record_id)
    return kind_get(record_type).console_path.format(number=number)


@dataclass(frozen=True)
class QueueRow:
    """One queue row: the index row with its tenant (``item.tenant`` loaded) and the record's console URL."""

    item: WorkItem
    url: str

    @property
    def label(self) -> str:
        return RECORD_LABELS.get(self.item.record_type, self.item.record_type)


@dataclass(frozen=True)
class QueuePage:
    """A page of the queue and the cursor of the next page (None on the last page)."""

    rows: list[QueueRow]
    next_cursor: str | None


def _cursor_encode(item: WorkItem) -> str:
    due = item.sla_due_at or NO_DEADLINE
    raw = json.dumps([due.isoformat(), item.opened_at.isoformat(), item.pk])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _cursor_decode(cursor: str) -> tuple[dt.datetime, dt.datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        due, opened, pk = json.loads(base64.urlsafe_b64decode(padded.encode()))
        return dt.datetime.fromisoformat(due), dt.datetime.fromisoformat(opened), int(pk)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise InvalidInput("malformed cursor", errors=[{"field": "cursor", "message": "malformed"}]) from exc


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", errors=[{"field": field, "message": message}])


def workindex_queue(
    *,
    user: User,
    assigned_to_me: bool = False,
    my_groups: bool = False,
    unassigned: bool = False,
    breached: bool = False,
    due_within_hours: int | None = None,
    tenant: str | None = None,
    record_type: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
    now: dt.datetime | None = None,
    tenant_ids: list[int] | None = None,
) -> QueuePage:
    """The open records of every client ``user`` may enter on the console, next SLA deadline first.

    Who sees what follows the routing middleware (tenants.routing / accounts.selectors.tenant_role_get):
    a provider member sees the provider's active tenants, all of them with "all clients", else those of
    an explicit TenantGrant; tenant memberships (client staff) give no queue. Raises PermissionDenied
    for a user without a provider membership.

    Filters (all combine with AND): ``assigned_to_me`` (the assignee is this user), ``my_groups`` (the
    assignment group is one of this user's groups in that tenant), ``unassigned`` (no assignee),
    ``breached`` (an SLA timer is breached), ``due_within_hours`` (the next deadline is at most that
    many hours from ``now``, overdue included; 1-8784), ``tenant`` (a slug; an unknown slug or a tenant
    the user may not enter gives no rows), ``record_type`` (incident, service_request, fulfilment_task,
    problem, change). Order: ``sla_due_at`` ascending with no deadline last, then ``opened_at``, then
    the row id; ``limit`` rows (1-200) after ``cursor`` (the ``next_cursor`` of the previous page:
    keyset pagination). ``tenant_ids``: only these tenants (an API token's scope; None: no limit beyond
    the user's own). Raises InvalidInput (422) naming the bad filter. Two queries whatever the
    number of rows (the membership, then the page).
    """
    if record_type is not None and record_type not in RECORD_LABELS:
        raise _invalid("record_type", f"one of {', '.join(RECORD_LABELS)}")
    if not 1 <= limit <= MAX_LIMIT:
        raise _invalid("limit", f"1-{MAX_LIMIT}")
    if due_within_hours is not None and not 1 <= due_within_hours <= MAX_DUE_WITHIN_HOURS:
        raise _invalid("due_within_hours", f"1-{MAX_DUE_WITHIN_HOURS}")
    if assigned_to_me and unassigned:
        raise _invalid("unassigned", "cannot be combined with assigned_to_me")
    after = _cursor_decode(cursor) if cursor else None
    membership = (
        ProviderMembership.objects.filter(user=user).values("pk", "provider_id", "all_clients").first()
    )
    if membership is None:
        raise PermissionDenied("the queue is for the provider's staff")
    qs: QuerySet[WorkItem] = WorkItem.objects.filter(
        provider_id=membership["provider_id"], tenant__status=Tenant.Status.ACTIVE
    )
    if not membership["all_clients"]:
        qs = qs.filter(
            tenant_id__in=TenantGrant.objects.filter(membership_id=membership["pk"]).values("tenant_id")
        )
    if tenant is not None:
        qs = qs.filter(tenant__slug=tenant)
    if tenant_ids is not None:
        qs = qs.filter(tenant_id__in=tenant_ids)
    if record_type is not None:
        qs = qs.filter(record_type=record_type)
    if assigned_to_me:
        qs = qs.filter(assigned_user_id=user.pk)
    if unassigned:
        qs = qs.filter(assigned_person_id__isnull=True)
    if my_groups:
        qs = qs.filter(my_groups_condition(user_id=user.pk))
    if breached:
        qs = qs.filter(breached=True)
    if due_within_hours is not None:
        qs = qs.filter(sla_due_at__lte=(now or timezone.now()) + dt.timedelta(hours=due_within_hours))
    key = due_key()
    if after is not None:
        qs = qs.filter(
            GreaterThan(
                Row(key, F("opened_at"), F("id")), Row(Value(after[0]), Value(after[1]), Value(after[2]))
            )
        )
    qs = qs.select_related("tenant").only(
        *(f.name for f in WorkItem._meta.concrete_fields), "tenant__slug", "tenant__name"
    )
    items = list(qs.order_by(key.asc(), "opened_at", "id")[: limit + 1])
    rows = [
        QueueRow(
            item=item,
            url=f"/t/{item.tenant.slug}/"
            + console_path(record_type=item.record_type, record_id=item.record_id, number=item.number),
        )
        for item in items[:limit]
    ]
    return QueuePage(rows=rows, next_cursor=_cursor_encode(items[limit - 1]) if len(items) > limit else None)


def queue_filters_valid_tenants(*, user: User) -> QuerySet[Tenant]:
    """Tenants the queue's ``tenant`` filter offers ``user`` (provider tenants they may enter), by name."""
    membership = ProviderMembership.objects.filter(user=user).first()
    if membership is None:
        return Tenant.objects.none()
    qs = Tenant.objects.filter(provider_id=membership.provider_id, status=Tenant.Status.ACTIVE)
    if not membership.all_clients:
        qs = qs.filter(grants__membership=membership)
    return qs.order_by("name")


def workindex_escalations_due(*, now: dt.datetime, limit: int) -> dict[tuple[str, str], list[str]]:
    """Open records of active tenants whose ``next_escalation_at`` (UTC) is at or before ``now``, at most
    ``limit`` (earliest first), grouped: ``{(tenant schema name, record type): [record id as text, ...]}``.

    One query for all tenants through the partial index ``work_escalation_due`` (rows with a due time
    only), so a tick where nothing is due reads nothing else. Ids stay text: they go straight into task
    messages, and converting 10,000 of them to UUID objects and back would cost more than the query."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT t.schema_name, w.record_type, w.record_id::text FROM workindex_workitem w"
            " JOIN tenants_tenant t ON t.id = w.tenant_id"
            " WHERE w.next_escalation_at IS NOT NULL AND w.next_escalation_at <= %s AND t.status = %s"
            " ORDER BY w.next_escalation_at, w.id LIMIT %s",
            [now, Tenant.Status.ACTIVE, limit],
        )
        rows = cursor.fetchall()
    grouped: dict[tuple[str, str], list[str]] = defaultdict(list)
    for schema_name, record_type, record_id in rows:
        grouped[(schema_name, record_type)].append(record_id)
    return dict(grouped)


def workindex_wakeups_due(*, kind: str, now: dt.datetime, limit: int) -> list[str]:
    """Schema names of the active tenants whose wake-up of ``kind`` is due (``due_at`` <= ``now``, UTC),
    earliest first, at most ``limit``. One query on the ``tenant_wakeup_due`` index (kind, due_at): a
    tenant with nothing pending has no row and is never read, so a tick costs the number of due tenants,
    not the number of tenants (../shared/ARCHITECTURE.md, "Seeing across tenants")."""
    return list(
        TenantWakeup.objects.filter(kind=kind, due_at__lte=now, tenant__status=Tenant.Status.ACTIVE)
        .order_by("due_at", "id")
        .values_list("tenant__schema_name", flat=True)[:limit]
    )
