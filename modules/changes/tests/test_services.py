"""Change services inside a tenant: the three state machines and their refusals, the CAB quorum rule,
the risk calculation, schedule conflicts, and who may do what.

Every denial also checks that nothing was written: no change row altered, no vote, no activity entry.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput, NotFound, PermissionDenied
from modules.changes.models import CabMember, CabVote, Change, ChangeSettings, RiskQuestion
from modules.changes.selectors import (
    cab_tally_get,
    change_conflict_list,
    change_get,
    change_list,
)
from modules.changes.services import (
    CabRuleNotMet,
    ChangeNotEditable,
    InvalidTransition,
    allowed_actions,
    blackout_create,
    change_ci_add,
    change_ci_remove,
    change_create,
    change_risk_set,
    change_settings_set,
    change_transition,
    change_update,
    change_vote,
    risk_for,
)
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, SearchDocument
from tenants.models import Tenant

from .factories import T0, admin, ci, emergency, hours, member, normal, rel, template, to_authorise


@pytest.fixture
def tech(tenant_a: Tenant, tech_a: User) -> Iterator[Actor]:
    """A technician actor, with the connection inside tenant A for the whole test."""
    with tenant_context(tenant_a):
        yield actor_in(tenant_a, tech_a)


def verbs(change: Change) -> list[str]:
    return list(ActivityEntry.objects.filter(record_id=change.pk).values_list("verb", flat=True))


def snapshot() -> tuple[Any, ...]:
    return (
        list(Change.objects.order_by("pk").values()),
        CabVote.objects.count(),
        ActivityEntry.objects.count(),
    )


def act(actor: Actor, change: Change, action: str, **details: Any) -> Change:
    return change_transition(actor=actor, change=change, action=action, **details)


def finish(actor: Actor, change: Change) -> Change:
    change = act(actor, change, "implement")
    change = act(actor, change, "complete", outcome="successful")
    return act(actor, change, "close", review_notes="went to plan")


# Standard changes


def test_standard_change_from_template_is_pre_approved_on_submit(tech: Actor) -> None:
    tpl = template()
    change = change_create(
        actor=tech, change_type="standard", template_id=tpl.pk, planned_start=T0, planned_end=T0 + hours(1)
    )
    assert (change.number, change.state, change.risk) == ("CHG0000001", "draft", "low")
    assert (change.short_description, change.implementation_plan, change.backout_plan) == (
        "Restart app pool",
        "recycle the pool",
        "none needed",
    )
    assert allowed_actions(change=change, actor=tech) == ["submit", "cancel"]
    change = act(tech, change, "submit")
    assert change.state == "scheduled"
    entry = ActivityEntry.objects.get(record_id=change.pk, verb="change.submit")
    assert entry.changes == {
        "state": ["draft", "scheduled"],
        "approval": [None, "pre-approved standard change (template Restart app pool)"],
    }
    change = finish(tech, change)
    assert (change.state, change.outcome, change.review_notes) == ("closed", "successful", "went to plan")
    assert change.actual_start is not None and change.actual_end is not None
    assert verbs(change) == [
        "change.created",
        "change.submit",
        "change.conflicts_computed",  # stored on submit: a standard change has no CAB to see them
        "change.implement",
        "change.complete",
        "change.close",
    ]


def test_standard_change_needs_an_active_template_and_a_window(tech: Actor) -> None:
    with pytest.raises(InvalidInput) as missing:
        change_create(actor=tech, change_type="standard", short_description="x")
    assert missing.value.extra["errors"] == [
        {"field": "template_id", "message": "an active standard change template is required"}
    ]
    retired = template(name="Old recipe", active=False)
    with pytest.raises(InvalidInput):
        change_create(actor=tech, change_type="standard", template_id=retired.pk)
    with pytest.raises(InvalidInput) as normal_with_template:
        change_create(actor=tech, change_type="normal", short_description="x", template_id=template().pk)
    assert normal_with_template.value.extra["errors"][0]["field"] == "template_id"
    change = change_create(actor=tech, change_type="standard", template_id=template(name="Other").pk)
    with pytest.raises(InvalidInput) as no_window:
        act(tech, change, "submit")
    assert [e["field"] for e in no_window.value.extra["errors"]] == ["planned_start", "planned_end"]
    assert Change.objects.get(pk=change.pk).state == "draft"


def test_standard_change_refuses_cab_actions_and_template_plan_edits(tech: Actor) -> None:
    change = change_create(
        actor=tech,
        change_type="standard",
        template_id=template().pk,
        planned_start=T0,
        planned_end=T0 + hours(1),
    )
    for action in ("request_authorisation", "schedule", "reject", "implement", "complete", "close"):
        with pytest.raises(InvalidTransition):
            act(tech, change, action)
    with pytest.raises(InvalidInput) as fixed:
        change_update(actor=tech, change=change, backout_plan="something else")
    assert fixed.value.extra["errors"] == [
        {"field": "backout_plan", "message": "set by the standard change template"}
    ]
    with pytest.raises(ChangeNotEditable):
        change_risk_set(actor=tech, change=change, answers={"downtime": "yes"})
    change = act(tech, change, "submit")
    change = act(tech, change, "cancel")
    assert change.state == "cancelled"
    with pytest.raises(InvalidTransition):
        act(tech, change, "submit")


# Normal changes


def test_normal_change_full_path_with_cab(tech: Actor) -> None:
    alice, bob = member("Alice"), member("Bob")
    change = normal(tech)
    change = act(tech, change, "submit")
    assert change.state == "assess"
    change = act(tech, change, "request_authorisation")
    assert change.state == "authorise"
    with pytest.raises(CabRuleNotMet):
        act(tech, change, "schedule")
    change_vote(actor=alice, change=change, decision="approve")
    change_vote(actor=bob, change=change, decision="approve", comment="fine")
    change = act(tech, change, "schedule")
    assert change.state == "scheduled"
    cab_entry = ActivityEntry.objects.get(record_id=change.pk, verb="change.schedule")
    assert cab_entry.changes["cab"][1] == {
        "board": "cab",
        "quorum": 2,
        "approve": 2,
        "reject": 0,
        "abstain": 0,
        "outcome": "authorised",
    }
    change = act(tech, change, "implement")
    assert change.state == "implement"
    with pytest.raises(InvalidInput) as no_outcome:
        act(tech, change, "complete")
    assert no_outcome.value.extra["errors"][0]["field"] == "outcome"
    change = act(tech, change, "complete", outcome="rolled_back")
    assert change.state == "review"
    with pytest.raises(InvalidInput) as no_review:
        act(tech, change, "close")
    assert no_review.value.extra["errors"] == [{"field": "review_notes", "message": "required"}]
    change_update(actor=tech, change=change, review_notes="backed out: disk full")
    change = act(tech, change, "close")
    assert (change.state, change.outcome, change.review_notes) == (
        "closed",
        "rolled_back",
        "backed out: disk full",
    )
    assert verbs(change) == [
        "change.created",
        "change.submit",
        "change.request_authorisation",
        "change.conflicts_computed",
        "change.vote_cast",
        "change.vote_cast",
        "change.schedule",
        "change.implement",
        "change.complete",
        "change.updated",
        "change.close",
    ]


def test_normal_submit_needs_plans_and_window_naming_the_fields(tech: Actor) -> None:
    change = change_create(actor=tech, change_type="normal", short_description="Upgrade", test_plan="t")
    before = snapshot()
    with pytest.raises(InvalidInput) as refused:
        act(tech, change, "submit")
    assert refused.value.extra["errors"] == [
        {"field": "implementation_plan", "message": "required"},
        {"field": "backout_plan", "message": "required"},
        {"field": "planned_start", "message": "required"},
        {"field": "planned_end", "message": "required"},
    ]
    assert snapshot() == before


def test_normal_refused_transitions(tech: Actor) -> None:
    change = normal(tech)
    for action in ("request_authorisation", "schedule", "reject", "implement", "complete", "close"):
        with pytest.raises(InvalidTransition):
            act(tech, change, action)
    change = act(tech, change, "submit")
    with pytest.raises(InvalidTransition) as twice:
        act(tech, change, "submit")
    assert twice.value.extra["current_state"] == "assess"
    assert twice.value.extra["allowed_actions"] == ["request_authorisation", "cancel"]
    change = act(tech, change, "request_authorisation")
    with pytest.raises(InvalidTransition):
        act(tech, change, "implement")  # a normal change never skips scheduled
    with pytest.raises(CabRuleNotMet):
        act(tech, change, "reject")  # nobody voted yet
    with pytest.raises(InvalidInput):
        act(tech, change, "fly")


def test_cab_rejection_returns_the_change_to_draft_and_clears_the_round(tech: Actor) -> None:
    alice, bob = member("Alice"), member("Bob")
    change = to_authorise(tech, normal(tech))
    change_vote(actor=alice, change=change, decision="reject", comment="no back-out test")
    change_vote(actor=bob, change=change, decision="approve")
    assert cab_tally_get(change=change).outcome == "rejected"  # a tie does not authorise
    with pytest.raises(CabRuleNotMet):
        act(tech, change, "schedule")
    change = act(tech, change, "reject")
    assert change.state == "draft"
    assert CabVote.objects.filter(change=change).count() == 0
    assert cab_tally_get(change=change).outcome == "pending"
    # Reworked and resubmitted, it faces a new round.
    change = to_authorise(tech, change)
    assert change.state == "authorise"


def test_cancel_before_implement_only(tech: Actor) -> None:
    for state_path in ([], ["submit"], ["submit", "request_authorisation"]):
        change = normal(tech)
        for action in state_path:
            change = act(tech, change, action)
        assert act(tech, change, "cancel").state == "cancelled"
    alice, bob = member("Alice"), member("Bob")
    change = to_authorise(tech, normal(tech))
    change_vote(actor=alice, change=change, decision="approve")
    change_vote(actor=bob, change=change, decision="approve")
    change = act(tech, act(tech, change, "schedule"), "implement")
    with pytest.raises(InvalidTransition):
        act(tech, change, "cancel")


def test_edits_follow_the_state(tech: Actor) -> None:
    change = normal(tech)
    change = change_update(actor=tech, change=change, justification="security fix", test_plan="check mail")
    assert (change.justification, change.test_plan) == ("security fix", "check mail")
    with pytest.raises(InvalidInput) as window:
        change_update(actor=tech, change=change, planned_end=T0 - hours(1))
    assert window.value.extra["errors"] == [
        {"field": "planned_end", "message": "must be after planned_start"}
    ]
    with pytest.raises(InvalidInput) as naive:
        change_update(actor=tech, change=change, planned_start=T0.replace(tzinfo=None))
    assert naive.value.extra["errors"][0]["field"] == "planned_start"
    change = to_authorise(tech, change)
    before = snapshot()
    with pytest.raises(ChangeNotEditable) as refused:
        change_update(actor=tech, change=change, backout_plan="new", review_notes="x")
    assert refused.value.extra["fields"] == ["backout_plan", "review_notes"]
    assert snapshot() == before
    group_free = change_update(actor=tech, change=change, assigned_to=tech.person)
    assert group_free.assigned_to == tech.person


# Emergency changes


def test_emergency_change_fast_track_through_the_ecab(tech: Actor) -> None:
    cab_only = member("Carol")
    ecab = member("Erin", emergency=True)
    change = emergency(tech)
    change = act(tech, change, "submit")
    assert change.state == "authorise"
    assert "change.conflicts_computed" in verbs(change)
    with pytest.raises(CabRuleNotMet):
        act(tech, change, "implement")
    before = snapshot()
    with pytest.raises(PermissionDenied):
        change_vote(actor=cab_only, change=change, decision="approve")
    assert snapshot() == before
    change_vote(actor=ecab, change=change, decision="approve")
    assert cab_tally_get(change=change).outcome == "authorised"  # ecab quorum 1
    change = act(tech, change, "implement")
    assert change.state == "implement" and change.actual_start is not None
    change = act(tech, change, "complete", outcome="successful_with_issues")
    with pytest.raises(InvalidInput):
        act(tech, change, "close")  # the post-implementation review is mandatory
    change = act(tech, change, "close", review_notes="rule too broad, narrowed next day")
    assert change.state == "closed"


def test_emergency_change_may_also_be_scheduled_and_needs_plans(tech: Actor) -> None:
    ecab = member("Erin", emergency=True)
    bare = change_create(actor=tech, change_type="emergency", short_description="now")
    with pytest.raises(InvalidInput) as refused:
        act(tech, bare, "submit")
    assert [e["field"] for e in refused.value.extra["errors"]] == [
        "implementation_plan",
        "backout_plan",
        "planned_start",
        "planned_end",
    ]
    change = act(tech, emergency(tech), "submit")
    with pytest.raises(InvalidTransition):
        act(tech, change, "request_authorisation")
    change_vote(actor=ecab, change=change, decision="approve")
    change = act(tech, change, "schedule")
    assert change.state == "scheduled"
    assert finish(tech, change).state == "closed"


def test_emergency_rejection_and_cancel(tech: Actor) -> None:
    ecab = member("Erin", emergency=True)
    change = act(tech, emergency(tech), "submit")
    change_vote(actor=ecab, change=change, decision="reject")
    with pytest.raises(CabRuleNotMet):
        act(tech, change, "implement")
    change = act(tech, change, "reject")
    assert change.state == "draft"
    assert act(tech, change, "cancel").state == "cancelled"


# The CAB rule


def test_cab_quorum_rule(tech: Actor) -> None:
    alice, bob, carol = member("Alice"), member("Bob"), member("Carol")
    change = to_authorise(tech, normal(tech))

    def outcome() -> tuple[int, int, int, str]:
        tally = cab_tally_get(change=change)
        return tally.approve, tally.reject, tally.abstain, tally.outcome

    assert outcome() == (0, 0, 0, "pending")
    change_vote(actor=alice, change=change, decision="approve")
    assert outcome() == (1, 0, 0, "pending")  # not enough votes
    change_vote(actor=bob, change=change, decision="abstain")
    assert outcome() == (1, 0, 1, "authorised")  # abstentions count towards the quorum
    change_vote(actor=bob, change=change, decision="reject")
    assert outcome() == (1, 1, 0, "rejected")  # a tie rejects
    change_vote(actor=carol, change=change, decision="approve", comment="tested in staging")
    assert outcome() == (2, 1, 0, "authorised")
    change_vote(actor=alice, change=change, decision="abstain")
    change_vote(actor=carol, change=change, decision="abstain")
    assert outcome() == (0, 1, 2, "rejected")
    assert CabVote.objects.filter(change=change).count() == 3  # one vote each, changed in place
    assert verbs(change).count("change.vote_changed") == 3
    changed = ActivityEntry.objects.filter(record_id=change.pk, verb="change.vote_changed").first()
    assert changed is not None and changed.changes["vote"] == ["abstain", "reject"]


def test_a_removed_member_s_vote_stops_counting_and_quorum_is_a_setting(tech: Actor) -> None:
    alice, bob = member("Alice"), member("Bob")
    change = to_authorise(tech, normal(tech))
    change_vote(actor=alice, change=change, decision="approve")
    change_vote(actor=bob, change=change, decision="approve")
    assert cab_tally_get(change=change).outcome == "authorised"
    CabMember.objects.filter(person=bob.person).delete()
    tally = cab_tally_get(change=change)
    assert (tally.approve, tally.ignored, tally.outcome) == (1, 1, "pending")
    change_settings_set(actor=admin(), cab_quorum=1)
    assert ChangeSettings.objects.get(pk=1).cab_quorum == 1
    assert cab_tally_get(change=change).outcome == "authorised"
    with pytest.raises(PermissionDenied):
        change_settings_set(actor=tech, cab_quorum=3)
    with pytest.raises(InvalidInput) as bad:
        change_settings_set(actor=admin(), ecab_quorum=0)
    assert bad.value.extra["errors"] == [{"field": "ecab_quorum", "message": "1-50 votes"}]


def test_non_members_cannot_vote_and_nothing_is_written(tech: Actor, tenant_a: Tenant) -> None:
    alice = member("Alice")
    change = to_authorise(tech, normal(tech))
    before = snapshot()
    with pytest.raises(PermissionDenied):
        change_vote(actor=tech, change=change, decision="approve")  # a technician, but not on the CAB
    end_user = Actor(user_id=None, person=alice.person, role="end_user")
    with pytest.raises(PermissionDenied):
        change_vote(actor=end_user, change=change, decision="approve")  # on the CAB, but not as CAB member
    assert snapshot() == before
    with pytest.raises(InvalidInput):
        change_vote(actor=alice, change=change, decision="maybe")
    draft = normal(tech)
    with pytest.raises(InvalidTransition):
        change_vote(actor=alice, change=draft, decision="approve")
    assert CabVote.objects.count() == 0


# Risk


def test_risk_table_exact() -> None:
    questions = [
        RiskQuestion(key="a", text="A", answers=[{"value": "y", "weight": 0}, {"value": "n", "weight": 3}]),
        RiskQuestion(key="b", text="B", answers=[{"value": "y", "weight": 0}, {"value": "n", "weight": 4}]),
    ]
    none: dict[str, int] = {"impacted_cis": 0, "business_services": 0}
    assert risk_for(answers={"a": "y", "b": "y"}, questions=questions, impact_summary=none) == (
        "low",
        {"questionnaire": 0, "impact": 0, "total": 0},
    )
    assert risk_for(answers={"a": "n"}, questions=questions, impact_summary=none)[0] == "moderate"  # 3 + 4
    cases = [
        ({"impacted_cis": 5, "business_services": 0}, 1, "moderate"),
        ({"impacted_cis": 6, "business_services": 0}, 2, "moderate"),
        ({"impacted_cis": 21, "business_services": 0}, 3, "moderate"),
        ({"impacted_cis": 21, "business_services": 1}, 6, "high"),
    ]
    for summary, impact, level in cases:
        risk, score = risk_for(answers={"a": "n", "b": "y"}, questions=questions, impact_summary=summary)
        assert (score["impact"], score["total"], risk) == (impact, 3 + impact, level)
    assert risk_for(answers={"a": "n", "b": "n"}, questions=questions, impact_summary=cases[3][0]) == (
        "very_high",
        {"questionnaire": 7, "impact": 6, "total": 13},
    )


def test_risk_from_answers_and_affected_cis(tech: Actor) -> None:
    change = normal(tech)
    assert (change.risk, change.impact_summary["score"]) == (
        "very_high",
        {"questionnaire": 12, "impact": 0, "total": 12},
    )  # nothing answered counts the worst answers
    low = {"done_before": "yes", "backout_tested": "yes", "downtime": "no", "users_affected": "few"}
    change = change_risk_set(actor=tech, change=change, answers=low)
    assert (change.risk, change.impact_summary["score"]["total"]) == ("low", 1)
    db, app, svc = ci("db01", "database"), ci("crm", "application"), ci("CRM service", "business_service")
    rel(app, "depends_on", db)
    rel(svc, "depends_on", app)
    change = change_ci_add(actor=tech, change=change, ci_id=db.pk)
    assert change.impact_summary == {
        "cis": 1,
        "impacted_cis": 2,
        "business_services": 1,
        "score": {"questionnaire": 1, "impact": 4, "total": 5},
    }
    assert change.risk == "moderate"
    change = change_risk_set(actor=tech, change=change, answers={"done_before": "no", "downtime": "yes"})
    assert (change.risk, change.impact_summary["score"]["total"]) == ("high", 10)
    change = change_ci_remove(actor=tech, change=change, ci_id=db.pk)
    assert (change.risk, change.impact_summary["score"]) == (
        "moderate",
        {"questionnaire": 6, "impact": 0, "total": 6},
    )
    assert verbs(change)[-4:] == [
        "change.risk_assessed",
        "change.ci_added",
        "change.risk_assessed",
        "change.ci_removed",
    ]
    with pytest.raises(InvalidInput) as bad:
        change_risk_set(actor=tech, change=change, answers={"downtime": "maybe", "colour": "red"})
    assert bad.value.extra["errors"] == [
        {"field": "answers.downtime", "message": "one of no, yes"},
        {"field": "answers.colour", "message": "unknown question"},
    ]


def test_affected_cis_change_only_while_planning(tech: Actor) -> None:
    server = ci("web01")
    change = normal(tech)
    change_ci_add(actor=tech, change=change, ci_id=server.pk)
    with pytest.raises(InvalidInput) as unknown:
        change_ci_add(actor=tech, change=change, ci_id=change.pk)
    assert unknown.value.extra["errors"] == [{"field": "ci_id", "message": "not found"}]
    change = to_authorise(tech, change)
    with pytest.raises(ChangeNotEditable):
        change_ci_add(actor=tech, change=change, ci_id=ci("web02").pk)
    with pytest.raises(ChangeNotEditable):
        change_ci_remove(actor=tech, change=change, ci_id=server.pk)
    with pytest.raises(NotFound):
        change_ci_remove(actor=tech, change=change, ci_id=ci("web03").pk)


# Conflicts


def test_conflict_on_the_same_ci_in_an_overlapping_window(tech: Actor) -> None:
    server = ci("mail01")
    other = normal(tech, short_description="Firmware on mail01", start=T0 + hours(1))
    change_ci_add(actor=tech, change=other, ci_id=server.pk)
    act(tech, other, "submit")
    change = normal(tech)
    change_ci_add(actor=tech, change=change, ci_id=server.pk)
    assert change_conflict_list(actor=tech, change=change) == [
        {
            "kind": "change",
            "change_id": str(other.pk),
            "number": "CHG0000001",
            "short_description": "Firmware on mail01",
            "state": "assess",
            "planned_start": (T0 + hours(1)).isoformat(),
            "planned_end": (T0 + hours(3)).isoformat(),
            "same_cis": [{"id": str(server.pk), "number": server.number, "name": "mail01"}],
            "dependent_cis": [],
        }
    ]
    change = to_authorise(tech, change)
    assert [c["number"] for c in change.conflicts] == ["CHG0000001"]
    entry = ActivityEntry.objects.get(record_id=change.pk, verb="change.conflicts_computed")
    assert entry.changes == {"conflicts": ["CHG0000001"]}


def test_conflict_on_a_dependent_ci_both_ways(tech: Actor) -> None:
    server, app = ci("vm01"), ci("payroll", "application")
    rel(app, "runs_on", server)  # a failure of vm01 reaches payroll
    other = normal(tech, short_description="Payroll upgrade")
    change_ci_add(actor=tech, change=other, ci_id=app.pk)
    act(tech, other, "submit")
    change = normal(tech, start=T0 + hours(1))
    change_ci_add(actor=tech, change=change, ci_id=server.pk)
    conflicts = change_conflict_list(actor=tech, change=change)
    assert [(c["number"], c["same_cis"], [d["name"] for d in c["dependent_cis"]]) for c in conflicts] == [
        ("CHG0000001", [], ["payroll"])
    ]
    # Seen from the other side once the server change is submitted (drafts are not plans yet).
    assert change_conflict_list(actor=tech, change=other) == []
    act(tech, change, "submit")
    mirrored = change_conflict_list(actor=tech, change=other)
    assert [(c["number"], [d["name"] for d in c["dependent_cis"]]) for c in mirrored] == [
        ("CHG0000002", ["payroll"])
    ]


def test_no_conflict_without_overlap_or_shared_ci_and_blackouts_flagged(tech: Actor) -> None:
    server = ci("db02")
    before = normal(tech, start=T0 - hours(2))  # ends exactly when ours starts
    change_ci_add(actor=tech, change=before, ci_id=server.pk)
    act(tech, before, "submit")
    unrelated = normal(tech)
    change_ci_add(actor=tech, change=unrelated, ci_id=ci("printer").pk)
    act(tech, unrelated, "submit")
    cancelled = normal(tech)
    change_ci_add(actor=tech, change=cancelled, ci_id=server.pk)
    act(tech, act(tech, cancelled, "submit"), "cancel")
    change = normal(tech)
    change_ci_add(actor=tech, change=change, ci_id=server.pk)
    assert change_conflict_list(actor=tech, change=change) == []
    blackout = blackout_create(
        actor=admin(), name="Month-end close", start=T0 + hours(1), end=T0 + hours(30), reason="finance"
    )
    blackout_create(actor=admin(), name="Later", start=T0 + hours(1.5), end=T0 + hours(3))
    blackout_create(actor=admin(), name="After", start=T0 + hours(2), end=T0 + hours(3))
    conflicts = change_conflict_list(actor=tech, change=change)
    assert [c["name"] for c in conflicts] == ["Month-end close", "Later"]
    assert conflicts[0] == {
        "kind": "blackout",
        "blackout_id": str(blackout.pk),
        "name": "Month-end close",
        "start": (T0 + hours(1)).isoformat(),
        "end": (T0 + hours(30)).isoformat(),
        "reason": "finance",
    }
    with pytest.raises(InvalidInput) as bad:
        blackout_create(actor=admin(), name="x", start=T0, end=T0)
    assert bad.value.extra["errors"] == [{"field": "end", "message": "must be after start"}]
    with pytest.raises(PermissionDenied):
        blackout_create(actor=tech, name="x", start=T0, end=T0 + hours(1))


# Who may do what


def test_only_technicians_work_changes_and_end_users_see_none(tech: Actor, tenant_a: Tenant) -> None:
    change = normal(tech)
    end_user = Actor(user_id=None, person=None, role="end_user")
    cab = member("Alice")
    before = snapshot()
    with pytest.raises(PermissionDenied):
        normal(end_user)
    with pytest.raises(PermissionDenied):
        normal(cab)
    with pytest.raises(PermissionDenied):
        act(cab, change, "submit")
    with pytest.raises(PermissionDenied):
        change_update(actor=cab, change=change, description="x")
    assert snapshot() == before
    with pytest.raises(NotFound):
        change_get(actor=end_user, change_id=change.pk)
    with pytest.raises(PermissionDenied):
        change_list(actor=end_user)
    assert change_get(actor=cab, change_id=change.pk) == change
    assert list(change_list(actor=cab)) == [change]


def test_search_document_follows_the_change(tech: Actor) -> None:
    change = normal(tech, description="rotate the TLS certificate")
    doc = SearchDocument.objects.get(record_id=change.pk)
    assert (doc.record_type, doc.number, doc.title, doc.state, doc.visibility) == (
        "change",
        "CHG0000001",
        "Patch the mail server",
        "draft",
        "technicians",
    )
    change_update(actor=tech, change=change, short_description="Patch mail01")
    act(tech, change, "submit")
    doc = SearchDocument.objects.get(record_id=change.pk)
    assert (doc.title, doc.state) == ("Patch mail01", "assess")
