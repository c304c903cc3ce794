"""Test helpers: tenant-local records built through the services (CIs directly: cmdb has no services)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.utils import timezone

from modules.cmdb.models import ConfigurationItem
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from modules.problems.models import Problem
from modules.problems.services import problem_create, problem_transition, problem_update
from modules.records.actor import Actor
from modules.records.services import number_next


def ci(name: str) -> ConfigurationItem:
    return ConfigurationItem.objects.create(number=number_next(prefix="CI"), name=name, ci_class="server")


def incident(actor: Actor, text: str, *, days_ago: float = 0, **fields: Any) -> Incident:
    """An incident opened ``days_ago`` days before now; ``configuration_item`` set directly."""
    item = fields.pop("configuration_item", None)
    created = incident_create(actor=actor, short_description=text, **fields)
    Incident.objects.filter(pk=created.pk).update(
        opened_at=timezone.now() - dt.timedelta(days=days_ago), configuration_item=item
    )
    created.refresh_from_db()
    return created


def problem(actor: Actor, text: str = "Mail outages", **fields: Any) -> Problem:
    return problem_create(actor=actor, short_description=text, **fields)


def problem_in_fix(actor: Actor, text: str = "Mail outages") -> Problem:
    """A problem moved through assess and analysis to Fix in progress."""
    created = problem(actor, text, assigned_to=actor.person)
    for action in ("assess", "start_analysis"):
        problem_transition(actor=actor, problem=created, action=action)
    problem_update(actor=actor, problem=created, root_cause="Expired certificate on the relay")
    return problem_transition(actor=actor, problem=created, action="start_fix")
