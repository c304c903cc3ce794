"""Console pages for SLA settings: /t/<tenant>/sla/... Calendars, contracts and their policies.

Technicians and admins read them (end users and other tenant roles get 403, as the selectors say); client
admins and provider admins/owners change them (a POST by anyone else is 403 and writes nothing). Each
form calls one service of ``modules.sla.services``; a domain error is shown next to the field it names
(``form_errors_apply``), with the service's status (422, 409). The services enqueue the recompute of open
records' timers after a change. The routing middleware has resolved the tenant and set ``request.actor``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from typing import Any

from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html_join
from django.views.decorators.http import require_GET, require_POST

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound, PermissionDenied
from modules.cmdb import selectors as cmdb_selectors
from modules.records.actor import Actor

from . import selectors, services
from .forms import (
    CalendarForm,
    ClosedDayForm,
    ContractForm,
    LevelForm,
    LevelFormSet,
    PolicyForm,
    subdivisions_of,
    target_initial,
)
from .models import BusinessCalendar, Contract, SLAPolicy

POLICY_ALIASES = {
    "response_target_minutes": "response_target",
    "resolution_target_minutes": "resolution_target",
    "configuration_item_id": "ci_number",
}
LEVEL_ERROR = re.compile(r"^levels\[(\d+)\]\.(\w+)(?:\.(\w+))?$")


def _denied(request: TenantRequest, exc: DomainError) -> HttpResponse:
    return render(request, "sla/denied.html", {"error": exc}, status=exc.status)


def _write_denial(actor: Actor) -> PermissionDenied | None:
    """None for admins; the 403 a POST by anyone else gets (the services refuse them too)."""
    return None if actor.may(P.CONFIG_MANAGE) else PermissionDenied("only admins may change SLA settings")


def _found(call: Any, **kwargs: Any) -> Any:
    """A selector's answer; NotFound (a missing or another tenant's id) becomes the console's 404."""
    try:
        return call(**kwargs)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


def _read(request: TenantRequest) -> tuple[Actor, HttpResponse | None]:
    """The actor, and the 403 page for actors who may not read SLA settings (end users, approvers)."""
    actor = request_actor(request)
    try:
        selectors.calendar_list(actor=actor)
    except DomainError as exc:
        return actor, _denied(request, exc)
    return actor, None


@require_GET
def sla_home(request: TenantRequest, tenant: str) -> HttpResponse:
    """Calendars and contracts (with their policy counts), the entry to the SLA settings."""
    actor, denial = _read(request)
    if denial is not None:
        return denial
    context = {
        "calendars": list(selectors.calendar_list(actor=actor)),
        "contracts": list(selectors.contract_list(actor=actor).prefetch_related("policies")),
        "admin": actor.may(P.CONFIG_MANAGE),
    }
    return render(request, "sla/home.html", context)


# Calendars


def _calendar_page(
    request: TenantRequest,
    form: CalendarForm,
    calendar: BusinessCalendar | None,
    actor: Actor,
    *,
    closed_form: ClosedDayForm | None = None,
    status: int = 200,
) -> HttpResponse:
    admin = actor.may(P.CONFIG_MANAGE)
    if not admin:
        for field in form.fields.values():
            field.disabled = True
    country = form["holiday_country"].value() or ""
    form.fields["holiday_country"].widget.attrs.update(
        {
            "hx-get": reverse(
                "sla_subdivisions", kwargs={"tenant": request.tenant.slug if request.tenant else ""}
            ),
            "hx-target": "#subdivisions",
            "hx-swap": "outerHTML",
        }
    )
    context = {
        "form": form,
        "calendar": calendar,
        "admin": admin,
        "closed_form": closed_form or ClosedDayForm(),
        "subdivisions": subdivisions_of(country),
    }
    return render(request, "sla/calendar_form.html", context, status=status)


def calendar_edit(request: TenantRequest, tenant: str, calendar_id: uuid.UUID | None = None) -> HttpResponse:
    """Create (no ``calendar_id``) or show and change a calendar: time zone, public holidays (country and
    subdivision), weekly working intervals (several a day). Closed days are added and removed with
    ``closed_day_add`` / ``closed_day_remove`` on the same page."""
    actor, denial = _read(request)
    if denial is not None:
        return denial
    calendar = None
    initial: dict[str, Any] = {"time_zone": getattr(request.tenant, "time_zone", "UTC") or "UTC"}
    if calendar_id is not None:
        calendar = _found(selectors.calendar_get, actor=actor, calendar_id=calendar_id)
        initial = CalendarForm.initial_from(calendar)
    if request.method != "POST":
        return _calendar_page(request, CalendarForm(initial=initial), calendar, actor)
    write_denial = _write_denial(actor)
    if write_denial is not None:
        return _denied(request, write_denial)
    form = CalendarForm(request.POST, initial=initial)
    if not form.is_valid():
        return _calendar_page(request, form, calendar, actor, status=422)
    data = form.cleaned_data
    try:
        if calendar is None:
            calendar = services.calendar_create(actor=actor, **data)
        else:
            services.calendar_update(actor=actor, calendar=calendar, **data)
    except DomainError as exc:
        form_errors_apply(form, exc)
        return _calendar_page(request, form, calendar, actor, status=exc.status)
    return redirect("sla_calendar_edit", tenant=tenant, calendar_id=calendar.pk)


