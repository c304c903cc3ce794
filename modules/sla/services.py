"""SLA writes: timers recomputed from history (``sla_refresh``), escalations (``sla_escalate``), and the
admin's calendars, contracts and policies. Keyword-only, one transaction each.

Timer rules are in ``modules/sla/engine.py``; business-hours arithmetic in ``modules/sla/calendar.py``.
Every stored datetime is UTC; targets are minutes, timer durations whole seconds.
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import Prefetch
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import Conflict, DomainError, InvalidInput, PermissionDenied
from controlplane.workindex.services import workindex_local_day, workindex_rollup_add, workindex_sla_set
from modules.notifications.services import notification_emit
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from modules.records.services import activity_record

from . import engine
from .calendar import Calendar, CalendarError, zone_get
from .models import (
    BusinessCalendar,
    ClosedDay,
    Contract,
    EscalationLevel,
    EscalationRun,
    RecordType,
    SLAPolicy,
    SLATimer,
    TimerKind,
    WorkingHours,
    tenant_time_zone,
)

log = logging.getLogger(__name__)

DEFAULT_LEVELS: tuple[tuple[int, dict[str, Any]], ...] = (
    (75, {"notify_assignee": True}),
    (90, {"notify_assignee": True, "notify_group": True}),
    (100, {"notify_assignee": True, "notify_group": True}),
)
ACTION_KEYS = frozenset(
    {
        "notify_assignee",
        "notify_group",
        "notify_persons",
        "notify_groups",
        "reassign_group",
        "reassign_person",
        "raise_priority",
    }
)
REFRESH_CHUNK = 200


def _system() -> Actor:
    return Actor.system()


# Record facts, read through the owning modules' selectors (never their models).


@dataclass(frozen=True)
class RecordFacts:
    """What the SLA engine reads of a record: the policy conditions, the number and title for
    notifications, the current assignee and group (person/group ids of this tenant)."""

    record_type: str
    record_id: uuid.UUID
    number: str
    title: str
    opened_at: dt.datetime
    is_open: bool
    priority: int | None
    categories: tuple[str, ...]
    configuration_item_id: uuid.UUID | None
    assigned_to_id: uuid.UUID | None
    assignment_group_id: uuid.UUID | None


def _facts(record_type: str, record_ids: Sequence[uuid.UUID], *, lock: bool = False) -> dict[uuid.UUID, Any]:
    """``{id: (RecordFacts, record)}`` for the records that exist. ``lock`` takes their row locks (FOR
    UPDATE, in id order) first, as the owning module's services do before they write the timers."""
    system = _system()
    found: dict[uuid.UUID, Any] = {}
    if record_type == RecordType.INCIDENT:
        from modules.incidents.selectors import incident_visible

        qs = incident_visible(actor=system).filter(pk__in=list(record_ids)).order_by("pk")
        if lock:
            qs = qs.select_for_update(of=("self",))
        for incident in qs:
            found[incident.pk] = (
                RecordFacts(
                    record_type=record_type,
                    record_id=incident.pk,
                    number=incident.number,
                    title=incident.short_description,
                    opened_at=incident.opened_at,
                    is_open=incident.is_open,
                    priority=incident.priority,
                    categories=(incident.category,) if incident.category else (),
                    configuration_item_id=incident.configuration_item_id,
                    assigned_to_id=incident.assigned_to_id,
                    assignment_group_id=incident.assignment_group_id,
                ),
                incident,
            )
    elif record_type == RecordType.SERVICE_REQUEST:
        from modules.requests.selectors import requested_item_list, service_request_visible

        requests = service_request_visible(actor=system).filter(pk__in=list(record_ids)).order_by("pk")
        if lock:
            requests = requests.select_for_update(of=("self",))
        for request in requests:
            names = requested_item_list(actor=system, request=request).values_list(
                "catalog_item__category__name", flat=True
            )
            found[request.pk] = (
                RecordFacts(
                    record_type=record_type,
                    record_id=request.pk,
                    number=request.number,
                    title=request.short_description,
                    opened_at=request.opened_at,
                    is_open=not request.is_final,
                    priority=None,
                    categories=tuple(sorted(set(names))),
                    configuration_item_id=None,
                    assigned_to_id=None,
                    assignment_group_id=None,
                ),
                request,
            )
    else:
        raise InvalidInput(
            f"no SLAs for {record_type!r}",
            errors=[{"field": "record_type", "message": "incident or service_request"}],
        )
    return found


def _history(record_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, list[engine.HistoryEntry]]:
    entries: dict[uuid.UUID, list[engine.HistoryEntry]] = defaultdict(list)
    if not record_ids:
        return entries
    rows = (
        ActivityEntry.objects.filter(record_id__in=list(record_ids))
        .order_by("record_id", "at", "id")
        .values_list("record_id", "at", "verb", "source", "changes")
    )
    for record_id, at, verb, source, changes in rows.iterator(chunk_size=2000):
        entries[record_id].append(engine.HistoryEntry(at=at, verb=verb, source=source, changes=changes))
    return entries


# Policies and calendars of the tenant, loaded once per refresh.


def calendar_of(calendar: BusinessCalendar) -> Calendar:
    """The arithmetic calendar of a stored BusinessCalendar (its hours and closed days prefetched or
    read). Raises CalendarError for a stored calendar that no longer validates."""
    return Calendar.build(
        time_zone=calendar.time_zone,
        intervals=[(h.weekday, *h.minutes) for h in calendar.hours.all()],
        holiday_country=calendar.holiday_country,
        holiday_subdivision=calendar.holiday_subdivision,
        closed_days=[c.date for c in calendar.closed_days.all()],
    )


