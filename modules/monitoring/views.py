"""Console pages for monitoring: /t/<tenant>/monitoring/... Alerts, alert rules, the script library.

``agents.read`` reads every page; rules change with ``agents.manage``, scripts with ``agents.command``
and are approved with ``agents.approve`` (controlplane.routes refuses the others before the view runs;
the services refuse them again, writing nothing). Each form calls one service; a domain error is shown
next to the field it names with the service's status. The routing middleware has set ``request.actor``.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django import forms
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound, PermissionDenied

from . import selectors, services
from .models import AlertRule, Script

# Impact and urgency of the incidents a rule opens (the incidents module's three ITIL levels).
LEVELS = [(1, "1 - High"), (2, "2 - Medium"), (3, "3 - Low")]


def _denied(request: TenantRequest, exc: DomainError) -> HttpResponse:
    return render(request, "monitoring/denied.html", {"error": exc}, status=exc.status)


def _found(call: Any, **kwargs: Any) -> Any:
    try:
        return call(**kwargs)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


@require_GET
def alert_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Open alerts, then the most recent cleared ones."""
    actor = request_actor(request)
    try:
        open_alerts = selectors.alert_list(actor=actor, state="open")
        cleared = selectors.alert_list(actor=actor, state="cleared", limit=50)
    except DomainError as exc:
        return _denied(request, exc)
    return render(request, "monitoring/alerts.html", {"open_alerts": open_alerts, "cleared": cleared})


# Alert rules


class RuleForm(forms.Form):
    name = forms.CharField(max_length=120)
    kind = forms.ChoiceField(choices=AlertRule.Kind.choices, label="Condition")
    threshold = forms.FloatField(
        required=False,
        min_value=0,
        max_value=100,
        label="Threshold (%)",
        help_text="CPU, memory and disk rules.",
    )
    minutes = forms.IntegerField(min_value=1, initial=5, label="For how many minutes")
    service = forms.CharField(
        max_length=128, required=False, help_text="Service-stopped rules: the service name."
    )
    impact = forms.TypedChoiceField(choices=LEVELS, coerce=int, initial=2)
    urgency = forms.TypedChoiceField(choices=LEVELS, coerce=int, initial=2)
    enabled = forms.BooleanField(required=False, initial=True)


@require_GET
def rule_list(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    try:
        rules = list(selectors.alert_rule_list(actor=actor))
    except DomainError as exc:
        return _denied(request, exc)
    return render(request, "monitoring/rules.html", {"rules": rules, "manager": actor.may(P.AGENTS_MANAGE)})


def rule_edit(request: TenantRequest, tenant: str, rule_id: uuid.UUID | None = None) -> HttpResponse:
    """A rule's form: new (no ``rule_id``) or an existing rule. Readers see it disabled."""
    actor = request_actor(request)
    rule = _found(selectors.alert_rule_get, actor=actor, rule_id=rule_id) if rule_id else None
    if rule is None and not selectors.may_read(actor):
        return _denied(request, PermissionDenied("only those who may see endpoint agents see monitoring"))
    initial = {f: getattr(rule, f) for f in services.RULE_FIELDS} if rule else None
    form = RuleForm(request.POST or None, initial=initial)
    manager = actor.may(P.AGENTS_MANAGE)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                if rule is None:
                    services.alert_rule_create(actor=actor, **form.cleaned_data)
                else:
                    services.alert_rule_update(actor=actor, rule=rule, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc)
                status = exc.status
            else:
                return redirect("monitoring_rules", tenant=tenant)
    if not manager:
        for field in form.fields.values():
            field.disabled = True
    context = {"form": form, "rule": rule, "manager": manager}
    return render(request, "monitoring/rule_form.html", context, status=status)


@require_POST
def rule_delete(request: TenantRequest, tenant: str, rule_id: uuid.UUID) -> HttpResponse:
    actor = request_actor(request)
    rule = _found(selectors.alert_rule_get, actor=actor, rule_id=rule_id)
    try:
        services.alert_rule_delete(actor=actor, rule=rule)
    except DomainError as exc:
        return _denied(request, exc)
    return redirect("monitoring_rules", tenant=tenant)


# The script library


class ScriptForm(forms.Form):
    name = forms.CharField(max_length=100)
    interpreter = forms.ChoiceField(choices=Script.Interpreter.choices)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000)
    parameters = forms.CharField(
        required=False,
        max_length=600,
        help_text="Names separated by commas or spaces; the script reads each as ITSM_PARAM_<NAME>.",
    )
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 16, "spellcheck": "false", "class": "code"}),
        strip=False,
        max_length=services.MAX_BODY_CHARS,
    )

    def clean_parameters(self) -> list[str]:
        return [p for p in re.split(r"[\s,]+", self.cleaned_data.get("parameters") or "") if p]


@require_GET
def script_list(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    try:
        scripts = list(selectors.script_list(actor=actor))
    except DomainError as exc:
        return _denied(request, exc)
    return render(
        request, "monitoring/scripts.html", {"scripts": scripts, "writer": actor.may(P.AGENTS_COMMAND)}
    )


def script_edit(request: TenantRequest, tenant: str, script_id: uuid.UUID | None = None) -> HttpResponse:
    """A script's page: its form (new or existing; disabled for readers) and, for approvers, the
    approve button of the version shown."""
    actor = request_actor(request)
    script = _found(selectors.script_get, actor=actor, script_id=script_id) if script_id else None
    if script is None and not selectors.may_read(actor):
        return _denied(request, PermissionDenied("only those who may see endpoint agents see monitoring"))
    initial = None
    if script is not None:
        initial = {
            "name": script.name,
            "interpreter": script.interpreter,
            "description": script.description,
            "parameters": ", ".join(script.parameters),
            "body": script.body,
        }
    form = ScriptForm(request.POST or None, initial=initial)
    writer = actor.may(P.AGENTS_COMMAND)
    status = 200
    if request.method == "POST":
        status = 422
        if form.is_valid():
            try:
                if script is None:
                    script = services.script_create(actor=actor, **form.cleaned_data)
                else:
                    script = services.script_update(actor=actor, script=script, **form.cleaned_data)
            except DomainError as exc:
                if exc.status == 403:
                    return _denied(request, exc)
                form_errors_apply(form, exc)
                status = exc.status
            else:
                return redirect("monitoring_script_edit", tenant=tenant, script_id=script.pk)
    if not writer:
        for field in form.fields.values():
            field.disabled = True
    context = {
        "form": form,
        "script": script,
        "writer": writer,
        "approver": actor.may(P.AGENTS_APPROVE),
        "own_version": script is not None and script.author_user_id == actor.user_id,
    }
    return render(request, "monitoring/script_form.html", context, status=status)


@require_POST
def script_approve(request: TenantRequest, tenant: str, script_id: uuid.UUID) -> HttpResponse:
    """Approve the version the approver saw (``version`` in the form); 403 for its author, 409 when it
    was edited meanwhile."""
    actor = request_actor(request)
    script = _found(selectors.script_get, actor=actor, script_id=script_id)
    try:
        version = int(request.POST.get("version", ""))
    except ValueError:
        version = 0
    try:
        services.script_approve(actor=actor, script=script, version=version)
    except DomainError as exc:
        return _denied(request, exc)
    return redirect("monitoring_script_edit", tenant=tenant, script_id=script.pk)
