"""Console pages for the CMDB under /t/<tenant>/cmdb/. Entry points: parse a form, call one service or
selector. The routing middleware has resolved the tenant and set ``request.actor``."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from controlplane.dashboards.svg import svg_line_chart
from controlplane.http import TenantRequest, form_errors_apply, htmx_render, request_actor
from controlplane.problems import DomainError, NotFound
from modules.monitoring import selectors as monitoring_selectors
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.listing import (
    Column,
    ListFilterForm,
    ListSpec,
    listing_build,
    saved_view_redirect,
)

from . import selectors, services
from .classes import AttrType, class_attributes, class_table
from .discovery import discovery_state_get
from .graph import impact_graph_build, impact_graph_svg
from .models import REL_INVERSE_LABELS, CIClass, ConfigurationItem, Lifecycle, RelType

TABLE_ROWS = 300  # relationships and impacted CIs listed on a CI's page


def _manager(request: TenantRequest) -> Actor:
    """The actor, if they manage the CMDB; the forms are not shown to anyone else (403)."""
    actor = request_actor(request)
    if not selectors.cmdb_manager(actor):
        raise PermissionDenied("only technicians and client admins may manage the CMDB")
    return actor


def _ci(actor: Actor, number: str) -> ConfigurationItem:
    try:
        return selectors.ci_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


class CIFilterForm(ListFilterForm):
    """The CI list's filters (GET; every field optional, see modules.records.listing)."""

    ci_class = forms.ChoiceField(choices=[("", "Any class"), *CIClass.choices], required=False, label="Class")
    lifecycle = forms.ChoiceField(choices=[("", "Any state"), *Lifecycle.choices], required=False)
    support_group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, empty_label="Any group"
    )


CI_LIST = ListSpec(
    name="cis",
    target="ci-table",
    columns=(
        Column("number", "Number", "number"),
        Column("name", "Name", "name"),
        Column("class", "Class", "ci_class"),
        Column("lifecycle", "Lifecycle", "lifecycle"),
        Column("owner", "Owner", "owner__display_name"),
        Column("group", "Support group", "support_group__name"),
        Column("updated", "Updated", "updated_at", descending_first=True),
    ),
    default_sort="name",
)


class CIForm(forms.Form):
    name = forms.CharField(max_length=200)
    ci_class = forms.ChoiceField(choices=CIClass.choices, label="Class")
    lifecycle = forms.ChoiceField(choices=Lifecycle.choices, initial=Lifecycle.OPERATIONAL)
    owner = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)
    support_group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    attributes = forms.JSONField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 8}),
        help_text='Class attributes as a JSON object, e.g. {"ip_address": "10.0.0.5", "cpu_count": 4}.',
    )

    def clean_attributes(self) -> dict[str, Any]:
        value = self.cleaned_data.get("attributes")
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise forms.ValidationError("a JSON object of attribute names and values")
        return value


def _reading_choices() -> list[tuple[str, str]]:
    outgoing = [(f"out:{value}", f"this CI {label} …") for value, label in RelType.choices]
    incoming = [(f"in:{value}", f"this CI {REL_INVERSE_LABELS[value]} …") for value in RelType.values]
    return outgoing + incoming


class RelationshipForm(forms.Form):
    reading = forms.ChoiceField(choices=_reading_choices, label="Relationship")
    other = forms.CharField(max_length=20, label="Other CI number", help_text="e.g. CI0000042")


def ci_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """The CI list: class, lifecycle, support group and text filters, sorting, saved views and pages from
    the query string (see modules.records.listing); by name by default. htmx gets only the table."""
    actor = request_actor(request)
    if (applied := saved_view_redirect(request=request, actor=actor, spec=CI_LIST)) is not None:
        return applied
    form = CIFilterForm(request.GET or None)
    data = form.cleaned()
    filters: dict[str, Any] = {k: data.get(k) or "" for k in ("ci_class", "lifecycle", "q")}
    if data.get("support_group"):
        filters["support_group"] = data["support_group"].pk
    listing = listing_build(
        request=request, actor=actor, spec=CI_LIST, qs=selectors.ci_list(actor=actor, **filters)
    )
    context = {
        "form": form,
        "listing": listing,
        "page": listing.page,
        "can_manage": selectors.cmdb_manager(actor),
    }
    return htmx_render(request, full="cmdb/list.html", partial="cmdb/_table.html", context=context)


def ci_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    return _render_detail(request, actor, _ci(actor, number))


def _render_detail(
    request: TenantRequest,
    actor: Actor,
    ci: ConfigurationItem,
    error: DomainError | None = None,
    relationship_form: RelationshipForm | None = None,
) -> HttpResponse:
    specs = class_attributes(ci.ci_class)
    attributes = [
        (
            spec.label,
            _list_text(ci.attributes[spec.name]) if spec.type == AttrType.LIST else ci.attributes[spec.name],
        )
        for spec in specs
        if spec.name in ci.attributes
    ]
    manager = selectors.cmdb_manager(actor)
    impact = selectors.ci_impact_get(actor=actor, ci_id=ci.pk) if manager else []
    relationships = selectors.ci_relationship_list(actor=actor, ci=ci)
    graph = graph_svg = None
    if manager:
        slug = request.tenant.slug if request.tenant is not None else ""
        graph = impact_graph_build(
            ci=ci,
            relationships=relationships,
            impact=impact,
            url_for=lambda number: reverse("ci_detail", kwargs={"tenant": slug, "number": number}),
        )
        graph_svg = impact_graph_svg(graph, title=f"Relationships and impact of {ci.number} {ci.name}")
    context = {
        "ci": ci,
        "attributes": attributes,
        # A discovered computer has thousands of installed software CIs (and a package thousands of
        # computers): the tables show the first rows; the API lists them all.
        "relationships": relationships[:TABLE_ROWS],
        "relationships_more": max(0, len(relationships) - TABLE_ROWS),
        "impact": impact[:TABLE_ROWS],
        "impact_more": max(0, len(impact) - TABLE_ROWS),
        "graph": graph,
        "graph_svg": graph_svg,
        "history": selectors.ci_history(actor=actor, ci=ci),
        "can_manage": manager,
        "relationship_form": relationship_form or RelationshipForm(),
        "error": error,
        **_device(actor, ci),
    }
    status = error.status if error else (422 if relationship_form is not None else 200)
    return render(request, "cmdb/detail.html", context, status=status)


