"""Writes of the agent gateway (docs/decisions/0018-agent-gateway.md): enrolment tokens, enrolment, the
approval queue, revocation, credential rotation, commands and their results. Control plane.

Console callers pass the tenant ``Actor`` (its role decides, controlplane.permissions); the gateway's cold
paths call the agent-facing functions (``agent_enrol``, ``credential_rotate``, ``credential_activate``,
``command_result_record``) with what the signed request proved. Every change is a ``SecurityEvent``
``agent.*``; every change the running gateways must see is announced with ``NOTIFY agent_gateway`` in
the same transaction (delivered on commit): ``cred:<agent id>`` drops the agent's cached credentials,
``cmd:<agent id>`` says it may have commands waiting.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import uuid
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from controlplane.accounts.models import User
from controlplane.accounts.services import security_event_record
from controlplane.permissions import Permission
from controlplane.problems import Conflict, DomainError, InvalidInput, NotFound, PermissionDenied
from modules.records.actor import Actor
from tenants.models import Tenant

from .models import (
    PENDING_COMMAND_STATUSES,
    Agent,
    AgentCredential,
    AgentStatus,
    Command,
    CommandKind,
    CommandStatus,
    CredentialState,
    EnrolmentToken,
)
from .signing import b64url, canonical_json, key_id_of, signing_key

TOKEN_PREFIX = "itsm_enr_"  # noqa: S105 (the prefix of every token, not a secret)
COMMAND_LIFETIME = dt.timedelta(hours=24)
SERVICE_NAME = re.compile(r"^[A-Za-z0-9@._-]{1,128}$")
# Units that are not services: restarting reboot.target or poweroff.target is no "restart a service".
NOT_A_SERVICE = re.compile(r"\.(target|socket|mount|automount|swap|timer|path|slice|scope|device)$")
SCRIPT_PARAM_VALUE_MAX = 1024
# Kinds that change the endpoint need a second person's approval (four eyes, decision 0018).
NEEDS_APPROVAL = frozenset({CommandKind.RESTART_SERVICE, CommandKind.RUN_SCRIPT})


class EnrolmentRefused(DomainError):
    """An enrolment token that is unknown, expired, used up or revoked: one answer for all (401)."""

    status = 401
    slug = "enrolment-token-invalid"
    title = "The enrolment token is not valid"


def _bad(field: str, message: str) -> InvalidInput:
    return InvalidInput(message, errors=[{"field": field, "message": message}])


def _notify(kind: str, agent_id: uuid.UUID) -> None:
    """Tell every gateway process, when this transaction commits, that ``agent_id`` changed."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_notify('agent_gateway', %s)", [f"{kind}:{agent_id}"])


def _require(actor: Actor, permission: Permission, tenant: Tenant) -> None:
    """The actor holds ``permission`` and acts in ``tenant`` (the schema the routing middleware set)."""
    if not actor.may(permission):
        raise PermissionDenied(f"needs {permission}")
    current = getattr(connection, "tenant", None)
    if getattr(current, "pk", None) != tenant.pk:
        raise PermissionDenied("the actor does not act in this tenant")


def _audit(verb: str, *, tenant: Tenant, actor_user_id: int | None, ip: str | None, **details: Any) -> None:
    security_event_record(
        verb=verb,
        actor_user_id=actor_user_id,
        provider_id=tenant.provider_id,
        tenant_id=tenant.pk,
        ip=ip,
        details={k: str(v) if isinstance(v, uuid.UUID) else v for k, v in details.items()},
    )


# --- enrolment tokens ----------------------------------------------------------------------------------


