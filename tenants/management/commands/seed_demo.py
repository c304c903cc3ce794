"""python manage.py seed_demo: the demo data `make run` serves. Safe to run again (creates what is missing).

One provider (Northwind MSP) with an owner and a technician; two client tenants (Acme Corp with the
shared ServiceNow history imported, Globex); an end user per tenant; open incidents in every state in
both tenants.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django_tenants.utils import tenant_context

from controlplane.accounts.models import User
from controlplane.accounts.services import (
    provider_membership_set,
    tenant_grant,
    tenant_membership_set,
    user_create,
)
from controlplane.providers.models import Provider
from modules.incidents.models import Incident
from modules.incidents.servicenow import servicenow_import
from modules.incidents.services import incident_create, incident_transition, incident_update
from modules.people.models import Group
from modules.people.services import person_for_user
from modules.records.actor import Actor
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
        return existing or user_create(email=email, password=DEMO_PASSWORD, full_name=name)

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
                if import_history and options["servicenow"].is_file():
                    with options["servicenow"].open(newline="", encoding="utf-8") as stream:
                        report = servicenow_import(stream=stream, time_zone=tenant.time_zone)
                    self.stdout.write(f"{slug}: servicenow import {json.dumps(report.as_dict())}")
                self.seed_work(tech, end_user)
        self.stdout.write(f"\nDemo logins (password for all: {DEMO_PASSWORD})")
        for role, email, url in logins:
            self.stdout.write(f"  {role:28} {email:28} {url}")

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