class _Setup:
    """The tenant's active contracts (latest start first), their policies in order and calendars."""

    def __init__(self) -> None:
        calendars = BusinessCalendar.objects.prefetch_related("hours", "closed_days")
        self.contracts = list(
            Contract.objects.filter(active=True)
            .prefetch_related(
                Prefetch("calendar", queryset=calendars),
                Prefetch(
                    "policies",
                    queryset=SLAPolicy.objects.order_by("order", "id").prefetch_related(
                        Prefetch("calendar", queryset=calendars), "levels"
                    ),
                ),
            )
            .order_by("-starts_on", "id")
        )
        self._calendars: dict[uuid.UUID, Calendar] = {}

    def calendar(self, stored: BusinessCalendar) -> Calendar:
        if stored.pk not in self._calendars:
            self._calendars[stored.pk] = calendar_of(stored)
        return self._calendars[stored.pk]

    def policy_for(self, facts: RecordFacts) -> tuple[SLAPolicy, Calendar] | None:
        """The first matching policy (by order) of the active contract covering the record's opening
        date (local to the contract's calendar), with the calendar its timers use."""
        for contract in self.contracts:
            local_day = facts.opened_at.astimezone(zone_get(contract.calendar.time_zone)).date()
            if not contract.covers(local_day):
                continue
            for policy in contract.policies.all():
                conditions = engine.Conditions(
                    record_type=policy.record_type,
                    priorities=tuple(policy.priorities or ()),
                    category=policy.category,
                    configuration_item_id=policy.configuration_item_id,
                )
                if engine.conditions_match(
                    conditions,
                    record_type=facts.record_type,
                    priority=facts.priority,
                    categories=facts.categories,
                    configuration_item_id=facts.configuration_item_id,
                ):
                    if not policy.business_time:
                        return policy, Calendar.twenty_four_seven()
                    return policy, self.calendar(policy.calendar or contract.calendar)
            return None  # only the covering contract applies
        return None


@dataclass
class _Refreshed:
    facts: RecordFacts
    record: Any
    policy: SLAPolicy | None
    states: list[engine.TimerState]


def _refresh(
    record_type: str, record_ids: Sequence[uuid.UUID], now: dt.datetime, *, lock: bool, index: bool = True
) -> dict[uuid.UUID, _Refreshed]:
    """Recompute and upsert the timers of ``record_ids`` (one record type), then (``index``) write their
    work index SLA columns. Runs in the caller's transaction."""
    found = _facts(record_type, record_ids, lock=lock)
    if not found:
        return {}
    setup = _Setup()
    policies = {record_id: setup.policy_for(facts) for record_id, (facts, _) in found.items()}
    history = _history([record_id for record_id, chosen in policies.items() if chosen is not None])
    results: dict[uuid.UUID, _Refreshed] = {}
    rows: list[SLATimer] = []
    runs: dict[tuple[uuid.UUID, str], set[int]] = defaultdict(set)
    for run_record_id, kind, level_id in EscalationRun.objects.filter(
        timer__record_id__in=list(found)
    ).values_list("timer__record_id", "timer__kind", "level_id"):
        runs[(run_record_id, kind)].add(level_id)
    outcomes_before = {
        record_id: (stage, stopped_at)
        for record_id, stage, stopped_at in SLATimer.objects.filter(
            record_id__in=list(found), kind=TimerKind.RESOLUTION, stage__in=FINAL_STAGES
        ).values_list("record_id", "stage", "stopped_at")
    }
    for record_id, (facts, record) in found.items():
        chosen = policies[record_id]
        states: list[engine.TimerState] = []
        if chosen is not None:
            policy, calendar = chosen
            # History as of ``now``: an entry dated later (clock skew, a replay "as of") has not happened.
            entries = [entry for entry in history.get(record_id, []) if entry.at <= now]
            traces = engine.replay(record_type=record_type, opened_at=facts.opened_at, entries=entries)
            for kind in TimerKind.values:
                minutes = policy.target_minutes(kind)
                if minutes is None:
                    continue
                levels = [(level.pk, level.percent) for level in policy.levels.all() if level.kind == kind]
                state = engine.timer_compute(
                    kind=kind,
                    trace=traces[kind],
                    calendar=calendar,
                    target_seconds=minutes * 60,
                    started_at=facts.opened_at,
                    now=now,
                    levels=levels,
                )
                states.append(state)
                rows.append(
                    SLATimer(
                        record_type=record_type,
                        record_id=record_id,
                        policy=policy,
                        kind=kind,
                        stage=state.stage,
                        started_at=state.started_at,
                        stopped_at=state.stopped_at,
                        paused_since=state.paused_since,
                        elapsed_business_seconds=state.elapsed // dt.timedelta(seconds=1),
                        target_seconds=state.target_seconds,
                        due_at=state.due_at,
                        breached_at=state.breached_at,
                        next_escalation_at=min(
                            (
                                when
                                for level_id, when in state.thresholds.items()
                                if level_id not in runs[(record_id, kind)]
                            ),
                            default=None,
                        ),
                        computed_at=now,
                    )
                )
        results[record_id] = _Refreshed(facts, record, chosen[0] if chosen else None, states)
    rows.sort(key=lambda row: (row.record_id, row.kind))  # one lock order for concurrent upserts
    if rows:
        SLATimer.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["record_id", "kind"],
            update_fields=[
                "record_type",
                "policy",
                "stage",
                "started_at",
                "stopped_at",
                "paused_since",
                "elapsed_business_seconds",
                "target_seconds",
                "due_at",
                "breached_at",
                "next_escalation_at",
                "computed_at",
            ],
        )
    for kind in TimerKind.values:
        without = [rid for rid, r in results.items() if kind not in {s.kind for s in r.states}]
        if without:
            SLATimer.objects.filter(record_id__in=without, kind=kind).delete()
    _rollup_outcomes(record_type, outcomes_before, results)
    for record_id, result in results.items():
        if not index or not result.facts.is_open:
            continue  # closed records have no work index row
        due = {s.kind: s.due_at for s in result.states if s.stage == "running"}
        pending = [
            when
            for s in result.states
            for level_id, when in s.thresholds.items()
            if level_id not in runs[(record_id, s.kind)]
        ]
        workindex_sla_set(
            record_id=record_id,
            response_due_at=due.get(TimerKind.RESPONSE),
            resolution_due_at=due.get(TimerKind.RESOLUTION),
            sla_paused=any(s.stage == "paused" for s in result.states),
            breached=any(s.breached_at is not None for s in result.states),
            next_escalation_at=min(pending) if pending else None,
        )
    return results