def token_hash(token: str) -> str:
    """SHA-256 (hex) of an enrolment token: a 256-bit random secret needs no slow hash."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


@transaction.atomic
def enrolment_token_create(
    *,
    actor: Actor,
    tenant: Tenant,
    label: str = "",
    site: str = "",
    expires_in_hours: int = 24,
    max_uses: int = 1,
    requires_approval: bool = False,
    ip: str | None = None,
) -> tuple[EnrolmentToken, str]:
    """A new enrolment token of ``tenant``: returns the row and the token itself, shown once
    (``itsm_enr_`` + 43 base64url characters, 256 random bits). ``expires_in_hours`` 1 to 8,760,
    ``max_uses`` 1 to 100,000. Needs ``agents.manage``. Raises InvalidInput naming the field. Audited as
    ``agent.enrolment_token.created``."""
    _require(actor, Permission.AGENTS_MANAGE, tenant)
    if not 1 <= expires_in_hours <= 8760:
        raise _bad("expires_in_hours", "Between 1 hour and 365 days (8,760 hours).")
    if not 1 <= max_uses <= 100_000:
        raise _bad("max_uses", "Between 1 and 100,000 agents.")
    if len(label) > 100:
        raise _bad("label", "At most 100 characters.")
    if len(site) > 100:
        raise _bad("site", "At most 100 characters.")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = EnrolmentToken.objects.create(
        tenant=tenant,
        label=label.strip(),
        site=site.strip(),
        prefix=token[: len(TOKEN_PREFIX) + 6],
        token_hash=token_hash(token),
        requires_approval=requires_approval,
        expires_at=timezone.now() + dt.timedelta(hours=expires_in_hours),
        max_uses=max_uses,
        created_by_id=actor.user_id,
    )
    _audit(
        "agent.enrolment_token.created",
        tenant=tenant,
        actor_user_id=actor.user_id,
        ip=ip,
        token=row.prefix,
        site=row.site,
        max_uses=max_uses,
        requires_approval=requires_approval,
    )
    return row, token


@transaction.atomic
def enrolment_token_revoke(*, actor: Actor, token: EnrolmentToken, ip: str | None = None) -> EnrolmentToken:
    """Revoke a token now (agents already enrolled keep their own credentials). Needs ``agents.manage``;
    a token of another tenant answers NotFound. Audited as ``agent.enrolment_token.revoked``."""
    tenant = token.tenant
    _require(actor, Permission.AGENTS_MANAGE, tenant)
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.revoked_by_id = actor.user_id
        token.save(update_fields=["revoked_at", "revoked_by"])
        _audit(
            "agent.enrolment_token.revoked",
            tenant=tenant,
            actor_user_id=actor.user_id,
            ip=ip,
            token=token.prefix,
        )
    return token


# --- enrolment and the approval queue --------------------------------------------------------------------


def agent_enrol(
    *,
    token: str,
    public_key: bytes,
    hostname: str,
    os: str,
    agent_version: str,
    ip: str | None = None,
) -> tuple[Agent, AgentCredential, EnrolmentToken]:
    """Enrol a new agent with an enrolment token and its Ed25519 public key (32 raw bytes; the caller has
    checked the request's signature with it). Returns the agent (``active``, or ``pending`` when the token
    requires approval), its credential and the token.

    Raises EnrolmentRefused (401) for an unknown, revoked, expired or used-up token (audited as
    ``agent.enrol.refused`` with the reason and, when known, the token's prefix and tenant, after the
    attempt rolled back) and Conflict when the key is already some agent's (a replayed enrolment)."""
    try:
        return _enrol(
            token=token,
            public_key=public_key,
            hostname=hostname,
            os=os,
            agent_version=agent_version,
            ip=ip,
        )
    except EnrolmentRefused as exc:
        row = exc.extra.pop("token_row", None)
        security_event_record(
            verb="agent.enrol.refused",
            provider_id=row.tenant.provider_id if row else None,
            tenant_id=row.tenant_id if row else None,
            ip=ip,
            details={
                "reason": exc.extra.pop("reason", ""),
                "token": row.prefix if row else "",
                "hostname": hostname[:253],
            },
        )
        raise


