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
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest
from controlplane.problems import DomainError, NotFound
from modules.cmdb.selectors import ci_visible
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.selectors import activity_list, comment_list

from . import selectors, services
from .models import CabVote, Change, StandardChangeTemplate


def _actor(request: TenantRequest) -> Actor:
    actor = getattr(request, "actor", None)
    if actor is None:
        raise Http404("sign in first")
    return actor


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


class ChangeFilterForm(forms.Form):
    state = forms.MultipleChoiceField(choices=Change.State.choices, required=False)
    change_type = forms.MultipleChoiceField(choices=Change.Type.choices, required=False, label="Type")
    open_only = forms.BooleanField(required=False)
    q = forms.CharField(required=False, label="Search")


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


class CommentForm(forms.Form):
    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    work_note = forms.BooleanField(required=False)


def _apply_errors(form: forms.Form, exc: DomainError) -> None:
    errors = exc.extra.get("errors") or [{"field": None, "message": exc.detail}]
    for error in errors:
        field = error.get("field")
        field = "template" if field == "template_id" else field
        form.add_error(field if field in form.fields else None, error["message"])


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
    """The change schedule: filters, newest first, 50 a page. htmx requests get only the table."""
    actor = _actor(request)
    form = ChangeFilterForm(request.GET or None)
    filters: dict[str, Any] = {}
    if form.is_valid():
        filters = dict(form.cleaned_data)
    try:
        qs = selectors.change_list(actor=actor, **filters).order_by("-created_at", "-id")
    except DomainError as exc:
        return render(request, "changes/denied.html", {"error": exc}, status=exc.status)
    page = Paginator(qs, 50).get_page(request.GET.get("page"))
    template = "changes/_table.html" if request.headers.get("HX-Request") else "changes/list.html"
    with timezone.override(_zone(request)):
        return render(request, template, {"form": form, "page": page, "query": request.GET.urlencode()})


def change_create(request: TenantRequest, tenant: str) -> HttpResponse:
    """Create a change: pick the type and, for a standard change, its template."""
    actor = _actor(request)
    form = ChangeForm(request.POST or None, zone=_zone(request))
    if request.method == "POST" and form.is_valid():
        data = dict(form.cleaned_data)
        template = data.pop("template")
        try:
            change = services.change_create(
                actor=actor, template_id=template.pk if template else None, **data
            )
        except DomainError as exc:
            _apply_errors(form, exc)
            return render(request, "changes/form.html", {"form": form}, status=exc.status)
        return redirect("change_detail", tenant=tenant, number=change.number)
    return render(request, "changes/form.html", {"form": form})


def change_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = _actor(request)
    return _render_detail(request, actor, _get(actor, number))


def _render_detail(
    request: TenantRequest, actor: Actor, change: Change, error: DomainError | None = None
) -> HttpResponse:
    zone = _zone(request)
    context = {
        "change": change,
        "zone": zone,
        "cis": selectors.change_ci_list(actor=actor, change=change),
        "impact": selectors.change_impact_get(actor=actor, change=change),
        "conflicts": selectors.change_conflict_list(actor=actor, change=change),
        "cab": selectors.cab_get(actor=actor, change=change),
        "questions": selectors.risk_question_list(actor=actor),
        "comments": comment_list(actor=actor, record_id=change.pk),
        "history": activity_list(actor=actor, record_id=change.pk),
        "actions": services.allowed_actions(change=change, actor=actor),
        "outcomes": Change.Outcome.choices,
        "decisions": CabVote.Decision.choices,
        "all_cis": ci_visible(actor=actor)[:500] if actor.is_technician else [],
        "error": error,
    }
    with timezone.override(zone):
        return render(request, "changes/detail.html", context, status=error.status if error else 200)


def _post(request: TenantRequest, tenant: str, number: str, call: Any) -> HttpResponse:
    """Run one service call for a detail-page form; a domain error re-renders the page with it."""
    actor = _actor(request)
    change = _get(actor, number)
    try:
        call(actor, change)
    except DomainError as exc:
        return _render_detail(request, actor, _get(actor, number), exc)
    return redirect("change_detail", tenant=tenant, number=change.number)


@require_POST
def change_action(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    form = ActionForm(request.POST)
    if not form.is_valid():
        return redirect("change_detail", tenant=tenant, number=number)
    return _post(
        request,
        tenant,
        number,
        lambda actor, change: services.change_transition(actor=actor, change=change, **form.cleaned_data),
    )


@require_POST
def change_vote(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    form = VoteForm(request.POST)
    if not form.is_valid():
        return redirect("change_detail", tenant=tenant, number=number)
    return _post(
        request,
        tenant,
        number,
        lambda actor, change: services.change_vote(actor=actor, change=change, **form.cleaned_data),
    )


@require_POST
def change_comment(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    form = CommentForm(request.POST)
    if not form.is_valid():
        return redirect("change_detail", tenant=tenant, number=number)
    return _post(
        request,
        tenant,
        number,
        lambda actor, change: services.change_comment(
            actor=actor,
            change=change,
            body=form.cleaned_data["body"],
            work_note=form.cleaned_data["work_note"],
        ),
    )


@require_POST
def change_ci_add(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    ci_id = _uuid(request.POST.get("ci_id", ""))
    return _post(
        request,
        tenant,
        number,
        lambda actor, change: services.change_ci_add(actor=actor, change=change, ci_id=ci_id),
    )


@require_POST
def change_ci_remove(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    ci_id = _uuid(request.POST.get("ci_id", ""))
    return _post(
        request,
        tenant,
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
    return _post(
        request,
        tenant,
        number,
        lambda actor, change: services.change_risk_set(actor=actor, change=change, answers=answers),
    )