FINAL_STAGES = (SLATimer.Stage.MET, SLATimer.Stage.BREACHED)


def _rollup_outcomes(
    record_type: str,
    before: dict[uuid.UUID, tuple[str, dt.datetime | None]],
    results: dict[uuid.UUID, _Refreshed],
) -> None:
    """Keep the daily rollup's ``sla_met``/``sla_breached`` current: a resolution timer that reached met
    or breached counts on the tenant's local day it stopped; one that leaves that outcome (a reopen, a
    policy change) takes its count back. Only changes are written, so refreshing again adds nothing."""
    for record_id, result in results.items():
        after = next(
            (
                (s.stage, s.stopped_at)
                for s in result.states
                if s.kind == TimerKind.RESOLUTION and s.stage in FINAL_STAGES
            ),
            None,
        )
        old = before.get(record_id)
        if old == after:
            continue
        for outcome, sign in ((old, -1), (after, 1)):
            if outcome is not None and outcome[1] is not None:
                workindex_rollup_add(
                    record_type=record_type,
                    day=workindex_local_day(outcome[1]),
                    **{f"sla_{outcome[0]}": sign},
                )


def sla_refresh(*, record_type: str, record_id: uuid.UUID, now: dt.datetime | None = None) -> None:
    """Recompute the SLA timers of one incident or service request from its history and write its work
    index SLA columns (``workindex_sla_set``; nothing when the record has no index row).

    Called by the incident and request services after each change, inside their transaction (the
    record is already locked by them). The same history, policies and ``now`` (UTC, default now) always
    give the same timers. The policy is chosen from the record's current priority, category and CI (a
    priority change re-selects it and the new targets count from ``opened_at``, as ServiceNow's
    "retroactive start"); a record no policy matches has no timers (rows left from before are deleted,
    with their escalation runs). Raises InvalidInput for another record type.
    """
    with transaction.atomic():
        _refresh(record_type, [record_id], now or timezone.now(), lock=False)


def sla_refresh_many(
    *, record_type: str, record_ids: Iterable[uuid.UUID], now: dt.datetime | None = None, lock: bool = True
) -> int:
    """``sla_refresh`` for many records of one type (after an import or a policy change), in chunks of
    ``REFRESH_CHUNK`` records, each chunk one transaction that first locks its records (``lock``; an
    import refreshing its own uncommitted records passes False). Returns how many records exist."""
    now = now or timezone.now()
    ids = list(record_ids)
    done = 0
    for index in range(0, len(ids), REFRESH_CHUNK):
        with transaction.atomic():
            done += len(_refresh(record_type, ids[index : index + REFRESH_CHUNK], now, lock=lock))
    return done


def sla_refresh_open(*, now: dt.datetime | None = None) -> int:
    """Recompute the timers of every open incident and service request of the tenant (after a change of
    calendars, contracts or policies). Returns how many records were refreshed."""
    from modules.incidents.selectors import incident_list
    from modules.requests.selectors import service_request_visible

    system = _system()
    incidents = list(incident_list(actor=system, open_only=True).values_list("pk", flat=True))
    requests = list(
        service_request_visible(actor=system)
        .exclude(state__in=["fulfilled", "rejected", "cancelled"])
        .values_list("pk", flat=True)
    )
    return sla_refresh_many(
        record_type=RecordType.INCIDENT, record_ids=incidents, now=now
    ) + sla_refresh_many(record_type=RecordType.SERVICE_REQUEST, record_ids=requests, now=now)


def _recompute_on_commit() -> None:
    from .tasks import sla_recompute_task

    schema = getattr(connection, "schema_name", "public")
    transaction.on_commit(lambda: _send_recompute(sla_recompute_task, schema))


def _send_recompute(task: Any, schema: str) -> None:
    from controlplane.celery import send_to_tenant

    send_to_tenant(task, schema_name=schema)


# Escalation


