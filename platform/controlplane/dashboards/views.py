"""Dashboard pages on the console host: across clients at /dashboard/ (public schema) and per tenant at
/t/<slug>/dashboard/ (the routing middleware checked the membership and set ``request.actor``). Each chart
is an SVG drawn on the server, with its numbers in a table beside it and as CSV at ``csv/<chart>/``
(same query string), so everything works with JavaScript off."""

from __future__ import annotations

import csv
from typing import Any

from django import forms
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone
from django.utils.safestring import SafeString

from controlplane.accounts.models import User
from controlplane.http import TenantRequest, htmx_render, request_actor
from controlplane.permissions import P
from controlplane.problems import PermissionDenied as DomainPermissionDenied
from controlplane.workindex.selectors import RECORD_LABELS
from controlplane.workindex.services import workindex_local_day

from . import selectors
from .svg import svg_bar_chart, svg_line_chart


class DashboardForm(forms.Form):
    days = forms.TypedChoiceField(
        choices=[(d, f"Last {d} days") for d in selectors.DAY_CHOICES],
        coerce=int,
        required=False,
        empty_value=selectors.DAY_CHOICES[0],  # type: ignore[arg-type]  # the stubs want a str
        label="Period",
    )
    client = forms.ChoiceField(required=False, label="Client")


def _num(value: object) -> float | None:
    """A chart cell as a number for drawing (None stays None: "no data")."""
    return None if value is None else float(value)  # type: ignore[arg-type]


def chart_svg(chart: selectors.Chart) -> SafeString:
    """The SVG of one chart, drawn from exactly ``chart.rows``."""
    chart_id, title, desc, rows = f"chart-{chart.key}", chart.title, chart.description, chart.rows
    if chart.key == "volume":
        return svg_line_chart(
            chart_id=chart_id,
            title=title,
            desc=desc,
            x_labels=[str(r[0])[5:] for r in rows],
            series=[
                ("Opened", [_num(r[1]) or 0.0 for r in rows]),
                ("Resolved", [_num(r[2]) or 0.0 for r in rows]),
            ],
            counts=True,
        )
    # Per chart: the columns drawn as bars, their series names, the scale's top and the unit.
    bars: dict[str, tuple[tuple[int, ...], list[str], float | None, str]] = {
        "sla": ((3,), ["Compliance"], 100.0, "%"),
        "times": ((3, 4), ["To acknowledge", "To resolve"], None, " h"),
        "satisfaction": ((2,), ["Average score"], 5.0, ""),
        "backlog": ((1,), ["Open records"], None, ""),
        "categories": ((2,), ["Opened"], None, ""),
    }
    columns, series, top, unit = bars[chart.key]
    if chart.key == "categories":
        labels = [f"{r[0]} ({RECORD_LABELS.get(str(r[1]), str(r[1]))})" for r in rows]
    else:
        labels = [str(r[0]) for r in rows]
    return svg_bar_chart(
        chart_id=chart_id,
        title=title,
        desc=desc,
        rows=[(label, [_num(r[c]) for c in columns]) for label, r in zip(labels, rows, strict=True)],
        series=series,
        max_value=top,
        unit=unit,
    )


