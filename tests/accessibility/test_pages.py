"""Every console and portal page, walked from the URL configuration, checked for labels on every field
and keyboard use of every control (issue 5, "Quality a person notices"; rules in checker.py).

The walker takes every route of ``controlplane.urls`` (the console: root pages and everything under
``/t/<slug>/``) and of ``controlplane.urls_portal``, fills its path parameters from one tenant holding
one record of each kind (the ``pages`` fixture; ``FILLED`` names the parameters it fills), and GETs it as a technician (console; an admin for the pages in
``ADMIN_PAGES``) or as an end user on the tenant's portal host. A page must answer 200 with HTML that
passes every rule. A route that is not a page must be listed in ``NOT_PAGES`` with its kind, and the
test checks that kind (POST-only routes answer GET with 405, redirects with 302, downloads with a
non-HTML body), so a new page cannot ship unchecked and the list cannot lie. ``FRAGMENTS`` are htmx
partials: checked with the element rules only. ``STATES`` are pages in a second state (a request waiting
for approval); the catalog item's order form has a field of every kind; allauth's sign-in pages and
every self-posting form posted empty (shown again with its errors) are checked too.

``KNOWN_FAILURES`` lists (route name, rule) pairs that fail today in pages owned by other work in
progress, with the owner area; the test fails when such a pair passes, so the list shrinks to empty.

``A11Y_DUMP=/some/folder`` writes each checked page's HTML there, named after its route, to read a failure.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from allauth.mfa.recovery_codes.internal.auth import RecoveryCodes
from allauth.mfa.totp.internal.auth import TOTP, generate_totp_secret
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.core.files.base import ContentFile
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone
from django_tenants.utils import tenant_context

from agent_gateway.services import agent_enrol, command_request, enrolment_token_create
from conftest import actor_in, make_user
from controlplane.accounts.models import ProviderMembership, User
from controlplane.accounts.services import provider_membership_set, tenant_grant, tenant_membership_set
from controlplane.providers.models import Provider
from modules.changes.models import Change
from modules.changes.services import template_create
from modules.cmdb.models import ConfigurationItem
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from modules.knowledge.models import Article
from modules.knowledge.services import article_create, article_publish
from modules.monitoring.ingest import AgentReport, reports_apply
from modules.monitoring.services import alert_rule_create, script_create
from modules.notifications.models import Notification
from modules.notifications.services import notification_emit
from modules.problems.models import KnownError, Problem
from modules.records.models import uuid7
from modules.records.services import attachment_add, saved_view_create
from modules.requests.models import Approval, CatalogCategory, ServiceRequest
from modules.requests.services import StepSpec, catalog_item_create, request_submit
from sso.oidc_services import oidc_connection_create
from sso.services import connection_create as sso_connection_create
from sso.tests.idp import TestIdp
from tenants.models import Tenant
from tenants.services import branding_update, domain_add
from tenants.tests.factories import png
from tests.accessibility.checker import ELEMENT_RULES, RULES, check
from tests.isolation.practice_records import practice_links, practice_records

CONSOLE = "controlplane.urls"
PORTAL = "controlplane.urls_portal"
# The API (JSON), Django's admin, allauth's sign-in, the reverse proxy's TLS question (plain text).
SKIPPED_PREFIXES = ("api/", "admin/", "accounts/", "tls/")
PORTAL_HOST = "acme.localhost"

# Routes that are not pages, by name: (kind, reason). Kinds: "post" (GET answers 405), "redirect"
# (GET answers 302), "download" (GET answers 200 with a body that is not HTML).
NOT_PAGES: dict[str, tuple[str, str]] = {
    "tenant_home": ("redirect", "entering a client lands on its incident list"),
    "incident_action": ("post", "inline transition form target"),
    "incident_comment": ("post", "comment form target"),
    "ci_relationship_add": ("post", "relationship form target"),
    "ci_relationship_remove": ("post", "remove button target"),
    "known_error_action": ("post", "transition form target"),
    "problem_candidate_accept": ("post", "accept button target"),
    "problem_action": ("post", "transition form target"),
    "problem_comment": ("post", "comment form target"),
    "problem_incident_link": ("post", "link form target"),
    "problem_incident_unlink": ("post", "unlink button target"),
    "problem_known_error_create": ("post", "create-known-error button target"),
    "change_cab_remove": ("post", "remove button target"),
    "change_blackout_remove": ("post", "remove button target"),
    "change_action": ("post", "transition form target"),
    "change_vote": ("post", "CAB vote form target"),
    "change_comment": ("post", "comment form target"),
    "change_ci_add": ("post", "add-CI form target"),
    "change_ci_remove": ("post", "remove button target"),
    "change_risk": ("post", "risk recalculation target"),
    "article_action": ("post", "workflow form target"),
    "article_feedback": ("post", "feedback form target"),
    "article_link_add": ("post", "link form target"),
    "catalog_category_create": ("post", "the category form on the catalog page posts here"),
    "approval_decide": ("post", "approve/reject form target"),
    "approval_resend": ("post", "resend button target"),
    "approval_delegate": ("post", "delegate form target"),
    "request_task_action": ("redirect", "task form target; a GET (from the queue) opens its request"),
    "request_cancel": ("post", "cancel form target"),
    "request_comment": ("post", "comment form target"),
    "sla_closed_day_add": ("post", "closed-day form target"),
    "monitoring_rule_delete": ("post", "delete button target"),
    "monitoring_script_approve": ("post", "approve button target"),
    "sla_closed_day_remove": ("post", "remove button target"),
    "notification_read_all": ("post", "mark-all-read button target"),
    "notification_webhook_active": ("post", "enable/disable button target"),
    "notification_webhook_delete": ("post", "delete button target"),
    "notification_read": ("post", "mark-read button target"),
    "attachment_upload": ("post", "upload form target"),
    "attachment_download": ("download", "the attachment's bytes"),
    "link_add": ("post", "link form target"),
    "link_remove": ("post", "remove button target"),
    "portal_attachment_upload": ("post", "upload form target"),
    "portal_attachment_download": ("download", "the attachment's bytes"),
    "portal_notification_read_all": ("post", "mark-all-read button target"),
    "portal_notification_read": ("post", "mark-read button target"),
    "dashboard_csv": ("download", "the numbers behind a chart, as CSV"),
    "tenant_dashboard_csv": ("download", "the numbers behind a chart, as CSV"),
    "tenant_domain_verify": ("post", "verify button target"),
    "tenant_domain_remove": ("post", "remove button target"),
    "tenant_branding_logo": ("download", "the tenant's logo image"),
    "portal_logo": ("download", "the tenant's logo image"),
    "incident_assign": ("post", "inline assignment form target"),
    "problem_assign": ("post", "inline assignment form target"),
    "change_assign": ("post", "inline assignment form target"),
    "portal_approval_decide": ("post", "approve/reject form target"),
    "saved_view_create": ("post", "save-this-view form target"),
    "saved_view_delete": ("post", "delete button target"),
    "console_team_member_remove": ("post", "remove button target"),
    "tenant_user_remove": ("post", "remove button target"),
    "console_team_member_mfa_reset": ("post", "reset two-factor authentication form target"),
    "tenant_user_mfa_reset": ("post", "reset two-factor authentication form target"),
    "sso_provider_connection_deactivate": ("post", "deactivate button target"),
    "sso_tenant_connection_deactivate": ("post", "deactivate button target"),
    "sso_saml_metadata": ("download", "the SP's SAML metadata (XML) for the IdP"),
    "sso_saml_login": ("redirect", "sends the browser to the IdP with a signed AuthnRequest"),
    "sso_saml_acs": ("post", "the IdP's auto-posted SAMLResponse"),
    "sso_saml_sls": ("redirect", "single logout; without a SAML message, back to sign-in"),
    "portal_sso_saml_metadata": ("download", "the SP's SAML metadata (XML) for the IdP"),
    "portal_sso_saml_login": ("redirect", "sends the browser to the IdP with a signed AuthnRequest"),
    "portal_sso_saml_acs": ("post", "the IdP's auto-posted SAMLResponse"),
    "portal_sso_saml_sls": ("redirect", "single logout; without a SAML message, back to sign-in"),
    "sign_out_everywhere": ("post", "sign-out-everywhere button target (profile and portal account pages)"),
    "sso_provider_oidc_connection_deactivate": ("post", "deactivate button target"),
    "sso_tenant_oidc_connection_deactivate": ("post", "deactivate button target"),
    "agent_token_revoke": ("post", "revoke button target"),
    "agent_decide": ("post", "accept/reject buttons of the approval queue"),
    "agent_revoke": ("post", "revoke button target"),
    "agent_command_new": ("post", "the command form on the agent's page posts here"),
    "agent_command_decide": ("post", "approve/decline buttons of a command"),
}

# htmx partials: element rules only (they are swapped into a page that has the h1, main and lang).
FRAGMENTS: dict[str, str] = {
    "console_switch": "switcher results (the full page without htmx is checked too, see test below)",
    "known_error_search": "known-error suggestions for the incident form",
    "sla_subdivisions": "holiday subdivision options for the calendar form",
    "assignee_options": "assignee picker options of a record page",
}

# Pages that are an administrator's work: requested as a provider admin instead of a technician.
ADMIN_PAGES: set[str] = {
    "provider_security",
    "change_template_list",
    "change_template_create",
    "change_template_edit",
    "change_cab",
    "change_blackouts",
    "change_settings",
    "problem_settings",
    "catalog_category_create",
    "catalog_category_edit",
    "catalog_item_create",
    "catalog_item_edit",
    "sla_home",
    "sla_calendar_create",
    "sla_calendar_edit",
    "sla_contract_create",
    "sla_contract_edit",
    "sla_policy_create",
    "sla_policy_edit",
    "notification_settings",
    "notification_webhooks",
    "notification_webhook",
    "mailin_settings",
    # POST-only targets of administrators' buttons: the route refuses a technician before the method.
    "change_cab_remove",
    "change_blackout_remove",
    "monitoring_script_approve",
    "sla_closed_day_add",
    "sla_closed_day_remove",
    "notification_webhook_active",
    "notification_webhook_delete",
    "tenant_domain_remove",
    "console_team",
    "console_team_member",
    "console_team_member_remove",
    "console_team_member_mfa_reset",
    "tenant_users",
    "tenant_user_remove",
    "tenant_user_mfa_reset",
    "sso_provider_connections",
    "sso_provider_connection_new",
    "sso_provider_connection",
    "sso_tenant_connections",
    "sso_tenant_connection_new",
    "sso_tenant_connection",
    "sso_provider_connection_deactivate",
    "sso_tenant_connection_deactivate",
    "sso_provider_oidc_connection_new",
    "sso_provider_oidc_connection",
    "sso_tenant_oidc_connection_new",
    "sso_tenant_oidc_connection",
    "sso_provider_oidc_connection_deactivate",
    "sso_tenant_oidc_connection_deactivate",
    "agent_command_decide",
}

# (route name, rule) -> owner area (sign-in pages as "<route name>@console" or "@portal", a form shown
# again with errors as "<route name>+errors", STATES by their name): failures in pages other work in progress owns. Empty it as they
# are fixed; the test fails for an entry that passes.
KNOWN_FAILURES: dict[tuple[str, str], str] = {}


# Pages in a second state, checked beside the walk (names usable in KNOWN_FAILURES).
STATES = (
    "request_detail+approval",  # a request waiting for the technician's approval: decide form
    "ci_detail+device",  # an agent's computer CI: metrics charts and open alerts
)

# A catalog form with every field kind of modules/requests/formschema.py and a conditional field.
ORDER_FORM: dict[str, Any] = {
    "type": "object",
    "properties": {
        "reason": {"type": "string", "title": "Reason", "maxLength": 200},
        "size": {"type": "string", "title": "Size", "enum": ["small", "large"]},
        "count": {"type": "integer", "title": "How many", "minimum": 1},
        "needed_by": {"type": "string", "title": "Needed by", "format": "date"},
        "for_whom": {"type": "string", "title": "For whom", "format": "person"},
        "device": {"type": "string", "title": "Device", "format": "ci"},
        "colour": {"type": "string", "title": "Colour"},
    },
    "required": ["reason"],
    "if": {"properties": {"size": {"const": "large"}}, "required": ["size"]},
    "then": {"required": ["colour"]},
}


@dataclass(frozen=True)
class Route:
    urlconf: str
    pattern: str
    name: str
    params: tuple[str, ...]

    @property
    def portal(self) -> bool:
        return self.urlconf == PORTAL


def _walk(
    patterns: list[Any], prefix: str = "", params: tuple[str, ...] = ()
) -> Iterator[tuple[str, tuple[str, ...], URLPattern]]:
    for entry in patterns:
        here = (*params, *entry.pattern.converters)
        if isinstance(entry, URLResolver):
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), here)
        else:
            yield prefix + str(entry.pattern), here, entry


def routes() -> list[Route]:
    """Every named route of the console and the portal except the API, Django's admin and allauth's
    (its pages people see are checked by ``SIGN_IN_PAGES``)."""
    found = []
    for urlconf in (CONSOLE, PORTAL):
        for pattern, params, entry in _walk(get_resolver(urlconf).url_patterns):
            if pattern.startswith(SKIPPED_PREFIXES):
                continue
            assert entry.name, f"{urlconf}: route {pattern!r} has no name, so it cannot be checked"
            found.append(Route(urlconf, pattern, entry.name, params))
    return found


# Path parameters the walker knows how to fill. ``number`` depends on the practice, by path prefix.
NUMBER_BY_PREFIX = (
    ("t/<slug:tenant>/problems/known-errors/", "known_error_number"),
    ("t/<slug:tenant>/incidents/", "incident_number"),
    ("t/<slug:tenant>/cmdb/", "ci_number"),
    ("t/<slug:tenant>/problems/", "problem_number"),
    ("t/<slug:tenant>/changes/", "change_number"),
    ("t/<slug:tenant>/knowledge/", "article_number"),
    ("t/<slug:tenant>/requests/", "request_number"),
    ("incidents/", "portal_incident_number"),
    ("requests/", "portal_request_number"),
    ("knowledge/", "portal_article_number"),
)
PARAM_ALIASES = {"incident": "incident_number"}
STATIC_PARAMS = {"tenant": "acme", "day": "2031-12-25", "chart": "volume"}
# Portal pages for the client's administrator (the end user's portal client is refused there).
CLIENT_ADMIN_PAGES: set[str] = {"portal_branding", "portal_security"}


def fill_key(route: Route, param: str) -> str:
    """The key of the fixture's parameters that fills ``param`` of ``route`` (``portal_<key>`` is
    preferred for portal routes when the fixture has it)."""
    if param == "number":
        for prefix, key in NUMBER_BY_PREFIX:
            if route.pattern.startswith(prefix):
                return key
        return "number"
    return PARAM_ALIASES.get(param, param)


FILLED = {
    *STATIC_PARAMS,
    *(key for _, key in NUMBER_BY_PREFIX),
    "incident_number",
    "portal_request_id",
    "portal_approval_id",
    "request_id", "category_id", "item_id", "task_id", "problem_id", "known_error_id", "change_id", "ci_id",
    "article_id", "attachment_id", "endpoint_id", "calendar_id", "contract_id", "policy_id", "link_id",
    "relationship_id", "member_id", "blackout_id", "address_id", "template_id", "approval_id",
    "notification_id", "domain_id", "view_id", "team_member_id", "membership_id", "connection_id",
    "provider_connection_id", "oidc_connection_id", "provider_oidc_connection_id", "rule_id", "script_id",
    "agent_id", "token_id", "command_id",
}  # fmt: skip


def test_every_route_is_a_page_the_walker_can_fill_or_is_listed() -> None:
    """A new route with a path parameter nobody fills fails here, naming the route and the parameter."""
    problems = []
    for route in routes():
        unfilled = [p for p in route.params if fill_key(route, p) not in FILLED]
        if unfilled:
            problems.append(f"{route.name} ({route.pattern}): cannot fill {unfilled}; add it to the fixture")
    names = {route.name for route in routes()}
    sign_in = {f"{name}@{host}" for name in SIGN_IN_PAGES for host in ("console", "portal")} | set(STATES)
    known = (n.removesuffix("+errors") for n, _ in KNOWN_FAILURES if n not in sign_in)
    for listed in (*NOT_PAGES, *FRAGMENTS, *ADMIN_PAGES, *CLIENT_ADMIN_PAGES, *known):
        if listed not in names:
            problems.append(f"{listed} is listed but is no route any more")
    for name, rule in KNOWN_FAILURES:
        if rule not in RULES:
            problems.append(f"KNOWN_FAILURES ({name}, {rule}): unknown rule")
    assert not problems, "\n".join(problems)


@pytest.fixture
def pages(
    provider: Provider,
    tenant_a: Tenant,
    tech_a: User,
    end_user_a: User,
    settings: Any,
    tmp_path: Any,
    client_for: Callable[..., Client],
) -> dict[str, Any]:
    """One tenant (acme) with one record of each kind, the parameters that reach them, and clients."""
    settings.MEDIA_ROOT = str(tmp_path)
    admin = make_user("admin.a@northwind.example")
    tenant_grant(
        membership=provider_membership_set(user=admin, provider=provider, role="admin"), tenant=tenant_a
    )
    records = practice_records(tenant_a, tech_a, "Pager")
    params: dict[str, Any] = dict(practice_links(tenant_a, admin, records))
    with tenant_context(tenant_a):
        tech = actor_in(tenant_a, tech_a)
        end_user = actor_in(tenant_a, end_user_a, "end_user")
        admin_actor = actor_in(tenant_a, admin, "admin")
        # A request waiting for the technician's approval (practice_records' request has a task).
        item = catalog_item_create(
            actor=tech,
            name="Pager monitor",
            category=CatalogCategory.objects.get(pk=params["category_id"]),
            approval_required=True,
            approval_steps=[StepSpec(order=1, approver_person=tech.person)],
            form_schema=ORDER_FORM,
        )
        waiting = request_submit(
            actor=end_user,
            items=[{"catalog_item": item, "variables": {"reason": "on call", "size": "small"}}],
        )
        params["approval_id"] = Approval.objects.get(request=waiting).pk
        # For portal pages: the end user's own request, and an approval waiting for the end user.
        params["portal_request_number"] = waiting.number
        params["portal_request_id"] = waiting.pk
        for_end_user = catalog_item_create(
            actor=tech,
            name="Pager budget",
            category=CatalogCategory.objects.get(pk=params["category_id"]),
            approval_required=True,
            approval_steps=[StepSpec(order=1, approver_person=end_user.person)],
        )
        asked = request_submit(actor=tech, items=[{"catalog_item": for_end_user}])
        params["portal_approval_id"] = Approval.objects.get(request=asked).pk
        # The order page of the item with a form of every field kind; the request waiting for approval.
        params["item_id"] = item.pk
        extra = {
            "request_detail+approval": reverse(
                "request_detail", urlconf=CONSOLE, kwargs={"tenant": "acme", "number": waiting.number}
            )
        }
        params["template_id"] = template_create(
            actor=admin_actor, name="Restart the pager", implementation_plan="restart", backout_plan="none"
        ).pk
        # The end user's own incident, with an attachment, for the portal.
        mine = incident_create(actor=end_user, short_description="My pager is silent")
        params["portal_attachment_id"] = attachment_add(
            actor=end_user,
            record_type="incident",
            record_id=mine.pk,
            upload=ContentFile(b"beep\n", name="pager.txt"),
        ).pk
        params["portal_incident_number"] = mine.number
        # A published article the portal shows (practice_records' article is a technicians' draft).
        public = article_create(
            actor=admin_actor,
            title="Pager basics",
            body="Charge it nightly.",
            audience=Article.Audience.PORTAL,
        )
        params["portal_article_number"] = article_publish(actor=admin_actor, article=public).number
        for person, key in ((tech.person, "notification_id"), (end_user.person, "portal_notification_id")):
            assert person is not None
            notification_emit(
                event="record.assigned",
                record_type="incident",
                record_id=mine.pk,
                number=mine.number,
                title=mine.short_description,
                persons=[person],
                key=f"a11y-{key}",
                skip_actor=False,
            )
            params[key] = Notification.objects.filter(person=person).latest("created_at").pk
        ids = records.by_param
        params["incident_number"] = Incident.objects.get(pk=ids["incident_id"]).number
        params["ci_number"] = ConfigurationItem.objects.get(pk=ids["ci_id"]).number
        params["problem_number"] = Problem.objects.get(pk=ids["problem_id"]).number
        params["known_error_number"] = KnownError.objects.get(pk=ids["known_error_id"]).number
        params["change_number"] = Change.objects.get(pk=ids["change_id"]).number
        params["article_number"] = Article.objects.get(pk=ids["article_id"]).number
        params["request_number"] = ServiceRequest.objects.get(pk=ids["request_id"]).number
        # A pending custom domain (domains page rows), a logo (logo downloads), a saved list view.
        params["domain_id"] = domain_add(actor=admin_actor, tenant=tenant_a, hostname="help.pager.example").pk
        branding_update(
            actor=admin_actor,
            tenant=tenant_a,
            portal_title="Acme help",
            welcome_text="Welcome.",
            primary_color="#1f3a5f",
            accent_color="#1f3a5f",
            logo=png(),
        )
        # A SAML connection of the tenant and one of the provider (sso/), trusting a test IdP.
        idp_metadata = TestIdp(Path(tmp_path) / "idp").metadata_xml()
        for key, owner in (
            ("connection_id", {"tenant": tenant_a}),
            ("provider_connection_id", {"provider": provider}),
        ):
            params[key] = sso_connection_create(
                actor_user_id=admin.pk,
                actor_role="admin",
                name=f"IdP of {key}",
                metadata_xml=idp_metadata,
                email_domains=[],
                role_rules=[],
                **owner,
            ).pk
        # An OpenID Connect connection of the tenant and one of the provider (sso/, decision 0017).
        for key, owner in (
            ("oidc_connection_id", {"tenant": tenant_a}),
            ("provider_oidc_connection_id", {"provider": provider}),
        ):
            params[key] = oidc_connection_create(
                actor_user_id=admin.pk,
                actor_role="admin",
                name=f"OP of {key}",
                kind="generic",
                issuer="http://127.0.0.1:9",  # nothing listens: no page here reaches the OP
                client_id=f"client-{key}",
                client_secret="a-secret-of-the-test-op",
                email_domains=[],
                role_rules=[],
                **owner,
            ).pk
        # An enrolment token, an enrolled agent and a command waiting for approval (agent_gateway).
        params["token_id"] = enrolment_token_create(actor=tech, tenant=tenant_a, label="Pager desks")[0].pk
        agent, _, _ = agent_enrol(
            token=enrolment_token_create(actor=tech, tenant=tenant_a)[1],
            public_key=Ed25519PrivateKey.generate().public_key().public_bytes(Encoding.Raw, PublicFormat.Raw),
            hostname="pager-01",
            os="linux",
            agent_version="0.1.0",
        )
        params["agent_id"] = agent.pk
        params["command_id"] = command_request(
            actor=tech, agent=agent, kind="restart_service", params={"service": "pagerd"}
        ).pk
        # Monitoring: an alert rule, a script, and an agent's computer with metrics and an open alert.
        params["rule_id"] = alert_rule_create(
            actor=admin_actor, name="CPU high", kind="cpu", threshold=90, minutes=5
        ).pk
        params["script_id"] = script_create(
            actor=tech, name="Clean temp", interpreter="sh", body="true\n", parameters=["DAYS"]
        ).pk
        now = timezone.now()
        agent_id = uuid7()
        reports_apply(
            reports=[
                AgentReport(
                    id=uuid7(),
                    agent_id=agent_id,
                    hostname="pager-host",
                    site="",
                    type="metrics",
                    collected_at=now - dt.timedelta(minutes=minute),
                    data={
                        "cpu_percent": 95,
                        "memory_percent": 40,
                        "disks": [{"mount": "/", "percent": 50}],
                        "load": [1, 1, 1],
                    },
                )
                for minute in range(8)
            ],
            now=now,
        )
        extra["ci_detail+device"] = reverse(
            "ci_detail",
            urlconf=CONSOLE,
            kwargs={
                "tenant": "acme",
                "number": ConfigurationItem.objects.get(external_ref=f"agent:{agent_id}").number,
            },
        )
        params["view_id"] = saved_view_create(
            actor=tech, list_name="incidents", name="Open P1", query="priority=1"
        ).pk
    client_admin = make_user("client.admin.a@acme.example")
    params["membership_id"] = tenant_membership_set(
        user=client_admin, tenant=tenant_a, role="client_admin"
    ).pk
    params["team_member_id"] = ProviderMembership.objects.get(user=tech_a).pk
    for enrolled in (tech_a, client_admin):  # so the team member and users pages show the reset forms
        TOTP.activate(enrolled, generate_totp_secret())
        RecoveryCodes.activate(enrolled)
    params.update(STATIC_PARAMS)
    return {
        "client_admin": client_for(client_admin, host=PORTAL_HOST),
        "params": params,
        "extra": extra,
        "technician": client_for(tech_a),
        "admin": client_for(admin),
        "end_user": client_for(end_user_a, host=PORTAL_HOST),
    }


def role_of(route: Route) -> str:
    """The client that requests ``route``: end user on the portal, admin for ADMIN_PAGES, else technician."""
    if route.portal:
        return "client_admin" if route.name in CLIENT_ADMIN_PAGES else "end_user"
    return "admin" if route.name in ADMIN_PAGES else "technician"


def url_for(route: Route, params: dict[str, Any]) -> str:
    kwargs = {}
    for param in route.params:
        key = fill_key(route, param)
        if route.portal and f"portal_{key}" in params:
            key = f"portal_{key}"
        kwargs[param] = params[key]
    return reverse(route.name, urlconf=route.urlconf, kwargs=kwargs)


def test_every_page_has_labels_and_keyboard_controls(pages: dict[str, Any]) -> None:
    """GET each route as its role and check it; print every failing page and element at once."""
    report: list[str] = []
    failed: set[tuple[str, str]] = set()
    for route in routes():
        url = url_for(route, pages["params"])
        who = role_of(route)
        response = pages[who].get(url)
        content_type = response.get("Content-Type", "")
        if route.name in NOT_PAGES:
            kind, reason = NOT_PAGES[route.name]
            expected = {"post": response.status_code == 405, "redirect": response.status_code == 302}.get(
                kind, response.status_code == 200 and "text/html" not in content_type
            )
            if not expected:
                report.append(
                    f"{route.name} {url}: listed as {kind} ({reason}) but GET answered "
                    f"{response.status_code} {content_type}"
                )
            continue
        if response.status_code != 200 or "text/html" not in content_type:
            report.append(f"{route.name} {url} as {who}: GET answered {response.status_code} {content_type}")
            continue
        if os.environ.get("A11Y_DUMP"):
            Path(os.environ["A11Y_DUMP"], f"{route.name}.html").write_bytes(response.content)
        bodies = [(who, response.content.decode())]
        if who == "admin":  # a technician may see a read-only version of an admin page: check it too
            as_technician = pages["technician"].get(url)
            if as_technician.status_code == 200:
                bodies.append(("technician", as_technician.content.decode()))
        for viewer, body in bodies:
            for rule, messages in check(body, page=route.name not in FRAGMENTS).items():
                failed.add((route.name, rule))
                if (route.name, rule) not in KNOWN_FAILURES:
                    report.extend(
                        f"{route.name} {url} as {viewer} [{rule}] {message}" for message in messages
                    )
    for state, url in pages["extra"].items():
        response = pages["technician"].get(url)
        assert response.status_code == 200, (state, url, response.status_code)
        for rule, messages in check(response.content.decode()).items():
            failed.add((state, rule))
            if (state, rule) not in KNOWN_FAILURES:
                report.extend(f"{state} {url} [{rule}] {message}" for message in messages)
    for (name, rule), owner in KNOWN_FAILURES.items():
        if "@" not in name and "+errors" not in name and (name, rule) not in failed:
            report.append(f"KNOWN_FAILURES ({name!r}, {rule!r}) ({owner}) passes now: remove the entry")
    assert not report, "\n" + "\n".join(report)


SELF_POSTING_FORM = re.compile(r"<form\b(?=[^>]*method=\"?post)(?![^>]*action=\"?[^\"\s>])[^>]*>", re.I)


def test_forms_shown_again_with_errors_keep_labels_and_names(pages: dict[str, Any]) -> None:
    """Each page with a form posting to itself, posted empty: the page shown again with the errors next
    to the fields passes the same rules (error text must not break labels, ids or names)."""
    report: list[str] = []
    failed: set[tuple[str, str]] = set()
    posted = 0
    for route in routes():
        if route.name in NOT_PAGES or route.name in FRAGMENTS:
            continue
        url = url_for(route, pages["params"])
        client = pages[role_of(route)]
        page = client.get(url)
        if page.status_code != 200 or not SELF_POSTING_FORM.search(page.content.decode()):
            continue
        # Browsers always send the CSRF token: a non-empty POST, so ``Form(request.POST or None)`` is bound.
        response = client.post(url, {"csrfmiddlewaretoken": "not-checked-by-the-test-client"})
        posted += 1
        if response.status_code not in (200, 400, 422) or "text/html" not in response.get("Content-Type", ""):
            continue  # accepted (a redirect): nothing shown to check
        if os.environ.get("A11Y_DUMP"):
            Path(os.environ["A11Y_DUMP"], f"{route.name}.post.html").write_bytes(response.content)
        state = f"{route.name}+errors"
        for rule, messages in check(response.content.decode()).items():
            failed.add((state, rule))
            if (state, rule) not in KNOWN_FAILURES:
                report.extend(f"{state} POST {url} [{rule}] {message}" for message in messages)
    for (name, rule), owner in KNOWN_FAILURES.items():
        if name.endswith("+errors") and (name, rule) not in failed:
            report.append(f"KNOWN_FAILURES ({name!r}, {rule!r}) ({owner}) passes now: remove the entry")
    assert posted >= 10, f"only {posted} pages post to themselves: is the form pattern still right?"
    assert not report, "\n" + "\n".join(report)


# allauth's pages people see (the others answer only inside flows, or are off: codes, e-mail changes).
# Route name -> signed in (True) or anonymous (False); checked on the console host and the portal host.
SIGN_IN_PAGES = {
    "account_login": False,
    "account_reset_password": False,
    "account_reset_password_done": False,
    "account_logout": True,
    "account_change_password": True,
    "account_email_verification_sent": False,
    "mfa_index": True,
    "account_reauthenticate": True,
}


def test_sign_in_pages_have_labels_and_keyboard_controls(
    pages: dict[str, Any], client_for: Callable[..., Client]
) -> None:
    """allauth's pages on both hosts: sign in, password reset, sign out, password change."""
    report = []
    failed: set[tuple[str, str]] = set()
    for urlconf, host, user_client in (
        (CONSOLE, "testserver", "technician"),
        (PORTAL, PORTAL_HOST, "end_user"),
    ):
        for name, signed_in in SIGN_IN_PAGES.items():
            url = reverse(name, urlconf=urlconf)
            client = pages[user_client] if signed_in else client_for(None, host=host)
            response = client.get(url)
            label = f"{name}@{'portal' if urlconf == PORTAL else 'console'}"
            if response.status_code != 200:
                report.append(f"{label} {url}: GET answered {response.status_code}")
                continue
            for rule, messages in check(response.content.decode()).items():
                failed.add((label, rule))
                if (label, rule) not in KNOWN_FAILURES:
                    report.extend(f"{label} {url} [{rule}] {message}" for message in messages)
    for (name, rule), owner in KNOWN_FAILURES.items():
        if "@" in name and (name, rule) not in failed:
            report.append(f"KNOWN_FAILURES ({name!r}, {rule!r}) ({owner}) passes now: remove the entry")
    assert not report, "\n" + "\n".join(report)


