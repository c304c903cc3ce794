"""Console pages for changes: /t/<tenant>/changes/... Entry points: parse a form, call one service or
selector. The routing middleware has resolved the tenant and set ``request.actor``.

Times in forms are read and shown in the tenant's time zone (``Tenant.time_zone``) and stored in UTC.
"""

from __future__ import annotations

import datetime as dt
import uuid
import zoneinfo
from typing import Any

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, htmx_render, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound, PermissionDenied
from modules.cmdb.selectors import ci_visible
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.listing import (
    ASSIGNEE_CHOICES,
    WITHIN_CHOICES,
    Column,
    ListFilterForm,
    ListSpec,
    assignee_filters,
    listing_build,
    saved_view_redirect,
    within_since,
)
from modules.records.pages import RecordPage

from . import selectors, services
from .models import CabVote, Change, Risk, StandardChangeTemplate


def _zone(request: TenantRequest) -> zoneinfo.ZoneInfo:
    tenant = getattr(request, "tenant", None)
    try:
        return zoneinfo.ZoneInfo(tenant.time_zone if tenant is not None else "UTC")
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo("UTC")


class LocalDateTimeField(forms.DateTimeField):
    """A ``datetime-local`` input read in the tenant's time zone (set on the form)."""

    widget = forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M")
    input_formats = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]


class ChangeFilterForm(ListFilterForm):
    """The change list's filters (GET; every field optional, see modules.records.listing)."""

    state = forms.MultipleChoiceField(choices=Change.State.choices, required=False)
    change_type = forms.MultipleChoiceField(choices=Change.Type.choices, required=False, label="Type")
    risk = forms.MultipleChoiceField(choices=Risk.choices, required=False)
    open_only = forms.BooleanField(required=False)
    assignment_group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, empty_label="Any group"
    )
    assignee = forms.ChoiceField(choices=ASSIGNEE_CHOICES, required=False, label="Assigned to")
    category = forms.CharField(required=False, max_length=100)
    opened = forms.ChoiceField(choices=WITHIN_CHOICES, required=False, label="Created within")


CHANGE_LIST = ListSpec(
    name="changes",
    target="change-table",
    columns=(
        Column("number", "Number", "number"),
        Column("title", "Short description", "short_description"),
        Column("type", "Type", "change_type"),
        Column("state", "State", "state"),
        Column("risk", "Risk", "risk"),
        Column("start", "Planned start", "planned_start", descending_first=True),
        Column("group", "Group", "assignment_group__name"),
        Column("assignee", "Assigned to", "assigned_to__display_name"),
        Column("requested_by", "Requested by", "requested_by__display_name"),
        Column("updated", "Updated", "updated_at", descending_first=True),
        Column("created", "Created", "created_at", descending_first=True),
    ),
    default_sort="-created",
)


class ChangeForm(forms.Form):
    change_type = forms.ChoiceField(choices=Change.Type.choices, initial=Change.Type.NORMAL, label="Type")
    template = forms.ModelChoiceField(
        queryset=StandardChangeTemplate.objects.filter(active=True),
        required=False,
        label="Standard change template (standard changes only)",
    )
    short_description = forms.CharField(max_length=160, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    category = forms.CharField(max_length=100, required=False)
    implementation_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    backout_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    test_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    planned_start = LocalDateTimeField(required=False)
    planned_end = LocalDateTimeField(required=False)
    assignment_group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    assigned_to = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)

    def __init__(self, *args: Any, zone: dt.tzinfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("planned_start", "planned_end"):
            value = data.get(name)
            if isinstance(value, dt.datetime):
                data[name] = value.replace(tzinfo=None).replace(tzinfo=self.zone).astimezone(dt.UTC)
        return data


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in services.ACTIONS])
    outcome = forms.ChoiceField(choices=[("", "—"), *Change.Outcome.choices], required=False)
    review_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class VoteForm(forms.Form):
    decision = forms.ChoiceField(choices=CabVote.Decision.choices)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