@transaction.atomic
def _enrol(
    *, token: str, public_key: bytes, hostname: str, os: str, agent_version: str, ip: str | None
) -> tuple[Agent, AgentCredential, EnrolmentToken]:
    row = (
        EnrolmentToken.objects.select_for_update()
        .select_related("tenant")
        .filter(token_hash=token_hash(token))
        .first()
    )
    now = timezone.now()
    reason = (
        "unknown"
        if row is None
        else "revoked"
        if row.revoked_at is not None
        else "expired"
        if row.expires_at <= now
        else "used-up"
        if row.uses >= row.max_uses
        else ""
    )
    if reason:
        raise EnrolmentRefused("the enrolment token is not valid", reason=reason, token_row=row)
    assert row is not None
    key_id = key_id_of(public_key)
    if AgentCredential.objects.filter(key_id=key_id).exists():
        raise Conflict("this key is already enrolled")
    row.uses += 1
    row.save(update_fields=["uses"])
    agent = Agent.objects.create(
        tenant=row.tenant,
        enrolment_token=row,
        site=row.site,
        hostname=hostname.strip()[:253],
        os=os.strip()[:32],
        agent_version=agent_version.strip()[:32],
        status=AgentStatus.PENDING if row.requires_approval else AgentStatus.ACTIVE,
        enrolled_ip=ip,
    )
    credential = AgentCredential.objects.create(
        agent=agent, key_id=key_id, public_key=public_key, state=CredentialState.ACTIVE, activated_at=now
    )
    _audit(
        "agent.enrolled",
        tenant=row.tenant,
        actor_user_id=None,
        ip=ip,
        agent=agent.pk,
        hostname=agent.hostname,
        token=row.prefix,
        status=agent.status,
        key_id=key_id,
    )
    return agent, credential, row


@transaction.atomic
def agent_decide(*, actor: Actor, agent: Agent, approve: bool, ip: str | None = None) -> Agent:
    """Accept (``active``) or reject (``rejected``) an agent waiting in the approval queue. Needs
    ``agents.manage``; an agent that is not pending raises Conflict. Audited as ``agent.approved`` or
    ``agent.rejected``; running gateways drop the cached state."""
    _require(actor, Permission.AGENTS_MANAGE, agent.tenant)
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status != AgentStatus.PENDING:
        raise Conflict("this agent is not waiting for approval")
    agent.status = AgentStatus.ACTIVE if approve else AgentStatus.REJECTED
    agent.decided_at, agent.decided_by_id = timezone.now(), actor.user_id
    agent.save(update_fields=["status", "decided_at", "decided_by"])
    if not approve:
        agent.credentials.update(state=CredentialState.REVOKED, retired_at=agent.decided_at)
    _audit(
        "agent.approved" if approve else "agent.rejected",
        tenant=agent.tenant,
        actor_user_id=actor.user_id,
        ip=ip,
        agent=agent.pk,
        hostname=agent.hostname,
    )
    _notify("cred", agent.pk)
    return agent


@transaction.atomic
def agent_revoke(*, actor: Actor, agent: Agent, ip: str | None = None) -> Agent:
    """Revoke an agent: every credential is revoked, its waiting commands expire, and its next request is
    refused (401 ``agent-revoked``) by every gateway. Needs ``agents.manage``. Audited as
    ``agent.revoked``."""
    _require(actor, Permission.AGENTS_MANAGE, agent.tenant)
    agent = Agent.objects.select_for_update().get(pk=agent.pk)
    if agent.status == AgentStatus.REVOKED:
        return agent
    now = timezone.now()
    agent.status, agent.decided_at, agent.decided_by_id = AgentStatus.REVOKED, now, actor.user_id
    agent.save(update_fields=["status", "decided_at", "decided_by"])
    agent.credentials.exclude(state=CredentialState.REVOKED).update(
        state=CredentialState.REVOKED, retired_at=now
    )
    agent.commands.filter(status__in=[CommandStatus.AWAITING_APPROVAL, *PENDING_COMMAND_STATUSES]).update(
        status=CommandStatus.EXPIRED, finished_at=now, reason="agent revoked"
    )
    _audit(
        "agent.revoked",
        tenant=agent.tenant,
        actor_user_id=actor.user_id,
        ip=ip,
        agent=agent.pk,
        hostname=agent.hostname,
    )
    _notify("cred", agent.pk)
    _notify("cmd", agent.pk)
    return agent


# --- credentials -----------------------------------------------------------------------------------------


