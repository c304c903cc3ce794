"""python manage.py seed_demo: the demo data `make run` serves. Safe to run again (creates what is missing).

One provider (Northwind MSP) with an owner and a technician; two client tenants (Acme Corp with the
shared ServiceNow history imported, Globex); an end user per tenant; open incidents in every state in
both tenants; and per tenant a small CMDB (a business service down to the network), a problem with a
published known error, a normal change on the payroll server, a service catalog (one item needing the
tenant approver's approval) and a published portal article.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from controlplane.accounts.services import (
    provider_membership_set,
    tenant_grant,
    tenant_membership_set,
    user_create,
)
from controlplane.mailin.models import InboundAddress
from controlplane.mailin.services import inbound_address_create
from controlplane.providers.models import Provider
from modules.changes.services import change_ci_add, change_create
from modules.cmdb.models import CIClass, ConfigurationItem, RelType
from modules.cmdb.services import ci_create, relationship_create
from modules.incidents.models import Incident
from modules.incidents.servicenow import servicenow_import
from modules.incidents.services import incident_create, incident_transition, incident_update
from modules.knowledge.models import Article
from modules.knowledge.services import article_create, article_publish
from modules.people.models import Group
from modules.people.services import person_for_user
from modules.problems.services import (
    known_error_create,
    known_error_publish,
    problem_create,
    problem_incident_link,
)
from modules.records.actor import Actor
from modules.requests.services import StepSpec, catalog_category_create, catalog_item_create
from tenants.models import Tenant
from tenants.services import tenant_provision

DEMO_PASSWORD = "demo-password-1"  # noqa: S105 - printed for the demo on purpose
DATA = Path(settings.ROOT_DIR) / "tests" / "data" / "servicenow_incident_event_log.csv"
TENANTS = [
    ("acme", "Acme Corp", "Europe/London", "alice@acme.example", True),
    ("globex", "Globex", "America/New_York", "bob@globex.example", False),
]
# (short description, impact, urgency, actions to reach the state, hold reason)
WORK = [
    ("Outlook keeps asking for my password", 2, 2, [], ""),
    ("VPN drops every 10 minutes from home", 2, 1, ["start"], ""),
    ("Payroll server unreachable", 1, 1, ["start"], ""),
    ("New starter laptop not enrolled", 3, 2, ["hold"], "awaiting_user_info"),
    ("Printer on floor 2 jams on duplex", 3, 3, ["hold"], "awaiting_vendor"),
    ("Intermittent Wi-Fi in meeting room B", 2, 3, ["hold"], "awaiting_evidence"),
    ("Shared drive permissions reset after patch", 2, 2, ["hold"], "awaiting_problem"),
    ("Teams camera not detected", 3, 2, ["start", "resolve"], ""),
]


class Command(BaseCommand):
    help = "Create the demo provider, tenants, users and work (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--servicenow", type=Path, default=DATA, help="event log to import into acme")

    def user(self, email: str, name: str) -> User:
        existing = User.objects.filter(email=email).first()
        return existing or user_create(
            email=email, password=DEMO_PASSWORD, full_name=name, email_verified=True
        )

    def handle(self, *args: Any, **options: Any) -> None:
        provider, _ = Provider.objects.get_or_create(slug="northwind", defaults={"name": "Northwind MSP"})
        owner = self.user("owner@northwind.example", "Olivia Owner")
        provider_membership_set(user=owner, provider=provider, role="owner")
        tech = self.user("tech@northwind.example", "Tom Technician")
        membership = provider_membership_set(user=tech, provider=provider, role="technician")
        logins = [
            ("owner (all clients)", owner.email, "http://127.0.0.1:8000/"),
            ("technician (acme, globex)", tech.email, "http://127.0.0.1:8000/"),
        ]
        for slug, name, time_zone, end_user_email, import_history in TENANTS:
            tenant = Tenant.objects.filter(slug=slug).first() or tenant_provision(
                provider=provider, name=name, slug=slug, time_zone=time_zone
            )
            tenant_grant(membership=membership, tenant=tenant)
            end_user = self.user(end_user_email, end_user_email.split("@")[0].title())
            tenant_membership_set(user=end_user, tenant=tenant, role="end_user")
            logins.append(
                (
                    f"end user ({slug} portal)",
                    end_user.email,
                    f"http://{slug}.{settings.PORTAL_BASE_DOMAIN}:8000/",
                )
            )
            with tenant_context(tenant):
                self.seed_sla(tenant.time_zone)
                if import_history and options["servicenow"].is_file():
                    with options["servicenow"].open(newline="", encoding="utf-8") as stream:
                        report = servicenow_import(stream=stream, time_zone=tenant.time_zone)
                    self.stdout.write(f"{slug}: servicenow import {json.dumps(report.as_dict())}")
                self.seed_work(tech, end_user)
                self.seed_practices(tech)
                inbound = self.seed_inbound_address(tenant, owner)
            logins.append(
                (
                    f"email in ({slug})",
                    inbound,
                    f"SMTP {settings.MAILIN_SMTP_HOST}:{settings.MAILIN_SMTP_PORT}",
                )
            )
        self.stdout.write(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
        for role, email, url in logins:
            self.stdout.write(f"  {role:28} {email:28} {url}")

    def seed_inbound_address(self, tenant: Tenant, owner: User) -> str:
        """``support@<slug>.example``: mail sent to it through the listener becomes an incident."""
        address = f"support@{tenant.slug}.example"
        if not InboundAddress.objects.filter(address=address).exists():
            actor = Actor(
                user_id=owner.pk,
                person=person_for_user(user_id=owner.pk, display_name=owner.full_name, email=owner.email),
                role="owner",
                source="console",
            )
            inbound_address_create(actor=actor, tenant=tenant, address=address)
        return address

    def seed_sla(self, zone: str) -> None:
        """A contract with a business calendar (the tenant's time zone, Mon-Fri 08:00-18:00, national
        holidays) and a policy per priority band plus one for requests, once per tenant (before the
        import, so imported incidents get their timers)."""
        from modules.sla.models import Contract
        from modules.sla.services import HoursSpec, calendar_create, contract_create, policy_create

        if Contract.objects.exists():
            return
        admin = Actor.system(source="seed")
        country = {"Europe/London": ("GB", "ENG"), "America/New_York": ("US", "NY")}.get(zone, ("", ""))
        hours = [HoursSpec(day, dt.time(8), dt.time(18)) for day in range(5)]
        calendar = calendar_create(
            actor=admin,
            name="Service desk hours",
            time_zone=zone,
            holiday_country=country[0],
            holiday_subdivision=country[1],
            working_hours=hours,
        )
        contract = contract_create(
            actor=admin, name="Managed service agreement", starts_on=dt.date(2015, 1, 1), calendar=calendar
        )
        for order, (name, priorities, response, resolution, business) in enumerate(
            [
                ("P1 critical (24x7)", [1], 15, 4 * 60, False),
                ("P2 high", [2], 30, 8 * 60, True),
                ("P3-P5 standard", [3, 4, 5], 4 * 60, 3 * 10 * 60, True),
            ]
        ):
            policy_create(
                actor=admin,
                contract=contract,
                name=name,
                order=order * 10,
                record_type="incident",
                priorities=priorities,
                response_target_minutes=response,
                resolution_target_minutes=resolution,
                business_time=business,
            )
        policy_create(
            actor=admin,
            contract=contract,
            name="Service requests",
            order=100,
            record_type="service_request",
            response_target_minutes=8 * 60,
            resolution_target_minutes=5 * 10 * 60,
        )

    def seed_work(self, tech: User, end_user: User) -> None:
        """Open incidents in every state, once per tenant (skipped when any non-imported incident exists)."""
        if Incident.objects.exclude(source_fields__has_key="system").exists():
            return
        tech_person = person_for_user(user_id=tech.pk, display_name=tech.full_name, email=tech.email)
        caller = person_for_user(user_id=end_user.pk, display_name=end_user.full_name, email=end_user.email)
        actor = Actor(user_id=tech.pk, person=tech_person, role="technician", source="console")
        desk, _ = Group.objects.get_or_create(name="Service Desk")
        for short, impact, urgency, actions, reason in WORK:
            incident = incident_create(
                actor=actor,
                short_description=short,
                caller=caller,
                impact=impact,
                urgency=urgency,
                contact_type=Incident.ContactType.PHONE,
                category="Demo",
                assignment_group=desk,
            )
            if actions:
                incident = incident_update(actor=actor, incident=incident, assigned_to=tech_person)
            for action in actions:
                incident = incident_transition(
                    actor=actor,
                    incident=incident,
                    action=action,
                    hold_reason=reason,
                    resolution_code="solved_remotely_permanently",
                    resolution_notes="Driver reinstalled remotely.",
                )

    def seed_practices(self, tech: User) -> None:
        """A small estate and one record of each practice, once per tenant (skipped when any CI exists
        that no import created)."""
        if ConfigurationItem.objects.filter(external_ref=None).exists():
            return
        person = person_for_user(user_id=tech.pk, display_name=tech.full_name, email=tech.email)
        actor = Actor(user_id=tech.pk, person=person, role="owner", source="console")
        desk, _ = Group.objects.get_or_create(name="Service Desk")
        estate: list[tuple[str, str, dict[str, Any]]] = [
            ("core-sw1", CIClass.NETWORK_DEVICE, {"ip_address": "10.0.0.1", "firmware_version": "17.9"}),
            ("esx01", CIClass.HARDWARE, {"serial_number": "CZ1234ABC", "manufacturer": "HPE"}),
            ("srv-payroll01", CIClass.VIRTUAL_MACHINE, {"os": "Windows Server", "os_version": "2022"}),
            ("Payroll application", CIClass.APPLICATION, {"version": "11.2", "vendor": "Sage"}),
            ("Payroll database", CIClass.DATABASE, {"engine": "postgresql", "version": "15"}),
            ("Payroll", CIClass.BUSINESS_SERVICE, {"criticality": "1"}),
        ]
        cis = {
            name: ci_create(actor=actor, name=name, ci_class=cls, attributes=attrs)
            for name, cls, attrs in estate
        }
        for source, rel_type, target in [
            ("esx01", RelType.CONNECTS_TO, "core-sw1"),
            ("srv-payroll01", RelType.HOSTED_ON, "esx01"),
            ("Payroll database", RelType.RUNS_ON, "srv-payroll01"),
            ("Payroll application", RelType.RUNS_ON, "srv-payroll01"),
            ("Payroll application", RelType.DEPENDS_ON, "Payroll database"),
            ("Payroll", RelType.DEPENDS_ON, "Payroll application"),
        ]:
            relationship_create(
                actor=actor, source_id=cis[source].pk, target_id=cis[target].pk, rel_type=rel_type
            )
        problem = problem_create(
            actor=actor,
            short_description="Shared drive permissions reset after monthly patching",
            configuration_item=cis["srv-payroll01"],
            assignment_group=desk,
            rca_method="five_whys",
        )
        hit = Incident.objects.filter(short_description__startswith="Shared drive permissions").first()
        if hit is not None:
            problem_incident_link(actor=actor, problem=problem, incident=hit)
        known_error = known_error_create(
            actor=actor,
            problem=problem,
            title="Shared drive permissions lost after patch",
            symptoms="Users get access denied on the shared drive the morning after patching.",
            workaround="Re-run the permissions script from the admin share, then ask users to sign out and in.",
        )
        known_error_publish(actor=actor, known_error=known_error)
        start = timezone.now().replace(minute=0, second=0, microsecond=0) + dt.timedelta(days=7)
        change = change_create(
            actor=actor,
            change_type="normal",
            short_description="Patch srv-payroll01 to the latest cumulative update",
            implementation_plan="Snapshot the VM, install the update, reboot.",
            backout_plan="Revert to the snapshot.",
            test_plan="Run a payroll report in the test company.",
            planned_start=start,
            planned_end=start + dt.timedelta(hours=2),
            assignment_group=desk,
        )
        change_ci_add(actor=actor, change=change, ci_id=cis["srv-payroll01"].pk)
        hardware = catalog_category_create(actor=actor, name="Hardware", order=10)
        software = catalog_category_create(actor=actor, name="Software", order=20)
        catalog_item_create(
            actor=actor,
            name="New laptop",
            category=hardware,
            short_description="A laptop for a new starter or a replacement",
            fulfilment_group=desk,
            expected_delivery_hours=120,
            approval_required=True,
            approval_steps=[StepSpec(order=1, approver_role="approver")],
            form_schema={
                "type": "object",
                "properties": {
                    "model": {"type": "string", "title": "Model", "enum": ["14-inch", "16-inch"]},
                    "reason": {"type": "string", "title": "Reason", "enum": ["new starter", "replacement"]},
                    "old_asset": {"type": "string", "title": "Asset tag of the old laptop"},
                    "needed_by": {"type": "string", "format": "date", "title": "Needed by"},
                },
                "required": ["model", "reason"],
                "if": {"properties": {"reason": {"const": "replacement"}}},
                "then": {"required": ["old_asset"]},
            },
        )
        catalog_item_create(
            actor=actor,
            name="Install software",
            category=software,
            short_description="Install licensed software on your computer",
            fulfilment_group=desk,
            expected_delivery_hours=24,
            form_schema={
                "type": "object",
                "properties": {"product": {"type": "string", "title": "Product", "minLength": 2}},
                "required": ["product"],
            },
        )
        article = article_create(
            actor=actor,
            title="How to connect to the VPN from home",
            body="Open the VPN client, choose the company profile and sign in with your usual account.",
            category="Remote work",
            audience=Article.Audience.PORTAL,
        )
        article_publish(actor=actor, article=article)
