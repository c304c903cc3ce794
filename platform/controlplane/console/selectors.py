"""Reads of the console shell: the provider home's client overview and the tenant switcher.

Both read control-plane tables only (tenants, memberships, the work index): no tenant schema is
entered, so their cost does not grow with the number of clients. Access always comes from
``controlplane.accounts.selectors.tenant_list_for_user``; a tenant outside it is never returned.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any

from django.db.models import Case, Count, IntegerField, Max, Q, Value, When
from django.urls import Resolver404, resolve

from controlplane.accounts.models import User
from controlplane.accounts.selectors import tenant_list_for_user
from controlplane.workindex.models import WorkItem
from tenants.models import Tenant

DUE_SOON = dt.timedelta(hours=4)
SWITCH_LIMIT = 20
OVERVIEW_SORTS = ("name", "open", "breached")
SECTION_OF_PATH = re.compile(r"^/t/[a-z0-9-]{1,40}/(?P<section>[a-z][a-z0-9-]{0,39})/")


@dataclass(frozen=True)
class ClientRow:
    """One client on the provider home: open work items, of them breached, of them due (SLA) within
    4 hours and not yet breached, and the latest ``updated_at`` (UTC) of its open work (None: none open)."""

    tenant: Tenant
    open: int
    breached: int
    due_soon: int
    last_activity: dt.datetime | None


def client_overview(*, user: User, now: dt.datetime, q: str = "", sort: str = "name") -> list[ClientRow]:
    """Every active client ``user`` may enter, with its counts from the work index.

    Two queries whatever the number of clients: the tenants, and one ``GROUP BY tenant`` over the
    work index restricted to them. ``q`` filters by name or slug (case-insensitive substring);
    ``sort`` is "name" (A-Z), "open" or "breached" (most first, then by name); anything else is "name".
    """
    tenants = tenant_list_for_user(user=user)
    q = q.strip()
    if q:
        tenants = tenants.filter(Q(name__icontains=q) | Q(slug__icontains=q))
    tenant_rows = list(tenants)
    # Annotation names differ from the model's fields: `breached` in a FILTER must mean the column.
    counts = (
        {
            row["tenant_id"]: row
            for row in WorkItem.objects.filter(tenant_id__in=[t.pk for t in tenant_rows])
            .values("tenant_id")
            .annotate(
                n_open=Count("id"),
                n_breached=Count("id", filter=Q(breached=True)),
                n_due_soon=Count(
                    "id", filter=Q(breached=False, sla_due_at__gt=now, sla_due_at__lte=now + DUE_SOON)
                ),
                last_update=Max("updated_at"),
            )
            .order_by()
        }
        if tenant_rows
        else {}
    )
    rows = []
    for tenant in tenant_rows:
        c: dict[str, Any] = dict(counts.get(tenant.pk) or {})
        rows.append(
            ClientRow(
                tenant=tenant,
                open=c.get("n_open", 0),
                breached=c.get("n_breached", 0),
                due_soon=c.get("n_due_soon", 0),
                last_activity=c.get("last_update"),
            )
        )
    if sort == "open":
        rows.sort(key=lambda r: (-r.open, r.tenant.name.lower()))
    elif sort == "breached":
        rows.sort(key=lambda r: (-r.breached, -r.open, r.tenant.name.lower()))
    return rows


def tenant_switch_candidates(
    *, user: User, q: str = "", recent_ids: list[int] | None = None, limit: int = SWITCH_LIMIT
) -> list[Tenant]:
    """Clients ``user`` may enter whose name or slug contains ``q`` (case-insensitive; empty: all),
    the recently entered ones first (in ``recent_ids`` order), then by name; at most ``limit``.
    One query. ``recent_ids`` only orders: an id the user may no longer enter is simply not found."""
    tenants = tenant_list_for_user(user=user)
    q = q.strip()[:100]
    if q:
        tenants = tenants.filter(Q(name__icontains=q) | Q(slug__icontains=q))
    recent = (recent_ids or [])[:10]
    rank = Case(
        *[When(pk=pk, then=Value(i)) for i, pk in enumerate(recent)],
        default=Value(len(recent)),
        output_field=IntegerField(),
    )
    return list(tenants.annotate(recent_rank=rank).order_by("recent_rank", "name")[:limit])


def switch_path(*, slug: str, from_path: str) -> str:
    """Where switching to client ``slug`` lands: the same practice section as ``from_path`` when the
    new client has that page (``/t/a/incidents/INC0001234/`` -> ``/t/<slug>/incidents/``), else the
    client's home ``/t/<slug>/``. Only the section name is taken from ``from_path``, never a record."""
    home = f"/t/{slug}/"
    match = SECTION_OF_PATH.match(from_path or "")
    if match is None:
        return home
    candidate = f"{home}{match.group('section')}/"
    try:
        resolve(candidate, urlconf="controlplane.urls")
    except Resolver404:
        return home
    return candidate
