"""The satisfaction survey of a resolved incident: the caller answers once (1-5 and a comment) on the
portal, the score feeds the control-plane daily rollup live and on the nightly rebuild, and the console
detail shows it."""

from __future__ import annotations

import datetime as dt

import pytest
from django.template.loader import render_to_string
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.problems import InvalidTransition, PermissionDenied
from controlplane.workindex.models import TenantDailyRollup
from controlplane.workindex.services import workindex_local_day, workindex_rollup_rebuild
from modules.incidents.models import Incident, SatisfactionResponse
from modules.incidents.services import (
    SurveyAlreadyAnswered,
    incident_create,
    incident_survey_answer,
    incident_transition,
)
from modules.records.models import ActivityEntry
from tenants.models import Tenant


def resolved_incident(tenant: Tenant, tech: User, caller: User, *, resolve: bool = True) -> Incident:
    with tenant_context(tenant):
        tech_actor = actor_in(tenant, tech)
        caller_person = actor_in(tenant, caller, role="end_user").person
        incident = incident_create(actor=tech_actor, short_description="printer jams", caller=caller_person)
        if resolve:
            incident_transition(
                actor=tech_actor,
                incident=incident,
                action="resolve",
                resolution_code="solved_permanently",
                resolution_notes="new roller",
            )
        return Incident.objects.get(pk=incident.pk)


def satisfaction(tenant: Tenant) -> set[tuple[dt.date, int, int]]:
    return {
        (row.day, row.satisfaction_sum, row.satisfaction_count)
        for row in TenantDailyRollup.objects.filter(tenant=tenant, record_type="incident")
        if row.satisfaction_count
    }


def portal(user: User, host: str = "acme.localhost") -> Client:
    client = Client(HTTP_HOST=host)
    client.force_login(user)
    return client


def test_the_caller_answers_on_the_portal_and_the_rollup_counts_it(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    incident = resolved_incident(tenant_a, tech_a, end_user_a)
    client = portal(end_user_a)
    detail = client.get(f"/incidents/{incident.number}/").content.decode()
    assert f"/incidents/{incident.number}/survey/" in detail
    home = client.get("/").content.decode()
    assert f"/incidents/{incident.number}/survey/" in home

    page = client.get(f"/incidents/{incident.number}/survey/").content.decode()
    assert 'type="radio"' in page and "5 - Very satisfied" in page and "<legend>" in page
    answered = client.post(f"/incidents/{incident.number}/survey/", {"score": "4", "comment": "quick fix"})
    assert answered.status_code == 302

    with tenant_context(tenant_a):
        response = SatisfactionResponse.objects.get(incident=incident)
        assert (response.score, response.comment, response.person.user_id) == (4, "quick fix", end_user_a.pk)
        assert (
            ActivityEntry.objects.filter(record_id=incident.pk, verb="incident.survey_answered").count() == 1
        )
        day = workindex_local_day(response.answered_at)
    assert satisfaction(tenant_a) == {(day, 4, 1)}
    shown = client.get(f"/incidents/{incident.number}/survey/").content.decode()
    assert "4 - Satisfied" in shown and "quick fix" in shown
    assert f"/incidents/{incident.number}/survey/" not in client.get("/").content.decode()


def test_a_second_answer_is_refused_and_writes_nothing(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    incident = resolved_incident(tenant_a, tech_a, end_user_a)
    client = portal(end_user_a)
    assert client.post(f"/incidents/{incident.number}/survey/", {"score": "2"}).status_code == 302
    again = client.post(f"/incidents/{incident.number}/survey/", {"score": "5", "comment": "changed my mind"})
    assert again.status_code == 409
    with tenant_context(tenant_a):
        actor = actor_in(tenant_a, end_user_a, role="end_user")
        with pytest.raises(SurveyAlreadyAnswered):
            incident_survey_answer(actor=actor, incident=incident, score=5)
        assert list(SatisfactionResponse.objects.values_list("score", "comment")) == [(2, "")]
        assert ActivityEntry.objects.filter(verb="incident.survey_answered").count() == 1
    assert {(s, c) for _, s, c in satisfaction(tenant_a)} == {(2, 1)}


def test_only_the_caller_answers_and_only_once_resolved(
    tenant_a: Tenant, tech_a: User, end_user_a: User
) -> None:
    incident = resolved_incident(tenant_a, tech_a, end_user_a)
    still_open = resolved_incident(tenant_a, tech_a, end_user_a, resolve=False)
    with tenant_context(tenant_a):
        with pytest.raises(PermissionDenied):
            incident_survey_answer(actor=actor_in(tenant_a, tech_a), incident=incident, score=1)
        with pytest.raises(InvalidTransition):
            incident_survey_answer(
                actor=actor_in(tenant_a, end_user_a, role="end_user"), incident=still_open, score=5
            )
        assert not SatisfactionResponse.objects.exists()
        assert not ActivityEntry.objects.filter(verb="incident.survey_answered").exists()
    assert satisfaction(tenant_a) == set()
    # On the portal, another end user does not even see the incident; the open one shows no form.
    colleague = User.objects.create_user(email="carol@acme.example", password="x")
    from controlplane.accounts.services import tenant_membership_set

    tenant_membership_set(user=colleague, tenant=tenant_a, role="end_user")
    assert portal(colleague).post(f"/incidents/{incident.number}/survey/", {"score": "1"}).status_code == 404
    page = portal(end_user_a).get(f"/incidents/{still_open.number}/survey/").content.decode()
    assert "opens once the incident is resolved" in page and 'type="radio"' not in page
    with tenant_context(tenant_a):
        assert not SatisfactionResponse.objects.exists()


def test_the_nightly_rebuild_recomputes_satisfaction_from_the_surveys(
    tenant_b: Tenant, tech_ab: User, end_user_b: User
) -> None:
    first = resolved_incident(tenant_b, tech_ab, end_user_b)
    second = resolved_incident(tenant_b, tech_ab, end_user_b)
    with tenant_context(tenant_b):
        actor = actor_in(tenant_b, end_user_b, role="end_user")
        incident_survey_answer(actor=actor, incident=first, score=5)
        late = incident_survey_answer(actor=actor, incident=second, score=2)
        # As if the second answer came at 03:00 UTC on 10 January: the 9th in New York (the tenant's zone).
        at = dt.datetime(2026, 1, 10, 3, 0, tzinfo=dt.UTC)
        SatisfactionResponse.objects.filter(pk=late.pk).update(answered_at=at)
        today = workindex_local_day(first.resolved_at or at)
        live = satisfaction(tenant_b)
        workindex_rollup_rebuild(days=400)
    assert live == {(today, 7, 2)}
    assert satisfaction(tenant_b) == {(today, 5, 1), (dt.date(2026, 1, 9), 2, 1)}


def test_the_console_include_shows_the_answer(tenant_a: Tenant, tech_a: User, end_user_a: User) -> None:
    incident = resolved_incident(tenant_a, tech_a, end_user_a)
    with tenant_context(tenant_a):
        before = render_to_string(
            "incidents/_survey.html", {"incident": Incident.objects.get(pk=incident.pk)}
        )
        incident_survey_answer(
            actor=actor_in(tenant_a, end_user_a, role="end_user"),
            incident=incident,
            score=3,
            comment="ok <b>",
        )
        after = render_to_string("incidents/_survey.html", {"incident": Incident.objects.get(pk=incident.pk)})
    assert "not answered the survey yet" in before
    assert "3 - Neither satisfied nor dissatisfied" in after and "ok &lt;b&gt;" in after
