"""Portal pages for the service catalog, "my requests and incidents" and approvals, on the tenant's own
host (``<slug>.localhost`` in development; ``controlplane.urls_portal``).

Entry points: parse a form, call one service or selector. The routing middleware has resolved the tenant
from the host and, for a user with a role here, set ``request.actor`` (an end user, approver, CAB member
or client admin of this tenant; never a technician, whose role comes from the console path). Visitors
are sent to sign in; a signed-in user without a role here gets the "no access" page.
"""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.db.models import CharField, F, Value
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, portal_page, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound
from modules.incidents import selectors as incident_selectors
from modules.incidents.models import Incident
from modules.records.actor import Actor
from modules.records.listing import page_number, page_slice
from modules.records.selectors import timeline_public

from . import selectors, services
from .models import Approval, ApproverRole, ServiceRequest
from .orderform import answers_display, order_form_class, order_submit

PAGE_SIZE = 25
DECIDED_SHOWN = 50


# The catalog


@portal_page
def portal_catalog(request: TenantRequest) -> HttpResponse:
    """The items an end user may order (active ones), by category; ``q`` searches names and descriptions."""
    actor = request_actor(request)
    q = request.GET.get("q", "")[:100]
    items = selectors.catalog_item_list(actor=actor, q=q).order_by(
        "category__order", "category__name", "name"
    )
    sections: list[tuple[Any, list[Any]]] = []
    for item in items:
        if not sections or sections[-1][0] != item.category:
            sections.append((item.category, []))
        sections[-1][1].append(item)
    return render(request, "service_requests/portal_catalog.html", {"sections": sections, "q": q})