def _notify(
    *,
    run: EscalationRun,
    level: EscalationLevel,
    event: str,
    facts: RecordFacts,
    persons: Sequence[Person],
    groups: Sequence[Group],
) -> dict[str, Any]:
    """Say who an escalation notifies (the caller stores it on the run) and emit ``event`` (sla.warning
    below 100 %, sla.breached at 100 % and above; breaches are critical, so opting out does not stop
    them) through ``notification_emit`` in the escalation's transaction. The key is the (timer, level)
    pair, so a second run of the same level could not notify twice even if it got this far."""
    key = f"sla:{run.timer_id}:{run.level_id}"
    notified = {
        "event": event,
        "persons": sorted(str(p.pk) for p in persons),
        "groups": sorted(str(g.pk) for g in groups),
        "key": key,
    }
    notification_emit(
        event=event,
        record_type=facts.record_type,
        record_id=facts.record_id,
        number=facts.number,
        title=facts.title,
        persons=persons,
        groups=groups,
        critical=event == "sla.breached",
        key=key,
        context={"percent": level.percent, "timer": level.kind},
    )
    log.info("%s %s %s key=%s", event, facts.record_type, facts.number, key)
    return notified


def _raised(record: Any) -> dict[str, int] | None:
    """The smallest impact/urgency change that raises an incident's priority: urgency up a level first
    (the need for speed grows as a deadline nears; ITIL priority = impact x urgency), then impact, then
    both. None when no cell of the matrix gives a higher priority."""
    from modules.incidents.services import priority_for

    candidates = [
        {"urgency": record.urgency - 1},
        {"impact": record.impact - 1},
        {"impact": record.impact - 1, "urgency": record.urgency - 1},
    ]
    for change in candidates:
        impact, urgency = change.get("impact", record.impact), change.get("urgency", record.urgency)
        if impact < 1 or urgency < 1:
            continue
        try:
            if priority_for(impact=impact, urgency=urgency) < record.priority:
                return change
        except DomainError:
            continue
    return None


def _act(facts: RecordFacts, record: Any, actions: dict[str, Any]) -> dict[str, Any]:
    """Run the reassign and raise-priority actions of a level (incidents only) through the incident
    services as the system, each under a savepoint: a failing action is recorded and the others go on."""
    done: dict[str, Any] = {}
    changes: dict[str, Any] = {}
    if actions.get("reassign_group"):
        changes["assignment_group"] = Group.objects.filter(pk=actions["reassign_group"]).first()
    if actions.get("reassign_person"):
        changes["assigned_to"] = Person.objects.filter(pk=actions["reassign_person"], is_active=True).first()
    for name in ("assignment_group", "assigned_to"):
        if name in changes and changes[name] is None:
            done[name] = "skipped: no longer exists"
            del changes[name]
    if actions.get("raise_priority"):
        raised = _raised(record) if facts.record_type == RecordType.INCIDENT else None
        if raised is None:
            done["priority"] = "skipped: cannot be raised"
        else:
            changes.update(raised)
    if not changes:
        return done
    if facts.record_type != RecordType.INCIDENT:
        return {**done, "reassign": "skipped: service requests are assigned per fulfilment task"}
    from modules.incidents.services import incident_update

    before = record.priority
    try:
        with transaction.atomic():
            updated = incident_update(actor=_system(), incident=record, **changes)
    except (DomainError, DatabaseError) as exc:
        return {**done, "error": str(exc)}
    for name in ("assignment_group", "assigned_to"):
        if name in changes:
            done[name] = str(changes[name].pk)
    if "impact" in changes or "urgency" in changes:
        done["priority"] = [before, updated.priority]
    return done


