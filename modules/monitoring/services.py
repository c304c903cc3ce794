"""Monitoring writes: alert rules and the script library. Keyword-only, one transaction each, an
activity entry for every change (record types ``alert_rule`` and ``script``).

Who may (controlplane.permissions): alert rules need ``agents.manage``; scripts are written with
``agents.command`` and approved with ``agents.approve`` by someone other than the version's author
(four eyes, docs/decisions/0018-agent-gateway.md, "Commands: who asks, who approves"). A refusal
raises PermissionDenied and writes nothing.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, NotFound, PermissionDenied
from modules.records.actor import Actor
from modules.records.services import activity_record

from .models import Alert, AlertRule, Script

RULE_RECORD = "alert_rule"
SCRIPT_RECORD = "script"
RULE_FIELDS = ("name", "kind", "threshold", "minutes", "service", "impact", "urgency", "enabled")
MAX_MINUTES = {"offline": 7 * 24 * 60}  # other kinds: MAX_METRIC_MINUTES
MAX_METRIC_MINUTES = 4 * 60  # samples read back per agent per batch: at most 4 hours (about 240 rows)
SERVICE_NAME = re.compile(r"^[A-Za-z0-9@._-]{1,128}$")  # as agent_gateway/schemas/metrics.json
PARAMETER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,31}$")
MAX_PARAMETERS = 16
MAX_BODY_CHARS = 64 * 1024


class ScriptNotApproved(Conflict):
    slug = "script-not-approved"
    title = "The script is not approved"


class ScriptChanged(Conflict):
    slug = "script-changed"
    title = "The script was edited since you read it"


def _require(actor: Actor, permission: P, text: str) -> None:
    if not actor.may(permission):
        raise PermissionDenied(text)


def _rule_clean(values: dict[str, Any]) -> dict[str, Any]:
    """Validate a rule's complete values; InvalidInput naming every bad field."""
    errors = []
    name = str(values.get("name") or "").strip()
    kind = values.get("kind")
    if not name or len(name) > 120:
        errors.append({"field": "name", "message": "required, at most 120 characters"})
    if kind not in AlertRule.Kind.values:
        errors.append({"field": "kind", "message": f"one of {', '.join(AlertRule.Kind.values)}"})
    threshold, service = values.get("threshold"), str(values.get("service") or "").strip()
    if kind in AlertRule.METRIC_KINDS:
        if threshold is None or not 0 <= float(threshold) < 100:
            errors.append({"field": "threshold", "message": "a percentage from 0 to below 100"})
    else:
        threshold = None
    if kind == AlertRule.Kind.SERVICE_STOPPED:
        if not SERVICE_NAME.match(service):
            errors.append({"field": "service", "message": "a service name: letters, digits, @ . _ -"})
    else:
        service = ""
    minutes = values.get("minutes")
    most = MAX_MINUTES.get(str(kind), MAX_METRIC_MINUTES)
    if not isinstance(minutes, int) or isinstance(minutes, bool) or not 1 <= minutes <= most:
        errors.append({"field": "minutes", "message": f"a whole number of minutes from 1 to {most}"})
    for field in ("impact", "urgency"):
        if values.get(field) not in (1, 2, 3):
            errors.append({"field": field, "message": "1 (high), 2 (medium) or 3 (low)"})
    if errors:
        raise InvalidInput("invalid " + ", ".join(e["field"] for e in errors), errors=errors)
    return {
        "name": name,
        "kind": kind,
        "threshold": float(threshold) if threshold is not None else None,
        "minutes": minutes,
        "service": service,
        "impact": values["impact"],
        "urgency": values["urgency"],
        "enabled": bool(values.get("enabled", True)),
    }


def _alerts_retire(rule: AlertRule, *, now: dt.datetime) -> None:
    """Close the open alerts of a rule that was disabled, changed or deleted (their incidents stay with
    the technicians): the condition they watched is no longer the rule's."""
    Alert.objects.filter(rule=rule, state=Alert.State.OPEN).update(
        state=Alert.State.CLEARED, cleared_at=now, updated_at=now
    )


@transaction.atomic
def alert_rule_create(*, actor: Actor, **values: Any) -> AlertRule:
    """Create a rule (fields RULE_FIELDS; ``threshold`` only for cpu/memory/disk, ``service`` only for
    service_stopped). Raises PermissionDenied without ``agents.manage``, InvalidInput for bad values."""
    _require(actor, P.AGENTS_MANAGE, "only those who manage agents may change alert rules")
    values.setdefault("impact", 2)
    values.setdefault("urgency", 2)
    rule = AlertRule.objects.create(**_rule_clean(values))
    activity_record(
        actor=actor,
        verb="alert_rule.created",
        record_type=RULE_RECORD,
        record_id=rule.pk,
        changes={f: [None, getattr(rule, f)] for f in RULE_FIELDS},
    )
    return rule