def _list_text(value: Any) -> str:
    """A discovered list attribute as one line per item: an item's values joined ("/ /dev/sda1 ext4")."""
    if not isinstance(value, list):
        return str(value)
    lines = []
    for item in value:
        if isinstance(item, dict):
            parts = [", ".join(map(str, v)) if isinstance(v, list) else str(v) for v in item.values()]
            lines.append(" ".join(p for p in parts if p))
        else:
            lines.append(str(item))
    return "; ".join(lines) or "none"


def _device(actor: Actor, ci: ConfigurationItem) -> dict[str, Any]:
    """For a CI an endpoint agent reports (``external_ref`` ``agent:<id>``) and a reader of agents: its
    metrics charts (24 hours of raw samples, 30 days of hourly roll-ups), open alerts and last inventory."""
    if not (ci.external_ref or "").startswith("agent:") or not monitoring_selectors.may_read(actor):
        return {"device": False}
    now = timezone.now()
    try:
        agent_id = uuid.UUID((ci.external_ref or "").removeprefix("agent:"))
    except ValueError:
        return {"device": False}
    series = monitoring_selectors.ci_metrics_get(actor=actor, agent_id=agent_id, now=now)
    charts: list[tuple[str, SafeString | None]] = []
    for key, title, s in (
        ("day", "Last 24 hours (15-minute averages, UTC)", series[0] if series else None),
        ("month", "Last 30 days (6-hour averages of hourly roll-ups, UTC)", series[1] if series else None),
    ):
        svg = None
        if s is not None and not s.empty:
            svg = svg_line_chart(
                chart_id=f"ci-metrics-{key}",
                title=f"CPU, memory and fullest disk of {ci.name}: {title.lower()}",
                desc="Percent used; one point per bucket.",
                x_labels=s.labels,
                series=[("CPU %", s.cpu), ("Memory %", s.memory), ("Disk %", s.disk)],
            )
        charts.append((title, svg))
    state = discovery_state_get(ci=ci)
    return {
        "device": True,
        "metric_charts": charts,
        "device_alerts": monitoring_selectors.ci_alert_list(actor=actor, ci_id=ci.pk),
        "last_inventory_at": state.last_inventory_at if state else None,
    }


def _form_page(
    request: TenantRequest, form: CIForm, ci: ConfigurationItem | None, status: int = 200
) -> HttpResponse:
    return render(
        request, "cmdb/form.html", {"form": form, "ci": ci, "classes": class_table()}, status=status
    )


def ci_create(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = _manager(request)
    form = CIForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ci = services.ci_create(actor=actor, **form.cleaned_data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            return _form_page(request, form, None, exc.status)
        return redirect("ci_detail", tenant=tenant, number=ci.number)
    return _form_page(request, form, None, 422 if request.method == "POST" else 200)


def ci_edit(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Edit a CI. The attributes box holds the complete attributes: keys left out are removed."""
    actor = _manager(request)
    ci = _ci(actor, number)
    initial = {field: getattr(ci, field) for field in services.EDITABLE_FIELDS}
    form = CIForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        changes = dict(form.cleaned_data)
        wanted = changes["attributes"]
        changes["attributes"] = {**dict.fromkeys(ci.attributes), **wanted}
        try:
            services.ci_update(actor=actor, ci=ci, **changes)
        except DomainError as exc:
            form_errors_apply(form, exc)
            return _form_page(request, form, ci, exc.status)
        return redirect("ci_detail", tenant=tenant, number=ci.number)
    return _form_page(request, form, ci, 422 if request.method == "POST" else 200)


@require_POST
def relationship_add(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Add a relationship from the detail page: this CI reads ``reading`` towards the other CI."""
    actor = request_actor(request)
    ci = _ci(actor, number)
    form = RelationshipForm(request.POST)
    if not form.is_valid():
        return _render_detail(request, actor, ci, relationship_form=form)
    direction, rel_type = form.cleaned_data["reading"].split(":", 1)
    try:
        other = selectors.ci_get_by_number(actor=actor, number=form.cleaned_data["other"])
    except NotFound:
        form.add_error("other", "no such CI")
        return _render_detail(request, actor, ci, relationship_form=form)
    source, target = (ci, other) if direction == "out" else (other, ci)
    try:
        services.relationship_create(actor=actor, source_id=source.pk, target_id=target.pk, rel_type=rel_type)
    except DomainError as exc:
        return _render_detail(request, actor, ci, error=exc)
    return redirect("ci_detail", tenant=tenant, number=ci.number)


@require_POST
def relationship_remove(
    request: TenantRequest, tenant: str, number: str, relationship_id: int
) -> HttpResponse:
    actor = request_actor(request)
    ci = _ci(actor, number)
    try:
        services.relationship_delete(actor=actor, relationship_id=relationship_id)
    except DomainError as exc:
        return _render_detail(request, actor, ci, error=exc)
    return redirect("ci_detail", tenant=tenant, number=ci.number)