def csv_response(chart: selectors.Chart, dashboard: selectors.Dashboard, scope: str) -> HttpResponse:
    """``chart``'s numbers as a CSV download (header row = ``chart.columns``; None is empty)."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    name = f"{scope}-{chart.key}-{dashboard.start:%Y%m%d}-{dashboard.end:%Y%m%d}.csv"
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response, lineterminator="\r\n")
    writer.writerow(chart.columns)
    writer.writerows(["" if v is None else v for v in row] for row in chart.rows)
    return response


def _page(
    request: HttpRequest,
    dashboard: selectors.Dashboard,
    form: DashboardForm,
    scope: str,
    status: int,
    extra: dict[str, Any],
) -> HttpResponse:
    query = request.GET.urlencode()
    charts = [
        {"chart": chart, "svg": chart_svg(chart), "csv": f"csv/{key}/" + (f"?{query}" if query else "")}
        for key, chart in dashboard.charts.items()
    ]
    context = {"dashboard": dashboard, "summary": dashboard.summary(), "charts": charts, "form": form}
    context.update(extra, scope=scope, generated_at=timezone.now())
    # htmx (the filter form) swaps in only the numbers and charts; a plain GET gets the whole page.
    return htmx_render(
        request,
        full="dashboards/dashboard.html",
        partial="dashboards/_body.html",
        context=context,
        status=status,
    )


def _cross_client(request: HttpRequest) -> tuple[selectors.Dashboard, DashboardForm, int, str]:
    user = request.user
    assert isinstance(user, User)
    try:
        tenants = list(selectors.dashboard_tenants_for_user(user=user).values_list("pk", "slug", "name"))
    except DomainPermissionDenied as exc:
        raise PermissionDenied(str(exc)) from exc
    form = DashboardForm(request.GET or None)
    form.fields["client"].choices = [("", "All clients"), *((slug, name) for _, slug, name in tenants)]  # type: ignore[attr-defined]
    status = 422 if form.is_bound and not form.is_valid() else 200
    data = form.cleaned_data if status == 200 and form.is_bound else {}
    client = data.get("client") or ""
    chosen = [t for t in tenants if not client or t[1] == client]
    dashboard = selectors.dashboard_get(
        tenant_ids=[pk for pk, _, _ in chosen],
        days=data.get("days") or selectors.DAY_CHOICES[0],
        today=timezone.localdate(),
        breakdown="tenant",
        labels={pk: name for pk, _, name in chosen},
    )
    return dashboard, form, status, client or "all-clients"


@login_required
def cross_client(request: HttpRequest) -> HttpResponse:
    """Every client the user may enter, or one (``?client=<slug>``), over the last 30 or 90 days
    (``?days=``). Provider staff only (403 for client staff). An invalid filter answers 422 with the
    error beside the field and the default numbers."""
    dashboard, form, status, _ = _cross_client(request)
    return _page(request, dashboard, form, "cross", status, {"title": "Dashboard: all clients"})


@login_required
def cross_client_csv(request: HttpRequest, chart: str) -> HttpResponse:
    """One chart of the cross-client dashboard as CSV (same filters as the page). 404 for an unknown chart,
    422 for an invalid filter."""
    dashboard, _, status, scope = _cross_client(request)
    if chart not in dashboard.charts:
        raise Http404("no such chart")
    if status != 200:
        return HttpResponse("invalid filter", status=status, content_type="text/plain")
    return csv_response(dashboard.charts[chart], dashboard, scope)


def _tenant(request: TenantRequest) -> tuple[selectors.Dashboard, DashboardForm, int]:
    actor = request_actor(request)
    if not actor.may(P.REPORTS_READ):
        raise PermissionDenied("the dashboard is for technicians and client admins")
    tenant = request.tenant
    assert tenant is not None
    form = DashboardForm(request.GET or None)
    del form.fields["client"]
    status = 422 if form.is_bound and not form.is_valid() else 200
    data = form.cleaned_data if status == 200 and form.is_bound else {}
    today = workindex_local_day(timezone.now())  # the rollup's day: the tenant's local date
    dashboard = selectors.dashboard_get(
        tenant_ids=[tenant.pk],
        days=data.get("days") or selectors.DAY_CHOICES[0],
        today=today,
        breakdown="record_type",
        labels=selectors.record_type_labels(),
    )
    return dashboard, form, status


def tenant_dashboard(request: TenantRequest, tenant: str) -> HttpResponse:
    """This tenant's dashboard: the same charts, broken down by record type, over its own local days.
    Technicians and client admins only (403 otherwise)."""
    dashboard, form, status = _tenant(request)
    assert request.tenant is not None
    return _page(
        request, dashboard, form, request.tenant.slug, status, {"title": f"Dashboard: {request.tenant.name}"}
    )


def tenant_dashboard_csv(request: TenantRequest, tenant: str, chart: str) -> HttpResponse:
    """One chart of the tenant dashboard as CSV (404 for an unknown chart, 422 for an invalid filter)."""
    dashboard, _, status = _tenant(request)
    if chart not in dashboard.charts:
        raise Http404("no such chart")
    if status != 200:
        return HttpResponse("invalid filter", status=status, content_type="text/plain")
    assert request.tenant is not None
    return csv_response(dashboard.charts[chart], dashboard, request.tenant.slug)
