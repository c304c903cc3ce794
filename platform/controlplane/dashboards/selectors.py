"""Reads behind the dashboards: the numbers of every chart, from control-plane tables only.

Sources (../shared/ARCHITECTURE.md, "Seeing across tenants without breaking isolation"): the daily rollup
(``workindex.TenantDailyRollup``: volumes, seconds to acknowledge and resolve, SLA outcomes,
satisfaction), the work index (``workindex.WorkItem``: the open records, for backlog age) and the
category counter (``dashboards.TenantDailyCategory``). No tenant schema is read, so the cost does not grow
with the number of tenants: a dashboard is a fixed number of queries (three here) over any number of them.

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
from controlplane.workindex.models import TenantDailyRollup, WorkItem
from controlplane.workindex.selectors import RECORD_LABELS
from tenants.models import Tenant

from .models import TenantDailyCategory

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
    """The tenants whose numbers the cross-client dashboard shows ``user``: those they may enter on the
    console (``accounts.selectors.tenant_list_for_user``), by name. Provider staff only: raises
    PermissionDenied for a user without a provider membership (client staff see their own portal)."""
    if not ProviderMembership.objects.filter(user=user).exists():
        raise PermissionDenied("the cross-client dashboard is for the provider's staff")
    return tenant_list_for_user(user=user)


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

    Three queries whatever the number of tenants and days (the rollup is scanned once for both the
    per-day and the per-group sums, with GROUPING SETS)."""
    now = now or timezone.now()
    start = today - dt.timedelta(days=days - 1)
    window = Q(tenant_id__in=list(tenant_ids), day__gte=start, day__lte=today)
    counters: tuple[str, ...] = (
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
    key_field = "tenant_id" if breakdown == "tenant" else "record_type"
    # One scan of the window for both shapes: per day (volume) and per group (the other charts).
    by_day: dict[dt.date, dict[str, int]] = {}
    grouped: dict[object, dict[str, int]] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT GROUPING(day), day, {key_field}, "  # noqa: S608 - column names from the fixed set above
            + ", ".join(f"COALESCE(sum({c}), 0)::bigint" for c in counters)
            + f" FROM {TenantDailyRollup._meta.db_table} WHERE tenant_id = ANY(%s) AND day >= %s AND day <= %s"
            f" GROUP BY GROUPING SETS ((day), ({key_field}))",
            [list(tenant_ids), start, today],
        )
        for by_key, day, key, *sums in cursor.fetchall():
            values = dict(zip(counters, (int(v) for v in sums), strict=True))
            if by_key:
                grouped[key] = values
            else:
                by_day[day] = values
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

    groups: list[tuple[str, dict[str, int]]] = [
        (label, {c: int(grouped.get(key, {}).get(c) or 0) for c in counters}) for key, label in labels.items()
    ]
    total = {c: sum(g[c] for _, g in groups) for c in counters}
    if len(groups) > MAX_GROUPS:
        # The busiest groups by name, the rest summed into one row: a chart of thousands of clients
        # would be unreadable, and the CSV keeps to the chart's numbers.
        busiest = sorted(
            groups, key=lambda g: (-(g[1]["resolved"] + g[1]["sla_met"] + g[1]["sla_breached"]), g[0])
        )
        kept, rest = busiest[: MAX_GROUPS - 1], busiest[MAX_GROUPS - 1 :]
        other = {c: sum(g[c] for _, g in rest) for c in counters}
        groups = [*sorted(kept, key=lambda g: g[0]), (f"{len(rest)} other clients", other)]
    groups.append((ALL, total))
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

    def age(low: int, high: int | None) -> Q:
        condition = Q(opened_at__lte=now - dt.timedelta(days=low)) if low else Q()
        if high is not None:
            condition &= Q(opened_at__gt=now - dt.timedelta(days=high))
        return condition

    ages = WorkItem.objects.filter(tenant_id__in=list(tenant_ids)).aggregate(
        **{f"b{i}": Count("id", filter=age(low, high)) for i, (_, low, high) in enumerate(BACKLOG_BUCKETS)}
    )
    backlog = Chart(
        "backlog",
        "Backlog age",
        "Open records (incidents, service requests and their catalog tasks, problems, changes) by time"
        " since they were opened.",
        ("age", "open_records"),
        [(label, ages[f"b{i}"]) for i, (label, _, _) in enumerate(BACKLOG_BUCKETS)],
    )

    top = (
        TenantDailyCategory.objects.filter(window)
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
