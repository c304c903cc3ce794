"""Import a ServiceNow incident event log (one CSV row per incident update) into the current tenant.

Input: the columns of ServiceNow's incident audit export as published in the UCI "Incident management
process enriched event log" (docs/servicenow-import.md): ``number``, ``incident_state``,
``sys_mod_count``, ``sys_updated_at``, ``impact``/``urgency``/``priority`` as ``"2 - Medium"`` labels,
dates as ``DD-MM-YYYY HH:MM`` without a time zone (read in the tenant's time zone), ``?`` for missing.

What it writes, per incident number not yet in the tenant, in one transaction per incident:
- the incident in its latest state (last row by ``sys_mod_count``, file order breaking ties), with the
  recorded priority, counts, resolution and the source's problem, change and CI references;
- one activity entry per row, at the row's ``sys_updated_at``, by the row's ``sys_updated_by``, with the
  fields that changed since the previous row. An import records history as it happened: it does not apply
  today's transition rules;
- persons for callers, openers, assignees, resolvers and updaters, and groups for assignment groups, keyed
  ``servicenow:<value>`` so a second import reuses them.
A malformed row is reported with its line and field and left out; the others go on.
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, TextIO

from django.db import DatabaseError, transaction

from controlplane.problems import InvalidInput
from controlplane.workindex.services import workindex_rollup_rebuild
from modules.changes.services import change_import_reference
from modules.cmdb.services import ci_import_reference
from modules.people.models import Group, Person
from modules.problems.services import problem_import_reference
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, RecordLink
from modules.records.services import link_create, number_advance_past
from modules.sla.services import sla_refresh_many

from .models import Incident, ResolutionCode
from .services import incident_search_refresh
from .workindex import incident_workindex_refresh

MISSING = "?"
NUMBER = re.compile(r"^INC(\d{7,})$")
STATES: dict[str, tuple[str, str]] = {
    "New": (Incident.State.NEW, ""),
    "Active": (Incident.State.IN_PROGRESS, ""),
    "Awaiting User Info": (Incident.State.ON_HOLD, Incident.HoldReason.AWAITING_USER_INFO),
    "Awaiting Problem": (Incident.State.ON_HOLD, Incident.HoldReason.AWAITING_PROBLEM),
    "Awaiting Vendor": (Incident.State.ON_HOLD, Incident.HoldReason.AWAITING_VENDOR),
    "Awaiting Evidence": (Incident.State.ON_HOLD, Incident.HoldReason.AWAITING_EVIDENCE),
    "Resolved": (Incident.State.RESOLVED, ""),
    "Closed": (Incident.State.CLOSED, ""),
}
LEVELS = {"1 - High": 1, "2 - Medium": 2, "3 - Low": 3}
PRIORITIES = {"1 - Critical": 1, "2 - High": 2, "3 - Moderate": 3, "4 - Low": 4, "5 - Planning": 5}
CONTACT_TYPES = {
    "Phone": Incident.ContactType.PHONE,
    "Email": Incident.ContactType.EMAIL,
    "Self service": Incident.ContactType.PORTAL,
    "Walk in": Incident.ContactType.WALK_IN,
    "Direct opening": Incident.ContactType.WALK_IN,
    "IVR": Incident.ContactType.PHONE,
}
BOOLEANS = {"TRUE": True, "FALSE": False}
PERSON_COLUMNS = ("caller_id", "opened_by", "assigned_to", "resolved_by", "sys_updated_by")
REQUIRED_COLUMNS = (
    "number",
    "incident_state",
    "sys_mod_count",
    "sys_updated_at",
    "opened_at",
    "impact",
    "urgency",
    "priority",
)
# Fields whose change between two rows becomes part of an activity entry.
TRACKED = (
    "state",
    "hold_reason",
    "impact",
    "urgency",
    "priority",
    "category",
    "subcategory",
    "assignment_group",
    "assigned_to",
    "reassignment_count",
    "reopen_count",
)
# Source columns kept as they were, for reference (no field of ours holds them yet).
KEPT = (
    "location",
    "u_symptom",
    "made_sla",
    "knowledge",
    "u_priority_confirmation",
    "notify",
    "vendor",
    "caused_by",
    "active",
    "opened_by",
    "sys_created_by",
    "sys_created_at",
)


@dataclass
class RowError:
    line: int
    field: str
    message: str
    number: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"line": self.line, "field": self.field, "message": self.message, "number": self.number}


@dataclass
class Event:
    """One parsed row."""

    line: int
    number: str
    mod_count: int
    updated_at: dt.datetime
    updated_by: str
    values: dict[str, Any]
    raw: dict[str, str]


@dataclass
class ImportReport:
    """What an import did. ``linked`` counts incidents given a problem, change or CI (or a caused-by
    link) by this run; ``problems``, ``changes`` and ``cis`` count records this run created for them."""

    incidents: int = 0
    events: int = 0
    skipped: int = 0
    people: int = 0
    groups: int = 0
    problems: int = 0
    changes: int = 0
    cis: int = 0
    linked: int = 0
    errors: list[RowError] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "incidents": self.incidents,
            "events": self.events,
            "skipped": self.skipped,
            "people": self.people,
            "groups": self.groups,
            "problems": self.problems,
            "changes": self.changes,
            "cis": self.cis,
            "linked": self.linked,
            "errors": [e.as_dict() for e in self.errors],
        }


class RowInvalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _text(row: dict[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    return "" if value == MISSING else value


def _date(
    row: dict[str, str], column: str, tz: zoneinfo.ZoneInfo, *, required: bool = False
) -> dt.datetime | None:
    value = _text(row, column)
    if not value:
        if required:
            raise RowInvalid(column, "required")
        return None
    try:
        return dt.datetime.strptime(value, "%d-%m-%Y %H:%M").replace(tzinfo=tz)
    except ValueError as exc:
        raise RowInvalid(column, f"expected DD-MM-YYYY HH:MM, got {value!r}") from exc


def _int(row: dict[str, str], column: str) -> int:
    value = _text(row, column)
    if not value.isdigit():
        raise RowInvalid(column, f"expected a whole number, got {value!r}")
    return int(value)


def _choice(row: dict[str, str], column: str, choices: dict[str, Any]) -> Any:
    value = _text(row, column)
    if value not in choices:
        raise RowInvalid(column, f"unknown value {value!r}")
    return choices[value]


def parse_row(row: dict[str, str], line: int, tz: zoneinfo.ZoneInfo) -> Event:
    """Parse one CSV row into an Event. Raises RowInvalid naming the first bad field."""
    number = _text(row, "number")
    if not NUMBER.match(number):
        raise RowInvalid("number", f"expected INC followed by digits, got {number!r}")
    state, hold_reason = _choice(row, "incident_state", STATES)
    updated_at = _date(row, "sys_updated_at", tz, required=True)
    assert updated_at is not None
    values = {
        "state": state,
        "hold_reason": hold_reason,
        "impact": _choice(row, "impact", LEVELS),
        "urgency": _choice(row, "urgency", LEVELS),
        "priority": _choice(row, "priority", PRIORITIES),
        "category": _text(row, "category"),
        "subcategory": _text(row, "subcategory"),
        "assignment_group": _text(row, "assignment_group"),
        "assigned_to": _text(row, "assigned_to"),
        "reassignment_count": _int(row, "reassignment_count"),
        "reopen_count": _int(row, "reopen_count"),
        "opened_at": _date(row, "opened_at", tz, required=True),
        "resolved_at": _date(row, "resolved_at", tz),
        "closed_at": _date(row, "closed_at", tz),
        "contact_type": CONTACT_TYPES.get(_text(row, "contact_type"), Incident.ContactType.PHONE),
    }
    for column in ("active", "made_sla"):
        if _text(row, column) and _text(row, column) not in BOOLEANS:
            raise RowInvalid(column, f"expected TRUE or FALSE, got {_text(row, column)!r}")
    return Event(
        line=line,
        number=number,
        mod_count=_int(row, "sys_mod_count"),
        updated_at=updated_at,
        updated_by=_text(row, "sys_updated_by"),
        values=values,
        raw=row,
    )


def read_events(stream: TextIO, tz: zoneinfo.ZoneInfo, report: ImportReport) -> dict[str, list[Event]]:
    """Parse the CSV into events grouped by incident number, each list in ``sys_mod_count`` order (file
    order breaks ties). Bad rows go to ``report.errors`` and ``report.skipped``."""
    reader = csv.DictReader(stream)
    missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
    if missing:
        report.errors.append(RowError(line=1, field=missing[0], message="missing column in the header"))
        return {}
    grouped: dict[str, list[Event]] = defaultdict(list)
    for row in reader:
        line = reader.line_num
        try:
            event = parse_row(row, line, tz)
        except RowInvalid as exc:
            report.errors.append(
                RowError(line=line, field=exc.field, message=exc.message, number=row.get("number") or "")
            )
            report.skipped += 1
            continue
        grouped[event.number].append(event)
    for events in grouped.values():
        events.sort(key=lambda e: (e.mod_count, e.line))
    return grouped


class Directory:
    """People and groups keyed by their ServiceNow value: existing ones loaded, missing ones bulk-created by
    ``preload`` before any incident is written."""

    def __init__(self) -> None:
        self.people = {
            p.external_ref: p for p in Person.objects.filter(external_ref__startswith="servicenow:")
        }
        self.groups = {
            g.external_ref: g for g in Group.objects.filter(external_ref__startswith="servicenow:")
        }

    def preload(self, grouped: dict[str, list[Event]]) -> None:
        """Create every person and group the events name, in two bulk inserts instead of one per name."""
        people: set[str] = set()
        groups: set[str] = set()
        for events in grouped.values():
            for event in events:
                people.update(filter(None, (_text(event.raw, c) for c in PERSON_COLUMNS)))
                groups.add(_text(event.raw, "assignment_group"))
        new_people = [
            Person(external_ref=f"servicenow:{v}", display_name=v)
            for v in sorted(people)
            if f"servicenow:{v}" not in self.people
        ]
        for person in Person.objects.bulk_create(new_people, batch_size=1000):
            self.people[person.external_ref or ""] = person
        taken = set(Group.objects.values_list("name", flat=True))
        new_groups = [
            Group(external_ref=f"servicenow:{v}", name=v if v not in taken else f"{v} (ServiceNow)")
            for v in sorted(groups - {""})
            if f"servicenow:{v}" not in self.groups
        ]
        for group in Group.objects.bulk_create(new_groups, batch_size=1000):
            self.groups[group.external_ref or ""] = group

    def person(self, value: str) -> Person | None:
        """The person ``preload`` made or found for a source value; None for an empty value."""
        return self.people[f"servicenow:{value}"] if value else None

    def group(self, value: str) -> Group | None:
        """The group ``preload`` made or found for a source value; None for an empty value."""
        return self.groups[f"servicenow:{value}"] if value else None


def _display(directory: Directory, name: str, value: Any) -> Any:
    if name in ("assignment_group", "assigned_to") and value:
        obj = directory.group(value) if name == "assignment_group" else directory.person(value)
        return {"id": str(obj.pk), "name": value} if obj is not None else None
    return value or None if isinstance(value, str) else value


def _import_incident(number: str, events: list[Event], directory: Directory, codes: set[str]) -> int:
    """Write one incident and its history. Returns the number of events written."""
    last = events[-1]
    v = last.values
    raw = last.raw
    state = v["state"]
    closed_code = _text(raw, "closed_code")
    resolution_code = closed_code if state in (Incident.State.RESOLVED, Incident.State.CLOSED) else ""
    if resolution_code and resolution_code not in codes:
        ResolutionCode.objects.get_or_create(
            code=resolution_code, defaults={"label": f"{resolution_code} (imported)"}
        )
        codes.add(resolution_code)
    finished = state in (Incident.State.RESOLVED, Incident.State.CLOSED)
    incident = Incident.objects.create(
        number=number,
        created_at=min(e.updated_at for e in events),
        caller=directory.person(_text(raw, "caller_id")),
        opened_by=directory.person(_text(raw, "opened_by")),
        opened_at=v["opened_at"],
        short_description=_short_description(raw),
        category=v["category"],
        subcategory=v["subcategory"],
        contact_type=v["contact_type"],
        impact=v["impact"],
        urgency=v["urgency"],
        priority=v["priority"],
        assignment_group=directory.group(v["assignment_group"]),
        assigned_to=directory.person(v["assigned_to"]),
        state=state,
        hold_reason=v["hold_reason"],
        resolution_code=resolution_code,
        resolved_at=v["resolved_at"] if finished else None,
        resolved_by=directory.person(_text(raw, "resolved_by")) if finished else None,
        closed_at=v["closed_at"] if state == Incident.State.CLOSED else None,
        reassignment_count=v["reassignment_count"],
        reopen_count=v["reopen_count"],
        source_problem_id=_text(raw, "problem_id"),
        source_rfc=_text(raw, "rfc"),
        source_cmdb_ci=_text(raw, "cmdb_ci"),
        source_fields={"system": "servicenow", **{c: _text(raw, c) for c in KEPT}},
    )
    entries = []
    previous: dict[str, Any] = {}
    for index, event in enumerate(events):
        changes = {
            name: [
                _display(directory, name, previous.get(name)),
                _display(directory, name, event.values[name]),
            ]
            for name in TRACKED
            if previous.get(name) != event.values[name]
        }
        changes["sys_mod_count"] = [events[index - 1].mod_count if index else None, event.mod_count]
        entries.append(
            ActivityEntry(
                record_type="incident",
                record_id=incident.pk,
                verb="incident.created" if index == 0 and event.mod_count == 0 else "incident.updated",
                at=event.updated_at,
                actor_person=directory.person(event.updated_by),
                source="import",
                changes=changes,
            )
        )
        previous = event.values
    ActivityEntry.objects.bulk_create(entries)
    return len(entries)


def import_events(grouped: dict[str, list[Event]], report: ImportReport) -> ImportReport:
    """Write every incident of ``grouped`` not yet in the tenant (each under its own savepoint) and move
    the tenant's ``INC`` sequence past the highest number seen. Existing incidents are skipped whole."""
    existing = set(Incident.objects.filter(number__in=list(grouped)).values_list("number", flat=True))
    people_before, groups_before = Person.objects.count(), Group.objects.count()
    directory = Directory()
    with transaction.atomic():
        directory.preload({n: e for n, e in grouped.items() if n not in existing})
    codes = set(ResolutionCode.objects.values_list("code", flat=True))
    # One commit for the whole import, one savepoint per incident: a failing incident is rolled back whole
    # while the others stay (a commit per incident would cost an fsync each).
    with transaction.atomic():
        for number in sorted(grouped):
            events = grouped[number]
            if number in existing:
                report.skipped += len(events)
                continue
            try:
                with transaction.atomic():
                    report.events += _import_incident(number, events, directory, codes)
                    report.incidents += 1
            except DatabaseError as exc:
                codes = set(ResolutionCode.objects.values_list("code", flat=True))
                report.errors.append(
                    RowError(
                        line=events[0].line, field="number", message=f"not imported: {exc}", number=number
                    )
                )
                report.skipped += len(events)
        imported = list(
            Incident.objects.filter(number__in=[n for n in grouped if n not in existing]).values_list(
                "id", flat=True
            )
        )
        incident_search_refresh(incident_ids=imported)
        # The open ones join the cross-client work index; the rollup recounts incidents from the schema.
        incident_workindex_refresh(incident_ids=imported)
        workindex_rollup_rebuild(record_types=["incident"])
        # Timers from the imported history (its source timestamps), in the import's transaction.
        sla_refresh_many(record_type="incident", record_ids=imported, lock=False)
    numbers = list(iter_numbers(grouped))
    if numbers:
        number_advance_past(prefix="INC", value=max(numbers))
    report.people = Person.objects.count() - people_before
    report.groups = Group.objects.count() - groups_before
    link_sources(report)
    return report


