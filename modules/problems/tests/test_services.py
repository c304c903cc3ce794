"""Problem and known error services and selectors on the real database: the state machine (allowed and
refused steps, 409/422), linked incidents resolved in one action, problem candidates, known error
full-text search, permissions (end users: 403 and nothing written) and the candidate thresholds."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import pytest
from django.db.models import F
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidInput, NotFound, PermissionDenied
from modules.incidents.models import Incident
from modules.incidents.services import incident_transition
from modules.people.models import Group
from modules.problems import selectors, services
from modules.problems.models import KnownError, Problem, ProblemSettings
from modules.records.models import ActivityEntry, Comment, SearchDocument
from tenants.models import Tenant

from .factories import ci, incident, problem, problem_in_fix


def verbs(record_id: uuid.UUID) -> list[str]:
    return list(ActivityEntry.objects.filter(record_id=record_id).values_list("verb", flat=True))


# Create and update


def test_create_numbers_prioritises_and_indexes(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        first = problem(actor, "Mail outages", impact=1, urgency=1, rca_method="five_whys")
        second = problem(actor, "VPN drops", impact=3, urgency=3)
        assert (first.number, first.state, first.priority) == ("PRB0000001", "new", 1)
        assert (second.number, second.priority) == ("PRB0000002", 4)
        assert first.opened_by == actor.person
        assert verbs(first.pk) == ["problem.created"]
        document = SearchDocument.objects.get(record_id=first.pk)
        assert (document.record_type, document.number, document.visibility) == (
            "problem",
            "PRB0000001",
            "technicians",
        )


def test_create_and_update_refuse_bad_input(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        with pytest.raises(InvalidInput) as empty:
            problem(actor, "  ")
        assert empty.value.extra["errors"] == [{"field": "short_description", "message": "required"}]
        with pytest.raises(InvalidInput) as method:
            problem(actor, "x", rca_method="guessing")
        assert method.value.extra["errors"][0]["field"] == "rca_method"
        created = problem(actor)
        with pytest.raises(InvalidInput) as unknown:
            services.problem_update(actor=actor, problem=created, state="closed")
        assert unknown.value.extra["errors"] == [{"field": "state", "message": "not editable"}]
        updated = services.problem_update(
            actor=actor, problem=created, impact=1, urgency=1, root_cause="cert"
        )
        assert (updated.priority, updated.root_cause) == (1, "cert")
        entry = ActivityEntry.objects.filter(record_id=created.pk, verb="problem.updated").get()
        assert entry.changes == {
            "impact": [2, 1],
            "urgency": [2, 1],
            "root_cause": ["", "cert"],
            "priority": [3, 1],
        }


# State machine


def test_full_lifecycle_allowed_steps(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        fixing = problem_in_fix(actor)
        assert fixing.state == "fix_in_progress"
        resolved = services.problem_transition(
            actor=actor,
            problem=fixing,
            action="resolve",
            resolution_code="fix_applied",
            resolution_notes="Renewed certificate",
        )
        assert (resolved.state, resolved.resolution_code) == ("resolved", "fix_applied")
        assert resolved.resolved_at is not None
        reanalyzed = services.problem_transition(actor=actor, problem=resolved, action="reanalyze")
        assert (reanalyzed.state, reanalyzed.resolution_code, reanalyzed.resolved_at) == (
            "root_cause_analysis",
            "",
            None,
        )
        services.problem_transition(actor=actor, problem=reanalyzed, action="start_fix")
        services.problem_transition(
            actor=actor,
            problem=reanalyzed,
            action="resolve",
            resolution_code="risk_accepted",
            resolution_notes="ok",
        )
        closed = services.problem_transition(actor=actor, problem=reanalyzed, action="close", comment="done")
        assert closed.state == "closed" and closed.closed_at is not None
        assert verbs(closed.pk) == [
            "problem.created",
            "problem.assess",
            "problem.start_analysis",
            "problem.updated",
            "problem.start_fix",
            "problem.resolve",
            "problem.reanalyze",
            "problem.start_fix",
            "problem.resolve",
            "problem.close",
            "work_note.added",
        ]
        assert SearchDocument.objects.get(record_id=closed.pk).state == "closed"


@pytest.mark.parametrize(
    ("state", "action"),
    [
        ("new", "start_analysis"),
        ("new", "start_fix"),
        ("new", "resolve"),
        ("new", "close"),
        ("assessed", "resolve"),
        ("root_cause_analysis", "close"),
        ("resolved", "cancel"),
        ("closed", "reanalyze"),
        ("cancelled", "assess"),
    ],
)
def test_refused_steps_are_409_and_write_nothing(
    tenant_a: Tenant, tech_a: User, state: str, action: str
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        created = problem(actor, root_cause="known")
        Problem.objects.filter(pk=created.pk).update(state=state)
        before = ActivityEntry.objects.count()
        with pytest.raises(services.InvalidTransition) as refused:
            services.problem_transition(
                actor=actor,
                problem=created,
                action=action,
                resolution_code="fix_applied",
                resolution_notes="n",
            )
        assert refused.value.status == 409
        assert refused.value.extra["current_state"] == state
        assert Problem.objects.get(pk=created.pk).state == state
        assert ActivityEntry.objects.count() == before


def test_cancel_from_every_open_state(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        for state in ("new", "assessed", "root_cause_analysis", "fix_in_progress"):
            created = problem(actor, f"p {state}")
            Problem.objects.filter(pk=created.pk).update(state=state)
            assert (
                services.problem_transition(actor=actor, problem=created, action="cancel").state
                == "cancelled"
            )


def test_assess_needs_an_assignment_and_fix_needs_a_root_cause(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        created = problem(actor)
        with pytest.raises(InvalidInput) as unassigned:
            services.problem_transition(actor=actor, problem=created, action="assess")
        assert [e["field"] for e in unassigned.value.extra["errors"]] == ["assignment_group", "assigned_to"]
        group = Group.objects.create(name="Messaging")
        services.problem_update(actor=actor, problem=created, assignment_group=group)
        services.problem_transition(actor=actor, problem=created, action="assess")
        services.problem_transition(actor=actor, problem=created, action="start_analysis")
        with pytest.raises(InvalidInput) as no_cause:
            services.problem_transition(actor=actor, problem=created, action="start_fix")
        assert no_cause.value.status == 422
        assert no_cause.value.extra["errors"] == [
            {"field": "root_cause", "message": "required before the fix"}
        ]
        assert Problem.objects.get(pk=created.pk).state == "root_cause_analysis"


def test_resolve_needs_code_and_notes(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        fixing = problem_in_fix(actor)
        with pytest.raises(InvalidInput) as refused:
            services.problem_transition(actor=actor, problem=fixing, action="resolve", resolution_code="nope")
        assert [e["field"] for e in refused.value.extra["errors"]] == ["resolution_code", "resolution_notes"]
        assert Problem.objects.get(pk=fixing.pk).state == "fix_in_progress"


def test_closed_problem_is_not_editable(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        created = problem(actor)
        services.problem_transition(actor=actor, problem=created, action="cancel")
        with pytest.raises(services.ProblemNotEditable):
            services.problem_update(actor=actor, problem=created, description="late")


# Linked incidents


def test_resolving_a_problem_resolves_its_open_linked_incidents(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        fixing = problem_in_fix(actor)
        new, held, closed = (incident(actor, f"mail {n}") for n in ("new", "held", "closed"))
        incident_transition(actor=actor, incident=held, action="hold", hold_reason="awaiting_problem")
        incident_transition(
            actor=actor,
            incident=closed,
            action="resolve",
            resolution_code="solved_workaround",
            resolution_notes="w",
        )
        incident_transition(actor=actor, incident=closed, action="close")
        unlinked = incident(actor, "mail unlinked")
        for linked in (new, held, closed):
            services.problem_incident_link(actor=actor, problem=fixing, incident=linked)
        assert verbs(new.pk)[-1] == "incident.problem_linked"
        services.problem_transition(
            actor=actor,
            problem=fixing,
            action="resolve",
            resolution_code="fix_applied",
            resolution_notes="Renewed the relay certificate",
            resolve_incidents=True,
        )
        states = dict(Incident.objects.values_list("number", "state"))
        assert states == {
            new.number: "resolved",
            held.number: "resolved",
            closed.number: "closed",
            unlinked.number: "new",
        }
        again = Incident.objects.get(pk=new.pk)
        assert again.resolution_code == "solved_permanently"
        assert (
            again.resolution_notes == f"Resolved with problem {fixing.number}: Renewed the relay certificate"
        )
        assert Incident.objects.get(pk=closed.pk).resolution_code == "solved_workaround"
        entry = ActivityEntry.objects.get(record_id=fixing.pk, verb="problem.resolve")
        assert sorted(entry.changes["resolved_incidents"]) == sorted([new.number, held.number])


def test_resolve_without_the_flag_leaves_incidents_open(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        fixing = problem_in_fix(actor)
        linked = incident(actor, "mail")
        services.problem_incident_link(actor=actor, problem=fixing, incident=linked)
        services.problem_transition(
            actor=actor, problem=fixing, action="resolve", resolution_code="fix_applied", resolution_notes="n"
        )
        assert Incident.objects.get(pk=linked.pk).state == "new"


def test_a_bad_incident_code_rolls_the_whole_resolve_back(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        fixing = problem_in_fix(actor)
        linked = incident(actor, "mail")
        services.problem_incident_link(actor=actor, problem=fixing, incident=linked)
        with pytest.raises(InvalidInput) as refused:
            services.problem_transition(
                actor=actor,
                problem=fixing,
                action="resolve",
                resolution_code="fix_applied",
                resolution_notes="n",
                resolve_incidents=True,
                incident_resolution_code="made_up",
            )
        assert refused.value.extra["errors"][0]["field"] == "incident_resolution_code"
        assert Problem.objects.get(pk=fixing.pk).state == "fix_in_progress"
        assert Incident.objects.get(pk=linked.pk).state == "new"


def test_link_and_unlink_incidents(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        first, second = problem(actor, "one"), problem(actor, "two")
        linked = incident(actor, "mail")
        services.problem_incident_link(actor=actor, problem=first, incident=linked)
        assert Incident.objects.get(pk=linked.pk).problem_id == first.pk
        assert [i.pk for i in selectors.problem_incident_list(actor=actor, problem=first)] == [linked.pk]
        linked.refresh_from_db()
        with pytest.raises(services.IncidentAlreadyLinked):
            services.problem_incident_link(actor=actor, problem=second, incident=linked)
        with pytest.raises(NotFound):
            services.problem_incident_unlink(actor=actor, problem=second, incident=linked)
        services.problem_incident_unlink(actor=actor, problem=first, incident=linked)
        assert Incident.objects.get(pk=linked.pk).problem_id is None
        assert verbs(first.pk) == ["problem.created", "problem.incident_linked", "problem.incident_unlinked"]
        assert verbs(linked.pk)[-2:] == ["incident.problem_linked", "incident.problem_linked"]
        entry = ActivityEntry.objects.filter(record_id=linked.pk, verb="incident.problem_linked").last()
        assert entry is not None and entry.changes == {"problem": [str(first.pk), None]}


# Candidates


def test_candidates_by_ci_and_by_category(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        relay = ci("mail-relay-01")
        on_ci = [incident(actor, f"relay {n}", configuration_item=relay, days_ago=n) for n in range(3)]
        by_cat = [
            incident(actor, f"vpn {n}", category="network", subcategory="vpn", days_ago=n) for n in range(4)
        ]
        incident(actor, "printer 1", category="hardware", subcategory="printer")
        incident(actor, "printer 2", category="hardware", subcategory="printer")  # 2 < 3: not proposed
        found = selectors.problem_candidate_list(actor=actor)
        assert [(c.basis, c.key, c.count) for c in found] == [
            ("category", "category:network/vpn", 4),
            ("configuration_item", f"ci:{relay.pk}", 3),
        ]
        assert [i.number for i in found[0].incidents] == [i.number for i in by_cat]  # newest first
        assert found[1].configuration_item_name == "mail-relay-01"
        assert {i.id for i in found[1].incidents} == {i.pk for i in on_ci}
        assert found[1].title == "Recurring incidents on mail-relay-01"
        lower = selectors.problem_candidate_list(actor=actor, min_incidents=2)
        assert "category:hardware/printer" in [c.key for c in lower]


def test_candidates_ignore_old_linked_and_canceled_incidents(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        group: dict[str, Any] = {"category": "email", "subcategory": "outlook"}
        incident(actor, "outlook 1", **group)
        incident(actor, "outlook 2", **group)
        old = incident(actor, "outlook old", days_ago=31, **group)
        linked = incident(actor, "outlook linked", **group)
        services.problem_incident_link(actor=actor, problem=problem(actor), incident=linked)
        canceled = incident(actor, "outlook canceled", **group)
        incident_transition(actor=actor, incident=canceled, action="cancel")
        assert selectors.problem_candidate_list(actor=actor) == []
        assert [c.count for c in selectors.problem_candidate_list(actor=actor, within_days=32)] == [3]
        assert old.number in [
            i.number for i in selectors.problem_candidate_list(actor=actor, within_days=32)[0].incidents
        ]
        ProblemSettings.objects.filter(pk=1).update(candidate_min_incidents=2)
        assert [c.count for c in selectors.problem_candidate_list(actor=actor)] == [2]


def test_accepting_a_candidate_opens_one_problem_linking_its_incidents(
    tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        relay = ci("mail-relay-01")
        members = [incident(actor, f"relay {n}", configuration_item=relay, days_ago=n) for n in range(3)]
        created = services.problem_candidate_accept(actor=actor, key=f"ci:{relay.pk}")
        assert (created.number, created.short_description) == (
            "PRB0000001",
            "Recurring incidents on mail-relay-01",
        )
        assert created.configuration_item_id == relay.pk
        assert set(Incident.objects.filter(problem_id=created.pk).values_list("pk", flat=True)) == {
            m.pk for m in members
        }
        assert verbs(created.pk) == [
            "problem.created",
            "problem.candidate_accepted",
            *["problem.incident_linked"] * 3,
        ]
        assert selectors.problem_candidate_list(actor=actor) == []
        with pytest.raises(NotFound):
            services.problem_candidate_accept(actor=actor, key=f"ci:{relay.pk}")
        assert Problem.objects.count() == 1


# Known errors


def test_known_error_from_a_problem_copies_root_cause_and_workaround(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        source = problem(
            actor, "Outlook hangs", description="Outlook freezes on start", root_cause="bad add-in"
        )
        services.problem_update(actor=actor, problem=source, workaround="Start Outlook in safe mode")
        known = services.known_error_create(actor=actor, problem=source)
        assert (known.number, known.state, known.title) == ("KE0000001", "draft", "Outlook hangs")
        assert (known.symptoms, known.root_cause, known.workaround) == (
            "Outlook freezes on start",
            "bad add-in",
            "Start Outlook in safe mode",
        )
        assert verbs(source.pk)[-1] == "problem.known_error_created"
        standalone = services.known_error_create(actor=actor, title="Printer offline", symptoms="x")
        assert (standalone.number, standalone.problem_id) == ("KE0000002", None)
        with pytest.raises(InvalidInput):
            services.known_error_create(actor=actor, title=" ")


def test_known_error_publish_and_retire(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        known = services.known_error_create(actor=actor, title="VPN drops")
        with pytest.raises(InvalidInput) as incomplete:
            services.known_error_publish(actor=actor, known_error=known)
        assert [e["field"] for e in incomplete.value.extra["errors"]] == ["symptoms", "workaround"]
        services.known_error_update(
            actor=actor, known_error=known, symptoms="drops hourly", workaround="reconnect"
        )
        assert services.known_error_publish(actor=actor, known_error=known).state == "published"
        with pytest.raises(services.InvalidTransition):
            services.known_error_publish(actor=actor, known_error=known)
        assert services.known_error_retire(actor=actor, known_error=known).state == "retired"
        with pytest.raises(services.InvalidTransition):
            services.known_error_retire(actor=actor, known_error=known)
        with pytest.raises(services.KnownErrorNotEditable):
            services.known_error_update(actor=actor, known_error=known, title="x")
        assert verbs(known.pk) == [
            "known_error.created",
            "known_error.updated",
            "known_error.publish",
            "known_error.retire",
        ]


def test_known_error_search_finds_a_symptom_by_its_stem(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        freeze = services.known_error_create(
            actor=actor, title="Outlook add-in", symptoms="Outlook freezes when opening attachments"
        )
        vpn = services.known_error_create(
            actor=actor, title="VPN", symptoms="tunnel drops", workaround="Reconnecting helps"
        )
        services.known_error_create(actor=actor, title="Printer", symptoms="paper jam")
        assert [k.pk for k in selectors.known_error_list(actor=actor, q="freezing")] == [freeze.pk]
        assert [k.pk for k in selectors.known_error_list(actor=actor, q="attachment")] == [freeze.pk]
        assert [k.pk for k in selectors.known_error_list(actor=actor, q="reconnect")] == [vpn.pk]
        assert list(selectors.known_error_list(actor=actor, q="keyboard")) == []
        services.known_error_update(actor=actor, known_error=vpn, symptoms="tunnel freezes")
        ranked = selectors.known_error_list(actor=actor, q="freeze").order_by(F("rank").desc())
        assert {k.pk for k in ranked} == {freeze.pk, vpn.pk}
        assert all(k.rank > 0 for k in ranked)  # type: ignore[attr-defined]


# Permissions and settings


def test_end_users_are_refused_and_nothing_is_written(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        user = actor_in(tenant_a, end_user_a, role="end_user")
        existing = problem(tech)
        known = services.known_error_create(actor=tech, title="VPN", symptoms="drops", workaround="reconnect")
        own = incident(user, "my mail")
        before = (
            Problem.objects.count(),
            KnownError.objects.count(),
            ActivityEntry.objects.count(),
            Comment.objects.count(),
        )
        refusals = [
            lambda: services.problem_create(actor=user, short_description="mine"),
            lambda: services.problem_update(actor=user, problem=existing, description="x"),
            lambda: services.problem_transition(actor=user, problem=existing, action="cancel"),
            lambda: services.problem_comment(actor=user, problem=existing, body="hi"),
            lambda: services.problem_incident_link(actor=user, problem=existing, incident=own),
            lambda: services.known_error_create(actor=user, title="x"),
            lambda: services.known_error_update(actor=user, known_error=known, title="x"),
            lambda: services.known_error_publish(actor=user, known_error=known),
            lambda: services.problem_candidate_accept(actor=user, key="category:a/b"),
            lambda: services.problem_settings_set(actor=user, candidate_min_incidents=5),
            lambda: services.problem_settings_set(
                actor=tech, candidate_min_incidents=5
            ),  # technician, not admin
        ]
        for refuse in refusals:
            with pytest.raises(PermissionDenied):
                refuse()
        after = (
            Problem.objects.count(),
            KnownError.objects.count(),
            ActivityEntry.objects.count(),
            Comment.objects.count(),
        )
        assert after == before
        assert list(selectors.problem_list(actor=user)) == []
        assert list(selectors.known_error_list(actor=user, q="drops")) == []
        assert selectors.problem_candidate_list(actor=user, min_incidents=1) == []
        with pytest.raises(NotFound):
            selectors.problem_get(actor=user, problem_id=existing.pk)
        with pytest.raises(NotFound):
            selectors.known_error_get(actor=user, known_error_id=known.pk)


def test_admins_set_candidate_thresholds(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        admin = actor_in(tenant_a, tech_a, role="admin")
        with pytest.raises(InvalidInput) as bad:
            services.problem_settings_set(actor=admin, candidate_min_incidents=1, candidate_window_days=400)
        assert [e["field"] for e in bad.value.extra["errors"]] == [
            "candidate_min_incidents",
            "candidate_window_days",
        ]
        rules = services.problem_settings_set(
            actor=admin, candidate_min_incidents=5, candidate_window_days=14
        )
        assert (rules.candidate_min_incidents, rules.candidate_window_days) == (5, 14)
        entry = ActivityEntry.objects.get(verb="problem_settings.changed")
        assert entry.changes == {"candidate_min_incidents": [3, 5], "candidate_window_days": [30, 14]}


def test_settings_row_is_seeded(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        rules = selectors.problem_settings_get(actor=actor_in(tenant_a, tech_a))
        assert (rules.pk, rules.candidate_min_incidents, rules.candidate_window_days) == (1, 3, 30)


def test_records_are_reachable_through_the_registry(tenant_a: Tenant, tech_a: User, end_user_a: User) -> None:
    from modules.records.registry import record_get

    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        created = problem(actor)
        known = services.known_error_create(actor=actor, title="x")
        assert record_get(actor=actor, record_type="problem", record_id=created.pk) == created
        assert record_get(actor=actor, record_type="known_error", record_id=known.pk) == known
        with pytest.raises(NotFound):
            record_get(actor=actor, record_type="problem", record_id="not-a-uuid")
        with pytest.raises(NotFound):
            record_get(
                actor=actor_in(tenant_a, end_user_a, role="end_user"),
                record_type="problem",
                record_id=created.pk,
            )


def test_window_uses_now(tenant_a: Tenant, tech_a: User) -> None:
    """``now`` moves the window: incidents opened 10 days ago fall out of a 30-day window 25 days later."""
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, tech_a)
        for n in range(3):
            incident(actor, f"db {n}", category="database", days_ago=10)
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=25)
        assert [c.count for c in selectors.problem_candidate_list(actor=actor)] == [3]
        assert selectors.problem_candidate_list(actor=actor, now=later) == []
