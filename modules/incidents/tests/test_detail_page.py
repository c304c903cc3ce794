"""The incident console page: one timeline (comments, work notes, history, SLA events) and inline actions
(transition, assign, comment) that answer htmx with the page's body and plain posts with a redirect."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from modules.incidents.models import Incident
from modules.incidents.services import incident_comment, incident_transition
from modules.people.models import Group, Person
from modules.records.models import ActivityEntry, Comment
from modules.records.selectors import TimelineDeadline, timeline_get
from modules.sla.services import LevelSpec, sla_escalate, sla_refresh
from modules.sla.tests.factories import contract, incident_opened, london_calendar, policy
from tenants.models import Tenant

OPENED = dt.datetime(2025, 6, 2, 8, 30, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)
HTMX = {"HX-Request": "true"}


def sla_incident(tenant: Tenant, user: User) -> Incident:
    """An incident opened at OPENED under a 24x7 policy (response 30 min, resolution 120 min, a level at
    50 % of resolution), put on hold for the caller 10 minutes in (response met, resolution paused),
    resumed at 40 minutes, so its resolution target passed at 150 minutes; the escalation has run; then a
    work note and a comment (written now)."""
    tech = actor_in(tenant, user)
    policy(
        contract(london_calendar()),
        name="Any 24x7",
        priorities=[],
        business_time=False,
        response_target_minutes=30,
        resolution_target_minutes=120,
        levels=[LevelSpec("resolution", 50, {"notify_group": True})],
    )
    incident = incident_opened(tech, OPENED)
    incident_transition(
        actor=tech,
        incident=incident,
        action="hold",
        hold_reason="awaiting_user_info",
        now=OPENED + 10 * MINUTE,
    )
    incident_transition(actor=tech, incident=incident, action="resume", now=OPENED + 40 * MINUTE)
    assert sla_escalate(record_type="incident", record_ids=[incident.pk]) == 1
    incident_comment(actor=tech, incident=incident, body="called the vendor", work_note=True)
    incident_comment(actor=tech, incident=incident, body="we are on it")
    return Incident.objects.get(pk=incident.pk)


def test_timeline_merges_comments_history_and_sla_events_in_order(tenant_a: Tenant, tech_a: User) -> None:
    with tenant_context(tenant_a):
        incident = sla_incident(tenant_a, tech_a)
        tech = actor_in(tenant_a, tech_a)
        oldest = timeline_get(actor=tech, record_type="incident", record=incident, order="asc")
        newest = timeline_get(actor=tech, record_type="incident", record=incident)
    titles = [(e.at, e.title) for e in oldest.entries]
    assert titles[:8] == [
        (OPENED, "Created"),
        (OPENED, "Response SLA timer started (Any 24x7)"),
        (OPENED, "Resolution SLA timer started (Any 24x7)"),
        (OPENED + 10 * MINUTE, "Hold"),
        (OPENED + 10 * MINUTE, "Response SLA timer stopped: met"),
        (OPENED + 10 * MINUTE, "Resolution SLA timer paused"),
        (OPENED + 40 * MINUTE, "Resume"),
        (OPENED + 40 * MINUTE, "Resolution SLA timer resumed"),
    ]
    assert titles[8] == (OPENED + 150 * MINUTE, "Resolution SLA target breached")
    later = [e.title for e in oldest.entries[9:]]
    assert set(later) == {"SLA escalation at 50 % of the resolution target", "Work note", "Comment"}
    assert later.index("Work note") < later.index("Comment")
    escalation = next(e for e in oldest.entries if e.title.startswith("SLA escalation"))
    assert (escalation.kind, escalation.who) == ("sla", "system")
    assert [(c.field, c.new) for c in escalation.changes] == [
        ("policy", "Any 24x7"),
        ("notified", "sla.warning to nobody"),
    ]
    note = next(e for e in oldest.entries if e.kind == "work_note")
    assert (note.body, note.internal, note.who) == ("called the vendor", True, "Tech.A")
    hold = oldest.entries[3]
    assert hold.kind == "state"
    assert [(c.field, c.old, c.new) for c in hold.changes] == [
        ("state", "in progress", "on hold"),
        ("hold reason", "—", "awaiting user info"),
    ] or ("state", "new", "on hold") in [(c.field, c.old, c.new) for c in hold.changes]
    assert newest.order == "desc" and newest.entries == list(reversed(oldest.entries))
    # The resolution timer runs on past its target: its deadline is shown as passed.
    assert oldest.deadlines == [TimelineDeadline("Resolution SLA", OPENED + 150 * MINUTE, breached=True)]
    assert len(oldest.entries) == 12


def test_detail_page_shows_the_timeline_with_relative_deadlines(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        incident = sla_incident(tenant_a, tech_a)
    console = client_for(tech_a)
    page = console.get(f"/t/acme/incidents/{incident.number}/").content.decode()
    timeline = page[page.index('id="timeline"') :]
    assert "Newest first" in timeline and "Show oldest first" in timeline
    assert timeline.index("we are on it") < timeline.index("called the vendor") < timeline.index("Created")
    assert "Internal" in timeline and "Resolution SLA target breached" in timeline
    assert "target passed" in timeline  # the running, overdue resolution timer, relative to now
    oldest = console.get(f"/t/acme/incidents/{incident.number}/?order=asc").content.decode()
    timeline = oldest[oldest.index('id="timeline"') :]
    assert timeline.index("Created") < timeline.index("called the vendor") < timeline.index("we are on it")


def _counts(tenant: Tenant, incident: Incident) -> tuple[int, int, tuple[object, ...]]:
    with tenant_context(tenant):
        fresh = Incident.objects.get(pk=incident.pk)
        return (
            ActivityEntry.objects.filter(record_id=incident.pk).count(),
            Comment.objects.filter(record_id=incident.pk).count(),
            (fresh.state, fresh.assigned_to_id, fresh.assignment_group_id, fresh.updated_at),
        )


def _incident(tenant: Tenant, user: User) -> Incident:
    with tenant_context(tenant):
        tech = actor_in(tenant, user)
        return incident_opened(tech, OPENED)


def test_transition_by_htmx_swaps_the_body_and_by_plain_post_redirects(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    incident = _incident(tenant_a, tech_a)
    console = client_for(tech_a)
    url = f"/t/acme/incidents/{incident.number}/actions/"
    swapped = console.post(url, {"action": "start"}, headers=HTMX)
    body = swapped.content.decode()
    assert swapped.status_code == 200 and "<html" not in body and body.lstrip().startswith("{#") is False
    assert 'id="record-body"' in body and "In Progress" in body and 'id="timeline"' in body
    assert 'id="action-hold"' in body and 'id="action-start"' not in body  # actions of the new state
    # The attachment and link forms in the new body still come back to the page, not to actions/.
    assert f'name="next" value="/t/acme/incidents/{incident.number}/"' in body
    assert f'name="next" value="/t/acme/incidents/{incident.number}/actions/"' not in body
    plain = console.post(url, {"action": "hold", "hold_reason": "awaiting_vendor"})
    assert plain.status_code == 302 and plain["Location"] == f"/t/acme/incidents/{incident.number}/"
    with tenant_context(tenant_a):
        assert Incident.objects.get(pk=incident.pk).state == "on_hold"


def test_transition_fields_show_only_for_the_action_that_needs_them(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    incident = _incident(tenant_a, tech_a)
    page = client_for(tech_a).get(f"/t/acme/incidents/{incident.number}/").content.decode()
    forms = dict(
        re.findall(r'<form method="post" class="record-action" id="action-(\w+)"(.*?)</form>', page, re.S)
    )
    assert set(forms) == {"start", "hold", "resolve", "cancel"}
    assert 'name="hold_reason"' in forms["hold"] and 'name="hold_reason"' not in forms["resolve"]
    assert 'name="resolution_notes"' in forms["resolve"] and 'name="resolution_code"' in forms["resolve"]
    assert "resolution" not in forms["start"] and "hold_reason" not in forms["start"]


def test_refused_transition_shows_the_error_next_to_the_field_and_writes_nothing(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    incident = _incident(tenant_a, tech_a)
    console = client_for(tech_a)
    url = f"/t/acme/incidents/{incident.number}/actions/"
    before = _counts(tenant_a, incident)
    refused = console.post(url, {"action": "resolve", "resolution_notes": "  "}, headers=HTMX)
    body = refused.content.decode()
    assert refused.status_code == 422 and "<html" not in body
    assert 'aria-describedby="resolve-resolution_notes_error"' in body
    assert re.search(r'id="resolve-resolution_notes_error">required<', body)
    assert 'id="resolve-resolution_code_error">an active resolution code is required<' in body
    not_allowed = console.post(url, {"action": "close"}, headers=HTMX)
    assert not_allowed.status_code == 409 and "cannot close" in not_allowed.content.decode()
    plain = console.post(url, {"action": "close"})
    assert plain.status_code == 409 and "<html" in plain.content.decode()
    unknown = console.post(url, {"action": "explode"}, headers=HTMX)
    assert unknown.status_code == 422
    assert _counts(tenant_a, incident) == before


def test_assign_by_htmx_and_by_plain_post(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    incident = _incident(tenant_a, tech_a)
    with tenant_context(tenant_a):
        group = Group.objects.create(name="Network team")
        person = Person.objects.create(display_name="Nina Network", email="nina@northwind.example")
    console = client_for(tech_a)
    url = f"/t/acme/incidents/{incident.number}/assign/"
    swapped = console.post(
        url, {"assignment_group": str(group.pk), "assigned_to": str(person.pk)}, headers=HTMX
    )
    body = swapped.content.decode()
    assert swapped.status_code == 200 and "<html" not in body
    assert "Assignment changed" in body and "assigned to: — → Nina Network" in body
    assert f'<option value="{person.pk}" selected>' in body
    with tenant_context(tenant_a):
        fresh = Incident.objects.get(pk=incident.pk)
        assert (fresh.assignment_group_id, fresh.assigned_to_id) == (group.pk, person.pk)
    plain = console.post(url, {"assignment_group": str(group.pk), "assigned_to": ""})
    assert plain.status_code == 302
    with tenant_context(tenant_a):
        fresh = Incident.objects.get(pk=incident.pk)
        assert (fresh.assigned_to_id, fresh.reassignment_count) == (None, 1)


def test_refused_assignment_writes_nothing(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    incident = _incident(tenant_a, tech_a)
    with tenant_context(tenant_a):
        incident_transition(actor=actor_in(tenant_a, tech_a), incident=incident, action="cancel")
        person = Person.objects.create(display_name="Nina Network")
    console = client_for(tech_a)
    url = f"/t/acme/incidents/{incident.number}/assign/"
    before = _counts(tenant_a, incident)
    closed = console.post(url, {"assigned_to": str(person.pk)}, headers=HTMX)
    assert closed.status_code == 409 and "Canceled" in closed.content.decode()
    unknown = console.post(url, {"assigned_to": "00000000-0000-7000-8000-000000000000"}, headers=HTMX)
    body = unknown.content.decode()
    assert unknown.status_code == 422 and 'id="assign-assigned_to_error"' in body
    assert 'aria-invalid="true"' in body
    assert _counts(tenant_a, incident) == before


def test_comment_and_work_note_by_htmx_and_plain_post(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    incident = _incident(tenant_a, tech_a)
    console = client_for(tech_a)
    url = f"/t/acme/incidents/{incident.number}/comments/"
    swapped = console.post(url, {"body": "checked the logs", "work_note": "on"}, headers=HTMX)
    body = swapped.content.decode()
    assert swapped.status_code == 200 and "<html" not in body
    entry = body[body.index("checked the logs") - 600 : body.index("checked the logs")]
    assert "tl-work_note note" in entry and "Internal" in entry and "Work note" in entry
    plain = console.post(url, {"body": "hello caller"})
    assert plain.status_code == 302
    before = _counts(tenant_a, incident)
    empty = console.post(url, {"body": ""}, headers=HTMX)
    assert empty.status_code == 422 and 'id="comment-body_error"' in empty.content.decode()
    assert _counts(tenant_a, incident) == before
    with tenant_context(tenant_a):
        assert list(Comment.objects.filter(record_id=incident.pk).values_list("body", "is_work_note")) == [
            ("checked the logs", True),
            ("hello caller", False),
        ]


def test_an_end_user_cannot_act_from_the_console_and_nothing_is_written(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    with tenant_context(tenant_a):
        incident = incident_opened(actor_in(tenant_a, end_user_a, role="end_user"), OPENED)
        person = Person.objects.create(display_name="Nina Network")
    console = client_for(end_user_a)
    before = _counts(tenant_a, incident)
    base = f"/t/acme/incidents/{incident.number}/"
    for path, data in (
        ("actions/", {"action": "start"}),
        ("assign/", {"assigned_to": str(person.pk)}),
        ("comments/", {"body": "secret", "work_note": "on"}),
    ):
        response = console.post(base + path, data, headers=HTMX)
        assert 400 <= response.status_code < 500, path
    assert _counts(tenant_a, incident) == before


def test_the_portal_never_shows_work_notes(tenant_a: Tenant, tech_a: User, end_user_a: User) -> None:
    with tenant_context(tenant_a):
        incident = incident_opened(actor_in(tenant_a, end_user_a, role="end_user"), OPENED)
        tech = actor_in(tenant_a, tech_a)
        incident_comment(actor=tech, incident=incident, body="internal: vendor ticket 42", work_note=True)
        incident_comment(actor=tech, incident=incident, body="we are looking into it")
    portal = Client(HTTP_HOST="acme.localhost")
    portal.force_login(end_user_a)
    page = portal.get(f"/incidents/{incident.number}/").content.decode()
    assert "we are looking into it" in page and "vendor ticket 42" not in page


def test_assignee_picker_narrows_persons_and_groups(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        network = Group.objects.create(name="Network team")
        Group.objects.create(name="Service desk")
        kept = Person.objects.create(display_name="Zed Kept")
        network.members.add(Person.objects.create(display_name="Nina Network"))
    response = client_for(tech_a).get(
        "/t/acme/assignees/", {"q": "netw", "assigned_to": str(kept.pk)}, headers=HTMX
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Network team" in body and "Service desk" not in body
    assert "Nina Network" in body and "Zed Kept" in body and "Tech.A" not in body


def test_assignees_offered_are_the_groups_members_but_a_post_may_name_anyone(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        network, desk = Group.objects.create(name="Network team"), Group.objects.create(name="Service desk")
        network.members.add(Person.objects.create(display_name="Nina Network"))
        desk.members.add(Person.objects.create(display_name="Dave Desk"))
        caller = Person.objects.create(display_name="Carl Caller")
        incident = incident_opened(tech, OPENED)
    console = client_for(tech_a)
    offered = console.get(f"/t/acme/incidents/{incident.number}/").content.decode()
    # Group members and the technician themselves; not a caller who is in no group.
    assert "Nina Network" in offered and "Dave Desk" in offered and "Tech.A" in offered
    assert "Carl Caller" not in offered
    # Choosing a group offers its members only (the htmx request the group <select> sends).
    narrowed = console.get("/t/acme/assignees/", {"assignment_group": str(network.pk)}, headers=HTMX)
    assert "Nina Network" in narrowed.content.decode() and "Dave Desk" not in narrowed.content.decode()
    # What is offered is not what may be posted: the caller can still be assigned (the service decides).
    posted = console.post(
        f"/t/acme/incidents/{incident.number}/assign/",
        {"assignment_group": str(network.pk), "assigned_to": str(caller.pk)},
    )
    assert posted.status_code in (200, 302, 303)
    with tenant_context(tenant_a):
        incident.refresh_from_db()
        assert (incident.assignment_group_id, incident.assigned_to_id) == (network.pk, caller.pk)


def _page_queries(client: Client, path: str) -> int:
    """Queries of one page view, without the schema switches (``SET search_path``), which depend on the
    connection's previous schema, not on the page."""
    with CaptureQueriesContext(connection) as queries:
        assert client.get(path).status_code == 200
    return sum(not q["sql"].startswith("SET search_path") for q in queries.captured_queries)


