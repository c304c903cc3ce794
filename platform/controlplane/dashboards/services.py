"""Writes of the dashboards' category counter (``models.TenantDailyCategory``; why it exists is in the
models' docstring). Called by tenant services inside their own transaction, like the rollup's writers in
``controlplane.workindex.services``: the tenant is the connection's tenant, never an argument.
"""

from __future__ import annotations

import datetime as dt

from django.apps import apps
from django.db import connection

from controlplane.workindex.services import current_tenant_ids, workindex_local_day

from .models import TenantDailyCategory

# Per record type, SQL of ``(opened_at, category)`` of every record of the tenant (a service request
# once per distinct catalog category of its items): the one definition the rebuild counts from, with
# the tables it reads (placeholder -> app_label.Model). Constants, never built from input.
CATEGORY_SOURCES: dict[str, tuple[str, dict[str, str]]] = {
    "incident": ("SELECT r.opened_at, r.category FROM {r} r", {"r": "incidents.Incident"}),
    "service_request": (
        "SELECT DISTINCT r.id, r.opened_at, c.name AS category FROM {r} r"
        " JOIN {i} i ON i.request_id = r.id JOIN {ci} ci ON ci.id = i.catalog_item_id"
        " JOIN {c} c ON c.id = ci.category_id",
        {
            "r": "service_requests.ServiceRequest",
            "i": "service_requests.RequestedItem",
            "ci": "service_requests.CatalogItem",
            "c": "service_requests.CatalogCategory",
        },
    ),
}
CATEGORY_LENGTH = 100


def _category(text: str) -> str:
    return (text or "").strip()[:CATEGORY_LENGTH]


def dashboard_category_add(
    *, record_type: str, opened_at: dt.datetime, category: str, count: int = 1
) -> None:
    """Add ``count`` (negative to take back) to the records of ``record_type`` opened on the tenant's
    local day of ``opened_at`` (aware) in ``category`` (stripped, cut to 100 characters). One atomic
    ``INSERT ... ON CONFLICT DO UPDATE``; the counter never goes below 0. Uses the connection's tenant
    (workindex NoTenant in public)."""
    _category_add(record_type, opened_at, {_category(category): count})


def _category_add(record_type: str, opened_at: dt.datetime, counts: dict[str, int]) -> None:
    """Add each ``counts`` value to its (already cleaned) category, categories in order: the provider's
    sums (decision 0014) are then locked in one order by every writer, so two re-categorisations the
    opposite way round in two clients cannot deadlock. One atomic ``INSERT ... ON CONFLICT DO UPDATE``
    a category; a counter never goes below 0."""
    rows = sorted((category, count) for category, count in counts.items() if count)
    if not rows:
        return
    tenant_id, provider_id = current_tenant_ids()
    day = workindex_local_day(opened_at)
    with connection.cursor() as cursor:
        for category, count in rows:
            cursor.execute(
                "INSERT INTO dashboards_tenantdailycategory (tenant_id, provider_id, day, record_type,"
                " category, opened) VALUES (%s, %s, %s, %s, %s, GREATEST(0, %s))"
                " ON CONFLICT (tenant_id, day, record_type, category)"
                " DO UPDATE SET opened = GREATEST(0, dashboards_tenantdailycategory.opened + %s)",
                [tenant_id, provider_id, day, record_type, category, count, count],
            )


def dashboard_category_move(*, record_type: str, opened_at: dt.datetime, before: str, after: str) -> None:
    """A record opened at ``opened_at`` changed category from ``before`` to ``after``: move its count.
    Nothing when both are the same once stripped. Uses the connection's tenant."""
    if _category(before) == _category(after):
        return
    _category_add(record_type, opened_at, {_category(before): -1, _category(after): 1})


def dashboard_category_rebuild(*, since: dt.date, time_zone: str) -> int:
    """Recompute the tenant's category counters of local days >= ``since`` (in IANA ``time_zone``) from
    its schema, every CATEGORY_SOURCES type: rows of the window are replaced. Runs in the caller's
    transaction (``workindex_rollup_rebuild`` calls it). Uses the connection's tenant. Returns the rows
    written."""
    tenant_id, provider_id = current_tenant_ids()
    TenantDailyCategory.objects.filter(tenant_id=tenant_id, day__gte=since).delete()
    written = 0
    with connection.cursor() as cursor:
        for record_type, (select, models) in CATEGORY_SOURCES.items():
            tables = {name: apps.get_model(label)._meta.db_table for name, label in models.items()}
            cursor.execute(
                "INSERT INTO dashboards_tenantdailycategory (tenant_id, provider_id, day, record_type, category,"  # noqa: S608 - constants only
                " opened) SELECT %(tenant)s, %(provider)s, (s.opened_at AT TIME ZONE %(tz)s)::date,"
                f" %(type)s, left(btrim(s.category, E' \\t\\n\\r'), {CATEGORY_LENGTH}), count(*)"
                f" FROM ({select.format(**tables)}) s"
                " WHERE (s.opened_at AT TIME ZONE %(tz)s)::date >= %(since)s GROUP BY 3, 5",
                {
                    "tenant": tenant_id,
                    "provider": provider_id,
                    "tz": time_zone,
                    "type": record_type,
                    "since": since,
                },
            )
            written += cursor.rowcount
    return written
