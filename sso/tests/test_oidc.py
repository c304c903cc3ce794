"""OpenID Connect sign-in against a real OP (panva's oidc-provider under Node.js): the authorization code
flow with PKCE, driven end to end over real HTTP (the browser part with requests, Django's part through its
test client with the portal's Host header); success cases, attacks, and the console pages.

Every refusal: 403, nothing created (no user, membership, grant, social account, person), one
``sso.oidc.refused`` SecurityEvent naming the reason and the client's ip."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urljoin, urlsplit

import pyotp
import pytest
import requests
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from allauth.socialaccount.models import SocialAccount, SocialApp
from django.db.models import Model
from django.test import Client
from django_tenants.utils import tenant_context

from conftest import make_user
from controlplane.accounts.models import (
    ProviderMembership,
    SecurityEvent,
    TenantGrant,
    TenantMembership,
    User,
)
from controlplane.accounts.services import provider_membership_set, tenant_membership_set
from controlplane.providers.models import Provider
from modules.people.models import Person
from sso.logout import post_logout_redirect_uri
from sso.models import OidcConnection
from sso.oidc_services import oidc_client_secret, oidc_connection_create
from sso.selectors import sso_connection_for_email
from sso.views import oidc_redirect_uri
from tenants.models import Tenant
from tenants.routing import SESSION_HOST_KEY

from .conftest import ADMIN_RULES
from .oidc_op import OidcClient, TestOp, authorize, query_of

pytestmark = pytest.mark.django_db

ACCOUNTS: dict[str, dict[str, Any]] = {
    "alice": {
        "email": "alice@acme.example",
        "email_verified": True,
        "groups": ["IT-Admins"],
        "name": "Alice",
    },
    "ann": {"email": "ann@acme.example", "email_verified": True, "groups": [], "name": "Ann"},
    "carol": {"email": "carol@acme.example", "email_verified": True, "groups": [], "name": "Carol"},
    "unverified": {"email": "eve@acme.example", "email_verified": False, "groups": [], "name": "Eve"},
    "wrong-aud-mallory": {"email": "mallory@acme.example", "email_verified": True, "groups": []},
    "tom": {"email": "tom@northwind.example", "email_verified": True, "groups": [], "name": "Tom"},
}


ACME_SECRET = "acme-portal-secret-0123456789abcdef0123456789"
MSP_SECRET = "msp-console-secret-0123456789abcdef0123456789"


@dataclass
class OidcWorld:
    op: TestOp
    acme: OidcConnection
    msp: OidcConnection


@pytest.fixture
def oidc(tmp_path: Path, tenant_a: Tenant, provider: Provider) -> Iterator[OidcWorld]:
    """The OP with three clients: the acme portal's, the provider console's, and another application
    registered with the same redirect URI as acme's (whose ID tokens must never sign anyone in)."""
    op = TestOp(tmp_path / "op")
    acme = oidc_connection_create(
        actor_user_id=None,
        actor_role="admin",
        tenant=tenant_a,
        name="Acme OP",
        kind="generic",
        issuer=op.issuer,
        client_id="acme-portal",
        client_secret=ACME_SECRET,
        email_domains=["acme.example"],
        role_rules=ADMIN_RULES,
    )
    msp = oidc_connection_create(
        actor_user_id=None,
        actor_role="owner",
        provider=provider,
        name="Northwind OP",
        kind="generic",
        issuer=op.issuer,
        client_id="msp-console",
        client_secret=MSP_SECRET,
        email_domains=["northwind.example"],
        role_rules=[],
    )
    op.start(
        clients=[
            OidcClient(
                "acme-portal",
                ACME_SECRET,
                [oidc_redirect_uri(acme)],
                post_logout_redirect_uris=[post_logout_redirect_uri(acme)],
            ),
            OidcClient("other-app", "other-app-secret-0123456789abcdef0123456789", [oidc_redirect_uri(acme)]),
            OidcClient("msp-console", MSP_SECRET, [oidc_redirect_uri(msp)]),
        ],
        accounts=ACCOUNTS,
    )
    try:
        yield OidcWorld(op=op, acme=acme, msp=msp)
    finally:
        op.stop()


def host_of(connection: OidcConnection) -> str:
    return str(urlsplit(oidc_redirect_uri(connection)).netloc)


@dataclass
class Attempt:
    client: Client
    response: Any  # Django's answer to the callback
    auth_params: dict[str, str]