@transaction.atomic
def credential_rotate(*, agent_id: uuid.UUID, public_key: bytes, ip: str | None = None) -> AgentCredential:
    """Add the agent's next key (its request was signed with its current, active key). The new credential
    is ``pending`` until its first use (``credential_activate``); an earlier pending one is dropped.
    Raises Conflict when the key is already enrolled. Audited as ``agent.credential.rotated``."""
    agent = Agent.objects.select_for_update().select_related("tenant").get(pk=agent_id)
    key_id = key_id_of(public_key)
    if AgentCredential.objects.filter(key_id=key_id).exists():
        raise Conflict("this key is already enrolled")
    agent.credentials.filter(state=CredentialState.PENDING).delete()
    credential = AgentCredential.objects.create(
        agent=agent, key_id=key_id, public_key=public_key, state=CredentialState.PENDING
    )
    _audit(
        "agent.credential.rotated",
        tenant=agent.tenant,
        actor_user_id=None,
        ip=ip,
        agent=agent.pk,
        key_id=key_id,
    )
    _notify("cred", agent.pk)
    return credential


@transaction.atomic
def credential_activate(*, agent_id: uuid.UUID, key_id: str, ip: str | None = None) -> None:
    """The first request signed with a pending key: it becomes ``active`` and the agent's other active
    key ``superseded`` (a copy still signing with it is refused as a suspected clone). Audited as
    ``agent.credential.activated``."""
    agent = Agent.objects.select_for_update().select_related("tenant").get(pk=agent_id)
    credential = agent.credentials.filter(key_id=key_id, state=CredentialState.PENDING).first()
    if credential is None:
        return
    now = timezone.now()
    agent.credentials.filter(state=CredentialState.ACTIVE).update(
        state=CredentialState.SUPERSEDED, retired_at=now
    )
    credential.state, credential.activated_at = CredentialState.ACTIVE, now
    credential.save(update_fields=["state", "activated_at"])
    _audit(
        "agent.credential.activated",
        tenant=agent.tenant,
        actor_user_id=None,
        ip=ip,
        agent=agent.pk,
        key_id=key_id,
    )
    _notify("cred", agent.pk)


def refusal_record(
    *, reason: str, agent_id: uuid.UUID | None, tenant_id: int | None, ip: str | None, **details: Any
) -> None:
    """Audit a refused agent request as ``agent.refused`` (``agent.clone_suspected`` for a superseded
    key) with the reason slug of 0018."""
    tenant = Tenant.objects.filter(pk=tenant_id).only("provider_id").first() if tenant_id else None
    security_event_record(
        verb="agent.clone_suspected" if reason == "credential-superseded" else "agent.refused",
        provider_id=tenant.provider_id if tenant else None,
        tenant_id=tenant_id,
        ip=ip,
        details={"reason": reason, "agent": str(agent_id) if agent_id else "", **details},
    )


# --- commands --------------------------------------------------------------------------------------------


def _clean_params(kind: str, params: dict[str, Any], script: dict[str, Any] | None) -> dict[str, str]:
    if kind in (CommandKind.COLLECT_INVENTORY, CommandKind.ROTATE_CREDENTIAL):
        return {}
    if kind == CommandKind.RESTART_SERVICE:
        service = str(params.get("service") or "")
        if not SERVICE_NAME.fullmatch(service) or NOT_A_SERVICE.search(service):
            raise _bad("service", "A service name: letters, digits and @ . _ - (at most 128).")
        return {"service": service}
    if kind == CommandKind.RUN_SCRIPT:
        assert script is not None
        declared = list(script.get("parameters") or [])
        values = {str(k): v for k, v in (params or {}).items()}
        unknown = sorted(set(values) - set(declared))
        if unknown:
            raise _bad("params", f"The script takes no parameter {unknown[0]}.")
        cleaned: dict[str, str] = {}
        for name in declared:
            value = values.get(name, "")
            if not isinstance(value, str) or len(value) > SCRIPT_PARAM_VALUE_MAX or "\x00" in value:
                raise _bad(f"params.{name}", f"Text of at most {SCRIPT_PARAM_VALUE_MAX} characters.")
            cleaned[name] = value
        return cleaned
    raise _bad("kind", "Not a command agents run.")