def _uuid(value: str) -> uuid.UUID:
    """A posted id; a malformed one becomes an id that matches nothing (answered as unknown)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return uuid.UUID(int=0)


def _get(actor: Actor, number: str) -> Change:
    try:
        return selectors.change_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def change_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """The change schedule: filters, sorting, saved views and pages from the query string (see
    modules.records.listing); newest first by default. htmx requests get only the table."""
    actor = request_actor(request)
    if (applied := saved_view_redirect(request=request, actor=actor, spec=CHANGE_LIST)) is not None:
        return applied
    form = ChangeFilterForm(request.GET or None)
    data = form.cleaned()
    filters: dict[str, Any] = {
        "state": data.get("state"),
        "change_type": data.get("change_type"),
        "risk": data.get("risk"),
        "open_only": data.get("open_only", False),
        "q": data.get("q", ""),
        "category": data.get("category", ""),
        "created_after": within_since(data.get("opened", "")),
    }
    if data.get("assignment_group"):
        filters["assignment_group"] = data["assignment_group"].pk
    filters.update(assignee_filters(actor=actor, choice=data.get("assignee", "")))
    try:
        qs = selectors.change_list(actor=actor, **filters)
    except DomainError as exc:
        return render(request, "changes/denied.html", {"error": exc}, status=exc.status)
    qs = qs.select_related(None).select_related("requested_by", "assigned_to", "assignment_group")
    listing = listing_build(request=request, actor=actor, spec=CHANGE_LIST, qs=qs)
    context = {"form": form, "listing": listing, "page": listing.page}
    with timezone.override(_zone(request)):
        return htmx_render(request, full="changes/list.html", partial="changes/_table.html", context=context)


def change_create(request: TenantRequest, tenant: str) -> HttpResponse:
    """Create a change: pick the type and, for a standard change, its template."""
    actor = request_actor(request)
    form = ChangeForm(request.POST or None, zone=_zone(request))
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        template = data.pop("template")
        try:
            change = services.change_create(
                actor=actor, template_id=template.pk if template else None, **data
            )
        except DomainError as exc:
            form_errors_apply(form, exc, aliases={"template_id": "template"})
            return render(request, "changes/form.html", {"form": form}, status=exc.status)
        return redirect("change_detail", tenant=tenant, number=change.number)
    return render(request, "changes/form.html", {"form": form}, status=422 if form.errors else 200)


def change_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """The change's console page: plans, conflicts, CAB, actions allowed now, assignment, comment form,
    timeline (``?order=asc`` oldest first; newest first by default), CIs and risk."""
    actor = request_actor(request)
    return PAGE.render(request, actor, _get(actor, number))


def _page_context(request: TenantRequest, actor: Actor, change: Change) -> dict[str, Any]:
    """The change page's own context (modules.records.pages has the rest): CIs and their impact,
    schedule conflicts, the CAB and its vote form, the risk questions; times in the tenant's zone."""
    return {
        "change": change,
        "zone": _zone(request),
        "cis": selectors.change_ci_list(actor=actor, change=change),
        "impact": selectors.change_impact_get(actor=actor, change=change),
        "conflicts": selectors.change_conflict_list(actor=actor, change=change),
        "cab": selectors.cab_get(actor=actor, change=change),
        "questions": selectors.risk_question_list(actor=actor),
        "actions": services.allowed_actions(change=change, actor=actor),
        "outcomes": Change.Outcome.choices,
        "decisions": CabVote.Decision.choices,
        "all_cis": ci_visible(actor=actor)[:500] if actor.is_technician else [],
    }


PAGE = RecordPage(
    kind="change",
    segment="changes",
    templates="changes",
    url_name="change_detail",
    get=_get,
    record_arg="change",
    context=_page_context,
    zone=_zone,
    reread_refused=True,  # change_transition sets fields (actual start, outcome) before it may refuse
)


