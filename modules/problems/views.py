"""Console pages for problems, known errors and problem candidates: /t/<tenant>/problems/...

Entry points: parse a form, call one service or selector. The routing middleware has resolved the tenant
and set ``request.actor``. Problem management is technicians' work: other roles see empty lists and 404s.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import F
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, htmx_render, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound
from modules.cmdb import selectors as cmdb_selectors
from modules.incidents import selectors as incident_selectors
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
    page_get,
    page_number,
    saved_view_redirect,
    within_since,
)
from modules.records.pages import RecordPage
from modules.records.selectors import activity_list

from . import selectors, services
from .models import KnownError, Problem


def _problem(actor: Actor, number: str) -> Problem:
    try:
        return selectors.problem_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _known_error(actor: Actor, number: str) -> KnownError:
    try:
        return selectors.known_error_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


class ProblemFilterForm(ListFilterForm):
    """The problem list's filters (GET; every field optional, see modules.records.listing)."""

    state = forms.MultipleChoiceField(choices=Problem.State.choices, required=False)
    priority = forms.TypedMultipleChoiceField(
        choices=[(n, str(n)) for n in range(1, 6)], coerce=int, required=False
    )
    open_only = forms.BooleanField(required=False)
    assignment_group = forms.ModelChoiceField(
        queryset=Group.objects.order_by("name"), required=False, empty_label="Any group"
    )
    assignee = forms.ChoiceField(choices=ASSIGNEE_CHOICES, required=False, label="Assigned to")
    category = forms.CharField(required=False, max_length=100)
    opened = forms.ChoiceField(choices=WITHIN_CHOICES, required=False, label="Opened within")
    mine = forms.BooleanField(required=False, label="Assigned to me", widget=forms.HiddenInput)


PROBLEM_LIST = ListSpec(
    name="problems",
    target="problem-table",
    columns=(
        Column("number", "Number", "number"),
        Column("title", "Short description", "short_description"),
        Column("priority", "Priority", "priority"),
        Column("state", "State", "state"),
        Column("group", "Group", "assignment_group__name"),
        Column("assignee", "Assigned to", "assigned_to__display_name"),
        Column("updated", "Updated", "updated_at", descending_first=True),
        Column("opened", "Opened", "opened_at", descending_first=True),
    ),
    default_sort="-opened",
)


LEVELS = [(1, "1 - High"), (2, "2 - Medium"), (3, "3 - Low")]


class ProblemForm(forms.Form):
    short_description = forms.CharField(max_length=160)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    category = forms.CharField(max_length=100, required=False)
    subcategory = forms.CharField(max_length=100, required=False)
    configuration_item: forms.ModelChoiceField[Any] = forms.ModelChoiceField(queryset=None, required=False)
    impact = forms.TypedChoiceField(choices=LEVELS, coerce=int, initial=2)
    urgency = forms.TypedChoiceField(choices=LEVELS, coerce=int, initial=2)
    assignment_group = forms.ModelChoiceField(queryset=Group.objects.all(), required=False)
    assigned_to = forms.ModelChoiceField(queryset=Person.objects.filter(is_active=True), required=False)
    rca_method = forms.ChoiceField(choices=[("", "—"), *Problem.RcaMethod.choices], required=False)
    rca_findings = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    root_cause = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    workaround = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    fix_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)

    def __init__(self, *args: Any, actor: Actor, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields["configuration_item"]
        assert isinstance(field, forms.ModelChoiceField)
        field.queryset = cmdb_selectors.ci_visible(actor=actor)


class ProblemActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in services.TRANSITIONS])
    resolution_code = forms.CharField(required=False)
    resolution_notes = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    resolve_incidents = forms.BooleanField(required=False)
    incident_resolution_code = forms.CharField(required=False)
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)

    def clean_incident_resolution_code(self) -> str:
        """The code given to the linked incidents a resolve also resolves: "solved_permanently" unless
        another is chosen."""
        return self.cleaned_data["incident_resolution_code"] or "solved_permanently"


class KnownErrorForm(forms.Form):
    title = forms.CharField(max_length=200)
    symptoms = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False)
    root_cause = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    workaround = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)
    permanent_fix = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False)


# Problems


def problem_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """The problem queue: filters, sorting, saved views and pages from the query string (see
    modules.records.listing); newest first by default. htmx requests get only the table."""
    actor = request_actor(request)
    if (applied := saved_view_redirect(request=request, actor=actor, spec=PROBLEM_LIST)) is not None:
        return applied
    form = ProblemFilterForm(request.GET or None)
    data = form.cleaned()
    filters: dict[str, Any] = {
        "state": data.get("state"),
        "priority": data.get("priority"),
        "open_only": data.get("open_only", False),
        "q": data.get("q", ""),
        "category": data.get("category", ""),
        "opened_after": within_since(data.get("opened", "")),
    }
    if data.get("assignment_group"):
        filters["assignment_group"] = data["assignment_group"].pk
    assignee = "me" if data.get("mine") else data.get("assignee", "")
    filters.update(assignee_filters(actor=actor, choice=assignee))
    qs = selectors.problem_list(actor=actor, **filters).select_related(None)
    qs = qs.select_related("assigned_to", "assignment_group")  # only what a row shows
    listing = listing_build(request=request, actor=actor, spec=PROBLEM_LIST, qs=qs)
    context = {"form": form, "listing": listing, "page": listing.page}
    return htmx_render(request, full="problems/list.html", partial="problems/_table.html", context=context)