@transaction.atomic
def command_request(
    *,
    actor: Actor,
    agent: Agent,
    kind: str,
    params: dict[str, Any] | None = None,
    script_id: uuid.UUID | None = None,
    ip: str | None = None,
) -> Command:
    """Queue an allow-listed command for an active agent. Needs ``agents.command``.

    ``restart_service`` (``params: {"service": name}``) and ``run_script`` (``script_id`` of an approved
    script of the tenant's library, ``params`` its declared parameters as text) wait for another
    person's approval (``command_approve``); ``collect_inventory`` and ``rotate_credential`` are approved
    by the requester and signed at once. Raises PermissionDenied, Conflict (agent not active, script not
    approved), NotFound (script), InvalidInput naming the field; nothing is written on a refusal. Audited
    as ``agent.command.requested``."""
    _require(actor, Permission.AGENTS_COMMAND, agent.tenant)
    if kind not in CommandKind.values:
        raise _bad("kind", "Not a command agents run.")
    if agent.status != AgentStatus.ACTIVE:
        raise Conflict("commands go to active agents only")
    script: dict[str, Any] | None = None
    if kind == CommandKind.RUN_SCRIPT:
        from modules.monitoring.ingest import script_for_command

        if script_id is None:
            raise _bad("script_id", "Choose a script from the library.")
        approved = script_for_command(script_id=script_id)
        script = {
            "id": str(approved.id),
            "name": approved.name,
            "interpreter": approved.interpreter,
            "body": approved.body,
            "sha256": approved.sha256,
            "version": approved.version,
            "parameters": list(approved.parameters),
        }
    cleaned = _clean_params(kind, params or {}, script)
    command = Command.objects.create(
        agent=agent,
        tenant=agent.tenant,
        kind=kind,
        params=cleaned,
        script=script,
        status=CommandStatus.AWAITING_APPROVAL,
        requested_by_id=actor.user_id,
    )
    _audit(
        "agent.command.requested",
        tenant=agent.tenant,
        actor_user_id=actor.user_id,
        ip=ip,
        agent=agent.pk,
        command=command.pk,
        kind=kind,
        params=sorted(cleaned)
        if kind == CommandKind.RUN_SCRIPT
        else cleaned,  # a script's values may be secret
        script=(script or {}).get("name", ""),
    )
    if kind not in NEEDS_APPROVAL:
        _sign(command, approver_id=actor.user_id)
        _audit(
            "agent.command.approved",
            tenant=agent.tenant,
            actor_user_id=actor.user_id,
            ip=ip,
            agent=agent.pk,
            command=command.pk,
            kind=kind,
            self_approved=True,
        )
    return command


def _sign(command: Command, *, approver_id: int | None) -> None:
    """Approve and sign: the canonical payload of 0018, signed with the platform's key; then tell the
    gateways the agent has a command waiting."""
    now = timezone.now()
    emails = dict(
        User.objects.filter(pk__in=[command.requested_by_id, approver_id]).values_list("pk", "email")
    )
    key_row, private = signing_key()
    script = None
    if command.script:
        script = {k: command.script[k] for k in ("name", "interpreter", "body", "sha256")}
    payload = canonical_json(
        {
            "id": str(command.pk),
            "agent_id": str(command.agent_id),
            "kind": command.kind,
            "params": command.params,
            "script": script,
            "issued_at": now.isoformat().replace("+00:00", "Z"),
            "expires_at": (now + COMMAND_LIFETIME).isoformat().replace("+00:00", "Z"),
            "requested_by": emails.get(command.requested_by_id or 0, ""),
            "approved_by": emails.get(approver_id or 0, ""),
        }
    )
    command.payload, command.signature = payload, private.sign(payload)
    command.signing_key = key_row
    command.approved_by_id, command.approved_at = approver_id, now
    command.expires_at = now + COMMAND_LIFETIME
    command.status = CommandStatus.QUEUED
    command.save(
        update_fields=[
            "payload",
            "signature",
            "signing_key",
            "approved_by",
            "approved_at",
            "expires_at",
            "status",
        ]
    )
    _notify("cmd", command.agent_id)


def command_approve(
    *, actor: Actor, command: Command, approve: bool = True, ip: str | None = None
) -> Command:
    """Approve (sign and queue) or decline a command waiting for approval. Needs ``agents.approve`` and a
    person other than the requester (four eyes); a refusal raises PermissionDenied, changes nothing and
    is audited as ``agent.command.approval_refused`` (after the attempt rolled back); a command not
    waiting raises Conflict. Audited as ``agent.command.approved`` or ``.declined``."""
    try:
        return _approve(actor=actor, command=command, approve=approve, ip=ip)
    except PermissionDenied as exc:
        _audit(
            "agent.command.approval_refused",
            tenant=command.tenant,
            actor_user_id=actor.user_id,
            ip=ip,
            agent=command.agent_id,
            command=command.pk,
            reason=exc.detail,
        )
        raise


