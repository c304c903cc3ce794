"""The permission matrix: which role may do what. The one table in code (docs/permissions.md shows it).

Roles (../shared/ARCHITECTURE.md, "Words"): the provider roles owner, admin and technician act in the
tenants they were granted (or all clients); the tenant roles client_admin, approver, cab_member and
end_user act in their own tenant only; ``system`` is the platform itself (tasks, imports, sweeps).

Services and selectors ask ``actor.may(Permission.X)`` (``modules.records.actor.Actor``); record-level
rules (an end user's own incidents, an approval addressed to this person or to the holder of one tenant
role, a CAB member's own vote) are
checked by the selectors and services that hold the record, on top of the permission. Every route has
its permission in ``controlplane.routes.ROUTES``, enforced before the view runs and walked by
``tests/access/test_route_matrix.py`` against every role.

The split follows ServiceNow's base roles (``itil`` works records, ``admin`` configures, ``approver_user``
decides approvals, ``asset`` manages the CMDB, ``knowledge_manager`` publishes) and Jira Service
Management's (agents, customers, "organisation" sharing).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final


class Permission(StrEnum):
    # Records: incidents, service requests, problems, changes and their comments, files and links.
    RECORD_RAISE = "record.raise"  # report an incident, order from the catalog, reply on one's own records
    RECORD_WORK = "record.work"  # see and work every record: assign, transition, work notes, internal data
    ORGANISATION_READ = "organisation.read"  # see every incident and request of one's organisation
    CHANGE_READ = "change.read"  # see changes and the CAB's agenda
    CHANGE_VOTE = "change.vote"  # cast a CAB vote (a CabMember row of the tenant's CAB is also needed)
    # Configuration items.
    CMDB_MANAGE = "cmdb.manage"  # see every CI and the impact graph; create and edit CIs and relationships
    # Knowledge.
    KNOWLEDGE_READ_INTERNAL = "knowledge.read_internal"  # internal (technician-only) articles
    KNOWLEDGE_WRITE = "knowledge.write"  # write, submit and retire articles
    KNOWLEDGE_PUBLISH = "knowledge.publish"  # publish or reject portal articles under review
    # The tenant's directory, catalog and configuration.
    DIRECTORY_MANAGE = "directory.manage"  # persons and groups of the tenant's directory
    CATALOG_MANAGE = "catalog.manage"  # catalog categories and items with their forms and approvals
    CONFIG_READ = "config.read"  # SLA contracts and policies, notification settings, webhooks (read)
    CONFIG_MANAGE = "config.manage"  # change them, the catalog's approvals aside, and the incident rules
    PROCESS_MANAGE = "process.manage"  # the change and problem processes: CAB, blackouts, templates, rules
    REPORTS_READ = "reports.read"  # the tenant's dashboard and its CSV
    BRANDING_MANAGE = "branding.manage"  # the portal's logo, colours, title and welcome text
    DOMAIN_READ = "domain.read"  # the tenant's portal hosts
    DOMAIN_MANAGE = "domain.manage"  # add, verify and remove custom domains
    MAILBOX_MANAGE = "mailbox.manage"  # inbound email addresses and IMAP mailboxes
    TENANT_MEMBERS_MANAGE = "tenant_members.manage"  # the tenant's users and their tenant roles
    TENANT_SSO_MANAGE = "tenant_sso.manage"  # how the tenant signs in: its IdP connections, its MFA rule
    # Provider level (control plane, no tenant).
    PROVIDER_TEAM_MANAGE = "provider_team.manage"  # technicians, provider roles and tenant grants
    PROVIDER_SSO_MANAGE = "provider_sso.manage"  # how the team signs in: IdP connections, MFA rule
    PROVIDER_REPORTS_READ = "provider_reports.read"  # the cross-client queue and dashboard
    # Endpoint agents (agent_gateway, modules/monitoring; docs/decisions/0018-agent-gateway.md)
    AGENTS_READ = "agents.read"  # see agents, devices' metrics, alert rules, the script library, commands
    AGENTS_MANAGE = "agents.manage"  # enrolment tokens, the approval queue, revoking agents, alert rules
    AGENTS_COMMAND = "agents.command"  # queue commands to agents; write scripts for the library
    AGENTS_APPROVE = "agents.approve"  # approve another person's command or script (four eyes)


P = Permission

# What each permission lets one do, for refusals people read ("... needs the right to <text>").
TEXT: Final[dict[Permission, str]] = {
    P.RECORD_RAISE: "raise incidents and requests and follow your own",
    P.RECORD_WORK: "work records as the service desk",
    P.ORGANISATION_READ: "see your organisation's incidents and requests",
    P.CHANGE_READ: "see changes",
    P.CHANGE_VOTE: "vote on the CAB",
    P.CMDB_MANAGE: "manage the CMDB",
    P.KNOWLEDGE_READ_INTERNAL: "read internal articles",
    P.KNOWLEDGE_WRITE: "write articles",
    P.KNOWLEDGE_PUBLISH: "publish articles",
    P.DIRECTORY_MANAGE: "manage the directory",
    P.CATALOG_MANAGE: "manage the service catalog",
    P.CONFIG_READ: "see the SLA and notification settings",
    P.CONFIG_MANAGE: "change the SLA, notification and incident settings (administrators)",
    P.PROCESS_MANAGE: "change the change and problem processes (the provider's administrators)",
    P.REPORTS_READ: "see the dashboard",
    P.BRANDING_MANAGE: "change the portal's branding",
    P.DOMAIN_READ: "see the portal's domains",
    P.DOMAIN_MANAGE: "manage the portal's domains (the provider's administrators)",
    P.MAILBOX_MANAGE: "manage inbound email",
    P.TENANT_MEMBERS_MANAGE: "manage this client's users",
    P.TENANT_SSO_MANAGE: "manage how this client's users sign in (identity providers, two-factor rule)",
    P.PROVIDER_TEAM_MANAGE: "manage the provider's team and grants",
    P.PROVIDER_SSO_MANAGE: "manage how the provider's team signs in (identity providers, two-factor rule)",
    P.PROVIDER_REPORTS_READ: "see the queue and dashboard across clients",
    P.AGENTS_READ: "see endpoint agents and their devices",
    P.AGENTS_MANAGE: "manage endpoint agents (enrolment, approval, revocation, alert rules)",
    P.AGENTS_COMMAND: "send commands to endpoint agents and write scripts",
    P.AGENTS_APPROVE: "approve commands and scripts for endpoint agents (the provider's administrators)",
}

_STAFF: Final = frozenset(
    {
        P.RECORD_RAISE,
        P.RECORD_WORK,
        P.ORGANISATION_READ,
        P.CHANGE_READ,
        P.CHANGE_VOTE,
        P.CMDB_MANAGE,
        P.KNOWLEDGE_READ_INTERNAL,
        P.KNOWLEDGE_WRITE,
        P.KNOWLEDGE_PUBLISH,
        P.DIRECTORY_MANAGE,
        P.CATALOG_MANAGE,
        P.CONFIG_READ,
        P.REPORTS_READ,
        P.BRANDING_MANAGE,
        P.DOMAIN_READ,
        P.MAILBOX_MANAGE,
        P.PROVIDER_REPORTS_READ,
        P.AGENTS_READ,
        P.AGENTS_MANAGE,
        P.AGENTS_COMMAND,
    }
)
_PROVIDER_ADMIN: Final = _STAFF | {
    P.AGENTS_APPROVE,
    P.CONFIG_MANAGE,
    P.PROCESS_MANAGE,
    P.DOMAIN_MANAGE,
    P.TENANT_MEMBERS_MANAGE,
    P.TENANT_SSO_MANAGE,
    P.PROVIDER_TEAM_MANAGE,
    P.PROVIDER_SSO_MANAGE,
}

# role -> what it may do. A role missing here may do nothing.
MATRIX: Final[dict[str, frozenset[Permission]]] = {
    "owner": _PROVIDER_ADMIN,
    "admin": _PROVIDER_ADMIN,
    "technician": _STAFF,
    "client_admin": frozenset(
        {
            P.RECORD_RAISE,
            P.ORGANISATION_READ,
            P.CMDB_MANAGE,
            P.KNOWLEDGE_READ_INTERNAL,
            P.KNOWLEDGE_PUBLISH,
            P.DIRECTORY_MANAGE,
            P.CATALOG_MANAGE,
            P.CONFIG_READ,
            P.CONFIG_MANAGE,
            P.REPORTS_READ,
            P.BRANDING_MANAGE,
            P.TENANT_MEMBERS_MANAGE,
            P.TENANT_SSO_MANAGE,
        }
    ),
    "approver": frozenset({P.RECORD_RAISE}),
    "cab_member": frozenset({P.RECORD_RAISE, P.CHANGE_READ, P.CHANGE_VOTE}),
    "end_user": frozenset({P.RECORD_RAISE}),
    # The platform's own work (tasks, imports, escalations): records and configuration of its tenant.
    "system": _STAFF | {P.CONFIG_MANAGE, P.PROCESS_MANAGE},
}

ROLES: Final = tuple(MATRIX)
PROVIDER_ROLES: Final = frozenset({"owner", "admin", "technician"})
TENANT_ROLES: Final = frozenset({"client_admin", "approver", "cab_member", "end_user"})


def role_may(role: str | None, permission: Permission) -> bool:
    """Whether ``role`` (a provider role, a tenant role or ``system``; None: no role) holds ``permission``
    in MATRIX. Unknown roles hold nothing (deny by default)."""
    return role is not None and permission in MATRIX.get(role, frozenset())


def roles_with(permission: Permission) -> frozenset[str]:
    """Every role holding ``permission`` (for docs, tests and role pickers)."""
    return frozenset(role for role, held in MATRIX.items() if permission in held)


_COLUMNS: Final = ("owner", "admin", "technician", "client_admin", "approver", "cab_member", "end_user")


def matrix_markdown() -> str:
    """The matrix as the Markdown table of docs/permissions.md (one row per permission, one column per
    role, "✓" where the role holds it), with the routes that need each permission. A test keeps the
    document equal to this; ``manage.py permission_matrix --write`` rewrites it."""
    from controlplane.routes import ROUTES

    routes_of: dict[str, list[str]] = {}
    for key, rule in ROUTES.items():
        for need in {rule} if isinstance(rule, StrEnum) else set(rule.values()):
            routes_of.setdefault(str(need), []).append(key)
    head = "| permission | " + " | ".join(_COLUMNS) + " |"
    lines = [head, "| --- |" + " :---: |" * len(_COLUMNS)]
    for permission in Permission:
        marks = " | ".join("✓" if permission in MATRIX[role] else "" for role in _COLUMNS)
        lines.append(f"| `{permission}` | {marks} |")
    lines += [
        "",
        "Routes by what they need (console and portal pages by URL name, API operations as",
        "`api:<app>.<function>`):",
        "",
    ]
    for name in [*(str(p) for p in Permission), "member", "signed_in", "public"]:
        if name in routes_of:
            lines.append(f"- `{name}`: " + ", ".join(f"`{key}`" for key in sorted(routes_of[name])))
    return "\n".join(lines) + "\n"