@transaction.atomic
def link_sources(report: ImportReport) -> ImportReport:
    """Give every imported incident the problem (``problem_id``), change (``rfc``) and CI (``cmdb_ci``) its
    log names, creating those records through their modules' services the first time they are named, and
    link it to the change that caused it (``caused_by``, a typed link). Incidents that already have a
    problem, change or CI keep it, and existing links are not added again, so running the import again
    over a tenant imported before adds only what is missing (incidents imported before these fields were
    linked included). Each link is written to the incident's history. One transaction."""
    actor = Actor.system(source="import")
    linked: set[Any] = set()
    entries: list[ActivityEntry] = []

    def refs(field: str) -> list[str]:
        values = Incident.objects.exclude(**{field: ""}).values_list(field, flat=True).distinct()
        return sorted(values)

    def attach(field: str, value: str, target_field: str, target: Any, verb: str) -> None:
        todo = Incident.objects.filter(**{field: value, f"{target_field}__isnull": True})
        rows = list(todo.values_list("id", "number"))
        ids = [row[0] for row in rows]
        todo.update(**{target_field: target})
        if rows:  # the problem, change or CI records which incidents the import linked to it
            entries.append(
                ActivityEntry(
                    record_type=target_field if target_field != "configuration_item" else "ci",
                    record_id=target.pk,
                    verb="incidents.linked",
                    source="import",
                    changes={"incidents": sorted(row[1] for row in rows)},
                )
            )
        for incident_id in ids:
            entries.append(
                ActivityEntry(
                    record_type="incident",
                    record_id=incident_id,
                    verb=verb,
                    source="import",
                    changes={target_field: [None, {"id": str(target.pk), "name": str(target)}]},
                )
            )
        linked.update(ids)

    for value in refs("source_problem_id"):
        problem, created = problem_import_reference(
            actor=actor, external_ref=f"servicenow:{value}", title=f"{' '.join(value.split())} (ServiceNow)"
        )
        report.problems += created
        attach("source_problem_id", value, "problem", problem, "incident.problem_linked")
    for value in refs("source_cmdb_ci"):
        ci, created = ci_import_reference(actor=actor, external_ref=f"servicenow:{value}", name=value)
        report.cis += created
        attach("source_cmdb_ci", value, "configuration_item", ci, "incident.ci_linked")
    changes: dict[str, Any] = {}
    caused = {
        row[0]: row[1]
        for row in Incident.objects.exclude(source_fields__caused_by="").values_list(
            "id", "source_fields__caused_by"
        )
        if row[1]
    }
    for value in sorted({*refs("source_rfc"), *caused.values()}):
        try:
            change, created = change_import_reference(
                actor=actor, number=value, title=f"{value} (ServiceNow)", system="servicenow"
            )
        except InvalidInput as exc:
            report.errors.append(RowError(line=0, field="rfc", message=str(exc)))
            continue
        report.changes += created
        changes[value] = change
        if Incident.objects.filter(source_rfc=value).exists():
            attach("source_rfc", value, "change", change, "incident.change_linked")
    existing = set(
        RecordLink.objects.filter(kind=RecordLink.Kind.CAUSED_BY, target_type="change").values_list(
            "source_id", "target_id"
        )
    )
    for incident_id, number in sorted(caused.items()):
        cause = changes.get(number)
        if cause is not None and (incident_id, cause.pk) not in existing:
            link_create(
                actor=actor,
                source_type="incident",
                source_id=incident_id,
                target_type="change",
                target_id=cause.pk,
                kind=RecordLink.Kind.CAUSED_BY,
            )
            linked.add(incident_id)
    ActivityEntry.objects.bulk_create(entries)
    report.linked += len(linked)
    return report


def servicenow_import(*, stream: TextIO, time_zone: str) -> ImportReport:
    """Import a ServiceNow incident event log from ``stream`` into the current tenant schema.

    ``time_zone``: IANA name the log's naive timestamps are read in (the tenant's). Returns the report;
    never raises for bad rows (they are in ``report.errors`` with line and field).
    """
    report = ImportReport()
    grouped = read_events(stream, zoneinfo.ZoneInfo(time_zone), report)
    return import_events(grouped, report)


def _short_description(raw: dict[str, str]) -> str:
    """The log has no short description; name the symptom and category instead."""
    parts = [_text(raw, "u_symptom") or "Incident", _text(raw, "category"), _text(raw, "subcategory")]
    return " / ".join(p for p in parts if p)[:160]


def iter_numbers(grouped: Iterable[str]) -> Iterator[int]:
    for number in grouped:
        match = NUMBER.match(number)
        if match:
            yield int(match.group(1))
