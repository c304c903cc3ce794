"""Reads of the agent gateway for the console (decision 0018). Everything is scoped to one tenant: an
id of another tenant answers NotFound, like one that never existed."""

from __future__ import annotations

import uuid

from django.db.models import QuerySet

from controlplane.permissions import Permission
from controlplane.problems import NotFound, PermissionDenied
from modules.records.actor import Actor
from tenants.models import Tenant

from .models import Agent, Command, CommandStatus, EnrolmentToken


def _require(actor: Actor) -> None:
    if not actor.may(Permission.AGENTS_READ):
        raise PermissionDenied("needs agents.read")


def agent_list(*, actor: Actor, tenant: Tenant, status: str | None = None) -> QuerySet[Agent]:
    """The tenant's agents by host name (``status`` narrows: pending, active, rejected, revoked)."""
    _require(actor)
    agents = Agent.objects.filter(tenant=tenant)
    return agents.filter(status=status) if status else agents


def agent_get(*, actor: Actor, tenant: Tenant, agent_id: uuid.UUID) -> Agent:
    """One agent of the tenant. Raises NotFound."""
    _require(actor)
    agent = Agent.objects.select_related("tenant", "decided_by").filter(pk=agent_id, tenant=tenant).first()
    if agent is None:
        raise NotFound("no such agent")
    return agent


def enrolment_token_list(*, actor: Actor, tenant: Tenant) -> QuerySet[EnrolmentToken]:
    """The tenant's enrolment tokens, newest first (prefixes only; the tokens are not kept)."""
    _require(actor)
    return EnrolmentToken.objects.filter(tenant=tenant).select_related("created_by", "revoked_by")


def enrolment_token_get(*, actor: Actor, tenant: Tenant, token_id: int) -> EnrolmentToken:
    _require(actor)
    token = EnrolmentToken.objects.select_related("tenant").filter(pk=token_id, tenant=tenant).first()
    if token is None:
        raise NotFound("no such token")
    return token


def command_list(*, actor: Actor, tenant: Tenant, agent: Agent | None = None) -> QuerySet[Command]:
    """Commands of the tenant (or of one agent), newest first, with who asked and who approved."""
    _require(actor)
    commands = Command.objects.filter(tenant=tenant).select_related("agent", "requested_by", "approved_by")
    return commands.filter(agent=agent) if agent is not None else commands


def command_get(*, actor: Actor, tenant: Tenant, command_id: uuid.UUID) -> Command:
    _require(actor)
    command = Command.objects.select_related("agent", "tenant").filter(pk=command_id, tenant=tenant).first()
    if command is None:
        raise NotFound("no such command")
    return command


def commands_awaiting_approval(*, actor: Actor, tenant: Tenant) -> QuerySet[Command]:
    return command_list(actor=actor, tenant=tenant).filter(status=CommandStatus.AWAITING_APPROVAL)
