"""Console and portal pages for incidents. Entry points: parse a form, call one service or selector.

Console pages live under /t/<tenant>/incidents/ on the console host; portal pages at / on the tenant's
own host. The routing middleware has resolved the tenant and set ``request.actor``.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, htmx_render, portal_page, request_actor
from controlplane.problems import DomainError, NotFound
from modules.cmdb import selectors as cmdb_selectors
from modules.people.models import Group, Person
from modules.records import listing
from modules.records.actor import Actor
from modules.records.pages import RecordPage
from modules.records.selectors import timeline_public

from . import selectors, services
from .models import Impact, Incident, Priority, ResolutionCode, SatisfactionResponse


class IncidentFilterForm(listing.ListFilterForm):
    """The incident list's filters (GET; every field optional, see modules.records.listing)."""

    state = forms.MultipleChoiceField(choices=Incident.State.choices, required=False)
    priority = forms.TypedMultipleChoiceField(choices=Priority.choices, coerce=int, required=False)
    open_only = forms.BooleanField(required=False)
    assignment_group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, empty_label="Any group"
    )
    assignee = forms.ChoiceField(choices=listing.ASSIGNEE_CHOICES, required=False, label="Assigned to")
    category = forms.CharField(required=False, max_length=100)
    opened = forms.ChoiceField(choices=listing.WITHIN_CHOICES, required=False, label="Opened within")
    mine = forms.BooleanField(required=False, label="Assigned to me", widget=forms.HiddenInput)


INCIDENT_LIST = listing.ListSpec(
    name="incidents",
    target="incident-table",
    columns=(
        listing.Column("number", "Number", "number"),
        listing.Column("title", "Short description", "short_description"),
        listing.Column("caller", "Caller", "caller__display_name"),
        listing.Column("priority", "Priority", "priority"),
        listing.Column("state", "State", "state"),
        listing.Column("group", "Group", "assignment_group__name"),
        listing.Column("assignee", "Assigned to", "assigned_to__display_name"),
        listing.Column("updated", "Updated", "updated_at", descending_first=True),
        listing.Column("opened", "Opened", "opened_at", descending_first=True),
        listing.Column("sla", "SLA due"),
    ),
    default_sort="-opened",
)


class IncidentForm(forms.Form):
    """The console incident form. ``ci_number`` names the affected CI by its number (``CI0000042``); it
    is resolved for the acting person through the CMDB selectors, so its cleaned value is the CI (or None
    when empty) and an unknown or invisible number is an error on that field."""

    short_description = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False)
    caller = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)
    category = forms.CharField(max_length=100, required=False)
    subcategory = forms.CharField(max_length=100, required=False)
    ci_number = forms.CharField(
        max_length=20, required=False, label="CI number", help_text="The affected configuration item."
    )
    contact_type = forms.ChoiceField(choices=Incident.ContactType.choices, initial=Incident.ContactType.PHONE)
    impact = forms.TypedChoiceField(choices=Impact.choices, coerce=int, initial=2)
    urgency = forms.TypedChoiceField(choices=Impact.choices, coerce=int, initial=2)
    assignment_group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    assigned_to = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.actor = actor

    def clean_ci_number(self) -> Any:
        number = self.cleaned_data["ci_number"].strip()
        if not number:
            return None
        try:
            return cmdb_selectors.ci_get_by_number(actor=self.actor, number=number)
        except NotFound as exc:
            raise forms.ValidationError("No configuration item with this number.") from exc

    def service_args(self) -> dict[str, Any]:
        """The cleaned fields as the incident services' keyword arguments (``ci_number`` becomes
        ``configuration_item``)."""
        data = dict(self.cleaned_data)
        data["configuration_item"] = data.pop("ci_number")
        return data


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in services.TRANSITIONS])
    hold_reason = forms.ChoiceField(choices=[("", "—"), *Incident.HoldReason.choices], required=False)
    resolution_code = forms.CharField(required=False)
    resolution_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def incident_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """The incident queue: filters, sorting, saved views and pages from the query string (see
    modules.records.listing); newest first by default. htmx requests get only the table."""
    # Imported here rather than at the top, so this list's imports stay apart from the detail pages'.
    from modules.sla.selectors import sla_due_map

    actor = request_actor(request)
    if (applied := listing.saved_view_redirect(request=request, actor=actor, spec=INCIDENT_LIST)) is not None:
        return applied
    form = IncidentFilterForm(request.GET or None)
    data = form.cleaned()
    filters: dict[str, Any] = {
        "state": data.get("state"),
        "priority": data.get("priority"),
        "open_only": data.get("open_only", False),
        "q": data.get("q", ""),
        "category": data.get("category", ""),
        "opened_after": listing.within_since(data.get("opened", "")),
    }
    if data.get("assignment_group"):
        filters["assignment_group"] = data["assignment_group"].pk
    assignee = "me" if data.get("mine") else data.get("assignee", "")
    filters.update(listing.assignee_filters(actor=actor, choice=assignee))
    # Only the relations a row shows (the selector also joins the CI and the problem, for detail pages).
    qs = selectors.incident_list(actor=actor, **filters).select_related(None)
    qs = qs.select_related("caller", "assigned_to", "assignment_group")
    table = listing.listing_build(request=request, actor=actor, spec=INCIDENT_LIST, qs=qs)
    rows = table.page.rows
    listing.sla_attach(
        rows, sla_due_map(actor=actor, record_type="incident", record_ids=[r.pk for r in rows])
    )
    context = {"form": form, "listing": table, "page": table.page}
    return htmx_render(request, full="incidents/list.html", partial="incidents/_table.html", context=context)


