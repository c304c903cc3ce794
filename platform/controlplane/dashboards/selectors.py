"""Reads behind the dashboards: the numbers of every chart, from control-plane tables only.

Sources (../shared/ARCHITECTURE.md, "Seeing across tenants without breaking isolation"): the daily rollup
(``workindex.TenantDailyRollup``: volumes, seconds to acknowledge and resolve, SLA outcomes,
satisfaction), the work index (``workindex.WorkItem``: the open records, for backlog age) and the
category counter (``dashboards.TenantDailyCategory``), and their summaries (decision 0014): per-tenant
running totals of the rollup (``workindex.TenantRollupTotal``) for the per-client charts, and, when the
user sees exactly every client of a provider, the provider's daily volume, categories and backlog hours.
No tenant schema is read: a dashboard is a fixed number of queries over any number of tenants, and the
rows read grow with the clients (two index probes each), not with clients x days.

Days are the tenant's local dates, as the rollup stores them; the window is the last ``days`` dates up to
``today`` (the caller's date: the viewer's for the cross-client dashboard, the tenant's for its own).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from controlplane.accounts.models import ProviderMembership, User
from controlplane.accounts.selectors import tenant_list_for_user
from controlplane.problems import PermissionDenied
from controlplane.workindex.models import (
    ProviderBacklogHour,
    ProviderDailyRollup,
    TenantDailyRollup,
    TenantRollupTotal,
    WorkItem,
)
from controlplane.workindex.selectors import RECORD_LABELS
from tenants.models import Tenant

from .models import ProviderDailyCategory, TenantDailyCategory

DAY_CHOICES = (30, 90)
TOP_CATEGORIES = 10
# At most this many rows per breakdown chart before its "All" row (the last one sums the rest).
MAX_GROUPS = 20
# Backlog age buckets: (label, lower bound inclusive, upper bound exclusive), ages in days.
BACKLOG_BUCKETS: tuple[tuple[str, int, int | None], ...] = (
    ("< 1 d", 0, 1),
    ("1-3 d", 1, 3),
    ("3-7 d", 3, 7),
    ("7-30 d", 7, 30),
    ("> 30 d", 30, None),
)
ALL = "All"
# The rollup's counters, as TenantDailyRollup and TenantRollupTotal name them.
COUNTERS: tuple[str, ...] = (
    "opened",
    "resolved",
    "acknowledged",
    "acknowledge_seconds",
    "resolve_seconds",
    "sla_met",
    "sla_breached",
    "satisfaction_sum",
    "satisfaction_count",
)
TOTALS = TenantRollupTotal._meta.db_table


@dataclass(frozen=True)
class Chart:
    """The numbers of one chart: ``columns`` (CSV header) and ``rows`` (one tuple per row, the first
    item the row's label). Empty numbers are None (written empty in CSV, "—" on the page). The SVG is
    drawn from these same rows, and the CSV is exactly them."""

    key: str
    title: str
    description: str
    columns: tuple[str, ...]
    rows: list[tuple[object, ...]] = field(default_factory=list)


@dataclass(frozen=True)
class Dashboard:
    """Every chart of one dashboard, with its window (``start``..``end``, local dates, both included)."""

    start: dt.date
    end: dt.date
    days: int
    charts: dict[str, Chart]

    def summary(self) -> dict[str, object]:
        """The headline numbers: the ``All`` rows of the breakdown charts."""
        sla, times, sat = (self.charts[k].rows[-1] for k in ("sla", "times", "satisfaction"))
        volume = self.charts["volume"].rows
        return {
            "opened": sum(int(r[1]) for r in volume),  # type: ignore[call-overload]
            "resolved": sum(int(r[2]) for r in volume),  # type: ignore[call-overload]
            "sla_percent": sla[3],
            "mtta_hours": times[3],
            "mttr_hours": times[4],
            "satisfaction": sat[2],
            "backlog": sum(int(r[1]) for r in self.charts["backlog"].rows),  # type: ignore[call-overload]
        }


def dashboard_tenants_for_user(*, user: User) -> QuerySet[Tenant]:
    """The tenants whose numbers the cross-client dashboard shows ``user``: those their provider role
    reaches (``accounts.selectors.tenant_list_for_user`` as provider staff: a tenant where they only hold
    a tenant role, such as end user, is left out), by name. Provider staff only: raises PermissionDenied
    for a user without a provider membership (client staff see their own portal)."""
    if not ProviderMembership.objects.filter(user=user).exists():
        raise PermissionDenied("the cross-client dashboard is for the provider's staff")
    return tenant_list_for_user(user=user, as_provider_staff=True)


def _id_array(ids: list[int]) -> str:
    """``ids`` as a PostgreSQL array literal, for a ``%s::bigint[]`` parameter: one string to send
    instead of a thousand numbers psycopg would adapt one by one (about 3 ms for 1,000 ids)."""
    return "{" + ",".join(str(int(i)) for i in ids) + "}"


def _whole_provider(tenant_ids: list[int]) -> int | None:
    """The provider whose tenants (every status) are exactly ``tenant_ids``, else None: only then may the
    provider-wide summaries stand for the user's clients (a technician with grants to some clients, or a
    provider with a suspended client the list leaves out, takes the per-client rows)."""
    if not tenant_ids:
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "WITH ids AS (SELECT DISTINCT unnest(%s::bigint[]) AS id)"
            " SELECT t.provider_id, count(ids.id), count(*) FROM tenants_tenant t LEFT JOIN ids ON ids.id = t.id"
            " WHERE t.provider_id IN (SELECT provider_id FROM tenants_tenant WHERE id IN (SELECT id FROM ids))"
            " GROUP BY t.provider_id",
            [_id_array(tenant_ids)],
        )
        rows = cursor.fetchall()
    if len(rows) == 1 and rows[0][1] == rows[0][2] == len(tenant_ids):
        return int(rows[0][0])
    return None


def _backlog(tenant_ids: list[int], provider_id: int | None, now: dt.datetime) -> list[int]:
    """Open records per BACKLOG_BUCKETS bucket, by age at ``now``. For a whole provider: its hourly counts
    (ProviderBacklogHour), plus the exact count of the partial UTC hour at each bucket edge from the
    work index; else the clients' work index rows. One query either way."""
    edges = [now - dt.timedelta(days=low) for _, low, _ in BACKLOG_BUCKETS[1:]]
    if provider_id is None:
        counts = WorkItem.objects.filter(tenant_id__in=tenant_ids).aggregate(
            total=Count("id"),
            **{f"e{i}": Count("id", filter=Q(opened_at__gt=e)) for i, e in enumerate(edges)},
        )
        newer = [int(counts[f"e{i}"]) for i in range(len(edges))]
        total = int(counts["total"])
    else:
        # Opened after edge e: the whole hours after e's hour, plus the items of e's own hour after e.
        ends = [
            e.astimezone(dt.UTC).replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
            for e in edges
        ]
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT COALESCE(sum(open_records), 0), "  # noqa: S608 - table names are constants
                + ", ".join("COALESCE(sum(open_records) FILTER (WHERE opened_hour >= %s), 0)" for _ in edges)
                + ", "
                + ", ".join(
                    f"(SELECT count(*) FROM {WorkItem._meta.db_table} w WHERE w.provider_id = %s"  # noqa: S608 - constants
                    " AND w.opened_at > %s AND w.opened_at < %s)"
                    for _ in edges
                )
                + f" FROM {ProviderBacklogHour._meta.db_table} WHERE provider_id = %s",
                [
                    *ends,
                    *(v for e, end in zip(edges, ends, strict=True) for v in (provider_id, e, end)),
                    provider_id,
                ],
            )
            total, *sums = (int(v) for v in cursor.fetchone())
        newer = [h + p for h, p in zip(sums[: len(edges)], sums[len(edges) :], strict=True)]
    bounds = [0, *newer, total]
    return [bounds[i + 1] - bounds[i] for i in range(len(BACKLOG_BUCKETS))]