def _insert_run(timer_id: int, level_id: int, now: dt.datetime) -> EscalationRun | None:
    """Claim a level for a timer: INSERT ... ON CONFLICT DO NOTHING. A concurrent claimer waits on the
    first one's uncommitted row and then inserts nothing. Returns the new run, or None."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO sla_escalationrun (timer_id, level_id, ran_at, notified, done)"
            " VALUES (%s, %s, %s, '{}'::jsonb, '{}'::jsonb)"
            " ON CONFLICT (timer_id, level_id) DO NOTHING RETURNING id",
            [timer_id, level_id, now],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return EscalationRun.objects.get(pk=row[0])


def _escalate_record(record_type: str, record_id: uuid.UUID, now: dt.datetime) -> int:
    with transaction.atomic():
        # Lock order as in the incident and request services: the record, then its timers.
        refreshed = _refresh(record_type, [record_id], now, lock=True, index=False).get(record_id)
        if refreshed is None:
            return 0
        if refreshed.policy is None:
            _refresh(record_type, [record_id], now, lock=False)
            return 0
        timers = {t.kind: t for t in SLATimer.objects.select_for_update().filter(record_id=record_id)}
        levels = {level.pk: level for level in refreshed.policy.levels.all()}
        due = sorted(
            (
                (when, levels[level_id], timers[state.kind])
                for state in refreshed.states
                if state.kind in timers
                for level_id, when in state.thresholds.items()
                if when <= now
            ),
            key=lambda item: (item[0], item[1].percent, item[1].kind),
        )
        ran = 0
        for _, level, timer in due:
            if ran and not SLATimer.objects.filter(pk=timer.pk).exists():
                # An earlier level's action (a raised priority) moved the record out of this policy: its
                # timers were replaced (or removed) by the refresh inside that action. The new policy's
                # levels are the next sweep's business.
                break
            run = _insert_run(timer.pk, level.pk, now)
            if run is None:
                continue  # done before (another sweep, a redelivery)
            actions = level.actions or {}
            facts, record = refreshed.facts, refreshed.record
            done = _act(facts, record, actions)
            if done:
                facts, record = _facts(record_type, [record_id])[record_id]
            persons = list(Person.objects.filter(pk__in=actions.get("notify_persons") or []))
            groups = list(Group.objects.filter(pk__in=actions.get("notify_groups") or []))
            if actions.get("notify_assignee") and facts.assigned_to_id:
                persons += list(Person.objects.filter(pk=facts.assigned_to_id))
            if actions.get("notify_group") and facts.assignment_group_id:
                groups += list(Group.objects.filter(pk=facts.assignment_group_id))
            event = "sla.breached" if level.percent >= 100 else "sla.warning"
            notified = _notify(run=run, level=level, event=event, facts=facts, persons=persons, groups=groups)
            # An update, not a save: the run is gone if the action's refresh replaced its timer.
            EscalationRun.objects.filter(pk=run.pk).update(notified=notified, done=done)
            activity_record(
                actor=_system(),
                verb="sla.escalated",
                record_type=record_type,
                record_id=record_id,
                changes={
                    "timer": timer.kind,
                    "percent": level.percent,
                    "policy": refreshed.policy.name,
                    "notified": notified,
                    "done": done,
                },
                at=now,
            )
            ran += 1
        _refresh(record_type, [record_id], now, lock=False)  # next_escalation_at moves on
        return ran


def sla_escalate(*, record_type: str, record_ids: Iterable[uuid.UUID], now: dt.datetime | None = None) -> int:
    """Run every escalation level whose threshold has passed (UTC ``now``, default now) on the running
    timers of ``record_ids``, each record in its own transaction. Returns the number of levels run.

    Exactly once per (timer, level): the record is locked, the level claimed by inserting its
    EscalationRun (unique constraint, ON CONFLICT DO NOTHING) and its actions run in the same
    transaction, so a second sweep or a redelivered task finds the row and does nothing, and a
    transaction that dies before commit leaves neither row nor actions. Actions: reassign and raise
    priority (incidents, through ``incident_update`` as the system), notify (``_notify``); then an
    ``sla.escalated`` activity entry and a refresh that moves ``next_escalation_at`` on.
    """
    now = now or timezone.now()
    return sum(_escalate_record(record_type, uuid.UUID(str(rid)), now) for rid in record_ids)


# Calendars, contracts and policies (admins).


def _require_admin(actor: Actor) -> None:
    if not actor.may(P.CONFIG_MANAGE):
        raise PermissionDenied("only admins may change SLA settings")


def _invalid(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", errors=[{"field": field, "message": message}])


def _minutes(value: dt.time) -> int:
    return value.hour * 60 + value.minute


@dataclass(frozen=True)
class HoursSpec:
    """One working interval: weekday 0 (Monday) - 6, local start and end (end 00:00 = 24:00)."""

    weekday: int
    start: dt.time
    end: dt.time


def _calendar_check(
    *, time_zone: str, holiday_country: str, holiday_subdivision: str, hours: Sequence[HoursSpec]
) -> None:
    intervals = []
    for index, spec in enumerate(hours):
        if spec.start.second or spec.end.second or spec.start.microsecond or spec.end.microsecond:
            raise _invalid(f"working_hours[{index}]", "whole minutes only")
        intervals.append((spec.weekday, _minutes(spec.start), _minutes(spec.end) or 1440))
    try:
        Calendar.build(
            time_zone=time_zone,
            intervals=intervals,
            holiday_country=holiday_country,
            holiday_subdivision=holiday_subdivision,
        )
    except CalendarError as exc:
        raise _invalid(exc.field, str(exc)) from exc


def _calendar_children(
    calendar: BusinessCalendar,
    hours: Sequence[HoursSpec] | None,
    closed: Sequence[tuple[dt.date, str]] | None,
) -> None:
    if hours is not None:
        calendar.hours.all().delete()
        WorkingHours.objects.bulk_create(
            [WorkingHours(calendar=calendar, weekday=h.weekday, start=h.start, end=h.end) for h in hours]
        )
    if closed is not None:
        dates = [d for d, _ in closed]
        if len(set(dates)) != len(dates):
            raise _invalid("closed_days", "a date is listed twice")
        calendar.closed_days.all().delete()
        ClosedDay.objects.bulk_create([ClosedDay(calendar=calendar, date=d, name=n) for d, n in closed])


def _calendar_described(calendar: BusinessCalendar) -> dict[str, Any]:
    return {
        "name": calendar.name,
        "time_zone": calendar.time_zone,
        "holiday_country": calendar.holiday_country,
        "holiday_subdivision": calendar.holiday_subdivision,
        "working_hours": [
            [h.weekday, h.start.strftime("%H:%M"), h.end.strftime("%H:%M")] for h in calendar.hours.all()
        ],
        "closed_days": [[c.date.isoformat(), c.name] for c in calendar.closed_days.all()],
    }


@transaction.atomic
def calendar_create(
    *,
    actor: Actor,
    name: str,
    working_hours: Sequence[HoursSpec],
    time_zone: str | None = None,
    holiday_country: str = "",
    holiday_subdivision: str = "",
    closed_days: Sequence[tuple[dt.date, str]] = (),
) -> BusinessCalendar:
    """Create a business calendar. ``time_zone`` defaults to the tenant's (``Tenant.time_zone``).

    Raises PermissionDenied (403) for non-admins; InvalidInput (422) naming ``name`` (empty or taken),
    ``time_zone`` (unknown IANA name), ``holiday_country`` / ``holiday_subdivision`` (not known to the
    ``holidays`` package), ``working_hours`` (overlapping, empty or missing intervals) or ``closed_days``.
    Logs ``sla_calendar.created``.
    """
    _require_admin(actor)
    name = name.strip()
    if not name:
        raise _invalid("name", "required")
    if BusinessCalendar.objects.filter(name=name).exists():
        raise _invalid("name", "a calendar with this name exists")
    time_zone = time_zone or tenant_time_zone()
    _calendar_check(
        time_zone=time_zone,
        holiday_country=holiday_country,
        holiday_subdivision=holiday_subdivision,
        hours=working_hours,
    )
    calendar = BusinessCalendar.objects.create(
        name=name,
        time_zone=time_zone,
        holiday_country=holiday_country,
        holiday_subdivision=holiday_subdivision,
    )
    _calendar_children(calendar, working_hours, closed_days)
    activity_record(
        actor=actor,
        verb="sla_calendar.created",
        record_type="sla_calendar",
        record_id=calendar.pk,
        changes={k: [None, v] for k, v in _calendar_described(calendar).items()},
    )
    return calendar


@transaction.atomic
def calendar_update(
    *,
    actor: Actor,
    calendar: BusinessCalendar,
    name: str | None = None,
    time_zone: str | None = None,
    holiday_country: str | None = None,
    holiday_subdivision: str | None = None,
    working_hours: Sequence[HoursSpec] | None = None,
    closed_days: Sequence[tuple[dt.date, str]] | None = None,
) -> BusinessCalendar:
    """Change a calendar (None = unchanged; ``working_hours`` and ``closed_days`` replace the lists).
    Errors as ``calendar_create``. Logs ``sla_calendar.changed`` with the differences and, after commit,
    recomputes the timers of the tenant's open records (``sla_recompute_task``)."""
    _require_admin(actor)
    calendar = BusinessCalendar.objects.select_for_update().get(pk=calendar.pk)
    before = _calendar_described(calendar)
    if name is not None:
        name = name.strip()
        if not name:
            raise _invalid("name", "required")
        if BusinessCalendar.objects.filter(name=name).exclude(pk=calendar.pk).exists():
            raise _invalid("name", "a calendar with this name exists")
        calendar.name = name
    for field, value in (
        ("time_zone", time_zone),
        ("holiday_country", holiday_country),
        ("holiday_subdivision", holiday_subdivision),
    ):
        if value is not None:
            setattr(calendar, field, value)
    hours = (
        working_hours
        if working_hours is not None
        else [HoursSpec(h.weekday, h.start, h.end) for h in calendar.hours.all()]
    )
    _calendar_check(
        time_zone=calendar.time_zone,
        holiday_country=calendar.holiday_country,
        holiday_subdivision=calendar.holiday_subdivision,
        hours=hours,
    )
    calendar.save()
    _calendar_children(calendar, working_hours, closed_days)
    after = _calendar_described(calendar)
    diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if diff:
        activity_record(
            actor=actor,
            verb="sla_calendar.changed",
            record_type="sla_calendar",
            record_id=calendar.pk,
            changes=diff,
        )
        _recompute_on_commit()
    return calendar