@transaction.atomic
def alert_rule_update(*, actor: Actor, rule: AlertRule, **changes: Any) -> AlertRule:
    """Change a rule. A change of its condition or disabling it clears its open alerts (see
    ``_alerts_retire``). Same errors as ``alert_rule_create``."""
    _require(actor, P.AGENTS_MANAGE, "only those who manage agents may change alert rules")
    unknown = sorted(set(changes) - set(RULE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    rule = AlertRule.objects.select_for_update().get(pk=rule.pk)
    cleaned = _rule_clean({**{f: getattr(rule, f) for f in RULE_FIELDS}, **changes})
    diff = {f: [getattr(rule, f), v] for f, v in cleaned.items() if getattr(rule, f) != v}
    if not diff:
        return rule
    for field, (_, new) in diff.items():
        setattr(rule, field, new)
    rule.save()
    if set(diff) & {"kind", "threshold", "minutes", "service", "enabled"}:
        _alerts_retire(rule, now=timezone.now())
    activity_record(
        actor=actor, verb="alert_rule.updated", record_type=RULE_RECORD, record_id=rule.pk, changes=diff
    )
    return rule


@transaction.atomic
def alert_rule_delete(*, actor: Actor, rule: AlertRule) -> None:
    """Delete a rule; its alerts stay (naming it) and the open ones are cleared. PermissionDenied
    without ``agents.manage``."""
    _require(actor, P.AGENTS_MANAGE, "only those who manage agents may change alert rules")
    _alerts_retire(rule, now=timezone.now())
    activity_record(
        actor=actor,
        verb="alert_rule.deleted",
        record_type=RULE_RECORD,
        record_id=rule.pk,
        changes={"name": [rule.name, None]},
    )
    rule.delete()


# The script library


def _script_clean(
    *, name: str, interpreter: str, body: str, description: str, parameters: list[str]
) -> dict[str, Any]:
    errors = []
    name = name.strip()
    if not name or len(name) > 100:
        errors.append({"field": "name", "message": "required, at most 100 characters"})
    if interpreter not in Script.Interpreter.values:
        errors.append({"field": "interpreter", "message": f"one of {', '.join(Script.Interpreter.values)}"})
    if not body.strip() or len(body) > MAX_BODY_CHARS:
        errors.append({"field": "body", "message": f"required, at most {MAX_BODY_CHARS} characters"})
    if len(description) > 2000:
        errors.append({"field": "description", "message": "at most 2000 characters"})
    names = [p.strip() for p in parameters if p.strip()]
    bad = [p for p in names if not PARAMETER_NAME.match(p)]
    # Distinct regardless of case: the agent passes them as ITSM_PARAM_<NAME IN UPPER CASE>.
    if bad or len(names) > MAX_PARAMETERS or len({n.upper() for n in names}) != len(names):
        errors.append(
            {
                "field": "parameters",
                "message": f"up to {MAX_PARAMETERS} names distinct in upper case, each a letter then letters, digits or _"
                " (at most 32)" + (f": {', '.join(bad)}" if bad else ""),
            }
        )
    if errors:
        raise InvalidInput("invalid " + ", ".join(e["field"] for e in errors), errors=errors)
    return {
        "name": name,
        "interpreter": interpreter,
        "body": body,
        "description": description.strip(),
        "parameters": names,
        "sha256": hashlib.sha256(body.encode()).hexdigest(),
    }


def _author(actor: Actor, permission: P, text: str) -> int:
    _require(actor, permission, text)
    if actor.user_id is None:
        raise PermissionDenied("scripts are written and approved by people, not by the platform")
    return actor.user_id


def _name_taken(name: str, exclude: uuid.UUID | None = None) -> None:
    others = Script.objects.filter(name__iexact=name)
    if exclude is not None:
        others = others.exclude(pk=exclude)
    if others.exists():
        raise InvalidInput(
            "name taken", errors=[{"field": "name", "message": "another script has this name"}]
        )


@transaction.atomic
def script_create(
    *,
    actor: Actor,
    name: str,
    interpreter: str,
    body: str,
    description: str = "",
    parameters: list[str] | None = None,
) -> Script:
    """Add a script (version 1, not approved) written by the actor. PermissionDenied without
    ``agents.command`` (or for the system actor); InvalidInput naming ``name`` (empty, too long, taken),
    ``interpreter``, ``body`` (empty or over 64 KiB), ``parameters``."""
    author = _author(actor, P.AGENTS_COMMAND, "only those who may command agents write scripts")
    values = _script_clean(
        name=name, interpreter=interpreter, body=body, description=description, parameters=parameters or []
    )
    _name_taken(values["name"])
    script = Script.objects.create(**values, version=1, author_user_id=author)
    activity_record(
        actor=actor,
        verb="script.created",
        record_type=SCRIPT_RECORD,
        record_id=script.pk,
        changes={"name": [None, script.name], "version": [None, 1], "sha256": [None, script.sha256]},
    )
    return script


@transaction.atomic
def script_update(
    *,
    actor: Actor,
    script: Script,
    name: str,
    interpreter: str,
    body: str,
    description: str = "",
    parameters: list[str] | None = None,
) -> Script:
    """Edit a script: the actor becomes this version's author, the version grows by one and any
    approval is withdrawn (a changed script must be approved again). No change, no new version. Same
    errors as ``script_create``."""
    author = _author(actor, P.AGENTS_COMMAND, "only those who may command agents write scripts")
    values = _script_clean(
        name=name, interpreter=interpreter, body=body, description=description, parameters=parameters or []
    )
    script = Script.objects.select_for_update().get(pk=script.pk)
    diff = {f: [getattr(script, f), v] for f, v in values.items() if getattr(script, f) != v}
    if not diff:
        return script
    if "name" in diff:
        _name_taken(values["name"], exclude=script.pk)
    for field, value in values.items():
        setattr(script, field, value)
    diff.pop("body", None)  # the history keeps the body's hash (sha256), not the body
    diff["version"] = [script.version, script.version + 1]
    if script.approved_by_user_id is not None:
        diff["approved_by_user_id"] = [script.approved_by_user_id, None]
    script.version += 1
    script.author_user_id = author
    script.approved_by_user_id = script.approved_at = None
    script.save()
    activity_record(
        actor=actor, verb="script.updated", record_type=SCRIPT_RECORD, record_id=script.pk, changes=diff
    )
    return script


@transaction.atomic
def script_approve(*, actor: Actor, script: Script, version: int) -> Script:
    """Approve ``version`` of a script (the version the approver read). Raises PermissionDenied without
    ``agents.approve`` or when the approver wrote this version (four eyes); ScriptChanged (409) when the
    script is no longer at ``version``; nothing is written on any error. Approving an approved version
    again changes nothing."""
    approver = _author(actor, P.AGENTS_APPROVE, "only those who approve agent commands approve scripts")
    script = Script.objects.select_for_update().get(pk=script.pk)
    if script.version != version:
        raise ScriptChanged(f"{script.name} is at version {script.version}, not {version}")
    if script.author_user_id == approver:
        raise PermissionDenied("a script must be approved by someone other than its author (four eyes)")
    if script.approved_by_user_id is not None:
        return script
    script.approved_by_user_id, script.approved_at = approver, timezone.now()
    script.save(update_fields=["approved_by_user_id", "approved_at", "updated_at"])
    activity_record(
        actor=actor,
        verb="script.approved",
        record_type=SCRIPT_RECORD,
        record_id=script.pk,
        changes={"version": [None, script.version], "sha256": [None, script.sha256]},
    )
    return script


@dataclass(frozen=True)
class ApprovedScript:
    """An approved script version as a command carries it; ``sha256`` is the hex SHA-256 of ``body``
    (UTF-8)."""

    id: uuid.UUID
    name: str
    interpreter: str
    body: str
    sha256: str
    version: int
    author_user_id: int | None
    approved_by_user_id: int
    parameters: tuple[str, ...] = ()  # the names a command's params may use (ITSM_PARAM_<NAME>)


def script_for_command(*, script_id: uuid.UUID) -> ApprovedScript:
    """The current version of a library script for a ``run_script`` command. Raises NotFound for an
    unknown id and ScriptNotApproved (409) when the current version is not approved (never approved, or
    edited since)."""
    script = Script.objects.filter(pk=script_id).first()
    if script is None:
        raise NotFound("no such script")
    if script.approved_by_user_id is None:
        raise ScriptNotApproved(f"{script.name} version {script.version} is not approved")
    return ApprovedScript(
        id=script.pk,
        name=script.name,
        interpreter=script.interpreter,
        body=script.body,
        sha256=script.sha256,
        version=script.version,
        author_user_id=script.author_user_id,
        approved_by_user_id=script.approved_by_user_id,
        parameters=tuple(script.parameters),
    )
