"""Every route's permission: the route half of the permission matrix (controlplane.permissions).

``ROUTES`` maps each route to what a request needs, per HTTP method where reads and writes differ:

- console and portal pages by their URL name (``incident_list``; the portal's are ``portal_*``;
  allauth's ``account_*`` serve both hosts);
- API operations as ``api:<app>.<function>`` (``api:incidents.list_incidents``), one per method.

``RoutePermissionMiddleware`` (pages) and ``api_route_guard`` (API operations, a django-ninja view
decorator) look the route up before the view runs and refuse what the actor's role lacks: a route missing
here is refused for everyone (deny by default), and ``tests/access/test_route_matrix.py`` walks every
route of both URL confs and the API against every role, so a new route cannot ship without an entry.
Record-level rules (own records, a named approver, a CAB member's vote) stay with the records' selectors
and services. In a tenant the role is the actor's (tenants.routing); on the console host outside a tenant
it is the user's provider role.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from enum import StrEnum
from functools import wraps
from typing import Any, Final

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from controlplane.permissions import TEXT, Permission, role_may
from controlplane.problems import problem_response


class Access(StrEnum):
    PUBLIC = "public"  # anyone, signed in or not: sign-in pages, the TLS ask, the API's schema
    SIGNED_IN = "signed_in"  # any signed-in user: their profile and tokens, the provider home
    MEMBER = "member"  # any role in this tenant: its home, one's own notifications, search


Need = Permission | Access
Rule = Need | Mapping[str, Need]  # per method: "GET" (HEAD and OPTIONS follow it), "POST", "PUT", ...

P = Permission
A = Access
READ_WRITE = Mapping[str, Need]


def rw(read: Need, write: Need) -> READ_WRITE:
    """A page that shows on GET and changes on POST."""
    return {"GET": read, "POST": write}


_ACCOUNT_PAGES: dict[str, Rule] = {}
_ACCOUNT_PAGES |= {
    name: Access.PUBLIC
    for name in (
        "account_login",
        "account_logout",
        "account_inactive",
        "account_signup",
        "account_confirm_login_code",
        "account_email_verification_sent",
        "account_confirm_email",
        "account_reset_password",
        "account_reset_password_done",
        "account_reset_password_from_key",
        "account_reset_password_from_key_done",
    )
} | {
    name: A.SIGNED_IN
    for name in (
        "account_reauthenticate",
        "account_request_reauthentication_code",
        "account_confirm_reauthentication_code",
        "account_email",
        "account_change_password",
        "account_set_password",
        # allauth.mfa: one's own authenticators (TOTP, security keys, recovery codes).
        "mfa_index",
        "mfa_activate_totp",
        "mfa_deactivate_totp",
        "mfa_add_webauthn",
        "mfa_edit_webauthn",
        "mfa_list_webauthn",
        "mfa_remove_webauthn",
        "mfa_generate_recovery_codes",
        "mfa_view_recovery_codes",
        "mfa_download_recovery_codes",
        "mfa_reauthenticate",
        "mfa_reauthenticate_webauthn",
        "sign_out_everywhere",
    )
}
_ACCOUNT_PAGES["mfa_authenticate"] = Access.PUBLIC  # the second step of a sign-in, before it completes

# django-allauth's social accounts (OpenID Connect sign-in, decision 0017): the OP's callback and allauth's
# own start, error and cancel pages are public (sso.adapter decides who signs in; its SocialApps exist only
# on their owner's host); allauth's signup form is never reached (no signup through allauth) and linking
# an account ("connections") is refused by the adapter for every process but a sign-in.
_ACCOUNT_PAGES |= {
    name: A.PUBLIC
    for name in (
        "openid_connect_login",
        "openid_connect_callback",
        "socialaccount_login_cancelled",
        "socialaccount_login_error",
        "socialaccount_signup",
    )
} | {"socialaccount_connections": A.SIGNED_IN}

_CONSOLE: dict[str, Rule] = {
    # Control plane, no tenant.
    "console_home": A.SIGNED_IN,
    "console_switch": A.SIGNED_IN,
    "console_profile": A.SIGNED_IN,
    "console_tokens": A.SIGNED_IN,
    "work_queue": P.PROVIDER_REPORTS_READ,
    "dashboard": P.PROVIDER_REPORTS_READ,
    "dashboard_csv": P.PROVIDER_REPORTS_READ,
    "tls_ask": A.PUBLIC,
    "provider_security": P.PROVIDER_SSO_MANAGE,
    "console_team": P.PROVIDER_TEAM_MANAGE,
    "console_team_member": P.PROVIDER_TEAM_MANAGE,
    "console_team_member_remove": P.PROVIDER_TEAM_MANAGE,
    "console_team_member_mfa_reset": P.PROVIDER_TEAM_MANAGE,
    "tenant_users": P.TENANT_MEMBERS_MANAGE,
    "tenant_user_remove": P.TENANT_MEMBERS_MANAGE,
    "tenant_user_mfa_reset": P.TENANT_MEMBERS_MANAGE,
    "sso_provider_connections": P.PROVIDER_SSO_MANAGE,
    "sso_provider_connection_new": P.PROVIDER_SSO_MANAGE,
    "sso_provider_connection": P.PROVIDER_SSO_MANAGE,
    "sso_provider_connection_deactivate": P.PROVIDER_SSO_MANAGE,
    "sso_tenant_connections": P.TENANT_SSO_MANAGE,
    "sso_tenant_connection_new": P.TENANT_SSO_MANAGE,
    "sso_tenant_connection": P.TENANT_SSO_MANAGE,
    "sso_tenant_connection_deactivate": P.TENANT_SSO_MANAGE,
    "sso_provider_oidc_connection_new": P.PROVIDER_SSO_MANAGE,
    "sso_provider_oidc_connection": P.PROVIDER_SSO_MANAGE,
    "sso_provider_oidc_connection_deactivate": P.PROVIDER_SSO_MANAGE,
    "sso_tenant_oidc_connection_new": P.TENANT_SSO_MANAGE,
    "sso_tenant_oidc_connection": P.TENANT_SSO_MANAGE,
    "sso_tenant_oidc_connection_deactivate": P.TENANT_SSO_MANAGE,
    # Single sign-on: discovery and the SAML endpoints the IdP and the browser reach before any sign-in.
    "sso_start": A.PUBLIC,
    "sso_saml_metadata": A.PUBLIC,
    "sso_saml_login": A.PUBLIC,
    "sso_saml_acs": A.PUBLIC,
    "sso_saml_sls": A.PUBLIC,
    "sso_oidc_login": A.PUBLIC,
    # A tenant's console.
    "tenant_home": A.MEMBER,
    "record_search": A.MEMBER,
    "incident_list": P.RECORD_RAISE,
    "incident_create": P.RECORD_RAISE,
    "incident_detail": P.RECORD_RAISE,
    "incident_edit": P.RECORD_WORK,
    "incident_action": P.RECORD_RAISE,
    "incident_assign": P.RECORD_WORK,
    "incident_comment": P.RECORD_RAISE,
    "request_list": P.RECORD_RAISE,
    "request_detail": P.RECORD_RAISE,
    "request_cancel": P.RECORD_RAISE,
    "request_comment": P.RECORD_RAISE,
    "request_task_action": P.RECORD_WORK,
    "catalog": P.RECORD_RAISE,
    "catalog_order": P.RECORD_RAISE,
    "catalog_category_create": P.CATALOG_MANAGE,
    "catalog_category_edit": P.CATALOG_MANAGE,
    "catalog_item_create": P.CATALOG_MANAGE,
    "catalog_item_edit": P.CATALOG_MANAGE,
    "approval_decide": P.RECORD_RAISE,
    "approval_resend": P.RECORD_WORK,
    "approval_delegate": P.RECORD_RAISE,
    "problem_list": P.RECORD_WORK,
    "problem_create": P.RECORD_WORK,
    "problem_detail": P.RECORD_WORK,
    "problem_edit": P.RECORD_WORK,
    "problem_action": P.RECORD_WORK,
    "problem_assign": P.RECORD_WORK,
    "problem_comment": P.RECORD_WORK,
    "problem_incident_link": P.RECORD_WORK,
    "problem_incident_unlink": P.RECORD_WORK,
    "problem_known_error_create": P.RECORD_WORK,
    "problem_candidates": P.RECORD_WORK,
    "problem_candidate_accept": P.RECORD_WORK,
    "problem_settings": rw(P.RECORD_WORK, P.PROCESS_MANAGE),
    "known_error_list": P.RECORD_WORK,
    "known_error_create": P.RECORD_WORK,
    "known_error_search": P.RECORD_WORK,
    "known_error_detail": P.RECORD_WORK,
    "known_error_action": P.RECORD_WORK,
    "change_list": P.CHANGE_READ,
    "change_create": P.RECORD_WORK,
    "change_detail": P.CHANGE_READ,
    "change_edit": P.RECORD_WORK,
    "change_action": P.RECORD_WORK,
    "change_vote": P.CHANGE_VOTE,
    "change_assign": P.RECORD_WORK,
    "change_comment": P.CHANGE_READ,
    "change_ci_add": P.RECORD_WORK,
    "change_ci_remove": P.RECORD_WORK,
    "change_risk": P.RECORD_WORK,
    "change_template_list": P.RECORD_WORK,
    "change_template_create": P.PROCESS_MANAGE,
    "change_template_edit": rw(P.RECORD_WORK, P.PROCESS_MANAGE),
    "change_cab": rw(P.CHANGE_READ, P.PROCESS_MANAGE),
    "change_cab_remove": P.PROCESS_MANAGE,
    "change_blackouts": rw(P.CHANGE_READ, P.PROCESS_MANAGE),
    "change_blackout_remove": P.PROCESS_MANAGE,
    "change_settings": rw(P.CHANGE_READ, P.PROCESS_MANAGE),
    "ci_list": P.RECORD_RAISE,
    "ci_detail": P.RECORD_RAISE,
    "ci_create": P.CMDB_MANAGE,
    "ci_edit": P.CMDB_MANAGE,
    "ci_relationship_add": P.CMDB_MANAGE,
    "ci_relationship_remove": P.CMDB_MANAGE,
    "article_list": P.RECORD_RAISE,
    "article_detail": P.RECORD_RAISE,
    "article_create": P.KNOWLEDGE_WRITE,
    "article_edit": P.KNOWLEDGE_WRITE,
    "article_action": P.RECORD_RAISE,  # publish/reject for knowledge.publish; the rest knowledge.write
    "article_feedback": P.RECORD_RAISE,
    "article_link_add": P.KNOWLEDGE_WRITE,
    "sla_home": P.CONFIG_READ,
    "sla_subdivisions": P.CONFIG_READ,
    "sla_calendar_create": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "sla_calendar_edit": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "sla_closed_day_add": P.CONFIG_MANAGE,
    "sla_closed_day_remove": P.CONFIG_MANAGE,
    "sla_contract_create": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "sla_contract_edit": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "sla_policy_create": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "sla_policy_edit": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    # Monitoring (modules/monitoring, docs/decisions/0019): alerts, alert rules, the script library.
    "monitoring_alerts": P.AGENTS_READ,
    "monitoring_rules": P.AGENTS_READ,
    "monitoring_rule_create": rw(P.AGENTS_READ, P.AGENTS_MANAGE),
    "monitoring_rule_edit": rw(P.AGENTS_READ, P.AGENTS_MANAGE),
    "monitoring_rule_delete": P.AGENTS_MANAGE,
    "monitoring_scripts": P.AGENTS_READ,
    "monitoring_script_create": rw(P.AGENTS_READ, P.AGENTS_COMMAND),
    "monitoring_script_edit": rw(P.AGENTS_READ, P.AGENTS_COMMAND),
    "monitoring_script_approve": P.AGENTS_APPROVE,
    "notification_list": A.MEMBER,
    "notification_read_all": A.MEMBER,
    "notification_read": A.MEMBER,
    "notification_preferences": A.MEMBER,
    "notification_settings": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "notification_webhooks": rw(P.CONFIG_READ, P.CONFIG_MANAGE),
    "notification_webhook": P.CONFIG_READ,
    "notification_webhook_active": P.CONFIG_MANAGE,
    "notification_webhook_delete": P.CONFIG_MANAGE,
    "mailin_settings": P.MAILBOX_MANAGE,
    "agent_list": P.AGENTS_READ,
    "agent_detail": P.AGENTS_READ,
    "agent_tokens": P.AGENTS_MANAGE,
    "agent_token_revoke": P.AGENTS_MANAGE,
    "agent_decide": P.AGENTS_MANAGE,
    "agent_revoke": P.AGENTS_MANAGE,
    "agent_command_new": P.AGENTS_COMMAND,
    "agent_command_decide": P.AGENTS_APPROVE,
    "tenant_dashboard": P.REPORTS_READ,
    "tenant_dashboard_csv": P.REPORTS_READ,
    "tenant_branding": P.BRANDING_MANAGE,
    "tenant_branding_logo": A.MEMBER,
    "tenant_domains": rw(P.DOMAIN_READ, P.DOMAIN_MANAGE),
    "tenant_domain_verify": P.DOMAIN_READ,  # a DNS look-up: staff may ask for it
    "tenant_domain_remove": P.DOMAIN_MANAGE,
    "attachment_upload": P.RECORD_RAISE,
    "attachment_download": P.RECORD_RAISE,
    "assignee_options": P.RECORD_WORK,
    "link_add": P.RECORD_WORK,
    "link_remove": P.RECORD_WORK,
    "saved_view_create": P.RECORD_WORK,
    "saved_view_delete": P.RECORD_WORK,
}

_PORTAL: dict[str, Rule] = {
    "portal_home": A.MEMBER,
    "portal_logo": A.PUBLIC,  # the sign-in page shows it
    "portal_knowledge": P.RECORD_RAISE,
    "portal_article": P.RECORD_RAISE,
    "portal_branding": P.BRANDING_MANAGE,
    "portal_report": P.RECORD_RAISE,
    "portal_incident": P.RECORD_RAISE,
    "portal_survey": P.RECORD_RAISE,
    "portal_catalog": P.RECORD_RAISE,
    "portal_catalog_item": P.RECORD_RAISE,
    "portal_my": P.RECORD_RAISE,
    "portal_request": P.RECORD_RAISE,
    "portal_approvals": P.RECORD_RAISE,
    "portal_approval_decide": P.RECORD_RAISE,
    "portal_attachment_upload": P.RECORD_RAISE,
    "portal_attachment_download": P.RECORD_RAISE,
    "portal_notification_list": A.MEMBER,
    "portal_notification_read_all": A.MEMBER,
    "portal_notification_preferences": A.MEMBER,
    "portal_notification_read": A.MEMBER,
    "portal_account": A.MEMBER,
    "portal_security": P.TENANT_SSO_MANAGE,
    "portal_sso_start": A.PUBLIC,
    "portal_sso_saml_metadata": A.PUBLIC,
    "portal_sso_saml_login": A.PUBLIC,
    "portal_sso_saml_acs": A.PUBLIC,
    "portal_sso_saml_sls": A.PUBLIC,
    "portal_sso_oidc_login": A.PUBLIC,
}


def _api(app: str, rules: Mapping[str, Need]) -> dict[str, Rule]:
    return {f"api:{app}.{name}": need for name, need in rules.items()}


_API: dict[str, Rule] = {
    "api:openapi-json": A.PUBLIC,
    "api:openapi-view": A.PUBLIC,
    **_api(
        "accounts",
        {"list_tokens": A.SIGNED_IN, "create_token": A.SIGNED_IN, "revoke_token": A.SIGNED_IN},
    ),
    **_api("workindex", {"queue": P.PROVIDER_REPORTS_READ}),
    **_api(
        "incidents",
        {
            "list_incidents": P.RECORD_RAISE,
            "create_incident": P.RECORD_RAISE,
            "get_incident": P.RECORD_RAISE,
            "update_incident": P.RECORD_WORK,
            "act_on_incident": P.RECORD_RAISE,
            "list_comments": P.RECORD_RAISE,
            "add_comment": P.RECORD_RAISE,
            "list_known_errors": P.RECORD_WORK,
            "get_history": P.RECORD_RAISE,
            "get_priority_matrix": P.RECORD_RAISE,
            "put_priority_matrix": P.CONFIG_MANAGE,
            "get_rules": P.RECORD_RAISE,
            "patch_rules": P.CONFIG_MANAGE,
            "list_resolution_codes": P.RECORD_RAISE,
        },
    ),
    **_api(
        "cmdb",
        {
            "list_classes": P.RECORD_RAISE,
            "list_cis": P.RECORD_RAISE,
            "create_ci": P.CMDB_MANAGE,
            "get_ci": P.RECORD_RAISE,
            "update_ci": P.CMDB_MANAGE,
            "list_relationships": P.RECORD_RAISE,
            "add_relationship": P.CMDB_MANAGE,
            "delete_relationship": P.CMDB_MANAGE,
            "get_impact": P.CMDB_MANAGE,
            "get_history": P.RECORD_RAISE,
        },
    ),
    **_api(
        "people",
        {"list_people": P.RECORD_WORK, "list_groups": P.RECORD_WORK, "patch_person": P.DIRECTORY_MANAGE},
    ),
    **_api(
        "problems",
        {
            name: P.RECORD_WORK
            for name in (
                "list_known_errors",
                "create_known_error",
                "get_known_error",
                "update_known_error",
                "act_on_known_error",
                "get_known_error_history",
                "list_candidates",
                "accept_candidate",
                "get_settings",
                "list_problems",
                "create_problem",
                "get_problem",
                "update_problem",
                "act_on_problem",
                "list_linked_incidents",
                "link_incident",
                "unlink_incident",
                "list_comments",
                "add_comment",
                "get_history",
            )
        }
        | {"patch_settings": P.PROCESS_MANAGE},
    ),
    **_api(
        "changes",
        {
            "list_templates": P.RECORD_WORK,
            "create_template": P.PROCESS_MANAGE,
            "update_template": P.PROCESS_MANAGE,
            "list_cab_members": P.CHANGE_READ,
            "add_cab_member": P.PROCESS_MANAGE,
            "remove_cab_member": P.PROCESS_MANAGE,
            "list_blackouts": P.CHANGE_READ,
            "create_blackout": P.PROCESS_MANAGE,
            "delete_blackout": P.PROCESS_MANAGE,
            "get_settings": P.RECORD_WORK,
            "patch_settings": P.PROCESS_MANAGE,
            "list_risk_questions": P.RECORD_WORK,
            "list_changes": P.CHANGE_READ,
            "create_change": P.RECORD_WORK,
            "get_change": P.CHANGE_READ,
            "update_change": P.RECORD_WORK,
            "act_on_change": P.RECORD_WORK,
            "list_cis": P.CHANGE_READ,
            "add_ci": P.RECORD_WORK,
            "remove_ci": P.RECORD_WORK,
            "put_risk": P.RECORD_WORK,
            "list_votes": P.CHANGE_READ,
            "cast_vote": P.CHANGE_VOTE,
            "list_conflicts": P.CHANGE_READ,
            "get_impact": P.RECORD_WORK,
            "list_comments": P.CHANGE_READ,
            "add_comment": P.CHANGE_READ,
            "get_history": P.CHANGE_READ,
        },
    ),
    **_api(
        "knowledge",
        {
            "list_articles": P.RECORD_RAISE,
            "create_article": P.KNOWLEDGE_WRITE,
            "get_article": P.RECORD_RAISE,
            "edit_article": P.KNOWLEDGE_WRITE,
            "act_on_article": P.RECORD_RAISE,  # as the page: publish/reject or knowledge.write
            "list_versions": P.RECORD_RAISE,
            "get_feedback": P.RECORD_RAISE,
            "set_feedback": P.RECORD_RAISE,
            "list_links": P.RECORD_WORK,
            "add_link": P.KNOWLEDGE_WRITE,
            "get_history": P.KNOWLEDGE_WRITE,
        },
    ),
    **_api(
        "requests",
        {
            "list_categories": P.RECORD_RAISE,
            "create_category": P.CATALOG_MANAGE,
            "update_category": P.CATALOG_MANAGE,
            "list_items": P.RECORD_RAISE,
            "create_item": P.CATALOG_MANAGE,
            "get_item": P.RECORD_RAISE,
            "update_item": P.CATALOG_MANAGE,
            "list_requests": P.RECORD_RAISE,
            "submit_request": P.RECORD_RAISE,
            "my_approvals": P.RECORD_RAISE,
            "decide_approval": P.RECORD_RAISE,
            "resend_approval": P.RECORD_WORK,
            "delegate_approval": P.RECORD_RAISE,
            "list_tasks": P.RECORD_WORK,
            "get_task": P.RECORD_WORK,
            "update_task": P.RECORD_WORK,
            "act_on_task": P.RECORD_WORK,
            "get_request": P.RECORD_RAISE,
            "list_items_of_request": P.RECORD_RAISE,
            "list_approvals": P.RECORD_RAISE,
            "list_tasks_of_request": P.RECORD_WORK,
            "cancel_request": P.RECORD_RAISE,
            "list_comments": P.RECORD_RAISE,
            "add_comment": P.RECORD_RAISE,
            "get_history": P.RECORD_RAISE,
        },
    ),
    **_api(
        "notifications",
        {
            "list_notifications": A.MEMBER,
            "read_all": A.MEMBER,
            "get_preferences": A.MEMBER,
            "put_preferences": A.MEMBER,
            "read_one": A.MEMBER,
            "get_settings": P.CONFIG_READ,
            "patch_settings": P.CONFIG_MANAGE,
            "list_endpoints": P.CONFIG_READ,
            "create_endpoint": P.CONFIG_MANAGE,
            "get_endpoint": P.CONFIG_READ,
            "delete_endpoint": P.CONFIG_MANAGE,
            "list_deliveries": P.CONFIG_READ,
        },
    ),
    **_api(
        "mailin",
        {
            "list_addresses": P.MAILBOX_MANAGE,
            "create_address": P.MAILBOX_MANAGE,
            "set_mailbox": P.MAILBOX_MANAGE,
            "delete_address": P.MAILBOX_MANAGE,
            "list_messages": P.MAILBOX_MANAGE,
        },
    ),
    **_api(
        "sla",
        {
            name: (P.CONFIG_READ if name.startswith(("list_", "get_")) else P.CONFIG_MANAGE)
            for name in (
                "list_calendars",
                "create_calendar",
                "get_calendar",
                "update_calendar",
                "delete_calendar",
                "list_contracts",
                "create_contract",
                "get_contract",
                "update_contract",
                "delete_contract",
                "list_policies",
                "create_policy",
                "get_policy",
                "update_policy",
                "delete_policy",
            )
        }
        | {"list_timers": P.RECORD_RAISE},  # an end user sees the timers of their own record
    ),
    **_api(
        "records",
        {
            "search": A.MEMBER,
            "list_links": P.RECORD_WORK,
            "create_link": P.RECORD_WORK,
            "delete_link": P.RECORD_WORK,
            "list_attachments": P.RECORD_RAISE,
            "add_attachment": P.RECORD_RAISE,
            "get_attachment": P.RECORD_RAISE,
            "delete_attachment": P.RECORD_RAISE,
            "download_attachment": P.RECORD_RAISE,
        },
    ),
}

ROUTES: Final[dict[str, Rule]] = {**_ACCOUNT_PAGES, **_CONSOLE, **_PORTAL, **_API}


def route_need(key: str, method: str) -> Need | None:
    """What ``method`` on route ``key`` needs (None: the route or the method has no entry; refuse)."""
    rule = ROUTES.get(key)
    if rule is None or isinstance(rule, StrEnum):
        return rule
    return rule.get("GET" if method in ("HEAD", "OPTIONS") else method)


def request_role(request: HttpRequest) -> str | None:
    """The role a request acts with: the actor's in a tenant, else the user's provider role (None for a
    user without one, or signed out)."""
    actor = getattr(request, "actor", None)
    if actor is not None:
        return str(actor.role)
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    membership = getattr(user, "provider_membership", None)
    return membership.role if membership is not None else None


def route_refusal(request: HttpRequest, key: str) -> str | None:
    """Why ``request`` may not use route ``key`` (None: it may). See ROUTES."""
    need = route_need(key, request.method or "GET")
    if need is None:
        return "this route has no entry in the permission matrix"
    if need == A.PUBLIC:
        return None
    if not request.user.is_authenticated:
        return "sign in first"
    if need == A.SIGNED_IN:
        return None
    in_tenant = getattr(request, "tenant", None) is not None
    if need == A.MEMBER:
        return None if getattr(request, "actor", None) is not None else "you have no role here"
    if in_tenant and getattr(request, "actor", None) is None:
        return "you have no role here"
    if role_may(request_role(request), Permission(need)):
        return None
    return f"this needs the right to {TEXT[Permission(need)]} ({need}), which your role does not give"


def _refuse(request: HttpRequest, key: str, reason: str, *, api: bool) -> HttpResponse:
    """The refusal: sign in first (302 to sign-in, API 401), else 403 (problem+json for the API) naming
    the permission the route needs in ``X-Required-Permission`` (as GitHub's ``X-Accepted-OAuth-Scopes``
    names a token's missing scope), so a client and the route-matrix test can tell it from a record-level
    refusal."""
    if reason == "sign in first":
        if api:
            return problem_response(request, status=401, slug="unauthenticated", title="Sign in required")
        return redirect_to_login(request.get_full_path())
    response: HttpResponse
    if api:
        response = problem_response(request, status=403, slug="forbidden", title="Forbidden", detail=reason)
    else:
        portal = getattr(request, "portal_tenant", None) is not None
        if portal and getattr(request, "actor", None) is None:
            # Signed in without a role on this portal: the page that offers to sign out (no loop).
            return render(request, "incidents/portal_no_access.html", status=403)
        context = {"reason": reason, "base_template": "portal_base.html" if portal else "base.html"}
        response = render(request, "forbidden.html", context, status=403)
    response["X-Required-Permission"] = str(route_need(key, request.method or "GET") or "none")
    return response


class RoutePermissionMiddleware:
    """Refuse a page whose permission (ROUTES, by URL name) the request's role lacks, before its view
    runs. API operations are checked by ``api_route_guard`` per operation instead (several share a URL
    name), so the ninja URL patterns pass through here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        match = request.resolver_match
        if match is None or match.namespace == "admin":
            return None  # Django's own staff check (control plane only)
        key = str(match.url_name)
        if match.namespace == "api":
            if not key.startswith("openapi-"):
                return None  # an operation: api_route_guard
            key = f"api:{key}"
        reason = route_refusal(request, key)
        return None if reason is None else _refuse(request, key, reason, api=False)


def api_route_key(view_func: Callable[..., Any]) -> str:
    """``api:<app>.<function>`` of an API operation's view function (``modules.incidents.api`` and
    ``controlplane.accounts.api`` give ``incidents`` and ``accounts``)."""
    module = view_func.__module__.removesuffix(".api").rsplit(".", 1)[-1]
    return f"api:{module}.{view_func.__name__}"


def api_route_guard(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """django-ninja ``add_decorator(..., mode="view")``: wraps one operation's ``run`` (bound to the
    Operation, whose ``view_func`` names the route) and refuses before parsing or authentication."""
    key = api_route_key(run.__self__.view_func)  # type: ignore[attr-defined]

    @wraps(run)
    def guarded(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        reason = route_refusal(request, key)
        if reason is not None:
            return _refuse(request, key, reason, api=True)
        return run(request, *args, **kwargs)

    return guarded