def _ratio(part: int, whole: int, scale: float = 1.0, digits: int = 1) -> float | None:
    return round(part * scale / whole, digits) if whole else None


def dashboard_get(
    *,
    tenant_ids: Sequence[int],
    days: int,
    today: dt.date,
    breakdown: str,
    labels: dict[object, str],
    now: dt.datetime | None = None,
) -> Dashboard:
    """The numbers of every chart for ``tenant_ids`` over the ``days`` local dates ending ``today``.

    ``breakdown`` groups the SLA, mean-time and satisfaction charts: ``tenant`` (by client, the
    cross-client dashboard) or ``record_type`` (the tenant dashboard); ``labels`` names the groups
    (tenant id or record type -> label; groups without rows are listed with empty numbers). Past
    MAX_GROUPS groups, the MAX_GROUPS - 1 with the most resolutions and SLA outcomes are kept (by name)
    and the rest summed into one "N other clients" row. Each of those charts ends with an ``All`` row
    over every group. Rules:

    - volume: records opened and resolved per day (every day of the window, zeros included);
    - SLA compliance % = met / (met + breached) of resolution SLAs stopped in the window, 1 decimal;
    - mean time to acknowledge / resolve, in hours (2 decimals) = seconds sum / count / 3600, over the
      records resolved in the window (acknowledged ones for the former), as ``workindex.rollup`` counts;
    - satisfaction: mean 1-5 score (2 decimals) = satisfaction_sum / satisfaction_count;
    - backlog age: open records (work index) by days since ``opened_at`` at ``now`` (UTC), BACKLOG_BUCKETS;
    - top categories: the TOP_CATEGORIES (record type, category) pairs with the most records opened in
      the window, most first, ties by type then category.

    Queries, whatever the number of tenants and days: ``record_type`` (one tenant) three, the rollup
    scanned once for both the per-day and the per-group sums (GROUPING SETS); ``tenant`` five, the
    per-client sums from the running totals, the rest from the provider's summaries when ``tenant_ids``
    are exactly one provider's tenants (every status), else from those tenants' own rows."""
    now = now or timezone.now()
    start = today - dt.timedelta(days=days - 1)
    ids = sorted(set(tenant_ids))
    provider_id = _whole_provider(ids) if breakdown == "tenant" else None
    by_day: dict[dt.date, dict[str, int]] = {}
    grouped: dict[object, tuple[int, ...]] = {}  # group key -> COUNTERS
    with connection.cursor() as cursor:
        if breakdown == "tenant":
            # Per client: its running totals at the window's two ends (two index probes a client).
            cursor.execute(
                "SELECT g.id, "  # noqa: S608 - column names from the fixed set above
                + ", ".join(f"COALESCE(e.{c}, 0) - COALESCE(s.{c}, 0)" for c in COUNTERS)
                + f" FROM unnest(%s::bigint[]) AS g(id) LEFT JOIN LATERAL (SELECT * FROM {TOTALS} t"  # noqa: S608
                " WHERE t.tenant_id = g.id AND t.day <= %s ORDER BY t.day DESC LIMIT 1) e ON true"
                f" LEFT JOIN LATERAL (SELECT * FROM {TOTALS} t WHERE t.tenant_id = g.id AND t.day < %s"
                " ORDER BY t.day DESC LIMIT 1) s ON true",
                [_id_array(ids), today, start],
            )
            grouped = {row[0]: tuple(row[1:]) for row in cursor.fetchall()}
            # Per day: the provider's striped sums when the user sees every client, else the clients' rows.
            table, column, key = (
                (ProviderDailyRollup._meta.db_table, "provider_id", provider_id)
                if provider_id is not None
                else (TenantDailyRollup._meta.db_table, "tenant_id", _id_array(ids))
            )
            where = "= %s" if provider_id is not None else "= ANY(%s::bigint[])"
            cursor.execute(
                f"SELECT day, sum(opened)::bigint, sum(resolved)::bigint FROM {table}"  # noqa: S608 - constants
                f" WHERE {column} {where} AND day >= %s AND day <= %s GROUP BY day",
                [key, start, today],
            )
            by_day = {day: {"opened": int(o), "resolved": int(r)} for day, o, r in cursor}
        else:
            # One scan of the window for both shapes: per day (volume) and per record type.
            cursor.execute(
                "SELECT GROUPING(day), day, record_type, "  # noqa: S608 - column names from the fixed set above
                + ", ".join(f"COALESCE(sum({c}), 0)::bigint" for c in COUNTERS)
                + f" FROM {TenantDailyRollup._meta.db_table} WHERE tenant_id = ANY(%s) AND day >= %s"
                " AND day <= %s GROUP BY GROUPING SETS ((day), (record_type))",
                [ids, start, today],
            )
            for by_key, day, record_type, *sums in cursor.fetchall():
                if by_key:
                    grouped[record_type] = tuple(int(v) for v in sums)
                else:
                    by_day[day] = dict(zip(COUNTERS, (int(v) for v in sums), strict=True))
    volume = Chart(
        "volume",
        "Volume by day",
        f"Records opened and resolved per day, {start:%Y-%m-%d} to {today:%Y-%m-%d}.",
        ("day", "opened", "resolved"),
    )
    for offset in range(days):
        day = start + dt.timedelta(days=offset)
        row = by_day.get(day, {})
        volume.rows.append((day.isoformat(), row.get("opened", 0), row.get("resolved", 0)))

    # Counter tuples (COUNTERS' order) until the rows are drawn: a thousand clients are summed column by
    # column, without a dict each.
    zero = (0,) * len(COUNTERS)
    by_group: list[tuple[str, tuple[int, ...]]] = [
        (label, grouped.get(key, zero)) for key, label in labels.items()
    ]

    def column_sums(rows: list[tuple[str, tuple[int, ...]]]) -> tuple[int, ...]:
        return tuple(sum(column) for column in zip(*(values for _, values in rows), strict=True)) or zero

    total = column_sums(by_group)
    if len(by_group) > MAX_GROUPS:
        # The busiest groups by name, the rest summed into one row: a chart of thousands of clients
        # would be unreadable, and the CSV keeps to the chart's numbers.
        r, m, b = (COUNTERS.index(c) for c in ("resolved", "sla_met", "sla_breached"))
        busiest = sorted(by_group, key=lambda g: (-(g[1][r] + g[1][m] + g[1][b]), g[0]))
        kept, rest = busiest[: MAX_GROUPS - 1], busiest[MAX_GROUPS - 1 :]
        by_group = [*sorted(kept, key=lambda g: g[0]), (f"{len(rest)} other clients", column_sums(rest))]
    groups = [(label, dict(zip(COUNTERS, values, strict=True))) for label, values in by_group]
    groups.append((ALL, dict(zip(COUNTERS, total, strict=True))))
    group_name = "client" if breakdown == "tenant" else "record_type"
    sla = Chart(
        "sla",
        "SLA compliance",
        "Resolution SLAs met as a percentage of those met or breached in the window.",
        (group_name, "met", "breached", "compliance_percent"),
    )
    times = Chart(
        "times",
        "Mean time to acknowledge and to resolve",
        "Mean hours from opening to acknowledgement and to resolution, of records resolved in the window.",
        (group_name, "resolved", "acknowledged", "mean_hours_to_acknowledge", "mean_hours_to_resolve"),
    )
    satisfaction = Chart(
        "satisfaction",
        "Satisfaction",
        "Mean satisfaction score (1 to 5) of the survey answers given in the window.",
        (group_name, "responses", "average_score"),
    )
    for label, g in groups:
        sla.rows.append(
            (
                label,
                g["sla_met"],
                g["sla_breached"],
                _ratio(g["sla_met"], g["sla_met"] + g["sla_breached"], 100),
            )
        )
        times.rows.append(
            (
                label,
                g["resolved"],
                g["acknowledged"],
                _ratio(g["acknowledge_seconds"], g["acknowledged"], 1 / 3600, 2),
                _ratio(g["resolve_seconds"], g["resolved"], 1 / 3600, 2),
            )
        )
        satisfaction.rows.append(
            (label, g["satisfaction_count"], _ratio(g["satisfaction_sum"], g["satisfaction_count"], 1, 2))
        )

    ages = _backlog(ids, provider_id, now)
    backlog = Chart(
        "backlog",
        "Backlog age",
        "Open records (incidents, service requests and their catalog tasks, problems, changes) by time"
        " since they were opened.",
        ("age", "open_records"),
        [(label, ages[i]) for i, (label, _, _) in enumerate(BACKLOG_BUCKETS)],
    )

    categories_of = (
        ProviderDailyCategory.objects.filter(provider_id=provider_id)
        if provider_id is not None
        else TenantDailyCategory.objects.filter(tenant_id__in=ids)
    )
    top = (
        categories_of.filter(day__gte=start, day__lte=today)
        .values("record_type", "category")
        .annotate(n=Sum("opened"))
        .filter(n__gt=0)
        .order_by("-n", "record_type", "category")[:TOP_CATEGORIES]
    )
    categories = Chart(
        "categories",
        "Top categories",
        f"The {TOP_CATEGORIES} categories with the most records opened in the window.",
        ("category", "record_type", "opened"),
        [(row["category"] or "(none)", row["record_type"], row["n"]) for row in top],
    )
    charts = {c.key: c for c in (volume, sla, times, satisfaction, backlog, categories)}
    return Dashboard(start=start, end=today, days=days, charts=charts)


def record_type_labels() -> dict[object, str]:
    """The rollup's record types and their labels (the tenant dashboard's breakdown)."""
    from controlplane.workindex.rollup import ROLLUP_SOURCES

    return {t: RECORD_LABELS.get(t, t) for t in sorted(ROLLUP_SOURCES)}