def test_the_switcher_page_without_htmx_is_a_whole_page(pages: dict[str, Any]) -> None:
    """The switcher's fragment has a full-page form for JavaScript off; that page passes every rule."""
    response = pages["technician"].get(reverse("console_switch", urlconf=CONSOLE) + "?q=acme")
    assert response.status_code == 200
    assert check(response.content.decode()) == {}


def test_the_checker_catches_each_rule() -> None:
    """Each rule fails on a small page made to break it, and a page made to pass passes."""
    good = (
        '<!doctype html><html lang="en"><body><main><h1>T</h1><label for="a">A</label><input id="a">'
        '<label>B <select name="b"></select></label><textarea aria-label="C"></textarea>'
        '<span id="d">D</span><input aria-labelledby="d"><input type="hidden" name="h">'
        '<img src="x" alt=""><a href="/"><img src="y" alt="Home"></a><button aria-label="Close">&times;</button>'
        '<button><span aria-hidden="true">&times;</span> Close</button>'
        '<div role="button" tabindex="0" onclick="go()">Go</div><div hx-get="/x" hx-trigger="load"></div><ul role="listbox" aria-label="L"><li role="option">o</li></ul>'
        "</main></body></html>"
    )
    assert check(good) == {}
    bad = (
        "<html><body><h1>1</h1><h1>2</h1><input id=x><input id=x aria-label=y><img src=z>"
        '<a href="/"></a><button><span aria-hidden="true">&times;</span></button><p tabindex="2">p</p>'
        '<div onclick="go()">go</div><span hx-post="/x">x</span><a onclick="go()">a</a><input aria-labelledby="nope" aria-describedby="gone"><label for="gone">g</label><div role="menu"><a href="/">m</a></div></body></html>'
    )
    assert set(check(bad)) == set(RULES)
    assert set(check(bad, page=False)) == set(ELEMENT_RULES)