def sign_in(
    connection: OidcConnection,
    account: str,
    *,
    client: Client | None = None,
    auth_url: Callable[[str], str] | None = None,
    callback: Callable[[str], str] | None = None,
) -> Attempt:
    """Start at our login endpoint (POST), check the authorization request, sign in at the OP as
    ``account``, hand the OP's redirect (code, state) to Django's callback. ``auth_url``/``callback``
    change the URLs on the way (attacks)."""
    browser = client or Client(HTTP_HOST=host_of(connection))
    start = browser.post(f"/sso/oidc/{connection.pk}/login/", {"next": "/"})
    assert start.status_code == 302, start.status_code
    location = str(start["Location"])
    params = query_of(location)
    assert location.startswith(f"{connection.issuer}/auth?")
    assert params["response_type"] == "code" and params["client_id"] == connection.client_id
    assert params["redirect_uri"] == oidc_redirect_uri(connection)
    assert params["code_challenge_method"] == "S256" and len(params["code_challenge"]) == 43
    assert params["state"] and len(params["nonce"]) >= 32
    assert set(params["scope"].split()) == {"openid", "email", "profile"}
    if auth_url is not None:
        location = auth_url(location)
    back = authorize(location, login=account, redirect_prefix=params["redirect_uri"])
    if callback is not None:
        back = callback(back)
    split = urlsplit(back)
    response = browser.get(f"{split.path}?{split.query}")
    return Attempt(client=browser, response=response, auth_params=params)


def counts(*tenants: Tenant) -> dict[str, int]:
    result: dict[str, int] = {}
    model: type[Model]
    for model in (User, TenantMembership, ProviderMembership, TenantGrant, SocialAccount):
        result[model.__name__] = model.objects.count()
    for tenant in tenants:
        with tenant_context(tenant):
            result[f"Person@{tenant.slug}"] = Person.objects.count()
    return result


@contextmanager
def refused(reason: str, *tenants: Tenant) -> Iterator[list[Attempt]]:
    """The block's attempts must each answer 403, sign nobody in, create nothing, and leave one
    ``sso.oidc.refused`` event with ``reason`` and the ip."""
    before = counts(*tenants)
    events = SecurityEvent.objects.filter(verb="sso.oidc.refused").count()
    attempts: list[Attempt] = []
    yield attempts
    assert attempts, "the block made no attempt"
    for attempt in attempts:
        assert attempt.response.status_code == 403, attempt.response.status_code
        assert "_auth_user_id" not in attempt.client.session
    assert counts(*tenants) == before
    assert SecurityEvent.objects.filter(verb="sso.oidc.refused").count() == events + len(attempts)
    for event in SecurityEvent.objects.filter(verb="sso.oidc.refused").order_by("-id")[: len(attempts)]:
        assert event.details["reason"] == reason, event.details
        assert event.ip == "127.0.0.1"


def replace_param(url: str, name: str, value: str) -> str:
    split = urlsplit(url)
    params = query_of(url)
    params[name] = value
    return split._replace(query=urlencode(params)).geturl()


# --- success ----------------------------------------------------------------------------------------


def test_first_login_creates_the_end_user_with_the_mapped_role_and_person(
    oidc: OidcWorld, tenant_a: Tenant
) -> None:
    attempt = sign_in(oidc.acme, "alice")
    assert attempt.response.status_code == 302, attempt.response.content.decode()[:1500]
    assert attempt.response["Location"] == "/"
    user = User.objects.get(email="alice@acme.example")
    assert user.full_name == "Alice" and not user.has_usable_password()
    assert TenantMembership.objects.get(user=user, tenant=tenant_a).role == "client_admin"
    assert not ProviderMembership.objects.filter(user=user).exists()
    account = SocialAccount.objects.get(user=user)
    assert (account.provider, account.uid) == (str(oidc.acme.pk), "alice")
    with tenant_context(tenant_a):
        assert Person.objects.get(user_id=user.pk).email == "alice@acme.example"
    session = attempt.client.session
    assert session["_auth_user_id"] == str(user.pk)
    assert session[SESSION_HOST_KEY] == "acme.localhost"
    event = SecurityEvent.objects.get(verb="sso.oidc.login")
    assert event.details == {"connection": str(oidc.acme.pk), "sub": "alice", "created": True}
    assert (event.user_id, event.tenant_id, event.ip) == (user.pk, tenant_a.pk, "127.0.0.1")
    # The signed-in browser reaches the portal.
    assert attempt.client.get("/").status_code == 200