@transaction.atomic
def calendar_delete(*, actor: Actor, calendar: BusinessCalendar) -> None:
    """Delete a calendar no contract or policy uses. Raises Conflict (409) when one does."""
    _require_admin(actor)
    if calendar.contracts.exists() or calendar.policies.exists():
        raise Conflict(f"calendar {calendar.name} is used by a contract or policy")
    activity_record(
        actor=actor,
        verb="sla_calendar.deleted",
        record_type="sla_calendar",
        record_id=calendar.pk,
        changes={"name": [calendar.name, None]},
    )
    calendar.delete()


def _contract_check(starts_on: dt.date, ends_on: dt.date | None) -> None:
    if ends_on is not None and ends_on < starts_on:
        raise _invalid("ends_on", "before starts_on")


@transaction.atomic
def contract_create(
    *,
    actor: Actor,
    name: str,
    starts_on: dt.date,
    calendar: BusinessCalendar,
    ends_on: dt.date | None = None,
    active: bool = True,
) -> Contract:
    """Create the client's contract (ITIL 4: the service level agreement). Raises PermissionDenied for
    non-admins, InvalidInput naming ``name`` (empty or taken) or ``ends_on`` (before ``starts_on``).
    Logs ``sla_contract.created``; open records' timers are recomputed after commit."""
    _require_admin(actor)
    name = name.strip()
    if not name:
        raise _invalid("name", "required")
    if Contract.objects.filter(name=name).exists():
        raise _invalid("name", "a contract with this name exists")
    _contract_check(starts_on, ends_on)
    contract = Contract.objects.create(
        name=name, starts_on=starts_on, ends_on=ends_on, active=active, calendar=calendar
    )
    activity_record(
        actor=actor,
        verb="sla_contract.created",
        record_type="sla_contract",
        record_id=contract.pk,
        changes={
            "name": [None, name],
            "starts_on": [None, starts_on.isoformat()],
            "ends_on": [None, ends_on.isoformat() if ends_on else None],
            "active": [None, active],
            "calendar": [None, calendar.name],
        },
    )
    _recompute_on_commit()
    return contract


CONTRACT_FIELDS = ("name", "starts_on", "ends_on", "active", "calendar")


