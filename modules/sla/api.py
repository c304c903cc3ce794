"""REST API of the SLA engine: /api/v1/t/{tenant}/sla. Calendars, contracts and policies (read by
technicians, written by admins) and a record's timers. Times are UTC; targets in minutes; working hours
as local "HH:MM" (end "24:00" = midnight)."""

import datetime as dt
import re
import uuid
from typing import Any, Literal

from ninja import Field, Router, Schema, Status

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest
from controlplane.problems import InvalidInput

from . import selectors, services
from .models import BusinessCalendar, SLAPolicy

router = Router(tags=["sla"])
HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")


class HoursIO(Schema):
    weekday: int = Field(..., ge=0, le=6, description="0 = Monday .. 6 = Sunday")
    start: str = Field(..., description="local HH:MM")
    end: str = Field(..., description="local HH:MM; 24:00 = midnight")


class ClosedDayIO(Schema):
    date: dt.date
    name: str = Field("", max_length=120)


class CalendarOut(Schema):
    id: uuid.UUID
    name: str
    time_zone: str
    holiday_country: str
    holiday_subdivision: str
    working_hours: list[HoursIO]
    closed_days: list[ClosedDayIO]


class CalendarIn(Schema):
    name: str = Field(..., min_length=1, max_length=120)
    time_zone: str | None = Field(None, description="IANA name; default: the tenant's time zone")
    holiday_country: str = Field("", max_length=3, description="ISO 3166-1 alpha-2, e.g. GB")
    holiday_subdivision: str = Field("", max_length=10, description="e.g. ENG")
    working_hours: list[HoursIO]
    closed_days: list[ClosedDayIO] = []


class CalendarPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=120)
    time_zone: str | None = None
    holiday_country: str | None = Field(None, max_length=3)
    holiday_subdivision: str | None = Field(None, max_length=10)
    working_hours: list[HoursIO] | None = None
    closed_days: list[ClosedDayIO] | None = None


class ContractOut(Schema):
    id: uuid.UUID
    name: str
    starts_on: dt.date
    ends_on: dt.date | None
    active: bool
    calendar_id: uuid.UUID


class ContractIn(Schema):
    name: str = Field(..., min_length=1, max_length=160)
    starts_on: dt.date
    ends_on: dt.date | None = None
    active: bool = True
    calendar_id: uuid.UUID


class ContractPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=160)
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None
    active: bool | None = None
    calendar_id: uuid.UUID | None = None


class LevelIO(Schema):
    kind: Literal["response", "resolution"]
    percent: int = Field(..., ge=1, le=1000)
    actions: dict[str, Any] = Field(
        default_factory=dict,
        description="notify_assignee, notify_group (bool); notify_persons, notify_groups (id lists); "
        "reassign_group, reassign_person (id); raise_priority (bool)",
    )


class PolicyOut(Schema):
    id: uuid.UUID
    contract_id: uuid.UUID
    name: str
    order: int
    record_type: str
    priorities: list[int]
    category: str
    configuration_item_id: uuid.UUID | None
    response_target_minutes: int | None
    resolution_target_minutes: int | None
    business_time: bool
    calendar_id: uuid.UUID | None
    levels: list[LevelIO]


class PolicyIn(Schema):
    contract_id: uuid.UUID
    name: str = Field(..., min_length=1, max_length=160)
    order: int = 100
    record_type: Literal["incident", "service_request"]
    priorities: list[int] = []
    category: str = Field("", max_length=100)
    configuration_item_id: uuid.UUID | None = None
    response_target_minutes: int | None = Field(None, ge=1)
    resolution_target_minutes: int | None = Field(None, ge=1)
    business_time: bool = True
    calendar_id: uuid.UUID | None = None
    levels: list[LevelIO] | None = Field(None, description="default: 75, 90 and 100 % of each target")


class PolicyPatch(Schema):
    name: str | None = Field(None, min_length=1, max_length=160)
    order: int | None = None
    priorities: list[int] | None = None
    category: str | None = Field(None, max_length=100)
    configuration_item_id: uuid.UUID | None = None
    response_target_minutes: int | None = Field(None, ge=1)
    resolution_target_minutes: int | None = Field(None, ge=1)
    business_time: bool | None = None
    calendar_id: uuid.UUID | None = None
    levels: list[LevelIO] | None = None


class TimerOut(Schema):
    kind: str
    stage: str
    record_type: str
    record_id: uuid.UUID
    policy_id: uuid.UUID
    policy_name: str
    started_at: dt.datetime
    stopped_at: dt.datetime | None
    paused_since: dt.datetime | None
    due_at: dt.datetime | None
    breached_at: dt.datetime | None
    target_seconds: int
    elapsed_seconds: int = Field(..., description="business seconds elapsed now")
    remaining_seconds: int = Field(..., description="business seconds left now; negative once breached")


