"""Builders for the SLA tests. Call inside ``tenant_context``."""

from __future__ import annotations

import datetime as dt
from typing import Any

from controlplane.workindex.services import WorkEntry, workindex_upsert
from modules.incidents.models import Incident
from modules.incidents.services import priority_for
from modules.records.actor import Actor
from modules.records.services import activity_record, number_next
from modules.sla.models import BusinessCalendar, Contract, SLAPolicy
from modules.sla.services import (
    HoursSpec,
    LevelSpec,
    calendar_create,
    contract_create,
    policy_create,
)

ADMIN = Actor(user_id=None, person=None, role="admin")


def office_hours(start: int = 9, end: int = 17, days: range = range(5)) -> list[HoursSpec]:
    return [HoursSpec(day, dt.time(start), dt.time(end)) for day in days]


def london_calendar(name: str = "London office") -> BusinessCalendar:
    return calendar_create(
        actor=ADMIN,
        name=name,
        time_zone="Europe/London",
        holiday_country="GB",
        holiday_subdivision="ENG",
        working_hours=office_hours(),
    )


def contract(calendar: BusinessCalendar, starts_on: dt.date = dt.date(2024, 1, 1)) -> Contract:
    return contract_create(actor=ADMIN, name="Managed service", starts_on=starts_on, calendar=calendar)


def policy(contract: Contract, *, levels: list[LevelSpec] | None = None, **kwargs: Any) -> SLAPolicy:
    defaults: dict[str, Any] = {"name": "P3", "record_type": "incident", "priorities": [3]}
    return policy_create(actor=ADMIN, contract=contract, levels=levels, **{**defaults, **kwargs})


def incident_opened(actor: Actor, at: dt.datetime, *, impact: int = 2, urgency: int = 2) -> Incident:
    """An incident opened at ``at`` (UTC) with its creation entry at that time, as an import writes it."""
    incident = Incident.objects.create(
        number=number_next(prefix="INC"),
        opened_at=at,
        short_description="Mail server slow",
        impact=impact,
        urgency=urgency,
        priority=priority_for(impact=impact, urgency=urgency),
        caller=actor.person,
    )
    activity_record(
        actor=actor,
        verb="incident.created",
        record_type="incident",
        record_id=incident.pk,
        changes={"state": [None, "new"], "priority": [None, incident.priority]},
        at=at,
    )
    return incident


def indexed(incident: Incident) -> None:
    """Give the incident its work index row (another helper's services write it in the product)."""
    workindex_upsert(
        entry=WorkEntry(
            record_type="incident",
            record_id=incident.pk,
            number=incident.number,
            title=incident.short_description,
            state=incident.state,
            is_open=incident.is_open,
            opened_at=incident.opened_at,
            priority=incident.priority,
        )
    )
