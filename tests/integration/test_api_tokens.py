"""Personal API tokens: shown once, stored hashed, revocable, expiring; and the stale-schema guard."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable

from django.test import Client
from django.utils import timezone

from controlplane.accounts.models import ApiToken, User
from controlplane.accounts.services import api_token_create
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
