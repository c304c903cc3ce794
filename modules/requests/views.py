"""Console pages for service requests and the catalog: /t/<tenant>/requests/...

Entry points: parse a form, call one service or selector. The routing middleware has resolved the tenant
and set ``request.actor``.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_http_methods, require_POST

from controlplane.http import TenantRequest, form_errors_apply, htmx_render, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.listing import (
    WITHIN_CHOICES,
    Column,
    ListFilterForm,
    ListSpec,
    listing_build,
    saved_view_redirect,
    sla_attach,
    within_since,
)
from modules.records.pages import RecordPage
from modules.sla.selectors import sla_due_map

from . import selectors, services
from .models import ApprovalMode, ApproverRole, CatalogCategory, CatalogItem, ServiceRequest
from .orderform import order_form_class, order_submit


class RequestFilterForm(ListFilterForm):
    """The service request list's filters (GET; every field optional, see modules.records.listing)."""

    state = forms.MultipleChoiceField(choices=ServiceRequest.State.choices, required=False)
    open_only = forms.BooleanField(required=False)
    opened = forms.ChoiceField(choices=WITHIN_CHOICES, required=False, label="Opened within")


REQUEST_LIST = ListSpec(
    name="requests",
    target="request-table",
    columns=(
        Column("number", "Number", "number"),
        Column("title", "Short description", "short_description"),
        Column("requested_for", "Requested for", "requested_for__display_name"),
        Column("state", "State", "state"),
        Column("updated", "Updated", "updated_at", descending_first=True),
        Column("opened", "Opened", "opened_at", descending_first=True),
        Column("due", "Due", "due_at"),
        Column("sla", "SLA due"),
    ),
    default_sort="-opened",
)


def request_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Requests the actor may see (filters, sorting, saved views and pages from the query string, see
    modules.records.listing; newest first by default), and the approvals waiting for the actor. htmx
    requests get only the table."""
    actor = request_actor(request)
    if (applied := saved_view_redirect(request=request, actor=actor, spec=REQUEST_LIST)) is not None:
        return applied
    form = RequestFilterForm(request.GET or None)
    data = form.cleaned()
    filters: dict[str, Any] = {
        "state": data.get("state"),
        "open_only": data.get("open_only", False),
        "q": data.get("q", ""),
        "opened_after": within_since(data.get("opened", "")),
    }
    qs = selectors.service_request_list(actor=actor, **filters).select_related("requested_for")
    listing = listing_build(request=request, actor=actor, spec=REQUEST_LIST, qs=qs)
    rows = listing.page.rows
    sla_attach(rows, sla_due_map(actor=actor, record_type="service_request", record_ids=[r.pk for r in rows]))
    context: dict[str, Any] = {"form": form, "listing": listing, "page": listing.page}
    htmx = request.htmx and not request.htmx.history_restore_request
    if not htmx:
        context["my_approvals"] = selectors.approval_list_for(actor=actor)[:50]
        context["is_technician"] = actor.may(P.CATALOG_MANAGE)
    return htmx_render(
        request, full="service_requests/list.html", partial="service_requests/_table.html", context=context
    )


def _get_by_number(actor: Actor, number: str) -> ServiceRequest:
    try:
        return selectors.service_request_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _page_context(request: TenantRequest, actor: Actor, found: ServiceRequest) -> dict[str, Any]:
    """The request page's own context (modules.records.pages has the rest): items, approvals (each with
    whether the actor may decide it), fulfilment tasks with the people and groups to assign them, and
    no refused task or cancel until a refusal says so."""
    summary = selectors.request_summary(actor=actor, request=found)
    approvals = [(a, services.approval_may_decide(actor=actor, approval=a)) for a in summary["approvals"]]
    # Pairs built here: a dict key named "items" would shadow .items in the template language.
    return {
        "req": found,
        "items": [(item, list(item.variables.items())) for item in summary["items"]],
        "approvals": approvals,
        "tasks": summary["tasks"],
        "task_actions": ("start", "complete", "skip"),
        "actions": services.request_allowed_actions(actor=actor, request=found),
        "people": Person.objects.filter(is_active=True)[:500] if actor.is_technician else [],
        "groups": Group.objects.all() if actor.is_technician else [],
        "failed_task": None,
        "failed_cancel": False,
        "now": timezone.now(),
    }


PAGE = RecordPage(
    kind="service_request",
    segment="requests",
    templates="service_requests",
    url_name="request_detail",
    get=_get_by_number,
    record_arg="request",
    context=_page_context,
    assignable=False,  # a request is assigned through its fulfilment tasks
)


def _done(request: TenantRequest, actor: Actor, found: ServiceRequest) -> HttpResponse:
    """After an inline action: the fresh body for htmx, else back to the page (post/redirect/get). An
    actor who may no longer see the request (an approver after deciding) goes to the list (htmx: by the
    HX-Redirect header)."""
    assert request.tenant is not None
    try:
        fresh = selectors.service_request_get(actor=actor, service_request_id=found.pk)
    except NotFound:
        if request.htmx:
            response = HttpResponse(status=204)
            response["HX-Redirect"] = f"/t/{request.tenant.slug}/requests/"
            return response
        return redirect("request_list", tenant=request.tenant.slug)
    return PAGE.done(request, actor, fresh, reread=False)


def request_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """The request's console page: items, approvals, fulfilment tasks (actions and assignment inline),
    comment form and timeline (``?order=asc`` oldest first; newest first by default)."""
    actor = request_actor(request)
    return PAGE.render(request, actor, _get_by_number(actor, number))


@require_POST
def request_cancel(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    found = _get_by_number(actor, number)
    try:
        services.request_cancel(actor=actor, request=found, reason=request.POST.get("reason", ""))
    except DomainError as exc:
        return PAGE.render(request, actor, found, exc, failed_cancel=True)
    return _done(request, actor, found)


@require_POST
def request_comment(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A public comment or (technicians) a work note. Refused: the message next to the text, 4xx."""
    return PAGE.comment_post(request, number, services.request_comment, done=_done)