@require_POST
def change_action(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A state action (one of the page's per-action forms); refused: 4xx, nothing written."""
    return PAGE.action_post(request, number, ActionForm(request.POST), services.change_transition)


@require_POST
def change_vote(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A CAB member's vote; refused (not a member, not in authorise): 4xx, nothing written (the vote form
    comes back empty)."""
    return PAGE.form_post(request, number, VoteForm(request.POST), services.change_vote)


@require_POST
def change_assign(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Set the assignment group and/or assignee (``change_update``); refused: errors next to the fields."""
    return PAGE.assign_post(request, number, services.change_update)


@require_POST
def change_comment(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A comment or (technicians) a work note; refused: the message next to the text, 4xx."""
    return PAGE.comment_post(request, number, services.change_comment)


@require_POST
def change_ci_add(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    ci_id = _uuid(request.POST.get("ci_id", ""))
    return PAGE.post(
        request,
        number,
        lambda actor, change: services.change_ci_add(actor=actor, change=change, ci_id=ci_id),
    )


@require_POST
def change_ci_remove(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    ci_id = _uuid(request.POST.get("ci_id", ""))
    return PAGE.post(
        request,
        number,
        lambda actor, change: services.change_ci_remove(actor=actor, change=change, ci_id=ci_id),
    )


@require_POST
def change_risk(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    answers = {
        key.removeprefix("answer_"): str(value)
        for key, value in request.POST.items()
        if key.startswith("answer_") and value
    }
    return PAGE.post(
        request,
        number,
        lambda actor, change: services.change_risk_set(actor=actor, change=change, answers=answers),
    )


# Editing a change


class ChangeEditForm(forms.Form):
    """The editable fields of a change (services.EDITABLE_FIELDS); which of them the state allows is the
    service's rule, so a refused field comes back as the service's 409/422 message on that field."""

    short_description = forms.CharField(max_length=160, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    justification = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)
    category = forms.CharField(max_length=100, required=False)
    requested_by = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)
    implementation_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    backout_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    test_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    planned_start = LocalDateTimeField(required=False)
    planned_end = LocalDateTimeField(required=False)
    assignment_group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    assigned_to = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)
    outcome = forms.ChoiceField(choices=[("", "—"), *Change.Outcome.choices], required=False)
    review_notes = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}), required=False, label="Post-implementation review"
    )

    def __init__(self, *args: Any, zone: dt.tzinfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name, value in data.items():
            if isinstance(value, str):
                data[name] = value.replace("\r\n", "\n")  # browsers post CRLF; stored texts use LF
            elif isinstance(value, dt.datetime):
                data[name] = value.replace(tzinfo=None).replace(tzinfo=self.zone).astimezone(dt.UTC)
        return data


def _same(old: Any, new: Any) -> bool:
    """Whether a posted value equals the stored one (times to the minute the form shows, texts by LF)."""
    if isinstance(old, dt.datetime) and isinstance(new, dt.datetime):
        return old.replace(second=0, microsecond=0) == new
    if isinstance(old, str) and isinstance(new, str):
        return old.replace("\r\n", "\n") == new
    return bool(old == new)


def change_edit(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Edit a change (technicians): only the fields that differ from the stored ones are sent to
    ``change_update``, so an untouched planning field of a scheduled change is not refused; a refused or
    bad field shows the service's message next to it (409/422). Times in the tenant's time zone."""
    actor = request_actor(request)
    change = _get(actor, number)
    if not actor.is_technician:
        error = PermissionDenied("only technicians may edit changes")
        return render(request, "changes/denied.html", {"error": error}, status=error.status)
    zone = _zone(request)
    initial: dict[str, Any] = {f: getattr(change, f) for f in services.EDITABLE_FIELDS}
    for name in ("planned_start", "planned_end"):
        if initial[name] is not None:
            initial[name] = initial[name].astimezone(zone).replace(tzinfo=None)
    form = ChangeEditForm(request.POST or None, initial=initial, zone=zone)
    if change.state not in services.REVIEW_STATES:
        for name in services.REVIEW_FIELDS:  # outcome and review notes only once implementing
            del form.fields[name]
    if change.change_type == Change.Type.STANDARD:
        for name in services.TEMPLATE_FIELDS:  # a standard change's plans are its template's
            form.fields[name].disabled = True
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            changes = {f: v for f, v in form.cleaned_data.items() if not _same(getattr(change, f), v)}
            try:
                services.change_update(actor=actor, change=change, **changes)
            except DomainError as exc:
                refused = [f for f in exc.extra.get("fields") or [] if f in form.fields]
                for name in refused:  # ChangeNotEditable (409) names the fields the state refuses
                    form.add_error(name, exc.detail)
                if not refused:
                    form_errors_apply(form, exc, aliases={"template_id": "template"})
                status = exc.status
            else:
                return redirect("change_detail", tenant=tenant, number=change.number)
    context = {"form": form, "change": change}
    return render(request, "changes/edit.html", context, status=status)


# Standard change templates


class TemplateForm(forms.Form):
    name = forms.CharField(max_length=160, required=False)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    category = forms.CharField(max_length=100, required=False)
    implementation_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    backout_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    test_plan = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    active = forms.BooleanField(
        required=False, initial=True, help_text="Untick to retire the template (no new changes from it)."
    )


def _denied(request: TenantRequest, exc: DomainError) -> HttpResponse:
    return render(request, "changes/denied.html", {"error": exc}, status=exc.status)


def _admin_only(actor: Actor) -> PermissionDenied | None:
    return None if actor.may(P.PROCESS_MANAGE) else PermissionDenied("only admins may do this")


def template_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Standard change templates, retired ones included (technicians and CAB members; admins edit)."""
    actor = request_actor(request)
    try:
        templates = selectors.template_list(actor=actor)
    except DomainError as exc:
        return _denied(request, exc)
    return render(
        request, "changes/templates.html", {"templates": templates, "admin": actor.may(P.PROCESS_MANAGE)}
    )


def template_edit(request: TenantRequest, tenant: str, template_id: uuid.UUID | None = None) -> HttpResponse:
    """Create (no ``template_id``) or edit a standard change template; admins only (403 otherwise)."""
    actor = request_actor(request)
    template = None
    initial: dict[str, Any] = {}
    if template_id is not None:
        try:
            template = selectors.template_get(actor=actor, template_id=template_id)
        except NotFound as exc:
            raise Http404(str(exc)) from exc
        initial = {f: getattr(template, f) for f in services.TEMPLATE_EDITABLE}
    denial = _admin_only(actor)
    if denial is not None:
        return _denied(request, denial)
    form = TemplateForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            data: dict[str, Any] = {
                k: v.replace("\r\n", "\n") if isinstance(v, str) else v for k, v in form.cleaned_data.items()
            }
            try:
                if template is None:
                    services.template_create(actor=actor, **data)
                else:
                    services.template_update(actor=actor, template=template, **data)
            except DomainError as exc:
                if isinstance(exc, services.AlreadyExists) and not exc.extra.get("errors"):
                    exc.extra["errors"] = [{"field": "name", "message": exc.detail}]
                form_errors_apply(form, exc, aliases={"template_id": "template"})
                status = exc.status
            else:
                return redirect("change_template_list", tenant=tenant)
    return render(request, "changes/template_form.html", {"form": form, "template": template}, status=status)


# The CAB roster


class CabMemberForm(forms.Form):
    person = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True).order_by("display_name"))
    emergency = forms.BooleanField(required=False, label="Also on the emergency CAB")


def cab_page(request: TenantRequest, tenant: str) -> HttpResponse:
    """The CAB roster (technicians and CAB members read it); admins add a person or change their
    emergency flag here (POST), 403 for anyone else."""
    actor = request_actor(request)
    form = CabMemberForm(request.POST or None)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                services.cab_member_add(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc, aliases={"template_id": "template"})
                status = exc.status
            else:
                return redirect("change_cab", tenant=tenant)
    try:
        members = list(selectors.cab_member_list(actor=actor))
    except DomainError as exc:
        return _denied(request, exc)
    context = {"members": members, "form": form, "admin": actor.may(P.PROCESS_MANAGE)}
    return render(request, "changes/cab.html", context, status=status)


@require_POST
def cab_remove(request: TenantRequest, tenant: str, member_id: int) -> HttpResponse:
    actor = request_actor(request)
    try:
        services.cab_member_remove(
            actor=actor, member=selectors.cab_member_get(actor=actor, member_id=member_id)
        )
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        return _denied(request, exc)
    return redirect("change_cab", tenant=tenant)


# Blackout windows


class BlackoutForm(forms.Form):
    name = forms.CharField(max_length=160, required=False)
    start = LocalDateTimeField()
    end = LocalDateTimeField()
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def __init__(self, *args: Any, zone: dt.tzinfo, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.zone = zone

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        for name in ("start", "end"):
            value = data.get(name)
            if isinstance(value, dt.datetime):
                data[name] = value.replace(tzinfo=None).replace(tzinfo=self.zone).astimezone(dt.UTC)
        return data


def blackout_page(request: TenantRequest, tenant: str) -> HttpResponse:
    """Blackout windows, shown and entered in the tenant's time zone (stored UTC). Technicians and CAB
    members read them; admins add one here (POST), 403 for anyone else."""
    actor = request_actor(request)
    zone = _zone(request)
    form = BlackoutForm(request.POST or None, zone=zone)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                services.blackout_create(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc, aliases={"template_id": "template"})
                status = exc.status
            else:
                return redirect("change_blackouts", tenant=tenant)
    try:
        blackouts = list(selectors.blackout_list(actor=actor))
    except DomainError as exc:
        return _denied(request, exc)
    context = {"blackouts": blackouts, "form": form, "admin": actor.may(P.PROCESS_MANAGE)}
    with timezone.override(zone):
        return render(request, "changes/blackouts.html", context, status=status)


@require_POST
def blackout_remove(request: TenantRequest, tenant: str, blackout_id: uuid.UUID) -> HttpResponse:
    actor = request_actor(request)
    try:
        services.blackout_delete(
            actor=actor, blackout=selectors.blackout_get(actor=actor, blackout_id=blackout_id)
        )
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    except DomainError as exc:
        return _denied(request, exc)
    return redirect("change_blackouts", tenant=tenant)


# CAB quorums


class ChangeSettingsForm(forms.Form):
    cab_quorum = forms.IntegerField(label="CAB quorum (counted votes, normal changes)")
    ecab_quorum = forms.IntegerField(label="Emergency CAB quorum (counted votes, emergency changes)")


def change_settings(request: TenantRequest, tenant: str) -> HttpResponse:
    """The quorums: technicians and CAB members read them, admins change them (POST by anyone else is
    403, as in the API); the range (1-50) is the service's rule, shown next to the field."""
    actor = request_actor(request)
    try:
        rules = selectors.change_settings_get(actor=actor)
    except DomainError as exc:
        return _denied(request, exc)
    initial = {"cab_quorum": rules.cab_quorum, "ecab_quorum": rules.ecab_quorum}
    form = ChangeSettingsForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                services.change_settings_set(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc, aliases={"template_id": "template"})
                status = exc.status
            else:
                return redirect("change_settings", tenant=tenant)
    context = {"rules": rules, "form": form, "admin": actor.may(P.PROCESS_MANAGE)}
    return render(request, "changes/settings.html", context, status=status)