@portal_page
def portal_catalog_item(request: TenantRequest, item_id: uuid.UUID) -> HttpResponse:
    """An item's order form (fields from its JSON Schema; conditional ones shown by the browser script);
    a valid post creates the request for the signed-in person (approvals start as the item defines) and
    goes to it. Refused answers come back as 422 with each error next to its field, nothing written."""
    actor = request_actor(request)
    try:
        item = selectors.catalog_item_get(actor=actor, catalog_item_id=item_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    if not item.active:  # client admins see inactive items in the console's catalog admin, not here
        raise Http404("no such catalog item")
    form = order_form_class(item, actor, on_behalf=False)(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid() and (created := order_submit(actor=actor, item=item, form=form)) is not None:
            return redirect("portal_request", number=created.number)
    return render(request, "service_requests/portal_order.html", {"form": form, "item": item}, status=status)


# My requests and incidents

SCOPE_MINE = "mine"
SCOPE_ORGANISATION = "organisation"


def _row_query(qs: Any, kind: str, title: str) -> Any:
    return (
        qs.order_by()
        .annotate(
            kind=Value(kind, output_field=CharField()),
            title=F(title),
            row_state=F("state"),
            row_updated=F("updated_at"),
        )
        .values("kind", "number", "title", "row_state", "row_updated")
    )


def _records(actor: Actor, scope: str) -> Any:
    """The actor's incidents (as caller) and requests (requested for or opened by them), or, for the
    organisation scope, every incident and request they may see, as one query: rows of ``kind``,
    ``number``, ``title``, ``row_state``, ``row_updated``, most recently updated first."""
    mine = scope == SCOPE_MINE
    incidents = incident_selectors.incident_list(actor=actor, caller=actor.person_id if mine else None)
    if mine and actor.person_id is None:
        incidents = incidents.none()
    requests = selectors.service_request_list(actor=actor, own_only=mine)
    rows = _row_query(incidents, "incident", "short_description").union(
        _row_query(requests, "request", "short_description"), all=True
    )
    return rows.order_by("-row_updated", "-number")


STATE_LABELS = {"incident": dict(Incident.State.choices), "request": dict(ServiceRequest.State.choices)}


@portal_page
def portal_my(request: TenantRequest) -> HttpResponse:
    """ "My requests and incidents": one list of the signed-in person's incidents and requests (state,
    updated, number, title), 25 a page (htmx requests get the table only); ``?scope=organisation`` lists the organisation's (client admins,
    ``organisation.read``; others get their own list)."""
    actor = request_actor(request)
    scope = SCOPE_ORGANISATION if request.GET.get("scope") == SCOPE_ORGANISATION else SCOPE_MINE
    if scope == SCOPE_ORGANISATION and not actor.may(P.ORGANISATION_READ):
        scope = SCOPE_MINE
    number = page_number(request.GET.get("page"), PAGE_SIZE)
    page = page_slice(_records(actor, scope), number=number, size=PAGE_SIZE)
    rows = [
        {**row, "state_label": STATE_LABELS[row["kind"]].get(row["row_state"], row["row_state"])}
        for row in page.rows
    ]
    context = {
        "page": page,
        "rows": rows,
        "scope": scope,
        "may_see_organisation": actor.may(P.ORGANISATION_READ),
    }
    htmx = getattr(request, "htmx", False)  # paging with htmx swaps the table only
    template = "service_requests/portal_my_table.html" if htmx else "service_requests/portal_my.html"
    return render(request, template, context)


class ReplyForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Reply")


def _request_get(actor: Actor, number: str) -> ServiceRequest:
    try:
        return selectors.service_request_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _approver_label(approval: Approval) -> str:
    if approval.approver is not None:
        return str(approval.approver)
    return str(dict(ApproverRole.choices).get(approval.approver_role, approval.approver_role))


@portal_page
def portal_request(request: TenantRequest, number: str) -> HttpResponse:
    """A request the actor may see: its items and answers, its approvals, its public timeline (comments
    and state changes; never work notes, tasks or assignment) and a reply box (a public comment) while it
    is open."""
    actor = request_actor(request)
    found = _request_get(actor, number)
    form = ReplyForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid() and not found.is_final:
            try:
                services.request_comment(actor=actor, request=found, body=form.cleaned_data["body"])
            except DomainError as exc:
                form.add_error("body", exc.detail)
                status = exc.status
            else:
                return redirect("portal_request", number=found.number)
    items = list(selectors.requested_item_list(actor=actor, request=found))
    answers = answers_display(actor=actor, items=items)
    states = dict(ServiceRequest.State.choices)
    timeline = [
        (
            entry,
            states.get(entry.old_state or "", entry.old_state),
            states.get(entry.new_state or "", entry.new_state),
        )
        for entry in timeline_public(actor=actor, record_id=found.pk, state_verb_prefix="service_request.")
    ]
    context = {
        "req": found,
        "items": [(ritm, answers.get(ritm.pk, [])) for ritm in items],
        "approvals": [(a, _approver_label(a)) for a in selectors.approval_list(actor=actor, request=found)],
        "timeline": timeline,
        "form": form,
    }
    return render(request, "service_requests/portal_request.html", context, status=status)


# Approvals


class DecisionForm(forms.Form):
    decision = forms.ChoiceField(choices=[("approve", "Approve"), ("reject", "Reject")])
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False, label="Comment")


def _approvals_page(
    request: TenantRequest,
    actor: Actor,
    failed: tuple[uuid.UUID, DecisionForm] | None = None,
    status: int = 200,
) -> HttpResponse:
    pending = list(selectors.approval_list_for(actor=actor))
    decided = list(selectors.approval_decided_list(actor=actor)[:DECIDED_SHOWN])
    answered = [a.requested_item for a in pending + decided if a.requested_item is not None]
    answers = answers_display(actor=actor, items=answered)
    failed_id, failed_form = failed or (None, None)
    rows = [
        {
            "approval": a,
            "answers": answers.get(a.requested_item_id, []) if a.requested_item_id else [],
            "form": failed_form if a.pk == failed_id else DecisionForm(prefix=str(a.pk)),
        }
        for a in pending
    ]
    decided_rows = [
        {"approval": a, "answers": answers.get(a.requested_item_id, []) if a.requested_item_id else []}
        for a in decided
    ]
    return render(
        request,
        "service_requests/portal_approvals.html",
        {"rows": rows, "decided": decided_rows},
        status=status,
    )


@portal_page
def portal_approvals(request: TenantRequest) -> HttpResponse:
    """The approvals waiting for the signed-in person (theirs by person or delegation, or a step of their
    tenant role), oldest first, each with its request and form answers and a decision form; below, the
    approvals they decided (the latest 50)."""
    return _approvals_page(request, request_actor(request))


@require_POST
@portal_page
def portal_approval_decide(request: TenantRequest, approval_id: uuid.UUID) -> HttpResponse:
    """Approve or reject one approval of the actor's with a comment (a rejection needs one), through
    ``services.approval_decide``. An approval that is not the actor's answers 404 and nothing is written;
    a refused decision comes back on the approvals page with the error next to its field."""
    actor = request_actor(request)
    try:
        approval = selectors.approval_get_mine(actor=actor, approval_id=approval_id)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    form = DecisionForm(request.POST, prefix=str(approval.pk))
    if form.is_valid():
        try:
            services.approval_decide(
                actor=actor,
                approval=approval,
                decision=form.cleaned_data["decision"],
                comment=form.cleaned_data["comment"],
            )
        except DomainError as exc:
            form_errors_apply(form, exc)
            return _approvals_page(request, actor, (approval.pk, form), status=exc.status)
        return redirect("portal_approvals")
    return _approvals_page(request, actor, (approval.pk, form), status=422)