def _closed_days_post(
    request: TenantRequest, tenant: str, calendar_id: uuid.UUID, change: Any
) -> HttpResponse:
    """Replace a calendar's closed days with ``change(current list)`` through ``calendar_update``."""
    actor, denial = _read(request)
    if denial is not None:
        return denial
    calendar = _found(selectors.calendar_get, actor=actor, calendar_id=calendar_id)
    write_denial = _write_denial(actor)
    if write_denial is not None:
        return _denied(request, write_denial)
    closed_form = ClosedDayForm(request.POST)
    current = [(c.date, c.name) for c in calendar.closed_days.all()]
    form = CalendarForm(initial=CalendarForm.initial_from(calendar))
    try:
        days = change(current, closed_form)
        if days is None:
            return _calendar_page(request, form, calendar, actor, closed_form=closed_form, status=422)
        services.calendar_update(actor=actor, calendar=calendar, closed_days=days)
    except DomainError as exc:
        form_errors_apply(closed_form, exc, aliases={"closed_days": "date"})
        return _calendar_page(request, form, calendar, actor, closed_form=closed_form, status=exc.status)
    return redirect("sla_calendar_edit", tenant=tenant, calendar_id=calendar.pk)


@require_POST
def closed_day_add(request: TenantRequest, tenant: str, calendar_id: uuid.UUID) -> HttpResponse:
    """Add a closed day (a local date) to a calendar; a date listed already is an error on the date."""

    def add(current: list[tuple[dt.date, str]], form: ClosedDayForm) -> list[tuple[dt.date, str]] | None:
        if not form.is_valid():
            return None
        return [*current, (form.cleaned_data["date"], form.cleaned_data["name"])]

    return _closed_days_post(request, tenant, calendar_id, add)


@require_POST
def closed_day_remove(request: TenantRequest, tenant: str, calendar_id: uuid.UUID, day: str) -> HttpResponse:
    """Remove the closed day ``day`` (YYYY-MM-DD) from a calendar; 404 for a date it does not have."""

    def remove(current: list[tuple[dt.date, str]], form: ClosedDayForm) -> list[tuple[dt.date, str]]:
        try:
            date = dt.date.fromisoformat(day)
        except ValueError as exc:
            raise Http404("no such closed day") from exc
        kept = [(d, n) for d, n in current if d != date]
        if len(kept) == len(current):
            raise Http404("no such closed day")
        return kept

    return _closed_days_post(request, tenant, calendar_id, remove)


@require_GET
def subdivision_options(request: TenantRequest, tenant: str) -> HttpResponse:
    """htmx: the ``<datalist id="subdivisions">`` of the holiday subdivisions of ``?holiday_country=``."""
    _, denial = _read(request)
    if denial is not None:
        return denial
    codes = subdivisions_of(request.GET.get("holiday_country", ""))
    options = format_html_join("", '<option value="{}">', ((code,) for code in codes))
    return HttpResponse(f'<datalist id="subdivisions">{options}</datalist>')


# Contracts


def contract_edit(request: TenantRequest, tenant: str, contract_id: uuid.UUID | None = None) -> HttpResponse:
    """Create (no ``contract_id``) or show and change a contract (name, dates, active, calendar); the
    page of an existing contract lists its policies."""
    actor, denial = _read(request)
    if denial is not None:
        return denial
    contract: Contract | None = None
    initial: dict[str, Any] = {"active": True, "starts_on": dt.date.today()}
    if contract_id is not None:
        contract = _found(selectors.contract_get, actor=actor, contract_id=contract_id)
        initial = {f: getattr(contract, f) for f in services.CONTRACT_FIELDS}
    calendars = selectors.calendar_list(actor=actor)
    form = ContractForm(request.POST or None, initial=initial, calendars=calendars)
    status = 200
    if request.method == "POST":
        write_denial = _write_denial(actor)
        if write_denial is not None:
            return _denied(request, write_denial)
        status = 422
        if form.is_valid():
            try:
                if contract is None:
                    contract = services.contract_create(actor=actor, **form.cleaned_data)
                else:
                    services.contract_update(actor=actor, contract=contract, **form.cleaned_data)
            except DomainError as exc:
                form_errors_apply(form, exc, aliases={"calendar_id": "calendar"})
                status = exc.status
            else:
                return redirect("sla_contract_edit", tenant=tenant, contract_id=contract.pk)
    if not actor.may(P.CONFIG_MANAGE):
        for field in form.fields.values():
            field.disabled = True
    policies = list(selectors.policy_list(actor=actor, contract_id=contract.pk)) if contract else []
    context = {"form": form, "contract": contract, "policies": policies, "admin": actor.may(P.CONFIG_MANAGE)}
    return render(request, "sla/contract_form.html", context, status=status)


