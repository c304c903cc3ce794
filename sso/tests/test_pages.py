"""Console pages of SAML connections (who may manage them, metadata errors next to the field, nothing
written on a refusal), home-realm discovery, and single logout against the pysaml2 IdP."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from allauth.account.models import EmailAddress
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from conftest import PASSWORD, make_user
from controlplane.accounts.models import SecurityEvent, User
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.providers.models import Provider
from sso.models import SamlConnection, SamlRequest
from sso.saml import sp_urls
from sso.selectors import sso_connection_for_email
from tenants.models import Tenant
from tests.integration.conftest import Mailbox

from .conftest import ADMIN_RULES, Attempt
from .idp import TestIdp

pytestmark = pytest.mark.django_db


@pytest.fixture
def provider_admin(provider: Provider) -> User:
    user = make_user("admin@northwind.example")
    provider_membership_set(user=user, provider=provider, role="admin")
    return user


@pytest.fixture
def client_admin_a(tenant_a: Tenant) -> User:
    user = make_user("boss@acme.example")
    tenant_membership_set(user=user, tenant=tenant_a, role="client_admin")
    return user


def form(idp: TestIdp, **extra: Any) -> dict[str, Any]:
    data = {
        "name": "Acme Entra",
        "metadata_xml": idp.metadata_xml(),
        "email_domains": "acme.example, Acme-Corp.example",
        "role_rules": '[{"attribute": "groups", "value": "IT-Admins", "role": "client_admin"}]',
        "default_role": "end_user",
    }
    data.update(extra)
    return data


def test_provider_admin_creates_a_tenant_connection_from_pasted_metadata(
    tenant_a: Tenant, provider_admin: User, idp: TestIdp, client_for: Callable[..., Client]
) -> None:
    client = client_for(provider_admin)
    assert client.get("/t/acme/sso/new/").status_code == 200
    response = client.post("/t/acme/sso/new/", form(idp))
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = SamlConnection.objects.get()
    assert (connection.tenant, connection.provider) == (tenant_a, None)
    assert connection.idp_entity_id == idp.entity_id
    assert connection.idp_sso_url == f"{idp.entity_id}/sso"
    assert connection.email_domains == ["acme.example", "acme-corp.example"]
    assert connection.role_rules == ADMIN_RULES
    assert "PRIVATE KEY" in connection.sp_private_key and connection.sp_certificate
    event = SecurityEvent.objects.get(verb="sso.connection.created")
    assert (event.actor_user_id, event.tenant_id, event.ip) == (provider_admin.pk, tenant_a.pk, "127.0.0.1")
    page = client.get("/t/acme/sso/").content.decode()
    urls = sp_urls(connection)
    assert urls["metadata"] in page and urls["acs"] in page
    assert urls["acs"] == f"http://acme.localhost:8000/sso/saml/{connection.pk}/acs/"
    edit = client.get(f"/t/acme/sso/{connection.pk}/").content.decode()
    assert urls["entity_id"] in edit and urls["sls"] in edit
    assert "sso.connection.created" in edit  # the connection's own audit trail


def test_client_admin_creates_one_from_an_uploaded_file(
    tenant_a: Tenant, client_admin_a: User, idp: TestIdp, client_for: Callable[..., Client]
) -> None:
    upload = SimpleUploadedFile("idp.xml", idp.metadata_xml().encode(), content_type="application/xml")
    response = client_for(client_admin_a).post(
        "/t/acme/sso/new/", form(idp, metadata_xml="", metadata_file=upload)
    )
    assert response.status_code == 302
    assert SamlConnection.objects.get().idp_entity_id == idp.entity_id


@pytest.mark.parametrize(
    "metadata",
    [
        "<not-xml",
        "<md:EntityDescriptor xmlns:md='urn:oasis:names:tc:SAML:2.0:metadata' entityID='x'/>",
        "",
        "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]><x>&e;</x>",
    ],
    ids=["not-xml", "no-idp", "empty", "external-entity"],
)
def test_bad_metadata_is_an_error_next_to_the_field_and_writes_nothing(
    tenant_a: Tenant, provider_admin: User, idp: TestIdp, client_for: Callable[..., Client], metadata: str
) -> None:
    response = client_for(provider_admin).post("/t/acme/sso/new/", form(idp, metadata_xml=metadata))
    assert response.status_code == 422
    body = response.content.decode()
    errors = response.context["form"].errors
    assert list(errors) == ["metadata_xml"], errors
    assert 'class="error" role="alert"' in body
    assert SamlConnection.objects.count() == 0
    assert SecurityEvent.objects.count() == 0


def test_metadata_without_a_signing_certificate_is_refused(
    tenant_a: Tenant, provider_admin: User, idp: TestIdp, client_for: Callable[..., Client]
) -> None:
    import re

    stripped = re.sub(r"<ns0:KeyDescriptor.*?</ns0:KeyDescriptor>", "", idp.metadata_xml(), flags=re.S)
    assert "X509Certificate" not in stripped
    response = client_for(provider_admin).post("/t/acme/sso/new/", form(idp, metadata_xml=stripped))
    assert response.status_code == 422
    assert "signing certificate" in response.context["form"].errors["metadata_xml"][0]
    assert SamlConnection.objects.count() == 0


def test_bad_domains_and_rules_are_errors_next_to_their_fields(
    tenant_a: Tenant, provider_admin: User, idp: TestIdp, client_for: Callable[..., Client]
) -> None:
    client = client_for(provider_admin)
    response = client.post("/t/acme/sso/new/", form(idp, email_domains="acme.example, not a domain!"))
    assert response.status_code == 422 and list(response.context["form"].errors) == ["email_domains"]
    response = client.post(
        "/t/acme/sso/new/", form(idp, role_rules='[{"attribute": "g", "value": "v", "role": "owner"}]')
    )
    assert response.status_code == 422 and list(response.context["form"].errors) == ["role_rules"]
    assert SamlConnection.objects.count() == 0 and SecurityEvent.objects.count() == 0


def test_one_domain_one_connection_per_tenant(
    tenant_a: Tenant,
    acme_sso: SamlConnection,
    provider_admin: User,
    idp: TestIdp,
    client_for: Callable[..., Client],
) -> None:
    response = client_for(provider_admin).post("/t/acme/sso/new/", form(idp, email_domains="acme.example"))
    assert response.status_code == 409
    assert list(response.context["form"].errors) == ["email_domains"]
    assert SamlConnection.objects.count() == 1


def test_a_tenant_connection_cannot_list_the_providers_domain(
    tenant_a: Tenant,
    provider_sso: SamlConnection,
    provider_admin: User,
    idp: TestIdp,
    client_for: Callable[..., Client],
) -> None:
    response = client_for(provider_admin).post(
        "/t/acme/sso/new/", form(idp, email_domains="acme.example, northwind.example")
    )
    assert response.status_code == 409
    assert "provider's own domain" in response.context["form"].errors["email_domains"][0]
    assert SamlConnection.objects.filter(tenant=tenant_a).count() == 0


@pytest.mark.parametrize("who", ["technician", "end_user", "approver"])
def test_other_roles_cannot_manage_tenant_connections(
    tenant_a: Tenant,
    acme_sso: SamlConnection,
    tech_a: User,
    end_user_a: User,
    idp: TestIdp,
    client_for: Callable[..., Client],
    who: str,
) -> None:
    if who == "approver":
        user = make_user("approver@acme.example")
        tenant_membership_set(user=user, tenant=tenant_a, role="approver")
    else:
        user = {"technician": tech_a, "end_user": end_user_a}[who]
    client = client_for(user)
    events = SecurityEvent.objects.count()
    for path in ("/t/acme/sso/", "/t/acme/sso/new/", f"/t/acme/sso/{acme_sso.pk}/"):
        assert client.get(path).status_code == 403, path
    assert client.post("/t/acme/sso/new/", form(idp, email_domains="other.example")).status_code == 403
    assert (
        client.post(f"/t/acme/sso/{acme_sso.pk}/", form(idp, name="Hijacked", is_active="on")).status_code
        == 403
    )
    assert client.post(f"/t/acme/sso/{acme_sso.pk}/deactivate/").status_code == 403
    acme_sso.refresh_from_db()
    assert (acme_sso.name, acme_sso.is_active, SamlConnection.objects.count()) == ("Acme IdP", True, 1)
    assert SecurityEvent.objects.count() == events


def test_another_tenants_connection_is_not_found_under_this_tenant(
    tenant_a: Tenant,
    tenant_b: Tenant,
    acme_sso: SamlConnection,
    provider_admin: User,
    client_for: Callable[..., Client],
) -> None:
    client = client_for(provider_admin)
    assert client.get(f"/t/globex/sso/{acme_sso.pk}/").status_code == 404
    assert client.post(f"/t/globex/sso/{acme_sso.pk}/deactivate/").status_code == 404
    acme_sso.refresh_from_db()
    assert acme_sso.is_active


def test_edit_and_deactivate_are_audited(
    tenant_a: Tenant, acme_sso: SamlConnection, provider_admin: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(provider_admin)
    response = client.post(
        f"/t/acme/sso/{acme_sso.pk}/",
        {
            "name": "Acme Okta",
            "metadata_xml": "",
            "email_domains": "acme.example",
            "role_rules": "",
            "default_role": "approver",
            "is_active": "on",
        },
    )
    assert response.status_code == 302
    acme_sso.refresh_from_db()
    assert (acme_sso.name, acme_sso.default_role, acme_sso.role_rules) == ("Acme Okta", "approver", [])
    changes = SecurityEvent.objects.get(verb="sso.connection.updated").details["changes"]
    assert set(changes) == {"name", "default_role", "role_rules"}
    assert client.post(f"/t/acme/sso/{acme_sso.pk}/deactivate/").status_code == 302
    acme_sso.refresh_from_db()
    assert not acme_sso.is_active
    assert SecurityEvent.objects.filter(verb="sso.connection.deactivated", ip="127.0.0.1").count() == 1


def test_provider_connections_are_managed_by_owners_and_admins_only(
    provider: Provider,
    tenant_a: Tenant,
    provider_admin: User,
    tech_a: User,
    idp: TestIdp,
    client_for: Callable[..., Client],
) -> None:
    technician = client_for(tech_a)
    assert technician.get("/sso/").status_code == 403
    assert (
        technician.post("/sso/new/", {"name": "Mine", "metadata_xml": idp.metadata_xml()}).status_code == 403
    )
    assert SamlConnection.objects.count() == 0
    assert client_for(None).get("/sso/").status_code == 302  # sign in first
    admin = client_for(provider_admin)
    assert admin.get("/sso/new/").status_code == 200
    response = admin.post(
        "/sso/new/",
        {"name": "Northwind Entra", "metadata_xml": idp.metadata_xml(), "email_domains": "northwind.example"},
    )
    assert response.status_code == 302
    connection = SamlConnection.objects.get()
    assert (connection.provider, connection.tenant) == (provider, None)
    assert sp_urls(connection)["acs"] == f"http://127.0.0.1:8000/sso/saml/{connection.pk}/acs/"
    assert sp_urls(connection)["acs"] in admin.get("/sso/").content.decode()
    assert technician.post(f"/sso/{connection.pk}/deactivate/").status_code == 403
    connection.refresh_from_db()
    assert connection.is_active


def test_another_providers_admin_sees_nothing(
    provider_sso: SamlConnection, other_provider: Provider, client_for: Callable[..., Client]
) -> None:
    stranger = make_user("admin@contoso.example")
    provider_membership_set(user=stranger, provider=other_provider, role="owner")
    client = client_for(stranger)
    listing = client.get("/sso/")
    assert listing.status_code == 200 and str(provider_sso.pk) not in listing.content.decode()
    assert client.get(f"/sso/{provider_sso.pk}/").status_code == 404
    assert client.post(f"/sso/{provider_sso.pk}/deactivate/").status_code == 404


# --- discovery ----------------------------------------------------------------------------------------


def test_sso_connection_for_email_is_scoped_to_the_host(
    tenant_a: Tenant,
    tenant_b: Tenant,
    acme_sso: SamlConnection,
    globex_sso: SamlConnection,
    provider_sso: SamlConnection,
) -> None:
    assert sso_connection_for_email(email="Alice@ACME.example", hostname="acme.localhost") == acme_sso
    assert sso_connection_for_email(email="alice@acme.example", hostname="globex.localhost") is None
    assert sso_connection_for_email(email="bob@globex.example", hostname="globex.localhost") == globex_sso
    assert sso_connection_for_email(email="nina@northwind.example", hostname="testserver") == provider_sso
    assert sso_connection_for_email(email="alice@acme.example", hostname="testserver") is None
    assert sso_connection_for_email(email="nina@northwind.example", hostname="acme.localhost") is None
    acme_sso.is_active = False
    acme_sso.save()
    assert sso_connection_for_email(email="alice@acme.example", hostname="acme.localhost") is None


def test_start_page_sends_to_the_idp_or_back_to_the_password(
    tenant_a: Tenant, acme_sso: SamlConnection, provider_sso: SamlConnection, idp: TestIdp
) -> None:
    portal = Client(HTTP_HOST="acme.localhost:8000")
    assert portal.get("/sso/start/").status_code == 200
    response = portal.post("/sso/start/", {"email": "alice@acme.example", "next": "/requests/"})
    assert response.status_code == 302 and response["Location"].startswith(f"{idp.entity_id}/sso?")
    assert parse_qs(urlsplit(response["Location"]).query)["RelayState"] == ["/requests/"]
    request = idp.read_request(response["Location"])
    assert SamlRequest.objects.get(request_id=request.id).connection == acme_sso
    other = portal.post("/sso/start/", {"email": "someone@gmail.example", "next": "https://evil.example/"})
    assert other.status_code == 302 and other["Location"].startswith("/accounts/login/")
    assert "evil" not in other["Location"]
    console = Client(HTTP_HOST="testserver")
    to_idp = console.post("/sso/start/", {"email": "nina@northwind.example"})
    assert to_idp.status_code == 302
    assert (
        SamlRequest.objects.get(request_id=idp.read_request(to_idp["Location"]).id).connection == provider_sso
    )
    assert portal.post("/sso/start/", {"email": "not an email"}).status_code == 422


def test_sign_in_page_links_to_discovery(tenant_a: Tenant) -> None:
    for host in ("testserver", "acme.localhost"):
        page = Client(HTTP_HOST=host).get("/accounts/login/").content.decode()
        assert 'href="/sso/start/' in page and "Sign in with your organisation" in page


# --- single logout ------------------------------------------------------------------------------------


def test_sp_initiated_logout_round_trip(
    tenant_a: Tenant, acme_sso: SamlConnection, idp: TestIdp, saml_sign_in: Callable[..., Attempt]
) -> None:
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.xmldsig import SIG_RSA_SHA256

    attempt = saml_sign_in(acme_sso, name_id="alice-1")
    browser = attempt.client
    assert "_auth_user_id" in browser.session
    # The header's "Sign out" (allauth's logout) continues at the IdP.
    response = browser.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"].startswith(f"{idp.entity_id}/slo?")
    event = SecurityEvent.objects.get(verb="sso.saml.logout")
    assert event.details == {"connection": str(acme_sso.pk), "idp": True} and event.tenant_id == tenant_a.pk
    assert "_auth_user_id" not in browser.session
    query = parse_qs(urlsplit(response["Location"]).query)
    assert query["Signature"] and query["SigAlg"] == [SIG_RSA_SHA256]
    logout_request = idp.server.parse_logout_request(query["SAMLRequest"][0], BINDING_HTTP_REDIRECT).message
    assert logout_request.name_id.text == "alice-1"
    assert SamlRequest.objects.filter(request_id=logout_request.id, kind="logout").exists()
    answer = idp.server.create_logout_response(
        logout_request, [BINDING_HTTP_REDIRECT], sign_alg=SIG_RSA_SHA256
    )
    info = idp.server.apply_binding(
        BINDING_HTTP_REDIRECT,
        str(answer),
        sp_urls(acme_sso)["sls"],
        response=True,
        sign=True,
        sigalg=SIG_RSA_SHA256,
    )
    location = dict(info["headers"])["Location"]
    back = browser.get(urlsplit(location).path + "?" + urlsplit(location).query)
    assert back.status_code == 302 and back["Location"].startswith("/accounts/login/")
    assert not SamlRequest.objects.filter(request_id=logout_request.id).exists()  # consumed
    assert SecurityEvent.objects.filter(verb="sso.saml.refused").count() == 0
    # The same LogoutResponse again answers no request of ours.
    assert browser.get(urlsplit(location).path + "?" + urlsplit(location).query).status_code == 403
    assert SecurityEvent.objects.get(verb="sso.saml.refused").details["reason"] == "unknown-in-response-to"


def test_idp_initiated_logout_ends_only_that_subjects_session(
    tenant_a: Tenant, acme_sso: SamlConnection, idp: TestIdp, saml_sign_in: Callable[..., Attempt]
) -> None:
    from saml2 import BINDING_HTTP_REDIRECT
    from saml2.saml import NAMEID_FORMAT_PERSISTENT, NameID
    from saml2.xmldsig import SIG_RSA_SHA256

    attempt = saml_sign_in(acme_sso, name_id="alice-1")
    browser = attempt.client
    sls = sp_urls(acme_sso)["sls"]

    def idp_logout(subject: str, *, sign: bool = True) -> Any:
        _, request = idp.server.create_logout_request(
            sls,
            issuer_entity_id=idp.entity_id,
            name_id=NameID(format=NAMEID_FORMAT_PERSISTENT, text=subject),
            sign=False,
        )
        info = idp.server.apply_binding(
            BINDING_HTTP_REDIRECT, str(request), sls, sign=sign, sigalg=SIG_RSA_SHA256 if sign else None
        )
        location = dict(info["headers"])["Location"]
        return browser.get(urlsplit(location).path + "?" + urlsplit(location).query)

    unsigned = idp_logout("alice-1", sign=False)
    assert unsigned.status_code == 403 and "_auth_user_id" in browser.session
    other = idp_logout("someone-else")
    assert other.status_code == 302 and "_auth_user_id" in browser.session
    mine = idp_logout("alice-1")
    assert mine.status_code == 302 and mine["Location"].startswith(f"{idp.entity_id}/slo?SAMLResponse=")
    assert "_auth_user_id" not in browser.session


def test_sign_out_without_an_idp_slo_url_ends_only_our_session(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    SamlConnection.objects.filter(pk=acme_sso.pk).update(idp_slo_url="")
    browser = saml_sign_in(acme_sso, name_id="alice-1").client
    response = browser.post("/accounts/logout/")
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert "_auth_user_id" not in browser.session
    assert not SamlRequest.objects.filter(kind="logout").exists()
    assert SecurityEvent.objects.get(verb="sso.saml.logout").details["idp"] is False


def test_a_password_session_signs_out_locally(tenant_a: Tenant, acme_sso: SamlConnection) -> None:
    make_user("ann@acme.example")
    ann = User.objects.get(email="ann@acme.example")
    tenant_membership_set(user=ann, tenant=tenant_a, role="end_user")
    browser = Client(HTTP_HOST="acme.localhost:8000")
    assert browser.post("/accounts/login/", {"login": ann.email, "password": PASSWORD}).status_code == 302
    response = browser.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/" and "_auth_user_id" not in browser.session
    assert not SecurityEvent.objects.filter(verb__endswith=".logout").exists()


# --- two-factor authentication after SAML --------------------------------------------------------------


def test_saml_sign_in_asks_for_the_users_second_factor(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt]
) -> None:
    """The IdP's assertion is the first factor only: a user with an authenticator app gives its code
    before the session is signed in (decision 0016), and the audit names both steps."""
    first = saml_sign_in(acme_sso, name_id="alice-1")
    assert first.response.status_code == 302 and first.response["Location"] == "/"
    alice = User.objects.get(email="alice@acme.example")
    first.client.post("/accounts/logout/")
    secret = generate_totp_secret()
    TOTP.activate(alice, secret)

    attempt = saml_sign_in(acme_sso, name_id="alice-1", relay_state="/requests/")
    browser = attempt.client
    assert attempt.response.status_code == 302
    assert attempt.response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in browser.session  # not signed in yet
    assert browser.get("/requests/").status_code == 302  # to the sign-in page
    wrong = browser.post("/accounts/2fa/authenticate/", {"code": "000000"})
    assert wrong.status_code == 200 and "_auth_user_id" not in browser.session
    done = browser.post("/accounts/2fa/authenticate/", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302 and done["Location"] == "/requests/"
    assert browser.session["_auth_user_id"] == str(alice.pk)
    assert browser.session["_saml"]["name_id"] == "alice-1"  # single logout still knows the subject
    methods = list(
        SecurityEvent.objects.filter(verb="login.succeeded", user_id=alice.pk)
        .order_by("id")
        .values_list("details__method", flat=True)
    )
    assert methods == ["saml", "saml+mfa"]


def test_a_saml_user_who_must_use_mfa_sets_it_up_without_a_password(
    tenant_a: Tenant, acme_sso: SamlConnection, saml_sign_in: Callable[..., Attempt], smtp: Mailbox
) -> None:
    """The first page sends a user who must use MFA to set it up; an SSO user has no password, so the
    re-authentication allauth asks for before a security change is a code emailed to the address the
    IdP vouched for."""
    Tenant.objects.filter(pk=tenant_a.pk).update(require_mfa_for_end_users=True)
    attempt = saml_sign_in(acme_sso, name_id="alice-1")
    browser = attempt.client
    assert attempt.response["Location"] == "/"
    home = browser.get("/")
    assert home.status_code == 302 and home["Location"] == "/accounts/2fa/totp/activate/"
    # The IdP vouched for the address (allauth adds authenticators only for verified addresses), so
    # allauth's re-authentication before a security change works by an emailed code: no password needed.
    assert EmailAddress.objects.get(email="alice@acme.example").verified
    activate = browser.get("/accounts/2fa/totp/activate/")
    assert activate.status_code == 302
    assert activate["Location"].startswith("/accounts/reauthenticate/code/")
    sent = browser.post(activate["Location"], {"recipient": "alice@acme.example"})
    assert sent.status_code == 302 and "/accounts/reauthenticate/code/confirm/" in sent["Location"]
    code = re.search(r"\b([A-Z0-9]{4}-[A-Z0-9]{4})\b", smtp.bodies()[-1])
    assert code, smtp.bodies()[-1]
    confirmed = browser.post(sent["Location"], {"code": code.group(1)})
    assert confirmed.status_code == 302 and confirmed["Location"] == "/accounts/2fa/totp/activate/"
    assert browser.get("/accounts/2fa/totp/activate/").status_code == 200