def _hhmm(value: str, field: str) -> dt.time:
    if not HHMM.match(value):
        raise InvalidInput(f"{field}: not HH:MM", errors=[{"field": field, "message": "HH:MM (00:00-24:00)"}])
    if value == "24:00":
        return dt.time(0, 0)
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def _hours(hours: list[HoursIO]) -> list[services.HoursSpec]:
    return [
        services.HoursSpec(
            h.weekday, _hhmm(h.start, f"working_hours[{i}].start"), _hhmm(h.end, f"working_hours[{i}].end")
        )
        for i, h in enumerate(hours)
    ]


def _calendar_out(calendar: BusinessCalendar) -> dict[str, Any]:
    def text(value: dt.time, end: bool) -> str:
        return "24:00" if end and value == dt.time(0, 0) else value.strftime("%H:%M")

    return {
        "id": calendar.pk,
        "name": calendar.name,
        "time_zone": calendar.time_zone,
        "holiday_country": calendar.holiday_country,
        "holiday_subdivision": calendar.holiday_subdivision,
        "working_hours": [
            {"weekday": h.weekday, "start": text(h.start, False), "end": text(h.end, True)}
            for h in calendar.hours.all()
        ],
        "closed_days": [{"date": c.date, "name": c.name} for c in calendar.closed_days.all()],
    }


def _policy_out(policy: SLAPolicy) -> dict[str, Any]:
    return {
        **{f: getattr(policy, f) for f in services.POLICY_FIELDS if f != "calendar"},
        "id": policy.pk,
        "contract_id": policy.contract_id,
        "calendar_id": policy.calendar_id,
        "priorities": list(policy.priorities or []),
        "levels": [
            {"kind": lv.kind, "percent": lv.percent, "actions": lv.actions} for lv in policy.levels.all()
        ],
    }


def _levels(levels: list[LevelIO] | None) -> list[services.LevelSpec] | None:
    if levels is None:
        return None
    return [services.LevelSpec(lv.kind, lv.percent, lv.actions) for lv in levels]


@router.get("/calendars", response=list[CalendarOut], summary="Business calendars")
def list_calendars(request: TenantRequest, tenant: TenantSlug) -> Any:
    return [_calendar_out(c) for c in selectors.calendar_list(actor=request.actor)]


@router.post("/calendars", response={201: CalendarOut}, summary="Create a calendar (admins)")
def create_calendar(request: TenantRequest, tenant: TenantSlug, payload: CalendarIn) -> Any:
    calendar = services.calendar_create(
        actor=request.actor,
        name=payload.name,
        time_zone=payload.time_zone,
        holiday_country=payload.holiday_country,
        holiday_subdivision=payload.holiday_subdivision,
        working_hours=_hours(payload.working_hours),
        closed_days=[(c.date, c.name) for c in payload.closed_days],
    )
    return Status(201, _calendar_out(selectors.calendar_get(actor=request.actor, calendar_id=calendar.pk)))


@router.get("/calendars/{calendar_id}", response=CalendarOut, summary="Get a calendar")
def get_calendar(request: TenantRequest, tenant: TenantSlug, calendar_id: uuid.UUID) -> Any:
    return _calendar_out(selectors.calendar_get(actor=request.actor, calendar_id=calendar_id))


@router.patch("/calendars/{calendar_id}", response=CalendarOut, summary="Change a calendar (admins)")
def update_calendar(
    request: TenantRequest, tenant: TenantSlug, calendar_id: uuid.UUID, payload: CalendarPatch
) -> Any:
    calendar = selectors.calendar_get(actor=request.actor, calendar_id=calendar_id)
    data = payload.dict(exclude_unset=True)
    services.calendar_update(
        actor=request.actor,
        calendar=calendar,
        name=data.get("name"),
        time_zone=data.get("time_zone"),
        holiday_country=data.get("holiday_country"),
        holiday_subdivision=data.get("holiday_subdivision"),
        working_hours=_hours(payload.working_hours) if payload.working_hours is not None else None,
        closed_days=[(c.date, c.name) for c in payload.closed_days]
        if payload.closed_days is not None
        else None,
    )
    return _calendar_out(selectors.calendar_get(actor=request.actor, calendar_id=calendar_id))


@router.delete("/calendars/{calendar_id}", response={204: None}, summary="Delete an unused calendar (admins)")
def delete_calendar(request: TenantRequest, tenant: TenantSlug, calendar_id: uuid.UUID) -> Any:
    calendar = selectors.calendar_get(actor=request.actor, calendar_id=calendar_id)
    services.calendar_delete(actor=request.actor, calendar=calendar)
    return Status(204, None)


@router.get("/contracts", response=list[ContractOut], summary="Contracts")
def list_contracts(request: TenantRequest, tenant: TenantSlug) -> Any:
    return list(selectors.contract_list(actor=request.actor))


@router.post("/contracts", response={201: ContractOut}, summary="Create a contract (admins)")
def create_contract(request: TenantRequest, tenant: TenantSlug, payload: ContractIn) -> Any:
    data = payload.dict()
    calendar = _calendar_ref(request, data.pop("calendar_id"))
    return Status(201, services.contract_create(actor=request.actor, calendar=calendar, **data))


