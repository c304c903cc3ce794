"""Builders for the change tests (call inside a tenant). CIs and relationships are made directly on the
CMDB models: there is no CMDB service on this branch yet."""

from __future__ import annotations

import datetime as dt
from typing import Any

from modules.changes.models import CabMember, Change, StandardChangeTemplate
from modules.changes.services import change_create, change_transition, template_create
from modules.cmdb.models import CIRelationship, ConfigurationItem
from modules.people.models import Person
from modules.records.actor import Actor

T0 = dt.datetime(2030, 3, 4, 22, 0, tzinfo=dt.UTC)
PLANS = {"implementation_plan": "patch", "backout_plan": "restore snapshot", "test_plan": "smoke test"}
_ci_count = 0


def hours(n: float) -> dt.timedelta:
    return dt.timedelta(hours=n)


def ci(name: str, ci_class: str = "server") -> ConfigurationItem:
    global _ci_count
    _ci_count += 1
    return ConfigurationItem.objects.create(number=f"CI{_ci_count:07d}", name=name, ci_class=ci_class)


def rel(source: ConfigurationItem, rel_type: str, target: ConfigurationItem) -> None:
    CIRelationship(source=source, target=target, rel_type=rel_type).save()


def admin() -> Actor:
    return Actor.system()


def template(name: str = "Restart app pool", active: bool = True) -> StandardChangeTemplate:
    return template_create(
        actor=admin(),
        name=name,
        implementation_plan="recycle the pool",
        backout_plan="none needed",
        test_plan="open the site",
        active=active,
    )


def normal(actor: Actor, start: dt.datetime = T0, length: float = 2, **fields: Any) -> Change:
    values: dict[str, Any] = {
        "short_description": "Patch the mail server",
        "planned_start": start,
        "planned_end": start + hours(length),
        **PLANS,
        **fields,
    }
    return change_create(actor=actor, change_type="normal", **values)


def emergency(actor: Actor, start: dt.datetime = T0, **fields: Any) -> Change:
    values: dict[str, Any] = {
        "short_description": "Fix the firewall now",
        "implementation_plan": "apply rule",
        "backout_plan": "remove rule",
        "planned_start": start,
        "planned_end": start + hours(1),
        **fields,
    }
    return change_create(actor=actor, change_type="emergency", **values)


def member(name: str, emergency: bool = False) -> Actor:
    """A person on the CAB, acting with the tenant role cab_member."""
    person = Person.objects.create(display_name=name)
    CabMember.objects.create(person=person, emergency=emergency)
    return Actor(user_id=None, person=person, role="cab_member")


def to_authorise(actor: Actor, change: Change) -> Change:
    change = change_transition(actor=actor, change=change, action="submit")
    if change.state == "assess":
        change = change_transition(actor=actor, change=change, action="request_authorisation")
    return change