def test_second_login_reuses_the_account_by_sub(oidc: OidcWorld, tenant_a: Tenant) -> None:
    first = sign_in(oidc.acme, "ann")
    assert first.response.status_code == 302
    before = counts(tenant_a)
    second = sign_in(oidc.acme, "ann")
    assert second.response.status_code == 302
    assert counts(tenant_a) == before
    user = User.objects.get(email="ann@acme.example")
    assert TenantMembership.objects.get(user=user).role == "end_user"  # no rule matched: default role
    assert second.client.session["_auth_user_id"] == str(user.pk)
    created = [
        e.details["created"] for e in SecurityEvent.objects.filter(verb="sso.oidc.login").order_by("id")
    ]
    assert created == [True, False]


def test_provider_connection_makes_a_technician_without_grants(oidc: OidcWorld, provider: Provider) -> None:
    attempt = sign_in(oidc.msp, "tom")
    assert attempt.response.status_code == 302, attempt.response.content.decode()[:1500]
    user = User.objects.get(email="tom@northwind.example")
    membership = ProviderMembership.objects.get(user=user)
    assert (membership.provider, membership.role, membership.all_clients) == (provider, "technician", False)
    assert not TenantGrant.objects.filter(membership=membership).exists()
    assert not TenantMembership.objects.filter(user=user).exists()
    assert attempt.client.session[SESSION_HOST_KEY] == "127.0.0.1"


# --- attacks and refusals ---------------------------------------------------------------------------


def test_tampered_state_is_refused(oidc: OidcWorld, tenant_a: Tenant) -> None:
    with refused("state", tenant_a) as attempts:
        attempts.append(
            sign_in(oidc.acme, "alice", callback=lambda url: replace_param(url, "state", "forged-state"))
        )


def test_an_id_token_minted_for_another_auth_request_is_refused_by_its_nonce(
    oidc: OidcWorld, tenant_a: Tenant
) -> None:
    """The code comes from an authorization request with another nonce (same client, redirect URI and
    PKCE challenge, as an injected code would): the token exchange succeeds, the nonce does not match."""
    with refused("nonce", tenant_a) as attempts:
        attempts.append(
            sign_in(oidc.acme, "alice", auth_url=lambda url: replace_param(url, "nonce", "n" * 43))
        )


def test_a_login_without_our_nonce_is_refused(oidc: OidcWorld, tenant_a: Tenant) -> None:
    """allauth's own start URL sends no nonce: only our login view starts sign-ins."""
    browser = Client(HTTP_HOST=host_of(oidc.acme))
    start = browser.post(f"/accounts/oidc/{oidc.acme.pk}/login/")
    assert start.status_code == 302
    location = str(start["Location"])
    assert "nonce" not in query_of(location)
    back = authorize(location, login="alice", redirect_prefix=oidc_redirect_uri(oidc.acme))
    with refused("nonce", tenant_a) as attempts:
        split = urlsplit(back)
        attempts.append(Attempt(browser, browser.get(f"{split.path}?{split.query}"), {}))


def test_an_id_token_for_another_client_is_refused(oidc: OidcWorld, tenant_a: Tenant) -> None:
    """The OP (deliberately misbehaving for this account) issues the ID token to ``other-app``."""
    with refused("audience", tenant_a) as attempts:
        attempts.append(sign_in(oidc.acme, "wrong-aud-mallory"))


def test_a_code_issued_to_another_client_is_refused(oidc: OidcWorld, tenant_a: Tenant) -> None:
    """A code obtained by ``other-app`` (same redirect URI) and injected into our callback: the OP
    refuses to exchange it for our client."""
    with refused("token", tenant_a) as attempts:
        attempts.append(
            sign_in(oidc.acme, "alice", auth_url=lambda url: replace_param(url, "client_id", "other-app"))
        )


def test_an_email_of_another_tenants_user_is_refused(
    oidc: OidcWorld, tenant_a: Tenant, tenant_b: Tenant
) -> None:
    carol = make_user("carol@acme.example")
    tenant_membership_set(user=carol, tenant=tenant_b, role="end_user")
    with refused("other-owner", tenant_a, tenant_b) as attempts:
        attempts.append(sign_in(oidc.acme, "carol"))
    assert not TenantMembership.objects.filter(user=carol, tenant=tenant_a).exists()