@transaction.atomic
def contract_update(*, actor: Actor, contract: Contract, **changes: Any) -> Contract:
    """Change a contract's ``name``, ``starts_on``, ``ends_on`` (None clears it), ``active`` or
    ``calendar``. Errors as ``contract_create`` (and InvalidInput for other fields). Logs
    ``sla_contract.changed``; open records' timers are recomputed after commit."""
    _require_admin(actor)
    unknown = sorted(set(changes) - set(CONTRACT_FIELDS))
    if unknown:
        raise InvalidInput("not editable", errors=[{"field": f, "message": "not editable"} for f in unknown])
    contract = Contract.objects.select_for_update().get(pk=contract.pk)
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
        if not changes["name"]:
            raise _invalid("name", "required")
        if Contract.objects.filter(name=changes["name"]).exclude(pk=contract.pk).exists():
            raise _invalid("name", "a contract with this name exists")
    diff: dict[str, Any] = {}
    for field, value in changes.items():
        old = getattr(contract, field)
        if old != value:
            diff[field] = [str(old) if old is not None else None, str(value) if value is not None else None]
            setattr(contract, field, value)
    _contract_check(contract.starts_on, contract.ends_on)
    if diff:
        contract.save()
        activity_record(
            actor=actor,
            verb="sla_contract.changed",
            record_type="sla_contract",
            record_id=contract.pk,
            changes=diff,
        )
        _recompute_on_commit()
    return contract


@transaction.atomic
def contract_delete(*, actor: Actor, contract: Contract) -> None:
    """Delete a contract and its policies. Raises Conflict (409) while any timer uses one of its
    policies (deactivate the contract instead: its records keep their history)."""
    _require_admin(actor)
    if SLATimer.objects.filter(policy__contract=contract).exists():
        raise Conflict(f"contract {contract.name} has timers; deactivate it instead")
    activity_record(
        actor=actor,
        verb="sla_contract.deleted",
        record_type="sla_contract",
        record_id=contract.pk,
        changes={"name": [contract.name, None]},
    )
    contract.delete()


@dataclass(frozen=True)
class LevelSpec:
    """An escalation level: ``kind`` response/resolution, ``percent`` 1-1000 of the target, ``actions``
    as documented on EscalationLevel."""

    kind: str
    percent: int
    actions: dict[str, Any]


def _levels_check(levels: Sequence[LevelSpec]) -> None:
    seen = set()
    for index, level in enumerate(levels):
        where = f"levels[{index}]"
        if level.kind not in TimerKind.values:
            raise _invalid(f"{where}.kind", "response or resolution")
        if not 1 <= level.percent <= 1000:
            raise _invalid(f"{where}.percent", "1-1000")
        if (level.kind, level.percent) in seen:
            raise _invalid(f"{where}.percent", "another level of this kind has this percent")
        seen.add((level.kind, level.percent))
        actions = level.actions
        if not isinstance(actions, dict):
            raise _invalid(f"{where}.actions", "an object")
        unknown = sorted(set(actions) - ACTION_KEYS)
        if unknown:
            raise _invalid(f"{where}.actions.{unknown[0]}", "unknown action")
        for key in ("notify_assignee", "notify_group", "raise_priority"):
            if key in actions and not isinstance(actions[key], bool):
                raise _invalid(f"{where}.actions.{key}", "true or false")
        for key, model in (("notify_persons", Person), ("notify_groups", Group)):
            ids = actions.get(key, [])
            if not isinstance(ids, list):
                raise _invalid(f"{where}.actions.{key}", "a list of ids")
            try:
                wanted = {uuid.UUID(str(i)) for i in ids}
            except ValueError as exc:
                raise _invalid(f"{where}.actions.{key}", "a list of ids") from exc
            if len(model.objects.filter(pk__in=wanted)) != len(wanted):
                raise _invalid(f"{where}.actions.{key}", "no such person or group in this tenant")
        for key, model in (("reassign_group", Group), ("reassign_person", Person)):
            value = actions.get(key)
            if value is None:
                continue
            try:
                exists = model.objects.filter(pk=uuid.UUID(str(value))).exists()
            except ValueError:
                exists = False
            if not exists:
                raise _invalid(f"{where}.actions.{key}", "no such person or group in this tenant")


def _policy_check(
    *,
    record_type: str,
    priorities: Sequence[int],
    response_target_minutes: int | None,
    resolution_target_minutes: int | None,
) -> None:
    if record_type not in RecordType.values:
        raise _invalid("record_type", "incident or service_request")
    if any(not isinstance(p, int) or not 1 <= p <= 5 for p in priorities):
        raise _invalid("priorities", "priorities are 1-5")
    if record_type == RecordType.SERVICE_REQUEST and priorities:
        raise _invalid("priorities", "service requests have no priority")
    for name, value in (
        ("response_target_minutes", response_target_minutes),
        ("resolution_target_minutes", resolution_target_minutes),
    ):
        if value is not None and not 1 <= value <= 525_600:
            raise _invalid(name, "1-525600 minutes (one year)")
    if response_target_minutes is None and resolution_target_minutes is None:
        raise _invalid("resolution_target_minutes", "a policy needs a response or a resolution target")


def _levels_replace(policy: SLAPolicy, levels: Sequence[LevelSpec] | None) -> None:
    policy.levels.all().delete()
    if levels is None:
        kinds = [k for k in TimerKind.values if policy.target_minutes(k) is not None]
        levels = [
            LevelSpec(kind, percent, dict(actions)) for kind in kinds for percent, actions in DEFAULT_LEVELS
        ]
    EscalationLevel.objects.bulk_create(
        [EscalationLevel(policy=policy, kind=s.kind, percent=s.percent, actions=s.actions) for s in levels]
    )