def incident_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """The incident's console page: fields, actions allowed now, assignment, comment form and timeline
    (``?order=asc`` oldest first; newest first by default)."""
    actor = request_actor(request)
    return PAGE.render(request, actor, _incident(actor, number))


def _incident(actor: Actor, number: str) -> Incident:
    try:
        return selectors.incident_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _page_context(request: TenantRequest, actor: Actor, incident: Incident) -> dict[str, Any]:
    """The incident page's own context (modules.records.pages has the rest): the CI's impact, the
    known error search, resolution codes and hold reasons for the action forms."""
    return {
        "incident": incident,
        "impact": selectors.incident_ci_impact(actor=actor, incident=incident),
        "impact_depth": selectors.IMPACT_DEPTH,
        "known_error_query": selectors.known_error_query(incident),
        "actions": services.allowed_actions(incident=incident, actor=actor),
        "work_note_default": actor.is_technician,
        "resolution_codes": ResolutionCode.objects.filter(active=True),
        "hold_reasons": Incident.HoldReason.choices,
    }


PAGE = RecordPage(
    kind="incident",
    segment="incidents",
    templates="incidents",
    url_name="incident_detail",
    get=_incident,
    record_arg="incident",
    context=_page_context,
)


def incident_create(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    form = IncidentForm(request.POST or None, actor=actor)
    if request.method == "POST" and form.is_valid():
        try:
            incident = services.incident_create(actor=actor, **form.service_args())
        except DomainError as exc:
            form_errors_apply(form, exc, aliases={"configuration_item": "ci_number"})
        else:
            return redirect("incident_detail", tenant=tenant, number=incident.number)
    status = 422 if form.errors else 200
    return render(request, "incidents/form.html", {"form": form, "incident": None}, status=status)


def incident_edit(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    try:
        incident = selectors.incident_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    initial = {field: getattr(incident, field) for field in services.EDITABLE_FIELDS}
    ci = initial.pop("configuration_item")
    initial["ci_number"] = ci.number if ci is not None else ""
    form = IncidentForm(request.POST or None, initial=initial, actor=actor)
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in form.service_args().items() if k in services.EDITABLE_FIELDS}
        try:
            services.incident_update(actor=actor, incident=incident, **changes)
        except DomainError as exc:
            form_errors_apply(form, exc, aliases={"configuration_item": "ci_number"})
        else:
            return redirect("incident_detail", tenant=tenant, number=incident.number)
    status = 422 if form.errors else 200
    return render(request, "incidents/form.html", {"form": form, "incident": incident}, status=status)


@require_POST
def incident_action(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A state action (one of the page's per-action forms). Refused: the page (or its body for htmx) with
    the message next to the action's fields, 4xx, nothing written."""
    return PAGE.action_post(request, number, ActionForm(request.POST), services.incident_transition)


@require_POST
def incident_assign(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Set the assignment group and/or assignee (``incident_update``; a change from a set value counts as a
    reassignment). Refused (end users, closed incidents, unknown ids): errors next to the fields, 4xx."""
    return PAGE.assign_post(request, number, services.incident_update)


@require_POST
def incident_comment(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A public comment or (technicians) a work note. Refused: the message next to the text, 4xx."""
    return PAGE.comment_post(request, number, services.incident_comment)


# Portal (the tenant's own host): end users see and report their own incidents.


class ReportForm(forms.Form):
    short_description = forms.CharField(max_length=160, label="What is wrong?")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 5}), required=False, label="Details")
    urgency = forms.TypedChoiceField(choices=Impact.choices, coerce=int, initial=2, label="How urgent?")


@portal_page
def portal_report(request: TenantRequest) -> HttpResponse:
    actor = request_actor(request)
    form = ReportForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        incident = services.incident_create(actor=actor, **form.cleaned_data)
        return redirect("portal_incident", number=incident.number)
    return render(request, "incidents/portal_report.html", {"form": form})


class PortalReplyForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), label="Reply")