def _approval_page(request: TenantRequest, approval_id: uuid.UUID, act: Any) -> HttpResponse:
    """Run ``act(actor, approval)`` on an approval the actor may see; back to its request."""
    actor = request_actor(request)
    try:
        approval = selectors.approval_get(actor=actor, approval_id=approval_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    found = selectors.service_request_get(actor=actor, service_request_id=approval.request_id)
    try:
        act(actor, approval)
    except DomainError as exc:
        return PAGE.render(request, actor, found, exc)
    return _done(request, actor, found)


@require_POST
def approval_decide(request: TenantRequest, tenant: str, approval_id: uuid.UUID) -> HttpResponse:
    return _approval_page(
        request,
        approval_id,
        lambda actor, approval: services.approval_decide(
            actor=actor,
            approval=approval,
            decision=request.POST.get("decision", ""),
            comment=request.POST.get("comment", ""),
        ),
    )


@require_POST
def approval_resend(request: TenantRequest, tenant: str, approval_id: uuid.UUID) -> HttpResponse:
    return _approval_page(
        request, approval_id, lambda actor, approval: services.approval_resend(actor=actor, approval=approval)
    )


@require_POST
def approval_delegate(request: TenantRequest, tenant: str, approval_id: uuid.UUID) -> HttpResponse:
    def act(actor: Actor, approval: Any) -> Any:
        person = _person(request.POST.get("delegate_to"))
        if person is None:
            raise Http404("no such person")
        return services.approval_delegate(actor=actor, approval=approval, delegate_to=person)

    return _approval_page(request, approval_id, act)


def _uuid(value: str | None) -> uuid.UUID | None:
    try:
        return uuid.UUID(value or "")
    except ValueError:
        return None


def _person(value: str | None) -> Person | None:
    """The directory person with id ``value`` (None for an empty, malformed or unknown id)."""
    pk = _uuid(value)
    return Person.objects.filter(pk=pk).first() if pk else None


def _group(value: str | None) -> Group | None:
    pk = _uuid(value)
    return Group.objects.filter(pk=pk).first() if pk else None


@require_http_methods(["GET", "POST"])
def task_action(request: TenantRequest, tenant: str, task_id: uuid.UUID) -> HttpResponse:
    """Assign (``assignment_group``/``assigned_to`` posted) or transition (``action`` posted) a task.
    A GET (a task opened from the cross-client queue) shows its request. Refused: the message next to
    the task's forms, 4xx, nothing written."""
    actor = request_actor(request)
    try:
        task = selectors.task_get(actor=actor, task_id=task_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    found = task.requested_item.request
    if request.method == "GET":
        return redirect("request_detail", tenant=tenant, number=found.number)
    try:
        if request.POST.get("action"):
            services.task_transition(
                actor=actor, task=task, action=request.POST["action"], comment=request.POST.get("comment", "")
            )
        else:
            group = _group(request.POST.get("assignment_group"))
            person = _person(request.POST.get("assigned_to"))
            services.task_update(actor=actor, task=task, assignment_group=group, assigned_to=person)
    except DomainError as exc:
        return PAGE.render(request, actor, found, exc, failed_task=task.pk)
    return _done(request, actor, found)


# The catalog


def catalog(request: TenantRequest, tenant: str) -> HttpResponse:
    """The catalog to order from: active items by category. Technicians and admins get the admin list
    (inactive items too) with edit links."""
    actor = request_actor(request)
    admin = actor.may(P.CATALOG_MANAGE)
    items = selectors.catalog_item_list(actor=actor, include_inactive=admin).order_by(
        "category__order", "category__name", "name"
    )
    context = {
        "items": items,
        "categories": selectors.catalog_category_list(actor=actor),
        "admin": admin,
    }
    return render(request, "service_requests/catalog.html", context)


class CategoryForm(forms.Form):
    name = forms.CharField(max_length=120)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    order = forms.IntegerField(initial=100)


@require_POST
def category_create(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    form = CategoryForm(request.POST)
    if form.is_valid():
        try:
            services.catalog_category_create(actor=actor, **form.cleaned_data)
        except DomainError as exc:
            return render(request, "service_requests/error.html", {"error": exc}, status=exc.status)
    return redirect("catalog", tenant=tenant)


def category_edit(request: TenantRequest, tenant: str, category_id: uuid.UUID) -> HttpResponse:
    """Edit a catalog category's name, description and order (technicians and admins; others 404, as
    for catalog items). A bad or duplicate name shows the service's 422 message next to the field."""
    actor = request_actor(request)
    if not actor.may(P.CATALOG_MANAGE):
        raise Http404("no such page")
    try:
        category = selectors.catalog_category_get(actor=actor, category_id=category_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    initial = {f: getattr(category, f) for f in services.CATEGORY_FIELDS}
    form = CategoryForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                services.catalog_category_update(actor=actor, category=category, **form.cleaned_data)
            except DomainError as exc:
                form_errors_apply(form, exc)
                status = exc.status
            else:
                return redirect("catalog", tenant=tenant)
    context = {"form": form, "category": category}
    return render(request, "service_requests/category_form.html", context, status=status)


class JSONField(forms.CharField):
    """A textarea holding JSON; parsed on clean."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(widget=forms.Textarea(attrs={"rows": 14, "spellcheck": "false"}), **kwargs)

    def prepare_value(self, value: Any) -> Any:
        return value if isinstance(value, str) else json.dumps(value, indent=2)

    def to_python(self, value: Any) -> Any:
        text = super().to_python(value)
        try:
            return json.loads(text or "null")
        except json.JSONDecodeError as exc:
            raise forms.ValidationError(f"not JSON: {exc}") from exc


class CatalogItemForm(forms.Form):
    name = forms.CharField(max_length=160)
    short_description = forms.CharField(max_length=300, required=False)
    category = forms.ModelChoiceField(queryset=CatalogCategory.objects.all())
    fulfilment_group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    expected_delivery_hours = forms.IntegerField(min_value=0, max_value=8760, initial=72)
    approval_required = forms.BooleanField(required=False)
    active = forms.BooleanField(required=False, initial=True)
    form_schema = JSONField(
        label="Form (JSON Schema, Draft 2020-12)", initial={"type": "object", "properties": {}}
    )
    approval_steps = JSONField(
        label="Approval steps (JSON list)",
        required=False,
        initial=[],
        help_text='e.g. [{"order": 1, "mode": "one", "approver_role": "requester_manager"}, '
        '{"order": 2, "mode": "all", "approver_group": "<group id>"}]; approver_person too.',
    )

    def clean_approval_steps(self) -> list[services.StepSpec]:
        raw = self.cleaned_data.get("approval_steps") or []
        if not isinstance(raw, list):
            raise forms.ValidationError("a JSON list")
        steps = []
        for index, entry in enumerate(raw):
            if not isinstance(entry, dict) or not isinstance(entry.get("order"), int):
                raise forms.ValidationError(f"step {index}: an object with an integer order")
            person = group = None
            if entry.get("approver_person"):
                person = _person(str(entry["approver_person"]))
                if person is None:
                    raise forms.ValidationError(f"step {index}: no such approver_person")
            if entry.get("approver_group"):
                group = _group(str(entry["approver_group"]))
                if group is None:
                    raise forms.ValidationError(f"step {index}: no such approver_group")
            steps.append(
                services.StepSpec(
                    order=entry["order"],
                    mode=str(entry.get("mode", ApprovalMode.ONE)),
                    approver_person=person,
                    approver_role=str(entry.get("approver_role", "")),
                    approver_group=group,
                )
            )
        return steps


def _steps_initial(item: CatalogItem) -> list[dict[str, Any]]:
    return [
        {
            k: v
            for k, v in {
                "order": s.order,
                "mode": s.mode,
                "approver_person": str(s.approver_person_id) if s.approver_person_id else None,
                "approver_role": s.approver_role or None,
                "approver_group": str(s.approver_group_id) if s.approver_group_id else None,
            }.items()
            if v is not None
        }
        for s in item.approval_steps.all()
    ]


def catalog_item_edit(request: TenantRequest, tenant: str, item_id: uuid.UUID | None = None) -> HttpResponse:
    """Create (no ``item_id``) or edit a catalog item, its form schema and approval steps."""
    actor = request_actor(request)
    if not actor.may(P.CATALOG_MANAGE):
        raise Http404("no such page")
    item = None
    initial: dict[str, Any] = {}
    if item_id is not None:
        try:
            item = selectors.catalog_item_get(actor=actor, catalog_item_id=item_id)
        except NotFound as exc:
            raise Http404(str(exc)) from exc
        initial = {f: getattr(item, f) for f in services.ITEM_FIELDS if f != "approval_steps"}
        initial["approval_steps"] = _steps_initial(item)
    form = CatalogItemForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                if item is None:
                    services.catalog_item_create(actor=actor, **form.cleaned_data)
                else:
                    services.catalog_item_update(actor=actor, item=item, **form.cleaned_data)
            except DomainError as exc:
                form_errors_apply(form, exc)
                status = exc.status
            else:
                return redirect("catalog", tenant=tenant)
    context = {
        "form": form,
        "item": item,
        "roles": ApproverRole.choices,
        "groups": Group.objects.all(),
        "category_form": CategoryForm(),
    }
    return render(request, "service_requests/item_form.html", context, status=status)


def catalog_order(request: TenantRequest, tenant: str, item_id: uuid.UUID) -> HttpResponse:
    """Order one catalog item (for oneself, or, for technicians, for someone else) from a form built from
    the item's schema. The answers are validated by the service against the schema."""
    actor = request_actor(request)
    try:
        item = selectors.catalog_item_get(actor=actor, catalog_item_id=item_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    form = order_form_class(item, actor)(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid() and (created := order_submit(actor=actor, item=item, form=form)) is not None:
            return redirect("request_detail", tenant=tenant, number=created.number)
    context = {"form": form, "item": item}
    return render(request, "service_requests/order.html", context, status=status)