def test_an_email_of_a_technician_is_refused(oidc: OidcWorld, tenant_a: Tenant, provider: Provider) -> None:
    carol = make_user("carol@acme.example")
    provider_membership_set(user=carol, provider=provider, role="technician", all_clients=True)
    with refused("other-owner", tenant_a) as attempts:
        attempts.append(sign_in(oidc.acme, "carol"))


def test_an_unverified_email_is_refused(oidc: OidcWorld, tenant_a: Tenant) -> None:
    with refused("email-unverified", tenant_a) as attempts:
        attempts.append(sign_in(oidc.acme, "unverified"))


def test_a_connection_answers_only_on_its_owners_host(oidc: OidcWorld, tenant_b: Tenant) -> None:
    before = counts(tenant_b)
    for host, connection in (("globex.localhost:8000", oidc.acme), ("127.0.0.1:8000", oidc.acme)):
        browser = Client(HTTP_HOST=host)
        assert browser.post(f"/sso/oidc/{connection.pk}/login/").status_code == 404
        assert (
            browser.get(f"/accounts/oidc/{connection.pk}/login/callback/?code=x&state=y").status_code == 404
        )
    assert Client(HTTP_HOST="acme.localhost:8000").post(f"/sso/oidc/{oidc.msp.pk}/login/").status_code == 404
    assert counts(tenant_b) == before


def test_a_deactivated_connection_signs_nobody_in(oidc: OidcWorld, tenant_a: Tenant) -> None:
    browser = Client(HTTP_HOST=host_of(oidc.acme))
    start = browser.post(f"/sso/oidc/{oidc.acme.pk}/login/", {"next": "/"})
    back = authorize(str(start["Location"]), login="alice", redirect_prefix=oidc_redirect_uri(oidc.acme))
    OidcConnection.objects.filter(pk=oidc.acme.pk).update(is_active=False)
    before = counts(tenant_a)
    split = urlsplit(back)
    assert browser.get(f"{split.path}?{split.query}").status_code == 404
    assert counts(tenant_a) == before and "_auth_user_id" not in browser.session


def test_login_never_starts_on_a_get(oidc: OidcWorld) -> None:
    page = Client(HTTP_HOST=host_of(oidc.acme)).get(f"/sso/oidc/{oidc.acme.pk}/login/?next=/tickets/")
    assert page.status_code == 200
    assert 'method="post"' in page.content.decode() and 'value="/tickets/"' in page.content.decode()


# --- discovery --------------------------------------------------------------------------------------


def test_discovery_finds_oidc_connections_by_email_domain(oidc: OidcWorld) -> None:
    assert sso_connection_for_email(email="x@acme.example", hostname="acme.localhost") == oidc.acme
    assert sso_connection_for_email(email="x@northwind.example", hostname="127.0.0.1") == oidc.msp
    assert sso_connection_for_email(email="x@acme.example", hostname="127.0.0.1") is None
    browser = Client(HTTP_HOST="acme.localhost:8000")
    response = browser.post("/sso/start/", {"email": "Alice@ACME.example", "next": "/"})
    assert response.status_code == 302
    params = query_of(str(response["Location"]))
    assert params["client_id"] == "acme-portal" and params["code_challenge"] and params["nonce"]


# --- console pages ----------------------------------------------------------------------------------


@pytest.fixture
def provider_admin(provider: Provider) -> User:
    user = make_user("admin@northwind.example")
    provider_membership_set(user=user, provider=provider, role="admin")
    return user