def _policy_described(policy: SLAPolicy) -> dict[str, Any]:
    return {
        "name": policy.name,
        "order": policy.order,
        "record_type": policy.record_type,
        "priorities": list(policy.priorities or []),
        "category": policy.category,
        "configuration_item_id": str(policy.configuration_item_id) if policy.configuration_item_id else None,
        "response_target_minutes": policy.response_target_minutes,
        "resolution_target_minutes": policy.resolution_target_minutes,
        "business_time": policy.business_time,
        "calendar": policy.calendar.name if policy.calendar else None,
        "levels": [[lv.kind, lv.percent, lv.actions] for lv in policy.levels.all()],
    }


@transaction.atomic
def policy_create(
    *,
    actor: Actor,
    contract: Contract,
    name: str,
    record_type: str,
    order: int = 100,
    priorities: Sequence[int] = (),
    category: str = "",
    configuration_item_id: uuid.UUID | None = None,
    response_target_minutes: int | None = None,
    resolution_target_minutes: int | None = None,
    business_time: bool = True,
    calendar: BusinessCalendar | None = None,
    levels: Sequence[LevelSpec] | None = None,
) -> SLAPolicy:
    """Add an SLA policy to a contract. Targets in minutes (1 to 525,600), at least one of them.
    ``levels`` None creates the defaults (75, 90, 100 % of each target: notify the assignee, then the
    assignee and the group). Raises PermissionDenied for non-admins and InvalidInput naming the field
    (``name`` taken in this contract, ``record_type``, ``priorities``, targets, ``levels[i].…``).
    Logs ``sla_policy.created``; open records' timers are recomputed after commit."""
    _require_admin(actor)
    name = name.strip()
    if not name:
        raise _invalid("name", "required")
    if SLAPolicy.objects.filter(contract=contract, name=name).exists():
        raise _invalid("name", "a policy with this name exists in this contract")
    _policy_check(
        record_type=record_type,
        priorities=list(priorities),
        response_target_minutes=response_target_minutes,
        resolution_target_minutes=resolution_target_minutes,
    )
    if levels is not None:
        _levels_check(levels)
    policy = SLAPolicy.objects.create(
        contract=contract,
        name=name,
        order=order,
        record_type=record_type,
        priorities=sorted(set(priorities)),
        category=category.strip(),
        configuration_item_id=configuration_item_id,
        response_target_minutes=response_target_minutes,
        resolution_target_minutes=resolution_target_minutes,
        business_time=business_time,
        calendar=calendar,
    )
    _levels_replace(policy, levels)
    activity_record(
        actor=actor,
        verb="sla_policy.created",
        record_type="sla_policy",
        record_id=policy.pk,
        changes={k: [None, v] for k, v in _policy_described(policy).items()},
    )
    _recompute_on_commit()
    return policy


POLICY_FIELDS = (
    "name",
    "order",
    "record_type",
    "priorities",
    "category",
    "configuration_item_id",
    "response_target_minutes",
    "resolution_target_minutes",
    "business_time",
    "calendar",
)


@transaction.atomic
def policy_update(
    *, actor: Actor, policy: SLAPolicy, levels: Sequence[LevelSpec] | None = None, **changes: Any
) -> SLAPolicy:
    """Change a policy's fields (POLICY_FIELDS; None clears the nullable ones) and, when ``levels`` is
    given, replace its escalation levels (runs already made for removed levels go with them). Errors as
    ``policy_create``. Logs ``sla_policy.changed``; open records' timers are recomputed after commit."""
    _require_admin(actor)
    unknown = sorted(set(changes) - set(POLICY_FIELDS))
    if unknown:
        raise InvalidInput("not editable", errors=[{"field": f, "message": "not editable"} for f in unknown])
    policy = SLAPolicy.objects.select_for_update().get(pk=policy.pk)
    before = _policy_described(policy)
    if "name" in changes:
        changes["name"] = (changes["name"] or "").strip()
        if not changes["name"]:
            raise _invalid("name", "required")
        taken = SLAPolicy.objects.filter(contract=policy.contract, name=changes["name"]).exclude(pk=policy.pk)
        if taken.exists():
            raise _invalid("name", "a policy with this name exists in this contract")
    for field, value in changes.items():
        if field == "priorities":
            value = sorted(set(value or []))
        if field in ("category",):
            value = (value or "").strip()
        setattr(policy, field, value)
    _policy_check(
        record_type=policy.record_type,
        priorities=list(policy.priorities or []),
        response_target_minutes=policy.response_target_minutes,
        resolution_target_minutes=policy.resolution_target_minutes,
    )
    if levels is not None:
        _levels_check(levels)
    policy.save()
    if levels is not None:
        _levels_replace(policy, levels)
    after = _policy_described(policy)
    diff = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
    if diff:
        activity_record(
            actor=actor,
            verb="sla_policy.changed",
            record_type="sla_policy",
            record_id=policy.pk,
            changes=diff,
        )
        _recompute_on_commit()
    return policy


@transaction.atomic
def policy_delete(*, actor: Actor, policy: SLAPolicy) -> None:
    """Delete a policy no timer uses. Raises Conflict (409) otherwise (records keep their history)."""
    _require_admin(actor)
    if policy.timers.exists():
        raise Conflict(f"policy {policy.name} has timers; change its conditions or deactivate its contract")
    activity_record(
        actor=actor,
        verb="sla_policy.deleted",
        record_type="sla_policy",
        record_id=policy.pk,
        changes={"name": [policy.name, None]},
    )
    policy.delete()
