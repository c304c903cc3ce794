"""The problem candidate thresholds page: admins change them, technicians read them, others get 404;
refusals and bad values write nothing."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import provider_membership_set
from controlplane.providers.models import Provider
from modules.problems.models import ProblemSettings
from modules.records.models import ActivityEntry
from tenants.models import Tenant

ClientFor = Callable[..., Client]
URL = "/t/acme/problems/settings/"


@pytest.fixture
def owner(provider: Provider, tenant_a: Tenant) -> User:
    user = make_user("owner@northwind.example")
    provider_membership_set(user=user, provider=provider, role="owner")
    return user


def state(tenant: Tenant) -> tuple[int, int, int]:
    with tenant_context(tenant):
        rules = ProblemSettings.objects.get(pk=1)
        return rules.candidate_min_incidents, rules.candidate_window_days, ActivityEntry.objects.count()


def test_admin_changes_the_thresholds(client_for: ClientFor, owner: User, tenant_a: Tenant) -> None:
    console = client_for(owner)
    page = console.get(URL)
    assert page.status_code == 200
    assert 'name="candidate_min_incidents" value="3"' in page.content.decode()
    saved = console.post(URL, {"candidate_min_incidents": "5", "candidate_window_days": "14"})
    assert saved.status_code == 302 and saved["Location"] == URL
    with tenant_context(tenant_a):
        rules = ProblemSettings.objects.get(pk=1)
        assert (rules.candidate_min_incidents, rules.candidate_window_days) == (5, 14)
        entry = ActivityEntry.objects.get(verb="problem_settings.changed")
        assert entry.changes == {"candidate_min_incidents": [3, 5], "candidate_window_days": [30, 14]}
    candidates = console.get("/t/acme/problems/candidates/").content.decode()
    assert f'href="{URL}"' in candidates and "at least 5 incidents" in candidates


def test_out_of_range_value_is_shown_by_the_field_and_writes_nothing(
    client_for: ClientFor, owner: User, tenant_a: Tenant
) -> None:
    before = state(tenant_a)
    refused = client_for(owner).post(URL, {"candidate_min_incidents": "1", "candidate_window_days": "14"})
    assert refused.status_code == 422
    assert 'id="id_candidate_min_incidents_error"><li>2-1000</li>' in refused.content.decode()
    assert state(tenant_a) == before


def test_technician_reads_and_others_are_refused(
    client_for: ClientFor, tech_a: User, end_user_a: User, tenant_a: Tenant
) -> None:
    before = state(tenant_a)
    tech = client_for(tech_a)
    page = tech.get(URL).content.decode()
    assert "Only admins change the thresholds." in page and 'name="candidate_min_incidents"' not in page
    denied = tech.post(URL, {"candidate_min_incidents": "5", "candidate_window_days": "14"})
    assert denied.status_code == 403 and "(process.manage)" in denied.content.decode()
    user = client_for(end_user_a)
    assert user.get(URL).status_code == 403
    assert user.post(URL, {"candidate_min_incidents": "5", "candidate_window_days": "14"}).status_code == 403
    assert state(tenant_a) == before
