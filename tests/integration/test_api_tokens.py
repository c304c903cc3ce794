"""Personal API tokens: shown once, stored hashed, revocable, expiring; and the stale-schema guard."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

import pytest
from django.test import Client
from django.utils import timezone
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import ApiToken, SecurityEvent, User
from controlplane.accounts.services import api_token_create
from controlplane.problems import InvalidInput
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from tenants.models import Tenant


def test_token_created_over_the_api_is_stored_only_as_a_hash(tech_a: User) -> None:
    browser = Client(HTTP_HOST="testserver", enforce_csrf_checks=True)
    browser.force_login(tech_a)
    refused = browser.post("/api/v1/me/tokens", {"name": "ci"}, content_type="application/json")
    assert refused.status_code == 403  # session auth without a CSRF token
    assert ApiToken.objects.count() == 0

    browser.get("/me/tokens/")  # sets the CSRF cookie
    created = browser.post(
        "/api/v1/me/tokens",
        {"name": "ci"},
        content_type="application/json",
        HTTP_X_CSRFTOKEN=browser.cookies["csrftoken"].value,
    )
    assert created.status_code == 201
    secret = created.json()["token"]
    row = ApiToken.objects.get()
    assert row.token_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in (row.token_hash, row.prefix, row.name)
    listed = browser.get("/api/v1/me/tokens").json()
    assert [t["name"] for t in listed] == ["ci"] and "token" not in listed[0]

    api = Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.get("/api/v1/t/acme/incidents/").status_code == 200


def test_revoked_and_expired_tokens_are_refused(tech_a: User, tenant_a: Tenant) -> None:
    revoked, revoked_secret = api_token_create(user=tech_a, name="old")
    ApiToken.objects.filter(pk=revoked.pk).update(revoked_at=timezone.now())
    expired, expired_secret = api_token_create(user=tech_a, name="short")
    ApiToken.objects.filter(pk=expired.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    for secret in (revoked_secret, expired_secret, "itsm_00000000_made-up"):
        response = Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}").get(
            "/api/v1/t/acme/incidents/"
        )
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"


def test_a_tenant_behind_the_code_is_not_served(
    client_for: Callable[..., Client], tech_a: User, tenant_a: Tenant
) -> None:
    """A schema at another migration could read public tables silently (django-tenants #846): 503."""
    Tenant.objects.filter(pk=tenant_a.pk).update(migration_state="0" * 64)
    response = client_for(tech_a).get("/t/acme/incidents/")
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/tenant-migrating"


def _bearer(secret: str, address: str = "127.0.0.1") -> Client:
    return Client(HTTP_HOST="testserver", HTTP_AUTHORIZATION=f"Bearer {secret}", REMOTE_ADDR=address)


def test_a_token_reaches_only_its_chosen_clients_and_never_more_than_its_user(
    tech_ab: User, tenant_a: Tenant, tenant_b: Tenant, tenant_c: Tenant
) -> None:
    _, only_a = api_token_create(user=tech_ab, name="acme only", tenant_ids=[tenant_a.pk])
    assert _bearer(only_a).get(f"/api/v1/t/{tenant_a.slug}/incidents/").status_code == 200
    outside = _bearer(only_a).get(f"/api/v1/t/{tenant_b.slug}/incidents/")
    unknown = _bearer(only_a).get("/api/v1/t/no-such-client/incidents/")
    assert outside.status_code == unknown.status_code == 404  # as a client that is not there
    assert outside.json()["type"] == unknown.json()["type"]
    # tenant_c exists but tech_ab may not enter it: a token cannot be made for it, and nothing is stored.
    with pytest.raises(InvalidInput) as refused:
        api_token_create(user=tech_ab, name="too wide", tenant_ids=[tenant_a.pk, tenant_c.pk])
    assert refused.value.extra["errors"][0]["field"] == "tenant_ids"
    assert not ApiToken.objects.filter(name="too wide").exists()
    _, everywhere = api_token_create(user=tech_ab, name="all")
    assert _bearer(everywhere).get(f"/api/v1/t/{tenant_c.slug}/incidents/").status_code == 404


def test_a_read_token_may_only_read_and_its_refused_write_writes_nothing(
    tech_a: User, tenant_a: Tenant
) -> None:
    _, secret = api_token_create(user=tech_a, name="dashboards", access="read")
    api = _bearer(secret)
    assert api.get(f"/api/v1/t/{tenant_a.slug}/incidents/").status_code == 200
    refused = api.post(
        f"/api/v1/t/{tenant_a.slug}/incidents/", {"short_description": "x"}, content_type="application/json"
    )
    assert refused.status_code == 403
    assert refused.json()["type"] == "/problems/token-read-only"
    with tenant_context(tenant_a):
        assert not Incident.objects.exists()


def test_every_token_expires_within_a_year_and_bad_input_names_the_field(tech_a: User) -> None:
    token, _ = api_token_create(user=tech_a, name="default")
    assert token.expires_at is not None
    assert 89 <= (token.expires_at - timezone.now()).days <= 90
    for kwargs, field in (
        ({"expires_in_days": 367}, "expires_in_days"),
        ({"expires_in_days": 0}, "expires_in_days"),
        ({"access": "admin"}, "access"),
        ({"tenant_ids": []}, "tenant_ids"),
        ({"name": " "}, "name"),
    ):
        with pytest.raises(InvalidInput) as refused:
            api_token_create(user=tech_a, **{"name": "t", **kwargs})  # type: ignore[arg-type]
        assert refused.value.extra["errors"][0]["field"] == field
    assert ApiToken.objects.count() == 1


def test_token_use_records_time_and_address_and_creation_and_revocation_are_audited(
    tech_a: User, tenant_a: Tenant
) -> None:
    token, secret = api_token_create(user=tech_a, name="ci", ip="192.0.2.1")
    _bearer(secret, "198.51.100.7").get(f"/api/v1/t/{tenant_a.slug}/incidents/")
    token.refresh_from_db()
    assert token.last_used_ip == "198.51.100.7" and token.last_used_at is not None
    first_use = token.last_used_at
    _bearer(secret, "198.51.100.8").get(f"/api/v1/t/{tenant_a.slug}/incidents/")
    token.refresh_from_db()
    assert token.last_used_ip == "198.51.100.8" and token.last_used_at >= first_use  # a new address: noted
    browser = Client(HTTP_HOST="testserver")
    browser.force_login(tech_a)
    assert browser.post("/me/tokens/", {"revoke": str(token.pk)}).status_code == 302
    assert _bearer(secret).get(f"/api/v1/t/{tenant_a.slug}/incidents/").status_code == 401
    events = list(SecurityEvent.objects.filter(user_id=tech_a.pk).values_list("verb", "ip", "details"))
    assert [(verb, ip) for verb, ip, _ in events] == [
        ("token.created", "192.0.2.1"),
        ("token.revoked", "127.0.0.1"),
    ]
    assert events[0][2]["token"] == token.prefix and secret not in str(events)


def test_a_token_cannot_manage_tokens_and_the_queue_keeps_to_its_scope(
    tech_ab: User, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    _, secret = api_token_create(user=tech_ab, name="acme", tenant_ids=[tenant_a.pk], access="write")
    api = _bearer(secret)
    assert api.get("/api/v1/me/tokens").status_code == 401
    assert api.post("/api/v1/me/tokens", {"name": "more"}, content_type="application/json").status_code == 401
    assert ApiToken.objects.count() == 1
    for tenant in (tenant_a, tenant_b):
        with tenant_context(tenant):
            incident_create(actor=actor_in(tenant, tech_ab), short_description=f"down at {tenant.slug}")
    queue = api.get("/api/v1/queue")
    assert queue.status_code == 200
    assert {item["tenant"]["slug"] for item in queue.json()["items"]} == {tenant_a.slug}


def test_the_token_page_creates_a_scoped_token_and_shows_errors_next_to_the_fields(
    tech_ab: User, tenant_a: Tenant
) -> None:
    browser = Client(HTTP_HOST="testserver")
    browser.force_login(tech_ab)
    refused = browser.post("/me/tokens/", {"name": "x", "access": "read", "expires_in_days": "400"})
    assert refused.status_code == 400
    assert refused.context["form"].errors.keys() == {"tenants", "expires_in_days"}
    assert ApiToken.objects.count() == 0
    made = browser.post(
        "/me/tokens/", {"name": "acme", "access": "write", "tenants": [tenant_a.pk], "expires_in_days": "30"}
    )
    assert made.status_code == 200 and made.context["created"].startswith("itsm_")
    token = ApiToken.objects.get()
    assert (token.access, token.all_tenants, token.tenant_ids) == ("write", False, [tenant_a.pk])
    assert b"Acme" in browser.get("/me/tokens/").content