def problem_create(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    form = ProblemForm(request.POST or None, actor=actor)
    status = 200
    if request.method == "POST" and form.is_valid():
        data = {k: v for k, v in form.cleaned_data.items() if k != "fix_notes"}
        try:
            problem = services.problem_create(actor=actor, **data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("problem_detail", tenant=tenant, number=problem.number)
    status = 422 if status == 200 and form.errors else status
    return render(request, "problems/form.html", {"form": form, "problem": None}, status=status)


def problem_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """The problem's console page: RCA, actions allowed now, assignment, linked incidents, known errors,
    comment form and timeline (``?order=asc`` oldest first; newest first by default)."""
    actor = request_actor(request)
    return PAGE.render(request, actor, _problem(actor, number))


def _page_context(request: TenantRequest, actor: Actor, problem: Problem) -> dict[str, Any]:
    """The problem page's own context (modules.records.pages has the rest): linked incidents, known
    errors, and the resolution codes of the resolve action (the problem's and its incidents')."""
    return {
        "problem": problem,
        "incidents": selectors.problem_incident_list(actor=actor, problem=problem),
        "known_errors": selectors.known_error_list(actor=actor, problem=problem.pk).order_by("-created_at"),
        "actions": services.allowed_actions(problem=problem, actor=actor),
        "work_note_default": True,
        "resolution_codes": Problem.ResolutionCode.choices,
        "incident_resolution_codes": incident_selectors.resolution_code_list(actor=actor),
    }


PAGE = RecordPage(
    kind="problem",
    segment="problems",
    templates="problems",
    url_name="problem_detail",
    get=_problem,
    record_arg="problem",
    context=_page_context,
)


def problem_edit(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    problem = _problem(actor, number)
    initial = {field: getattr(problem, field) for field in services.EDITABLE_FIELDS}
    form = ProblemForm(request.POST or None, initial=initial, actor=actor)
    status = 200
    if request.method == "POST" and form.is_valid():
        changes = {k: v for k, v in form.cleaned_data.items() if k in services.EDITABLE_FIELDS}
        try:
            services.problem_update(actor=actor, problem=problem, **changes)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("problem_detail", tenant=tenant, number=problem.number)
    status = 422 if status == 200 and form.errors else status
    return render(request, "problems/form.html", {"form": form, "problem": problem}, status=status)


@require_POST
def problem_action(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A state action (one of the page's per-action forms). Refused: the page (or its body for htmx) with
    the message next to the action's fields, 4xx, nothing written."""
    return PAGE.action_post(request, number, ProblemActionForm(request.POST), services.problem_transition)


@require_POST
def problem_assign(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Set the assignment group and/or assignee (``problem_update``). Refused: errors next to the
    fields, 4xx, nothing written."""
    return PAGE.assign_post(request, number, services.problem_update)


@require_POST
def problem_comment(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A work note or comment (technicians). Refused: the message next to the text, 4xx."""
    return PAGE.comment_post(request, number, services.problem_comment)


@require_POST
def problem_incident_link(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Link an incident given by its number (``incident`` form field)."""
    actor = request_actor(request)
    problem = _problem(actor, number)
    try:
        incident = incident_selectors.incident_get_by_number(
            actor=actor, number=request.POST.get("incident", "").strip().upper()
        )
        services.problem_incident_link(actor=actor, problem=problem, incident=incident)
    except DomainError as exc:
        return PAGE.render(request, actor, problem, exc)
    return redirect("problem_detail", tenant=tenant, number=problem.number)


@require_POST
def problem_incident_unlink(request: TenantRequest, tenant: str, number: str, incident: str) -> HttpResponse:
    actor = request_actor(request)
    problem = _problem(actor, number)
    try:
        linked = incident_selectors.incident_get_by_number(actor=actor, number=incident)
        services.problem_incident_unlink(actor=actor, problem=problem, incident=linked)
    except DomainError as exc:
        return PAGE.render(request, actor, problem, exc)
    return redirect("problem_detail", tenant=tenant, number=problem.number)


@require_POST
def problem_known_error_create(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Create a draft known error from the problem (copying its root cause and workaround)."""
    actor = request_actor(request)
    problem = _problem(actor, number)
    try:
        known_error = services.known_error_create(actor=actor, problem=problem)
    except DomainError as exc:
        return PAGE.render(request, actor, problem, exc)
    return redirect("known_error_detail", tenant=tenant, number=known_error.number)


# Known errors

KNOWN_ERRORS_PAGE = 50


def known_error_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Known errors, searched by full text (``q``) in relevance order, else most recently updated."""
    actor = request_actor(request)
    q = request.GET.get("q", "").strip()
    state = [s for s in request.GET.getlist("state") if s in KnownError.State.values]
    qs = selectors.known_error_list(actor=actor, q=q, state=state)
    qs = qs.order_by(F("rank").desc(), "-updated_at") if q else qs.order_by("-updated_at", "-id")
    page = page_get(
        qs, number=page_number(request.GET.get("page"), KNOWN_ERRORS_PAGE), size=KNOWN_ERRORS_PAGE
    )
    context = {"page": page, "q": q, "state": state, "states": KnownError.State.choices}
    template = "problems/_known_error_table.html" if request.htmx else "problems/known_error_list.html"
    return render(request, template, context)


def known_error_search(request: TenantRequest, tenant: str) -> HttpResponse:
    """htmx fragment: up to 10 draft or published known errors matching ``q``, as an HTML list (for the
    incident page)."""
    actor = request_actor(request)
    q = request.GET.get("q", "").strip()
    found: Any = []
    if q:
        found = selectors.known_error_list(actor=actor, q=q, state=["draft", "published"]).order_by(
            F("rank").desc(), "-updated_at"
        )[:10]
    return render(request, "problems/_known_error_search.html", {"known_errors": found, "q": q})


def known_error_create(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    form = KnownErrorForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            known_error = services.known_error_create(actor=actor, **form.cleaned_data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("known_error_detail", tenant=tenant, number=known_error.number)
    return render(
        request, "problems/known_error_form.html", {"form": form, "known_error": None}, status=status
    )


def known_error_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """A known error with its history; POST saves the edit form."""
    actor = request_actor(request)
    known_error = _known_error(actor, number)
    initial = {f: getattr(known_error, f) for f in services.KNOWN_ERROR_FIELDS}
    form = KnownErrorForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.known_error_update(actor=actor, known_error=known_error, **form.cleaned_data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("known_error_detail", tenant=tenant, number=known_error.number)
    return _render_known_error(request, actor, known_error, form, status=status)


def _render_known_error(
    request: TenantRequest,
    actor: Actor,
    known_error: KnownError,
    form: KnownErrorForm,
    error: DomainError | None = None,
    status: int = 200,
) -> HttpResponse:
    context = {
        "known_error": known_error,
        "form": form,
        "history": activity_list(actor=actor, record_id=known_error.pk),
        "actions": services.known_error_allowed_actions(known_error=known_error, actor=actor),
        "error": error,
    }
    return render(
        request, "problems/known_error_detail.html", context, status=error.status if error else status
    )


@require_POST
def known_error_action(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    known_error = _known_error(actor, number)
    try:
        services.known_error_transition(
            actor=actor, known_error=known_error, action=request.POST.get("action", "")
        )
    except DomainError as exc:
        initial = {f: getattr(known_error, f) for f in services.KNOWN_ERROR_FIELDS}
        return _render_known_error(request, actor, known_error, KnownErrorForm(initial=initial), exc)
    return redirect("known_error_detail", tenant=tenant, number=known_error.number)


# Candidates


def candidate_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Problem candidates under the tenant's thresholds, largest group first, each with "accept"."""
    actor = request_actor(request)
    context = {
        "candidates": selectors.problem_candidate_list(actor=actor),
        "rules": selectors.problem_settings_get(actor=actor),
    }
    return render(request, "problems/candidates.html", context)


@require_POST
def candidate_accept(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    try:
        problem = services.problem_candidate_accept(
            actor=actor,
            key=request.POST.get("key", ""),
            short_description=request.POST.get("short_description", ""),
        )
    except DomainError as exc:
        context = {
            "candidates": selectors.problem_candidate_list(actor=actor),
            "rules": selectors.problem_settings_get(actor=actor),
            "error": exc,
        }
        return render(request, "problems/candidates.html", context, status=exc.status)
    return redirect("problem_detail", tenant=tenant, number=problem.number)


# Candidate thresholds


class ProblemSettingsForm(forms.Form):
    candidate_min_incidents = forms.IntegerField(label="Incidents needed for a candidate (2-1000)")
    candidate_window_days = forms.IntegerField(label="Within this many days (1-365)")


def problem_settings(request: TenantRequest, tenant: str) -> HttpResponse:
    """The problem candidate thresholds: technicians read them, admins change them (POST by anyone else
    is 403 from ``problem_settings_set``, nothing written); other roles get 404 like the rest of
    problem management. Ranges are the service's rule, shown next to the field (422)."""
    actor = request_actor(request)
    if not actor.is_technician:
        raise Http404("no such page")
    rules = selectors.problem_settings_get(actor=actor)
    initial = {"candidate_min_incidents": rules.candidate_min_incidents}
    initial["candidate_window_days"] = rules.candidate_window_days
    form = ProblemSettingsForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                services.problem_settings_set(actor=actor, **form.cleaned_data)
            except DomainError as exc:
                form_errors_apply(form, exc)
                status = exc.status
            else:
                return redirect("problem_settings", tenant=tenant)
    context = {"rules": rules, "form": form, "admin": actor.may(P.PROCESS_MANAGE)}
    return render(request, "problems/settings.html", context, status=status)