def test_the_page_issues_as_many_queries_with_1_and_30_timeline_entries(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        policy(
            contract(london_calendar()),
            name="Any",
            priorities=[],
            business_time=False,
            resolution_target_minutes=600,
        )
        one = incident_opened(tech, OPENED)
        sla_refresh(record_type="incident", record_id=one.pk)
        many = incident_opened(tech, OPENED)
        for i in range(7):
            incident_transition(
                actor=tech,
                incident=many,
                action="hold",
                hold_reason="awaiting_vendor",
                now=OPENED + (2 * i + 1) * MINUTE,
            )
            incident_transition(actor=tech, incident=many, action="resume", now=OPENED + (2 * i + 2) * MINUTE)
            incident_comment(actor=tech, incident=many, body=f"note {i}", work_note=True)
            incident_comment(actor=tech, incident=many, body=f"comment {i}")
        count = len(timeline_get(actor=tech, record_type="incident", record=many).entries)
    assert count >= 30
    console = client_for(tech_a)
    _page_queries(console, f"/t/acme/incidents/{one.number}/")  # warm-up: sessions, caches
    few_queries = _page_queries(console, f"/t/acme/incidents/{one.number}/")
    many_queries = _page_queries(console, f"/t/acme/incidents/{many.number}/")
    assert few_queries == many_queries


def test_form_errors_are_summarised_and_tied_to_their_fields(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    console = client_for(tech_a)
    refused = console.post(
        "/t/acme/incidents/new/", {"short_description": "", "impact": 9, "urgency": 2, "ci_number": "CI404"}
    )
    body = refused.content.decode()
    assert refused.status_code == 422
    summary = body[
        body.index('class="error-summary') : body.index("</ul>", body.index('class="error-summary'))
    ]
    assert 'role="alert"' in summary and "There are 4 problems" in summary
    for field in ("short_description", "impact", "ci_number", "contact_type"):
        assert f'href="#id_{field}"' in summary, field
    widget = re.search(r'<input[^>]*name="short_description"[^>]*>', body)
    assert widget is not None
    assert 'aria-invalid="true"' in widget.group(0)
    assert 'aria-describedby="id_short_description_error"' in widget.group(0)
    assert 'id="id_short_description_error"><li>This field is required.</li>' in body
    ci = re.search(r'<input[^>]*name="ci_number"[^>]*>', body)
    assert ci is not None and 'aria-describedby="id_ci_number_helptext id_ci_number_error"' in ci.group(0)
    with tenant_context(tenant_a):
        assert not Incident.objects.exists()
    fine = console.get("/t/acme/incidents/new/").content.decode()
    assert "error-summary" not in fine and "aria-invalid" not in fine


def test_a_running_deadline_is_shown_relative_to_now(
    client_for: Callable[..., Client], tenant_a: Tenant, tech_a: User
) -> None:
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        policy(
            contract(london_calendar()),
            name="Any",
            priorities=[],
            business_time=False,
            resolution_target_minutes=180,
        )
        opened = timezone.now() - 30 * MINUTE
        incident = incident_opened(tech, opened)
        sla_refresh(record_type="incident", record_id=incident.pk)
        timeline = timeline_get(actor=tech, record_type="incident", record=incident)
    assert timeline.deadlines == [TimelineDeadline("Resolution SLA", opened + 180 * MINUTE, breached=False)]
    started = next(e for e in timeline.entries if e.title.startswith("Resolution SLA timer started"))
    assert started.due_at == opened + 180 * MINUTE
    page = client_for(tech_a).get(f"/t/acme/incidents/{incident.number}/").content.decode()
    assert re.search(r"due in 2\xa0hours(, 29\xa0minutes)?", page), "relative deadline"