@transaction.atomic
def _approve(*, actor: Actor, command: Command, approve: bool, ip: str | None) -> Command:
    _require(actor, Permission.AGENTS_APPROVE, command.tenant)
    command = Command.objects.select_for_update().select_related("agent", "tenant").get(pk=command.pk)
    if command.status != CommandStatus.AWAITING_APPROVAL:
        raise Conflict("this command is not waiting for approval")
    if command.requested_by_id == actor.user_id:
        raise PermissionDenied("another person approves a command (four eyes)")
    if approve and command.agent.status != AgentStatus.ACTIVE:
        raise Conflict("the agent is no longer active")
    if approve:
        _sign(command, approver_id=actor.user_id)
    else:
        command.status, command.finished_at = CommandStatus.DECLINED, timezone.now()
        command.approved_by_id = actor.user_id
        command.save(update_fields=["status", "finished_at", "approved_by"])
    _audit(
        "agent.command.approved" if approve else "agent.command.declined",
        tenant=command.tenant,
        actor_user_id=actor.user_id,
        ip=ip,
        agent=command.agent_id,
        command=command.pk,
        kind=command.kind,
        requested_by=command.requested_by_id,
    )
    return command


OUTPUT_MAX = 64 * 1024


@transaction.atomic
def command_result_record(
    *,
    agent_id: uuid.UUID,
    command_id: uuid.UUID,
    status: str,
    exit_code: int | None,
    output: str,
    reason: str,
    ip: str | None = None,
) -> Command:
    """What the agent reports about one of its commands (``succeeded``, ``failed`` or ``rejected``).
    Another agent's command, or one not delivered and pending, raises NotFound; a command already
    finished keeps its first result (Conflict). Output is kept to its last 64 KiB. Audited as
    ``agent.command.<status>`` (``rejected_by_agent`` for a refusal)."""
    command = (
        Command.objects.select_for_update()
        .select_related("tenant")
        .filter(pk=command_id, agent_id=agent_id, status__in=PENDING_COMMAND_STATUSES)
        .first()
    )
    if command is None:
        if Command.objects.filter(pk=command_id, agent_id=agent_id).exists():
            raise Conflict("this command already has its result")
        raise NotFound("no such command")
    if status not in (CommandStatus.SUCCEEDED, CommandStatus.FAILED, CommandStatus.REJECTED):
        raise _bad("status", "succeeded, failed or rejected")
    command.status = status
    command.exit_code = exit_code
    # PostgreSQL text holds no NUL (a script's `find -print0`): shown as U+FFFD instead.
    command.output = output[-OUTPUT_MAX:].replace("\x00", "\ufffd")
    command.reason = reason[:500].replace("\x00", "\ufffd")
    command.finished_at = timezone.now()
    command.save(update_fields=["status", "exit_code", "output", "reason", "finished_at"])
    _audit(
        "agent.command.rejected_by_agent" if status == CommandStatus.REJECTED else f"agent.command.{status}",
        tenant=command.tenant,
        actor_user_id=None,
        ip=ip,
        agent=agent_id,
        command=command.pk,
        kind=command.kind,
        exit_code=exit_code,
        reason=command.reason,
    )
    _notify("cmd", agent_id)
    return command


def commands_expire(*, now: dt.datetime | None = None) -> int:
    """Mark queued or delivered commands past ``expires_at`` as expired (a task, every few minutes);
    returns how many."""
    now = now or timezone.now()
    return Command.objects.filter(status__in=PENDING_COMMAND_STATUSES, expires_at__lte=now).update(
        status=CommandStatus.EXPIRED, finished_at=now, reason="not run before it expired"
    )


def command_envelope(command: Command) -> dict[str, str]:
    """The envelope an agent receives (0018): base64url payload and signature, and the signing key id."""
    assert command.payload is not None and command.signature is not None and command.signing_key is not None
    return {
        "payload": b64url(bytes(command.payload)),
        "signature": b64url(bytes(command.signature)),
        "key_id": command.signing_key.key_id,
    }