def _calendar_ref(request: TenantRequest, calendar_id: uuid.UUID) -> BusinessCalendar:
    """A calendar named in a body; a missing one is a 422 naming ``calendar_id``."""
    from controlplane.problems import NotFound

    try:
        return selectors.calendar_get(actor=request.actor, calendar_id=calendar_id)
    except NotFound as exc:
        raise InvalidInput(
            "no such calendar", errors=[{"field": "calendar_id", "message": "no such calendar"}]
        ) from exc


@router.get("/contracts/{contract_id}", response=ContractOut, summary="Get a contract")
def get_contract(request: TenantRequest, tenant: TenantSlug, contract_id: uuid.UUID) -> Any:
    return selectors.contract_get(actor=request.actor, contract_id=contract_id)


@router.patch("/contracts/{contract_id}", response=ContractOut, summary="Change a contract (admins)")
def update_contract(
    request: TenantRequest, tenant: TenantSlug, contract_id: uuid.UUID, payload: ContractPatch
) -> Any:
    contract = selectors.contract_get(actor=request.actor, contract_id=contract_id)
    changes = payload.dict(exclude_unset=True)
    if "calendar_id" in changes:
        changes["calendar"] = _calendar_ref(request, changes.pop("calendar_id"))
    return services.contract_update(actor=request.actor, contract=contract, **changes)


@router.delete(
    "/contracts/{contract_id}", response={204: None}, summary="Delete a contract without timers (admins)"
)
def delete_contract(request: TenantRequest, tenant: TenantSlug, contract_id: uuid.UUID) -> Any:
    contract = selectors.contract_get(actor=request.actor, contract_id=contract_id)
    services.contract_delete(actor=request.actor, contract=contract)
    return Status(204, None)


@router.get("/policies", response=list[PolicyOut], summary="SLA policies with their escalation levels")
def list_policies(request: TenantRequest, tenant: TenantSlug, contract_id: uuid.UUID | None = None) -> Any:
    return [_policy_out(p) for p in selectors.policy_list(actor=request.actor, contract_id=contract_id)]


@router.post("/policies", response={201: PolicyOut}, summary="Create a policy (admins)")
def create_policy(request: TenantRequest, tenant: TenantSlug, payload: PolicyIn) -> Any:
    from controlplane.problems import NotFound

    data = payload.dict()
    try:
        contract = selectors.contract_get(actor=request.actor, contract_id=data.pop("contract_id"))
    except NotFound as exc:
        raise InvalidInput(
            "no such contract", errors=[{"field": "contract_id", "message": "no such contract"}]
        ) from exc
    calendar_id = data.pop("calendar_id")
    calendar = _calendar_ref(request, calendar_id) if calendar_id else None
    levels = _levels(payload.levels)
    data.pop("levels")
    policy = services.policy_create(
        actor=request.actor, contract=contract, calendar=calendar, levels=levels, **data
    )
    return Status(201, _policy_out(selectors.policy_get(actor=request.actor, policy_id=policy.pk)))


@router.get("/policies/{policy_id}", response=PolicyOut, summary="Get a policy")
def get_policy(request: TenantRequest, tenant: TenantSlug, policy_id: uuid.UUID) -> Any:
    return _policy_out(selectors.policy_get(actor=request.actor, policy_id=policy_id))


@router.patch("/policies/{policy_id}", response=PolicyOut, summary="Change a policy (admins)")
def update_policy(
    request: TenantRequest, tenant: TenantSlug, policy_id: uuid.UUID, payload: PolicyPatch
) -> Any:
    policy = selectors.policy_get(actor=request.actor, policy_id=policy_id)
    changes = payload.dict(exclude_unset=True)
    levels = _levels(payload.levels) if "levels" in changes else None
    changes.pop("levels", None)
    if "calendar_id" in changes:
        calendar_id = changes.pop("calendar_id")
        changes["calendar"] = _calendar_ref(request, calendar_id) if calendar_id else None
    services.policy_update(actor=request.actor, policy=policy, levels=levels, **changes)
    return _policy_out(selectors.policy_get(actor=request.actor, policy_id=policy_id))


@router.delete(
    "/policies/{policy_id}", response={204: None}, summary="Delete a policy without timers (admins)"
)
def delete_policy(request: TenantRequest, tenant: TenantSlug, policy_id: uuid.UUID) -> Any:
    policy = selectors.policy_get(actor=request.actor, policy_id=policy_id)
    services.policy_delete(actor=request.actor, policy=policy)
    return Status(204, None)


@router.get("/timers", response=list[TimerOut], summary="A record's SLA timers, with business time left now")
def list_timers(request: TenantRequest, tenant: TenantSlug, record_id: uuid.UUID) -> Any:
    return [
        {
            **{
                f: getattr(v.timer, f)
                for f in (
                    "kind",
                    "stage",
                    "record_type",
                    "record_id",
                    "policy_id",
                    "started_at",
                    "stopped_at",
                    "paused_since",
                    "due_at",
                    "breached_at",
                    "target_seconds",
                )
            },
            "policy_name": v.timer.policy.name,
            "elapsed_seconds": v.elapsed_seconds,
            "remaining_seconds": v.remaining_seconds,
        }
        for v in selectors.timer_list(actor=request.actor, record_id=record_id)
    ]