PORTAL_NO_REPLY = (Incident.State.CLOSED, Incident.State.CANCELED)


@portal_page
def portal_incident(request: TenantRequest, number: str) -> HttpResponse:
    """An incident the actor may see (their own; a client admin's organisation's): its state, its public
    timeline (comments and state changes; never work notes, assignment or other technicians' fields)
    and a reply box (a public comment; on a resolved incident, "not fixed" reopens it with the reply)
    until it is closed. An empty reply comes back as 422 with the error next to the box."""
    actor = request_actor(request)
    try:
        incident = selectors.incident_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    form = PortalReplyForm(request.POST or None)
    status = 422 if request.method == "POST" else 200
    if request.method == "POST" and form.is_valid() and incident.state not in PORTAL_NO_REPLY:
        body = form.cleaned_data["body"]
        try:
            if request.POST.get("reopen") and incident.state == Incident.State.RESOLVED:
                services.incident_transition(actor=actor, incident=incident, action="reopen", comment=body)
            else:
                services.incident_comment(actor=actor, incident=incident, body=body)
        except DomainError as exc:
            form.add_error("body", exc.detail)
            status = exc.status
        else:
            return redirect("portal_incident", number=incident.number)
    states = dict(Incident.State.choices)
    timeline = [
        (
            entry,
            states.get(entry.old_state or "", entry.old_state),
            states.get(entry.new_state or "", entry.new_state),
        )
        for entry in timeline_public(actor=actor, record_id=incident.pk, state_verb_prefix="incident.")
    ]
    context = {"incident": incident, "timeline": timeline, "form": form}
    return render(request, "incidents/portal_detail.html", context, status=status)


class SurveyForm(forms.Form):
    score = forms.TypedChoiceField(
        choices=SatisfactionResponse.Score.choices,
        coerce=int,
        widget=forms.RadioSelect,
        label="How satisfied are you with how this was handled?",
    )
    comment = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=2000, label="Comment (optional)"
    )


@portal_page
def portal_survey(request: TenantRequest, number: str) -> HttpResponse:
    """The satisfaction survey of one of the caller's resolved incidents: score 1-5 and a comment. Shows
    the answer once given; refuses (403) anyone but the caller and (409) an incident not resolved."""
    actor = request_actor(request)
    try:
        incident = selectors.incident_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    response = selectors.incident_survey_get(actor=actor, incident=incident)
    form = SurveyForm(request.POST or None)
    status = 200
    if request.method == "POST" and response is None and form.is_valid():
        try:
            services.incident_survey_answer(actor=actor, incident=incident, **form.cleaned_data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("portal_survey", number=incident.number)
    elif request.method == "POST":
        status = 409 if response is not None else 422
    is_caller = actor.person_id is not None and incident.caller_id == actor.person_id
    context = {
        "incident": incident,
        "response": response,
        "form": form,
        "is_caller": is_caller,
        "open": incident.state in services.SURVEY_STATES,
    }
    return render(request, "incidents/portal_survey.html", context, status=status)