# Policies


def _policy_initial(policy: SLAPolicy, actor: Actor) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    response, response_unit = target_initial(policy.response_target_minutes)
    resolution, resolution_unit = target_initial(policy.resolution_target_minutes)
    ci_number = ""
    if policy.configuration_item_id:
        try:
            ci_number = cmdb_selectors.ci_get(actor=actor, ci_id=policy.configuration_item_id).number
        except NotFound:
            ci_number = ""
    initial = {
        "name": policy.name,
        "order": policy.order,
        "record_type": policy.record_type,
        "priorities": list(policy.priorities or []),
        "category": policy.category,
        "ci_number": ci_number,
        "response_target": response,
        "response_unit": response_unit,
        "resolution_target": resolution,
        "resolution_unit": resolution_unit,
        "business_time": "business" if policy.business_time else "24x7",
        "calendar": policy.calendar_id,
    }
    levels = [LevelForm.initial_from(lv.kind, lv.percent, lv.actions) for lv in policy.levels.all()]
    return initial, levels


def _default_levels() -> list[dict[str, Any]]:
    """The levels a new policy's form starts with: the services' defaults for both timers."""
    return [
        LevelForm.initial_from(kind, percent, dict(actions))
        for kind in ("response", "resolution")
        for percent, actions in services.DEFAULT_LEVELS
    ]


def _level_errors_apply(formset: Any, used: list[int], form: PolicyForm, exc: DomainError) -> None:
    """Put ``levels[i].field`` / ``levels[i].actions.key`` errors next to that field of the i-th level sent
    (``used`` maps it back to its form in the formset); anything else goes to the policy form."""
    rest = []
    for error in exc.extra.get("errors") or []:
        match = LEVEL_ERROR.match(error.get("field") or "")
        if match is None or int(match.group(1)) >= len(used):
            rest.append(error)
            continue
        level_form = formset.forms[used[int(match.group(1))]]
        name = match.group(3) or match.group(2)
        level_form.add_error(name if name in level_form.fields else None, error["message"])
    if rest or not exc.extra.get("errors"):
        exc.extra["errors"] = rest
        form_errors_apply(form, exc, aliases=POLICY_ALIASES)


def policy_edit(
    request: TenantRequest,
    tenant: str,
    contract_id: uuid.UUID | None = None,
    policy_id: uuid.UUID | None = None,
) -> HttpResponse:
    """Create a policy of a contract (``contract_id``) or show and change one (``policy_id``): conditions
    (record type, priorities, category, CI), response and resolution targets (minutes or hours), business
    time or 24x7, a calendar override and the escalation levels with their actions."""
    actor, denial = _read(request)
    if denial is not None:
        return denial
    policy: SLAPolicy | None = None
    if policy_id is not None:
        policy = _found(selectors.policy_get, actor=actor, policy_id=policy_id)
        contract = policy.contract
        initial, levels_initial = _policy_initial(policy, actor)
    else:
        contract = _found(selectors.contract_get, actor=actor, contract_id=contract_id)
        initial = {"record_type": "incident", "business_time": "business", "order": 100}
        levels_initial = _default_levels()
    calendars = selectors.calendar_list(actor=actor)
    data = request.POST if request.method == "POST" else None
    form = PolicyForm(data, initial=initial, actor=actor, calendars=calendars)
    formset = LevelFormSet(data, initial=levels_initial, prefix="levels")
    status = 200
    if request.method == "POST":
        write_denial = _write_denial(actor)
        if write_denial is not None:
            return _denied(request, write_denial)
        status = 422
        if form.is_valid() and formset.is_valid():
            used = [  # the levels kept: every level shown before, and a filled-in blank one, unless deleted
                index
                for index, level_form in enumerate(formset.forms)
                if not level_form.cleaned_data.get("DELETE")
                and (index < formset.initial_form_count() or level_form.has_changed())
            ]
            levels = [
                services.LevelSpec(
                    formset.forms[i].cleaned_data["kind"],
                    formset.forms[i].cleaned_data["percent"],
                    formset.forms[i].actions(),
                )
                for i in used
            ]
            args = form.service_args()
            try:
                if policy is None:
                    policy = services.policy_create(actor=actor, contract=contract, levels=levels, **args)
                else:
                    services.policy_update(actor=actor, policy=policy, levels=levels, **args)
            except DomainError as exc:
                _level_errors_apply(formset, used, form, exc)
                status = exc.status
            else:
                return redirect("sla_policy_edit", tenant=tenant, policy_id=policy.pk)
    if not actor.may(P.CONFIG_MANAGE):
        for each in [form, *formset.forms]:
            for field in each.fields.values():
                field.disabled = True
    context = {
        "form": form,
        "formset": formset,
        "policy": policy,
        "contract": contract,
        "admin": actor.may(P.CONFIG_MANAGE),
    }
    return render(request, "sla/policy_form.html", context, status=status)
