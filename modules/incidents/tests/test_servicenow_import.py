"""The ServiceNow event log import, on the real shared data and on malformed input."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import zoneinfo
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.models import Incident
from modules.incidents.servicenow import LEVELS, PRIORITIES, servicenow_import
from modules.people.models import Group, Person
from modules.records.models import ActivityEntry
from modules.records.services import number_next
from tenants.models import Tenant

DATA = Path(__file__).resolve().parents[3] / "tests" / "data" / "servicenow_incident_event_log.csv"


def last_rows() -> dict[str, dict[str, str]]:
    """The last row per incident by sys_mod_count, file order breaking ties (the importer's rule)."""
    rows: dict[str, tuple[int, int, dict[str, str]]] = {}
    with DATA.open(newline="") as stream:
        for index, row in enumerate(csv.DictReader(stream)):
            key = (int(row["sys_mod_count"]), index)
            if row["number"] not in rows or key >= rows[row["number"]][:2]:
                rows[row["number"]] = (*key, row)
    return {number: value[2] for number, value in rows.items()}


def run_import(tenant: Tenant) -> dict:
    out = io.StringIO()
    call_command("import_servicenow", str(DATA), tenant=tenant.slug, stdout=out, stderr=io.StringIO())
    return json.loads(out.getvalue().strip().splitlines()[-1])


def test_import_of_the_shared_log(tenant_a: Tenant) -> None:
    report = run_import(tenant_a)

    assert report["incidents"] == 890
    assert report["events"] == 5998
    assert report["skipped"] == 0
    assert report["errors"] == []
    expected = last_rows()
    with tenant_context(tenant_a):
        assert Incident.objects.count() == 890
        rows = ActivityEntry.objects.filter(
            source="import", verb__in=["incident.created", "incident.updated"]
        )
        assert rows.count() == 5998
        recorded = {n: PRIORITIES[r["priority"]] for n, r in expected.items()}
        assert dict(Incident.objects.values_list("number", "priority")) == recorded
        assert set(Incident.objects.values_list("state", flat=True)) == {"closed"}
        # counts, references and resolution kept from the last row
        inc = Incident.objects.get(number="INC0000045")
        row = expected["INC0000045"]
        assert (inc.impact, inc.urgency) == (LEVELS[row["impact"]], LEVELS[row["urgency"]])
        assert inc.reassignment_count == int(row["reassignment_count"])
        assert inc.reopen_count == int(row["reopen_count"])
        assert inc.resolution_code == row["closed_code"]
        assert inc.caller is not None and inc.caller.display_name == row["caller_id"]
        london = zoneinfo.ZoneInfo("Europe/London")
        assert inc.opened_at == dt.datetime(2016, 2, 29, 1, 16, tzinfo=london)
        with_problem = {n for n, r in expected.items() if r["problem_id"] != "?"}
        assert (
            set(Incident.objects.exclude(source_problem_id="").values_list("number", flat=True))
            == with_problem
        )
        with_rfc = {n for n, r in expected.items() if r["rfc"] != "?"}
        assert set(Incident.objects.exclude(source_rfc="").values_list("number", flat=True)) == with_rfc
        # the history is the rows, in order, at their own times
        history = list(ActivityEntry.objects.filter(record_id=inc.pk).order_by("at", "created_at"))
        states = [h.changes["state"][1] for h in history if "state" in h.changes]
        assert states[0] == "new" and states[-1] == "closed"
        assert history[0].at == dt.datetime(2016, 2, 29, 1, 23, tzinfo=london)
        # people and groups are directory entries keyed by their source value
        assert Person.objects.filter(external_ref="servicenow:Caller 2403").count() == 1
        assert Group.objects.filter(external_ref="servicenow:Group 56").count() == 1
        # the tenant's numbering moved past the imported numbers
        highest = max(int(n[3:]) for n in expected)
        assert int(number_next(prefix="INC")[3:]) == highest + 1


def source_values(column: str) -> set[str]:
    """Distinct values of a column over the log's last rows, without ServiceNow's empty marker."""
    return {r[column] for r in last_rows().values()} - {"?"}


def test_import_links_problems_changes_and_cis(tenant_a: Tenant) -> None:
    report = run_import(tenant_a)

    expected = last_rows()
    problems, cis = source_values("problem_id"), source_values("cmdb_ci")
    changes = source_values("rfc") | source_values("caused_by")
    assert (report["problems"], report["changes"], report["cis"]) == (len(problems), len(changes), len(cis))
    with_any = {
        n for n, r in expected.items() if {r["problem_id"], r["rfc"], r["cmdb_ci"], r["caused_by"]} != {"?"}
    }
    assert report["linked"] == len(with_any)
    with tenant_context(tenant_a):
        from modules.changes.models import Change
        from modules.cmdb.models import ConfigurationItem
        from modules.problems.models import Problem
        from modules.records.models import RecordLink

        assert set(Problem.objects.values_list("external_ref", flat=True)) == {
            f"servicenow:{p}" for p in problems
        }
        assert set(Change.objects.values_list("number", flat=True)) == changes
        assert set(Change.objects.values_list("external_ref", flat=True)) == {
            f"servicenow:{c}" for c in changes
        }
        assert set(ConfigurationItem.objects.values_list("name", flat=True)) == cis
        for number, row in expected.items():
            incident = Incident.objects.get(number=number)
            problem = row["problem_id"] if row["problem_id"] != "?" else None
            assert (incident.problem.external_ref if incident.problem else None) == (
                f"servicenow:{problem}" if problem else None
            )
            assert (incident.change.number if incident.change else None) == (
                row["rfc"] if row["rfc"] != "?" else None
            )
            ci = incident.configuration_item
            assert (ci.name if ci else None) == (row["cmdb_ci"] if row["cmdb_ci"] != "?" else None)
        caused = {
            (Incident.objects.get(pk=link.source_id).number, Change.objects.get(pk=link.target_id).number)
            for link in RecordLink.objects.filter(kind="caused_by")
        }
        assert caused == {(n, r["caused_by"]) for n, r in expected.items() if r["caused_by"] != "?"}
        # each link is in the incident's history
        one = Incident.objects.exclude(problem=None).first()
        assert one is not None
        assert ActivityEntry.objects.filter(record_id=one.pk, verb="incident.problem_linked").count() == 1
        # ... and in the problem's, with every incident the import linked to it
        assert one.problem is not None
        on_problem = ActivityEntry.objects.get(record_id=one.problem.pk, verb="incidents.linked")
        assert on_problem.changes["incidents"] == sorted(
            Incident.objects.filter(problem=one.problem).values_list("number", flat=True)
        )


def test_a_native_change_with_the_same_number_is_not_taken_for_the_imported_one(
    tenant_a: Tenant, tech_a: User
) -> None:
    from modules.changes.models import Change
    from modules.changes.services import change_create

    with tenant_context(tenant_a):
        native = change_create(
            actor=actor_in(tenant_a, tech_a),
            change_type="normal",
            short_description="Our own",
            number="CHG0000047",
        )
    run_import(tenant_a)
    with tenant_context(tenant_a):
        imported = Change.objects.get(external_ref="servicenow:CHG0000047")
        assert imported.pk != native.pk and imported.number != "CHG0000047"
        linked = Incident.objects.filter(source_rfc="CHG0000047")
        assert linked.exists() and set(linked.values_list("change_id", flat=True)) == {imported.pk}


def test_a_second_import_adds_missing_links_and_nothing_else(tenant_a: Tenant) -> None:
    """A tenant imported before links existed (here: links removed) gets them from a second run, once."""
    run_import(tenant_a)
    with tenant_context(tenant_a):
        from modules.records.models import RecordLink

        linked = dict(Incident.objects.exclude(problem=None).values_list("number", "problem_id"))
        Incident.objects.all().update(problem=None, change=None, configuration_item=None)
        RecordLink.objects.all().delete()

    again = run_import(tenant_a)

    assert (again["incidents"], again["problems"], again["changes"], again["cis"]) == (0, 0, 0, 0)
    assert again["linked"] > 0
    with tenant_context(tenant_a):
        assert dict(Incident.objects.exclude(problem=None).values_list("number", "problem_id")) == linked
        links = RecordLink.objects.count()
    third = run_import(tenant_a)
    assert third["linked"] == 0
    with tenant_context(tenant_a):
        assert RecordLink.objects.count() == links


def test_a_second_import_adds_nothing(tenant_a: Tenant) -> None:
    run_import(tenant_a)
    with tenant_context(tenant_a):
        counts = (
            Incident.objects.count(),
            ActivityEntry.objects.count(),
            Person.objects.count(),
            Group.objects.count(),
        )

    again = run_import(tenant_a)

    assert again["incidents"] == 0 and again["events"] == 0 and again["skipped"] == 5998
    with tenant_context(tenant_a):
        assert counts == (
            Incident.objects.count(),
            ActivityEntry.objects.count(),
            Person.objects.count(),
            Group.objects.count(),
        )


HEADER = (
    "number,incident_state,active,reassignment_count,reopen_count,sys_mod_count,made_sla,caller_id,opened_by,"
    "opened_at,sys_created_by,sys_created_at,sys_updated_by,sys_updated_at,contact_type,location,category,"
    "subcategory,u_symptom,cmdb_ci,impact,urgency,priority,assignment_group,assigned_to,knowledge,"
    "u_priority_confirmation,notify,problem_id,rfc,vendor,caused_by,closed_code,resolved_by,resolved_at,closed_at"
)


def row(
    number: str,
    state: str,
    mod: int,
    *,
    updated: str = "01-03-2016 10:00",
    impact: str = "2 - Medium",
    priority: str = "3 - Moderate",
) -> str:
    return (
        f"{number},{state},TRUE,0,0,{mod},TRUE,Caller 1,Opened by 1,01-03-2016 09:00,Created by 1,01-03-2016 09:00,"
        f"Updated by 1,{updated},Phone,Location 1,Category 1,Subcategory 1,Symptom 1,?,{impact},2 - Medium,{priority},"
        "Group 1,Resolver 1,TRUE,FALSE,Do Not Notify,?,?,?,?,code 1,Resolved by 1,?,?"
    )


def test_malformed_rows_are_reported_by_line_and_field_and_the_rest_imported(tenant_a: Tenant) -> None:
    text = (
        "\n".join(
            [
                HEADER,
                row("INC0000001", "New", 0),  # line 2
                row("INC0000001", "Active", 1, updated="31-02-2016 10:00"),  # line 3: no 31 February
                row("INC0000002", "New", 0, impact="9 - Huge"),  # line 4
                row("BAD", "New", 0),  # line 5
                row("INC0000003", "Exploded", 0),  # line 6
                row("INC0000004", "New", 0),  # line 7
                row("INC0000004", "Awaiting Vendor", 1),  # line 8
            ]
        )
        + "\n"
    )
    with tenant_context(tenant_a):
        report = servicenow_import(stream=io.StringIO(text), time_zone="UTC").as_dict()
        assert [(e["line"], e["field"]) for e in report["errors"]] == [
            (3, "sys_updated_at"),
            (4, "impact"),
            (5, "number"),
            (6, "incident_state"),
        ]
        assert report["incidents"] == 2 and report["events"] == 3 and report["skipped"] == 4
        assert dict(Incident.objects.values_list("number", "state")) == {
            "INC0000001": "new",
            "INC0000004": "on_hold",
        }
        assert Incident.objects.get(number="INC0000004").hold_reason == "awaiting_vendor"
        assert not Incident.objects.filter(number__in=["INC0000002", "INC0000003"]).exists()


def test_import_command_errors_name_the_argument(tenant_a: Tenant, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="--tenant: no tenant with slug 'nope'"):
        call_command("import_servicenow", str(DATA), tenant="nope")
    with pytest.raises(CommandError, match=r"PATH: .* is not a readable file"):
        call_command("import_servicenow", str(tmp_path / "missing.csv"), tenant=tenant_a.slug)
    bad_header = tmp_path / "bad.csv"
    bad_header.write_text("number,state\nINC0000001,New\n")
    out = io.StringIO()
    call_command("import_servicenow", str(bad_header), tenant=tenant_a.slug, stdout=out, stderr=io.StringIO())
    report = json.loads(out.getvalue().strip().splitlines()[-1])
    assert report["incidents"] == 0
    assert report["errors"][0]["line"] == 1 and report["errors"][0]["field"] == "incident_state"
