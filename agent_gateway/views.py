"""Console pages of the agent gateway, under ``/t/<tenant>/agents/`` (decision 0018): the tenant's agents
and the approval queue, enrolment tokens (a new token is shown once), one agent with its keys and
commands, queuing a command and approving another person's. Who may do what is the permission matrix's
(``agents.read``, ``agents.manage``, ``agents.command``, ``agents.approve``); the services check it again.
"""

from __future__ import annotations

import re
import uuid
from typing import Any

from django import forms
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.accounts.services import client_ip
from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.problems import DomainError, NotFound

from . import selectors, services
from .models import Agent, AgentStatus, CommandKind, CommandStatus


def _tenant(request: TenantRequest) -> Any:
    assert request.tenant is not None
    return request.tenant


def _agent(request: TenantRequest, agent_id: uuid.UUID) -> Agent:
    """The tenant's agent ``agent_id`` for the acting person, or 404 (another tenant's id included)."""
    try:
        return selectors.agent_get(actor=request_actor(request), tenant=_tenant(request), agent_id=agent_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc


def _agent_page(request: TenantRequest, agent: Agent, form: CommandForm, status: int = 200) -> HttpResponse:
    """The agent page: what it said at enrolment, its keys, its last 50 commands, the command form."""
    commands = selectors.command_list(actor=request_actor(request), tenant=_tenant(request), agent=agent)
    context = {
        "agent": agent,
        "credentials": agent.credentials.all(),
        "commands": commands[:50],
        "form": form,
    }
    return render(request, "agent_gateway/agent_detail.html", context, status=status)


def agent_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Agents by status, the approval queue first, and commands waiting for approval."""
    actor = request_actor(request)
    owner = _tenant(request)
    agents = list(selectors.agent_list(actor=actor, tenant=owner))
    context = {
        "pending": [a for a in agents if a.status == AgentStatus.PENDING],
        "agents": [a for a in agents if a.status != AgentStatus.PENDING],
        "awaiting": selectors.commands_awaiting_approval(actor=actor, tenant=owner)[:50],
    }
    return render(request, "agent_gateway/agent_list.html", context)


class TokenForm(forms.Form):
    label = forms.CharField(
        max_length=100, required=False, help_text="What it is for, e.g. “London laptops”."
    )
    site = forms.CharField(
        max_length=100,
        required=False,
        help_text="Agents enrolled with it are placed in this site in the CMDB.",
    )
    expires_in_hours = forms.IntegerField(min_value=1, max_value=8760, initial=24, label="Valid for (hours)")
    max_uses = forms.IntegerField(min_value=1, max_value=100_000, initial=1, label="Agents it may enrol")
    requires_approval = forms.BooleanField(
        required=False,
        initial=True,
        label="Hold new agents for approval",
        help_text="A technician accepts each.",
    )


def enrolment_tokens(request: TenantRequest, tenant: str) -> HttpResponse:
    """The tenant's enrolment tokens; POST makes one and shows it once (never stored, never shown again)."""
    actor = request_actor(request)
    owner = _tenant(request)
    form = TokenForm(request.POST or None)
    created = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                row, secret = services.enrolment_token_create(
                    actor=actor, tenant=owner, ip=client_ip(request), **form.cleaned_data
                )
            except DomainError as exc:
                form_errors_apply(form, exc)
                status = exc.status
            else:
                created = {"row": row, "secret": secret}
                form = TokenForm()
        else:
            status = 422
    tokens = selectors.enrolment_token_list(actor=actor, tenant=owner)
    context = {"form": form, "tokens": tokens, "created": created}
    return render(request, "agent_gateway/tokens.html", context, status=status)


@require_POST
def enrolment_token_revoke(request: TenantRequest, tenant: str, token_id: int) -> HttpResponse:
    actor = request_actor(request)
    try:
        token = selectors.enrolment_token_get(actor=actor, tenant=_tenant(request), token_id=token_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    services.enrolment_token_revoke(actor=actor, token=token, ip=client_ip(request))
    messages.success(request, f"Token {token.prefix}… revoked: it enrols no more agents.")
    return redirect("agent_tokens", tenant=tenant)


class CommandForm(forms.Form):
    kind = forms.ChoiceField(choices=CommandKind.choices)
    service = forms.CharField(
        max_length=128, required=False, help_text="For “Restart a service”: its unit name."
    )
    script = forms.ChoiceField(
        required=False, choices=[], help_text="For “Run a script”: an approved script."
    )
    params = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For “Run a script”: one NAME=value per line.",
    )

    def __init__(self, *args: Any, scripts: list[tuple[str, str]], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["script"].choices = [("", "—"), *scripts]  # type: ignore[attr-defined]

    def clean_params(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for number, line in enumerate(str(self.cleaned_data.get("params") or "").splitlines(), start=1):
            if not line.strip():
                continue
            name, sep, value = line.partition("=")
            if not sep or not re.match(r"^[A-Za-z][A-Za-z0-9_]{0,31}$", name.strip()):
                raise forms.ValidationError(f"Line {number}: write NAME=value.")
            values[name.strip()] = value
        return values


def _scripts(actor: Any) -> list[tuple[str, str]]:
    """The tenant's approved scripts for the command form (modules.monitoring's library)."""
    from modules.monitoring.selectors import script_list

    approved = script_list(actor=actor).filter(approved_at__isnull=False)
    return [(str(s.pk), f"{s.name} (v{s.version})") for s in approved]


def agent_detail(request: TenantRequest, tenant: str, agent_id: uuid.UUID) -> HttpResponse:
    """One agent: what it said at enrolment, its keys, its commands, and the command form."""
    return _agent_page(
        request, _agent(request, agent_id), CommandForm(scripts=_scripts(request_actor(request)))
    )


@require_POST
def command_new(request: TenantRequest, tenant: str, agent_id: uuid.UUID) -> HttpResponse:
    actor = request_actor(request)
    agent = _agent(request, agent_id)
    form = CommandForm(request.POST, scripts=_scripts(actor))
    status = 422
    if form.is_valid():
        data = form.cleaned_data
        params: dict[str, Any] = {}
        if data["kind"] == CommandKind.RESTART_SERVICE:
            params = {"service": data["service"]}
        elif data["kind"] == CommandKind.RUN_SCRIPT:
            params = data["params"]
        try:
            command = services.command_request(
                actor=actor,
                agent=agent,
                kind=data["kind"],
                params=params,
                script_id=uuid.UUID(data["script"]) if data["script"] else None,
                ip=client_ip(request),
            )
        except DomainError as exc:
            form_errors_apply(form, exc, aliases={"script_id": "script"})
            status = exc.status
        else:
            waiting = command.status == CommandStatus.AWAITING_APPROVAL
            messages.success(
                request,
                f"{command.get_kind_display()} queued"
                + (": it waits for another person's approval." if waiting else " and signed."),
            )
            return redirect("agent_detail", tenant=tenant, agent_id=agent.pk)
    return _agent_page(request, agent, form, status)


@require_POST
def command_decide(request: TenantRequest, tenant: str, command_id: uuid.UUID) -> HttpResponse:
    """Approve or decline another person's command (``decision`` = approve | decline); back to the agent
    page when ``back`` is ``agent``, else to the agents list."""
    actor = request_actor(request)
    try:
        command = selectors.command_get(actor=actor, tenant=_tenant(request), command_id=command_id)
    except NotFound as exc:
        raise Http404(exc.detail) from exc
    approve = request.POST.get("decision") == "approve"
    try:
        services.command_approve(actor=actor, command=command, approve=approve, ip=client_ip(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, "Command approved and signed." if approve else "Command declined.")
    if request.POST.get("back") == "agent":
        return redirect("agent_detail", tenant=tenant, agent_id=command.agent_id)
    return redirect("agent_list", tenant=tenant)


@require_POST
def agent_decide(request: TenantRequest, tenant: str, agent_id: uuid.UUID) -> HttpResponse:
    """Accept or reject an agent from the approval queue (``decision`` = approve | reject)."""
    actor = request_actor(request)
    agent = _agent(request, agent_id)
    approve = request.POST.get("decision") == "approve"
    try:
        services.agent_decide(actor=actor, agent=agent, approve=approve, ip=client_ip(request))
    except DomainError as exc:
        messages.error(request, exc.detail)
    else:
        messages.success(request, f"{agent.hostname} {'accepted' if approve else 'rejected'}.")
    return redirect("agent_list", tenant=tenant)


@require_POST
def agent_revoke(request: TenantRequest, tenant: str, agent_id: uuid.UUID) -> HttpResponse:
    """Revoke an agent: its keys stop working at once and its waiting commands expire."""
    actor = request_actor(request)
    agent = _agent(request, agent_id)
    services.agent_revoke(actor=actor, agent=agent, ip=client_ip(request))
    messages.success(request, f"{agent.hostname} revoked: it is refused from its next request.")
    return redirect("agent_detail", tenant=tenant, agent_id=agent.pk)