def test_admin_creates_edits_and_deactivates_a_tenant_connection(
    tenant_a: Tenant, provider_admin: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(provider_admin)
    assert client.get("/t/acme/sso/oidc/new/").status_code == 200
    data = {
        "name": "Acme Entra",
        "kind": "entra",
        "entra_tenant": "11111111-2222-3333-4444-555555555555",
        "client_id": "app-1",
        "client_secret": "s3cret-value",
        "email_domains": "acme.example",
        "role_rules": '[{"attribute": "groups", "value": "IT-Admins", "role": "client_admin"}]',
        "default_role": "end_user",
    }
    response = client.post("/t/acme/sso/oidc/new/", data)
    assert response.status_code == 302, response.content.decode()[:2000]
    connection = OidcConnection.objects.get()
    assert connection.issuer == "https://login.microsoftonline.com/11111111-2222-3333-4444-555555555555/v2.0"
    app = SocialApp.objects.get(provider="openid_connect", provider_id=str(connection.pk))
    assert connection.social_app == app
    # The secret is sealed in the connection only (the SocialApp's copy is empty).
    assert (app.client_id, app.secret) == ("app-1", "")
    assert "s3cret" not in connection.client_secret and oidc_client_secret(connection) == "s3cret-value"
    assert app.settings["server_url"] == connection.issuer and app.settings["oauth_pkce_enabled"] is True
    page = client.get("/t/acme/sso/").content.decode()
    redirect_uri = f"http://acme.localhost:8000/accounts/oidc/{connection.pk}/login/callback/"
    assert redirect_uri in page
    assert redirect_uri in client.get(f"/t/acme/sso/oidc/{connection.pk}/").content.decode()
    # Edit: Google, the secret kept when left empty.
    data.update({"kind": "google", "client_secret": "", "name": "Acme Google", "is_active": "on"})
    assert client.post(f"/t/acme/sso/oidc/{connection.pk}/", data).status_code == 302
    app.refresh_from_db()
    connection.refresh_from_db()
    assert (app.name, app.settings["server_url"]) == ("Acme Google", "https://accounts.google.com")
    assert oidc_client_secret(connection) == "s3cret-value"
    assert client.post(f"/t/acme/sso/oidc/{connection.pk}/deactivate/").status_code == 302
    connection.refresh_from_db()
    assert not connection.is_active
    verbs = list(
        SecurityEvent.objects.filter(details__connection=str(connection.pk)).values_list("verb", flat=True)
    )
    assert sorted(verbs) == ["sso.connection.created", "sso.connection.deactivated", "sso.connection.updated"]
    assert "s3cret" not in str(list(SecurityEvent.objects.values_list("details", flat=True)))


def test_a_generic_issuer_must_be_https_and_domains_stay_unique(
    tenant_a: Tenant, provider_admin: User, client_for: Callable[..., Client]
) -> None:
    client = client_for(provider_admin)
    data = {
        "name": "Bad",
        "kind": "generic",
        "issuer": "http://id.example",
        "client_id": "x",
        "client_secret": "y",
        "email_domains": "acme.example",
        "default_role": "end_user",
    }
    response = client.post("/t/acme/sso/oidc/new/", data)
    assert response.status_code == 422 and "https URL" in response.content.decode()
    data["issuer"] = "https://id.example"
    assert client.post("/t/acme/sso/oidc/new/", data).status_code == 302
    data["name"] = "Second"
    response = client.post("/t/acme/sso/oidc/new/", data)
    assert response.status_code == 409 and "another active connection" in response.content.decode()
    assert OidcConnection.objects.count() == SocialApp.objects.count() == 1


@pytest.mark.parametrize("who", ["technician", "end_user", "approver"])
def test_other_roles_cannot_manage_oidc_connections(
    tenant_a: Tenant,
    provider: Provider,
    tech_a: User,
    end_user_a: User,
    client_for: Callable[..., Client],
    who: str,
) -> None:
    connection = oidc_connection_create(
        actor_user_id=None,
        actor_role="admin",
        tenant=tenant_a,
        name="Acme OP",
        kind="google",
        client_id="c",
        client_secret="s",
        email_domains=[],
        role_rules=[],
    )
    if who == "approver":
        user = make_user("approver@acme.example")
        tenant_membership_set(user=user, tenant=tenant_a, role="approver")
    else:
        user = {"technician": tech_a, "end_user": end_user_a}[who]
    client = client_for(user)
    events = SecurityEvent.objects.count()
    data = {
        "name": "Hijacked",
        "kind": "generic",
        "issuer": "https://evil.example",
        "client_id": "e",
        "client_secret": "e",
        "email_domains": "",
        "default_role": "client_admin",
        "is_active": "on",
    }
    for path in ("/t/acme/sso/oidc/new/", f"/t/acme/sso/oidc/{connection.pk}/"):
        response = client.get(path)
        assert response.status_code == 403 and response["X-Required-Permission"] == "tenant_sso.manage", path
        assert client.post(path, data).status_code == 403, path
    assert client.post(f"/t/acme/sso/oidc/{connection.pk}/deactivate/").status_code == 403
    for path in ("/sso/oidc/new/", f"/sso/oidc/{connection.pk}/"):
        assert client.post(path, data).status_code == 403, path
    connection.refresh_from_db()
    assert (connection.name, connection.is_active, OidcConnection.objects.count()) == ("Acme OP", True, 1)
    assert SocialApp.objects.get().client_id == "c"
    assert SecurityEvent.objects.count() == events


def test_connecting_an_idp_account_to_a_signed_in_user_is_refused(
    oidc: OidcWorld, tenant_a: Tenant, end_user_a: User, client_for: Callable[..., Client]
) -> None:
    """allauth's "connect" process (link an IdP account to the signed-in user) is never accepted: a
    connection only signs in, so an IdP account cannot be attached to someone's existing user."""
    browser = client_for(end_user_a, host="acme.localhost:8000")
    start = browser.post(f"/accounts/oidc/{oidc.acme.pk}/login/?process=connect")
    assert start.status_code == 302
    back = authorize(str(start["Location"]), login="alice", redirect_prefix=oidc_redirect_uri(oidc.acme))
    with refused("process", tenant_a) as attempts:
        split = urlsplit(back)
        response = browser.get(f"{split.path}?{split.query}")
        assert response.status_code == 403
        assert browser.session["_auth_user_id"] == str(end_user_a.pk)  # still who it was
        attempts.append(Attempt(Client(), response, {}))  # (a fresh client: the session check is above)
    assert not SocialAccount.objects.filter(user=end_user_a).exists()


def test_a_user_cannot_unlink_the_sso_identity(oidc: OidcWorld) -> None:
    attempt = sign_in(oidc.acme, "ann")
    account = SocialAccount.objects.get(uid="ann")
    response = attempt.client.post("/accounts/3rdparty/", {"account": account.pk})
    assert response.status_code in (200, 422), response.status_code
    assert SocialAccount.objects.filter(pk=account.pk).exists()


def test_provider_connections_are_managed_by_owners_and_admins_only(
    provider: Provider, provider_admin: User, tech_a: User, client_for: Callable[..., Client]
) -> None:
    data = {
        "name": "MSP Google",
        "kind": "google",
        "client_id": "msp",
        "client_secret": "s",
        "email_domains": "northwind.example",
    }
    technician = client_for(tech_a)
    assert technician.get("/sso/oidc/new/").status_code == 403
    assert technician.post("/sso/oidc/new/", data).status_code == 403
    assert OidcConnection.objects.count() == SocialApp.objects.count() == 0
    admin = client_for(provider_admin)
    assert admin.post("/sso/oidc/new/", data).status_code == 302
    connection = OidcConnection.objects.get()
    assert (connection.provider, connection.tenant, connection.issuer) == (
        provider,
        None,
        "https://accounts.google.com",
    )
    redirect_uri = f"http://127.0.0.1:8000/accounts/oidc/{connection.pk}/login/callback/"
    assert redirect_uri in admin.get("/sso/").content.decode()
    assert technician.post(f"/sso/oidc/{connection.pk}/deactivate/").status_code == 403
    assert technician.post(f"/sso/oidc/{connection.pk}/", {**data, "name": "Hijacked"}).status_code == 403
    connection.refresh_from_db()
    assert (connection.name, connection.is_active) == ("MSP Google", True)
    assert admin.post(f"/sso/oidc/{connection.pk}/deactivate/").status_code == 302
    connection.refresh_from_db()
    assert not connection.is_active


def test_entra_email_trust_needs_email_verified_or_xms_edov(oidc: OidcWorld) -> None:
    """Entra ID sends no email_verified and its email is user-editable: only xms_edov vouches for it."""
    from sso.oidc_services import email_verified

    entra = OidcConnection(kind="entra")
    generic = oidc.acme
    assert email_verified(generic, {"email_verified": True})
    assert not email_verified(generic, {"xms_edov": True})
    assert not email_verified(entra, {"email": "a@acme.example"})
    assert email_verified(entra, {"xms_edov": True})
    assert not email_verified(entra, {"xms_edov": False, "email_verified": False})


def test_the_account_follows_sub_not_the_email_claim(oidc: OidcWorld, tenant_a: Tenant) -> None:
    """The OP changes ann's email, then gives her old address to a new subject: ann keeps her account
    (same sub), and the new subject is refused rather than handed ann's account."""
    assert sign_in(oidc.acme, "ann").response.status_code == 302
    ann = User.objects.get(email="ann@acme.example")
    oidc.op.stop()
    accounts = {
        "ann": {**ACCOUNTS["ann"], "email": "ann.new@acme.example"},
        "newcomer": {**ACCOUNTS["ann"], "name": "Newcomer"},  # ann's old address, another sub
    }
    clients = [
        OidcClient("acme-portal", ACME_SECRET, [oidc_redirect_uri(oidc.acme)]),
        OidcClient(
            "other-app", "other-app-secret-0123456789abcdef0123456789", [oidc_redirect_uri(oidc.acme)]
        ),
    ]
    oidc.op.start(clients=clients, accounts=accounts)
    again = sign_in(oidc.acme, "ann")
    assert again.response.status_code == 302
    assert again.client.session["_auth_user_id"] == str(ann.pk)
    with refused("other-identity", tenant_a) as attempts:
        attempts.append(sign_in(oidc.acme, "newcomer"))
    assert SocialAccount.objects.get(user=ann).uid == "ann"


# --- two-factor authentication and single logout ---------------------------------------------------------


def test_oidc_sign_in_asks_for_the_users_second_factor(oidc: OidcWorld, tenant_a: Tenant) -> None:
    """allauth runs its login stages for OpenID Connect too: the OP's sign-in is the first factor and a
    user with an authenticator app gives its code before the session is signed in (decision 0016)."""
    assert sign_in(oidc.acme, "ann").response.status_code == 302
    ann = User.objects.get(email="ann@acme.example")
    secret = generate_totp_secret()
    TOTP.activate(ann, secret)
    attempt = sign_in(oidc.acme, "ann")
    browser = attempt.client
    assert attempt.response.status_code == 302
    assert attempt.response["Location"] == "/accounts/2fa/authenticate/"
    assert "_auth_user_id" not in browser.session
    done = browser.post("/accounts/2fa/authenticate/", {"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 302 and browser.session["_auth_user_id"] == str(ann.pk)
    methods = list(
        SecurityEvent.objects.filter(verb="login.succeeded", user_id=ann.pk)
        .order_by("id")
        .values_list("details__method", flat=True)
    )
    assert methods == ["socialaccount", "socialaccount+mfa"]


def test_sign_out_continues_at_the_ops_end_session_endpoint(oidc: OidcWorld, tenant_a: Tenant) -> None:
    """RP-Initiated Logout 1.0: our session ends, then the OP's logout, which sends the browser back to
    the registered post-logout redirect URI (the portal's sign-in page)."""
    browser = sign_in(oidc.acme, "ann").client
    response = browser.post("/accounts/logout/")
    assert "_auth_user_id" not in browser.session
    location = str(response["Location"])
    assert location.startswith(f"{oidc.op.issuer}/session/end?")
    params = query_of(location)
    assert params == {
        "client_id": "acme-portal",
        "post_logout_redirect_uri": "http://acme.localhost:8000/accounts/login/",
    }
    event = SecurityEvent.objects.get(verb="sso.oidc.logout")
    assert event.details == {"connection": str(oidc.acme.pk), "idp": True} and event.tenant_id == tenant_a.pk
    # The OP accepts it: its confirmation form, then back to our sign-in page.
    op_browser = requests.Session()
    page = op_browser.get(location, timeout=10)
    assert page.status_code == 200, page.text[:300]
    action = re.search(r'action="([^"]+)"', page.text)
    xsrf = re.search(r'name="xsrf" value="([^"]+)"', page.text)
    assert action and xsrf
    confirmed = op_browser.post(
        urljoin(location, action.group(1)),
        data={"xsrf": xsrf.group(1), "logout": "yes"},
        allow_redirects=False,
        timeout=10,
    )
    assert confirmed.status_code in (302, 303)
    assert confirmed.headers["Location"] == "http://acme.localhost:8000/accounts/login/"


def test_sign_out_is_local_when_the_op_has_no_end_session_endpoint(oidc: OidcWorld, tenant_a: Tenant) -> None:
    browser = sign_in(oidc.acme, "ann").client
    app = oidc.acme.social_app
    app.settings = {**app.settings, "openid_configuration_overrides": {"end_session_endpoint": None}}
    app.save()
    response = browser.post("/accounts/logout/")
    assert response["Location"] == "/accounts/login/" and "_auth_user_id" not in browser.session
    assert SecurityEvent.objects.get(verb="sso.oidc.logout").details["idp"] is False
