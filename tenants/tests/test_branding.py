"""Portal branding per tenant: set by the client admin on the portal or the provider's staff on the
console, validated (WCAG AA contrast, logo bytes), audited, and shown on each tenant's own host."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import actor_in, make_user
from controlplane.accounts.models import User
from controlplane.accounts.services import tenant_membership_set
from controlplane.problems import InvalidInput, PermissionDenied
from tenants.models import Tenant, TenantAuditEntry, TenantBranding
from tenants.services import branding_update
from tenants.tests.factories import png
from tenants.validation import contrast_ratio


@pytest.fixture
def client_admin_a(tenant_a: Tenant) -> User:
    user = make_user("it@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="client_admin")
    return user


def signed_in(user: User | None, host: str) -> Client:
    client = Client(HTTP_HOST=host)
    if user is not None:
        client.force_login(user)
    return client


FORM = {"portal_title": "", "welcome_text": "", "primary_color": "#1f3a5f", "accent_color": "#0b5cad"}


def update(tenant: Tenant, user: User, role: str, **fields: Any) -> TenantBranding:
    with tenant_context(tenant):
        return branding_update(actor=actor_in(tenant, user, role=role), tenant=tenant, **{**FORM, **fields})


def test_contrast_ratio_follows_wcag() -> None:
    assert round(contrast_ratio("#000000", "#ffffff"), 2) == 21.0
    assert round(contrast_ratio("#767676", "#ffffff"), 2) == 4.54
    assert contrast_ratio("#ffffff", "#ffffff") == 1.0


def test_the_client_admin_brands_the_portal_with_a_logo(
    tenant_a: Tenant, client_admin_a: User, end_user_a: User
) -> None:
    portal = signed_in(client_admin_a, "acme.localhost")
    assert portal.get("/branding/").status_code == 200
    logo = SimpleUploadedFile("logo.png", png(), content_type="application/octet-stream")
    saved = portal.post(
        "/branding/",
        {
            **FORM,
            "portal_title": "Acme Help Centre",
            "welcome_text": "Hello Acme",
            "primary_color": "#7A1F5C",
            "logo": logo,
        },
    )
    assert saved.status_code == 302
    branding = TenantBranding.objects.get(tenant=tenant_a)
    assert (branding.portal_title, branding.primary_color, branding.logo_type) == (
        "Acme Help Centre",
        "#7a1f5c",
        "image/png",
    )
    assert branding.logo_name.startswith(f"{tenant_a.schema_name}/branding/logo-")
    entry = TenantAuditEntry.objects.get(tenant=tenant_a)
    assert (entry.verb, entry.actor_user_id, entry.actor_role, entry.source) == (
        "branding.updated",
        client_admin_a.pk,
        "client_admin",
        "portal",
    )
    assert set(entry.changes) == {"portal_title", "welcome_text", "primary_color", "logo"}

    home = signed_in(end_user_a, "acme.localhost").get("/").content.decode()
    assert "--brand-primary: #7a1f5c" in home and "Acme Help Centre" in home and "Hello Acme" in home
    assert 'src="/branding/logo/?v=' in home
    served = Client(HTTP_HOST="acme.localhost").get("/branding/logo/")  # shown on the sign-in page too
    assert served.status_code == 200 and served["Content-Type"] == "image/png"
    assert served["X-Content-Type-Options"] == "nosniff"
    assert b"".join(served.streaming_content) == png()  # type: ignore[attr-defined]
    assert Client(HTTP_HOST="globex.localhost").get("/branding/logo/").status_code == 404


def test_colours_failing_wcag_aa_are_refused_with_the_ratio(tenant_a: Tenant, client_admin_a: User) -> None:
    with pytest.raises(InvalidInput) as refused:
        update(tenant_a, client_admin_a, "client_admin", primary_color="#ffcc00", accent_color="blue")
    errors = {e["field"]: e["message"] for e in refused.value.extra["errors"]}
    assert "1.51:1" in errors["primary_color"] and "4.5:1" in errors["primary_color"]
    assert "#rrggbb" in errors["accent_color"]
    page = signed_in(client_admin_a, "acme.localhost").post("/branding/", {**FORM, "accent_color": "#8fbfff"})
    assert page.status_code == 422 and "1.90:1" in page.content.decode()
    assert not TenantBranding.objects.exists() and not TenantAuditEntry.objects.exists()


def test_logo_type_and_size_come_from_the_bytes(tenant_a: Tenant, tech_a: User) -> None:
    for data, message in (
        (b"<svg onload=alert(1)></svg>", "PNG, JPEG, GIF or WebP"),
        (b"MZ\x90\x00" + b"\x00" * 100, "PNG, JPEG, GIF or WebP"),
        (png() + b"\x00" * (600 * 1024), "at most 512 KiB"),
    ):
        with pytest.raises(InvalidInput, match=message):
            update(tenant_a, tech_a, "technician", logo=data)
    assert not TenantBranding.objects.exists()


def test_end_users_cannot_change_the_branding(tenant_a: Tenant, end_user_a: User) -> None:
    with pytest.raises(PermissionDenied):
        update(tenant_a, end_user_a, "end_user", portal_title="Hacked")
    portal = signed_in(end_user_a, "acme.localhost")
    assert portal.get("/branding/").status_code == 403
    assert portal.post("/branding/", {**FORM, "portal_title": "Hacked"}).status_code == 403
    assert 'href="/branding/"' not in portal.get("/").content.decode()
    assert not TenantBranding.objects.exists() and not TenantAuditEntry.objects.exists()


def test_a_service_cannot_brand_another_tenant_than_the_actors(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User
) -> None:
    with tenant_context(tenant_a), pytest.raises(PermissionDenied):
        branding_update(
            actor=actor_in(tenant_a, tech_ab),
            tenant=tenant_b,
            portal_title="x",
            welcome_text="",
            primary_color="#1f3a5f",
            accent_color="#0b5cad",
        )
    assert not TenantBranding.objects.exists()


def test_the_msp_brands_in_the_console_and_each_host_shows_its_own(
    tenant_a: Tenant, tenant_b: Tenant, tech_ab: User, end_user_a: User, end_user_b: User
) -> None:
    console = signed_in(tech_ab, "testserver")
    assert console.get("/t/acme/branding/").status_code == 200
    for slug, title, colour in (("acme", "Acme IT", "#7a1f5c"), ("globex", "Globex Service Desk", "#0f5132")):
        response = console.post(
            f"/t/{slug}/branding/", {**FORM, "portal_title": title, "primary_color": colour}
        )
        assert response.status_code == 302
    assert TenantAuditEntry.objects.filter(actor_role="technician", source="console").count() == 2
    # Each client's branding page shows its own change, by whom; never the other client's.
    history_a = console.get("/t/acme/branding/").content.decode()
    assert "Recent changes" in history_a and tech_ab.full_name in history_a
    assert "#7a1f5c" in history_a.split("Recent changes")[1] and "#0f5132" not in history_a

    page_a = signed_in(end_user_a, "acme.localhost").get("/").content.decode()
    page_b = signed_in(end_user_b, "globex.localhost").get("/").content.decode()
    assert "Acme IT" in page_a and "--brand-primary: #7a1f5c" in page_a
    assert "Globex" not in page_a and "#0f5132" not in page_a
    assert "Globex Service Desk" in page_b and "--brand-primary: #0f5132" in page_b
    assert "Acme IT" not in page_b and "#7a1f5c" not in page_b
    sign_in_b = Client(HTTP_HOST="globex.localhost").get("/accounts/login/").content.decode()
    assert "Globex Service Desk" in sign_in_b and "#0f5132" in sign_in_b
