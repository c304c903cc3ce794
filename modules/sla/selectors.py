"""SLA reads, given the actor: calendars, contracts and policies (technicians and admins) and the timers
of a record (whoever may see the record: technicians, and end users for their own records)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import NotFound, PermissionDenied
from modules.records.actor import Actor
from modules.records.registry import record_get
from modules.records.selectors import escalation_notified_text

from .calendar import Calendar, business_seconds_between
from .models import BusinessCalendar, Contract, SLAPolicy, SLATimer
from .services import calendar_of


def _require_staff(actor: Actor) -> None:
    if not actor.may(P.CONFIG_READ):
        raise PermissionDenied("SLA settings are for technicians and admins")


def _get(qs: QuerySet[Any], pk: Any, what: str) -> Any:
    try:
        return qs.get(pk=pk)
    except (qs.model.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound(f"no such {what}") from exc


def calendar_list(*, actor: Actor) -> QuerySet[BusinessCalendar]:
    """Every calendar of the tenant with hours and closed days. PermissionDenied for end users."""
    _require_staff(actor)
    return BusinessCalendar.objects.prefetch_related("hours", "closed_days")


def calendar_get(*, actor: Actor, calendar_id: uuid.UUID | str) -> BusinessCalendar:
    """One calendar. NotFound for a missing (or another tenant's) id; PermissionDenied for end users."""
    return _get(calendar_list(actor=actor), calendar_id, "calendar")


def contract_list(*, actor: Actor) -> QuerySet[Contract]:
    _require_staff(actor)
    return Contract.objects.select_related("calendar")


def contract_get(*, actor: Actor, contract_id: uuid.UUID | str) -> Contract:
    return _get(contract_list(actor=actor), contract_id, "contract")


def policy_list(*, actor: Actor, contract_id: uuid.UUID | None = None) -> QuerySet[SLAPolicy]:
    """Policies (with their escalation levels), by contract then order."""
    _require_staff(actor)
    qs = SLAPolicy.objects.select_related("contract", "calendar").prefetch_related("levels")
    return qs.filter(contract_id=contract_id) if contract_id else qs


def policy_get(*, actor: Actor, policy_id: uuid.UUID | str) -> SLAPolicy:
    return _get(policy_list(actor=actor), policy_id, "policy")


@dataclass(frozen=True)
class TimerView:
    """A timer as shown: the stored row plus, at ``now``, elapsed and remaining business seconds (a
    running timer counts on from ``computed_at``; remaining is negative once breached)."""

    timer: SLATimer
    elapsed_seconds: int
    remaining_seconds: int


def _calendar(policy: SLAPolicy) -> Calendar:
    if not policy.business_time:
        return Calendar.twenty_four_seven()
    return calendar_of(policy.calendar or policy.contract.calendar)


def timer_list(*, actor: Actor, record_id: uuid.UUID, now: dt.datetime | None = None) -> list[TimerView]:
    """The SLA timers of an incident or service request the actor may see (response first). Raises
    NotFound for a record that is missing, in another tenant or not the actor's (end users see their own
    records only), exactly alike."""
    for record_type in ("incident", "service_request"):
        try:
            record_get(actor=actor, record_type=record_type, record_id=record_id)
            break
        except NotFound:
            continue
    else:
        raise NotFound("no such record")
    now = now or timezone.now()
    views = []
    timers = SLATimer.objects.filter(record_id=record_id).select_related(
        "policy__calendar", "policy__contract__calendar"
    )
    for timer in sorted(timers, key=lambda t: t.kind != "response"):
        elapsed = timer.elapsed_business_seconds
        if timer.stage == SLATimer.Stage.RUNNING:
            elapsed += business_seconds_between(_calendar(timer.policy), timer.computed_at, now)
        views.append(TimerView(timer, elapsed, timer.target_seconds - elapsed))
    return views


def sla_rollup_counts(*, since: dt.date, time_zone: str) -> dict[tuple[str, dt.date], dict[str, int]]:
    """Resolution SLA outcomes of this tenant per (record type, local day the timer stopped) from ``since``
    on, for the daily rollup's rebuild: ``{("incident", date): {"sla_met": n, "sla_breached": n}}``.
    ``time_zone`` is the tenant's IANA zone. One grouped query over the timers (no actor: the rollup is
    counts, read by the control plane's rebuild only)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT record_type, (stopped_at AT TIME ZONE %s)::date AS day,"
            " count(*) FILTER (WHERE stage = 'met'), count(*) FILTER (WHERE stage = 'breached')"
            " FROM sla_slatimer WHERE kind = 'resolution' AND stage IN ('met', 'breached')"
            " AND stopped_at IS NOT NULL AND (stopped_at AT TIME ZONE %s)::date >= %s"
            " GROUP BY 1, 2",
            [time_zone, time_zone, since],
        )
        return {
            (record_type, day): {"sla_met": met, "sla_breached": breached}
            for record_type, day, met, breached in cursor.fetchall()
        }


# The SLA panel of a record's detail page.


@dataclass(frozen=True)
class RunView:
    """One escalation level already run on a timer: when (UTC), the level (percent of the target) and
    what it did, as short sentences (``EscalationRun.notified`` and ``.done`` put into words)."""

    ran_at: dt.datetime
    percent: int
    did: tuple[str, ...]


@dataclass(frozen=True)
class PanelTimer:
    """A timer as the SLA panel shows it at ``now`` (UTC): the stored row, elapsed and remaining business
    seconds (as ``TimerView``; remaining negative once the target is used up), the wall-clock seconds
    until ``due_at`` (negative once it has passed; None without a due time, e.g. while paused) and the
    escalation levels run so far (oldest first)."""

    timer: SLATimer
    policy_name: str
    elapsed_seconds: int
    remaining_seconds: int
    due_in_seconds: int | None
    runs: tuple[RunView, ...]


def _run_said(notified: dict[str, Any], done: dict[str, Any]) -> tuple[str, ...]:
    """What an escalation run did, from its ``notified`` and ``done`` JSON (see EscalationRun)."""
    said: list[str] = []
    if notified_text := escalation_notified_text(notified):
        said.append(notified_text)
    for key, what in (("assignment_group", "reassigned to another group"), ("assigned_to", "reassigned")):
        value = done.get(key)
        if isinstance(value, str) and value.startswith("skipped"):
            said.append(f"reassignment {value}")
        elif value:
            said.append(what)
    priority = done.get("priority")
    if isinstance(priority, list) and len(priority) == 2:
        said.append(f"priority raised from {priority[0]} to {priority[1]}")
    elif priority:
        said.append(f"priority {priority}")
    if done.get("reassign"):
        said.append(str(done["reassign"]))
    if done.get("error"):
        said.append(f"failed: {done['error']}")
    return tuple(said)


def sla_panel_get(
    *, actor: Actor, record_type: str, record_id: uuid.UUID, now: dt.datetime | None = None
) -> list[PanelTimer]:
    """The SLA timers of one incident or service request for its console detail page (response first),
    in two queries whatever the number of timers: the timers with their policy and calendar (working
    hours and closed days aggregated into the same row), then their escalation runs with their levels.

    The caller has already read the record through its module's selector with the same ``actor``; this
    answers for technicians and admins only (an empty list for anyone else: the panel is staff data).
    ``now`` is UTC (default now); a running timer's business time counts on from ``computed_at`` to
    ``now`` in its calendar (24x7 policies: calendar time), as ``timer_list`` does.
    """
    from django.contrib.postgres.expressions import ArraySubquery
    from django.db.models import F, OuterRef
    from django.db.models.functions import Coalesce, JSONObject

    from .models import ClosedDay, EscalationRun, WorkingHours

    if not actor.may(P.CONFIG_READ):
        return []
    now = now or timezone.now()
    calendar_ref = Coalesce(OuterRef("policy__calendar_id"), OuterRef("policy__contract__calendar_id"))
    hours = WorkingHours.objects.filter(calendar_id=calendar_ref).values(
        json=JSONObject(weekday=F("weekday"), start=F("start"), end=F("end"))
    )
    closed = ClosedDay.objects.filter(calendar_id=calendar_ref).values("date")
    timers = list(
        SLATimer.objects.filter(record_type=record_type, record_id=record_id)
        .select_related("policy__calendar", "policy__contract__calendar")
        .annotate(calendar_hours=ArraySubquery(hours), calendar_closed=ArraySubquery(closed))
    )
    runs: dict[int, list[RunView]] = {}
    if timers:
        for run in EscalationRun.objects.filter(timer__in=timers).select_related("level"):
            said = _run_said(run.notified or {}, run.done or {})
            runs.setdefault(run.timer_id, []).append(RunView(run.ran_at, run.level.percent, said))
    shown = []
    for timer in sorted(timers, key=lambda t: t.kind != "response"):
        elapsed = timer.elapsed_business_seconds
        if timer.stage == SLATimer.Stage.RUNNING:
            elapsed += business_seconds_between(_panel_calendar(timer), timer.computed_at, now)
        due_in = int((timer.due_at - now).total_seconds()) if timer.due_at is not None else None
        shown.append(
            PanelTimer(
                timer=timer,
                policy_name=timer.policy.name,
                elapsed_seconds=elapsed,
                remaining_seconds=timer.target_seconds - elapsed,
                due_in_seconds=due_in,
                runs=tuple(runs.get(timer.pk, ())),
            )
        )
    return shown


def _panel_calendar(timer: Any) -> Calendar:
    """The arithmetic calendar of a timer loaded by ``sla_panel_get`` (no further query)."""
    policy = timer.policy
    if not policy.business_time:
        return Calendar.twenty_four_seven()
    stored = policy.calendar or policy.contract.calendar

    def minutes(text: str) -> int:
        hours, mins = text.split(":")[:2]
        return int(hours) * 60 + int(mins)

    return Calendar.build(
        time_zone=stored.time_zone,
        intervals=[
            (h["weekday"], minutes(h["start"]), minutes(h["end"]) or 1440) for h in timer.calendar_hours or []
        ],
        holiday_country=stored.holiday_country,
        holiday_subdivision=stored.holiday_subdivision,
        closed_days=list(timer.calendar_closed or []),
    )


# The SLA column of the console lists.


@dataclass(frozen=True)
class SlaDue:
    """Where a record's SLA stands for a list row at ``now`` (UTC): the earliest ``due_at`` of its running
    timers and the wall-clock seconds until it (negative once passed), or ``paused`` when its only
    active timers are paused (no due time runs)."""

    due_at: dt.datetime | None
    due_in_seconds: int | None
    paused: bool


def sla_due_map(
    *, actor: Actor, record_type: str, record_ids: list[uuid.UUID], now: dt.datetime | None = None
) -> dict[uuid.UUID, SlaDue]:
    """The SLA due of each of ``record_ids`` (records of ``record_type``, ``incident`` or
    ``service_request``, that the caller already read through their module's selector for ``actor``)
    in one query, whatever their number; records without a running or paused timer are absent.

    Technicians and admins only (an empty map for anyone else: SLA timers are staff data, as on the
    detail page's SLA panel). Met and breached (stopped) timers do not count: the list shows what is
    still due."""
    if not actor.may(P.CONFIG_READ) or not record_ids:
        return {}
    now = now or timezone.now()
    active = (SLATimer.Stage.RUNNING, SLATimer.Stage.PAUSED)
    rows = SLATimer.objects.filter(
        record_type=record_type, record_id__in=record_ids, stage__in=active
    ).values_list("record_id", "stage", "due_at")
    found: dict[uuid.UUID, SlaDue] = {}
    for record_id, stage, due_at in rows:
        if stage == SLATimer.Stage.RUNNING and due_at is not None:
            current = found.get(record_id)
            if current is None or current.due_at is None or due_at < current.due_at:
                found[record_id] = SlaDue(due_at, int((due_at - now).total_seconds()), False)
        elif record_id not in found:
            found[record_id] = SlaDue(None, None, True)
    return found
