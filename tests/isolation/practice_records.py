"""One record of every ITIL practice in a tenant, made with each module's own services, for the
cross-practice isolation tests (tests/isolation/test_practices.py).

``practice_records(tenant, user, word)`` returns the ids the API's path parameters take (``incident_id``,
``ci_id``, ...) and the record kinds of the shared parts (``incident``, ``ci``, ...), each record carrying
``word`` in its title so search can look for it.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from django.core.files.base import ContentFile
from django_tenants.utils import tenant_context

from conftest import actor_in
from controlplane.accounts.models import User
from controlplane.mailin.services import inbound_address_create
from modules.changes.models import Change
from modules.changes.services import blackout_create, cab_member_add, change_ci_add, change_create
from modules.cmdb.services import ci_create, relationship_create
from modules.incidents.models import Incident
from modules.incidents.services import incident_create
from modules.knowledge.services import article_create
from modules.notifications.services import webhook_endpoint_create
from modules.problems.models import Problem
from modules.problems.services import known_error_create, problem_create, problem_incident_link
from modules.records.actor import Actor
from modules.records.services import attachment_add, link_create
from modules.requests.models import FulfilmentTask
from modules.requests.services import catalog_category_create, catalog_item_create, request_submit
from modules.sla.services import HoursSpec, calendar_create, contract_create, policy_create
from tenants.models import Tenant

# Every record kind registered with modules.records.registry, in the order.
RECORD_KINDS = ("incident", "service_request", "problem", "known_error", "change", "ci", "article")


@dataclass(frozen=True)
class PracticeRecords:
    """``by_param``: path parameter name -> the id of a record of this tenant that fills it.
    ``by_kind``: record kind (modules.records.registry) -> the id of this tenant's record of that kind."""

    by_param: dict[str, uuid.UUID]
    by_kind: dict[str, uuid.UUID]


def practice_records(tenant: Tenant, user: User, word: str) -> PracticeRecords:
    """Create, as technician ``user`` in ``tenant``: an incident (with a text attachment, so MEDIA_ROOT
    must point at a temporary folder), a catalog item and a request for it (approval not required, so
    it goes in progress with a fulfilment task), a problem with its known error, a normal change, a CI,
    a draft article and a webhook endpoint (made as an admin). Each title contains ``word``."""
    with tenant_context(tenant):
        actor = actor_in(tenant, user)
        incident = incident_create(actor=actor, short_description=f"{word} mail is down")
        attachment = attachment_add(
            actor=actor,
            record_type="incident",
            record_id=incident.pk,
            upload=ContentFile(b"mail log: connection refused\n", name="mail.log"),
        )
        category = catalog_category_create(actor=actor, name=f"{word} hardware")
        item = catalog_item_create(actor=actor, name=f"{word} laptop", category=category)
        request = request_submit(actor=actor, items=[{"catalog_item": item}])
        task = FulfilmentTask.objects.get(requested_item__request=request)
        problem = problem_create(actor=actor, short_description=f"{word} mail keeps failing")
        known_error = known_error_create(actor=actor, problem=problem, title=f"{word} mail queue stalls")
        change = change_create(actor=actor, change_type="normal", short_description=f"{word} mail upgrade")
        ci = ci_create(actor=actor, name=f"{word} mail server", ci_class="server")
        article = article_create(actor=actor, title=f"{word} mail troubleshooting", body="Restart the queue.")
        endpoint, _ = webhook_endpoint_create(
            actor=actor_in(tenant, user, "admin"), url="https://1.1.1.1/hooks", event_types=["sla.breached"]
        )
        sla = sla_settings(actor_in(tenant, user, "admin"), word)
    by_kind = {
        "incident": incident.pk,
        "service_request": request.pk,
        "problem": problem.pk,
        "known_error": known_error.pk,
        "change": change.pk,
        "ci": ci.pk,
        "article": article.pk,
    }
    by_param = {
        "incident_id": incident.pk,
        "request_id": request.pk,
        "category_id": category.pk,
        "item_id": item.pk,
        "task_id": task.pk,
        "problem_id": problem.pk,
        "known_error_id": known_error.pk,
        "change_id": change.pk,
        "ci_id": ci.pk,
        "article_id": article.pk,
        "attachment_id": attachment.pk,
        "endpoint_id": endpoint.pk,
        **sla,
    }
    return PracticeRecords(by_param=by_param, by_kind=by_kind)


def sla_settings(admin: Actor, word: str) -> dict[str, uuid.UUID]:
    """A calendar, contract and policy nothing uses (so the DELETE routes can remove each), beside the
    contract in force. Returns calendar_id, contract_id and policy_id."""
    hours = [HoursSpec(day, dt.time(9), dt.time(17)) for day in range(5)]
    in_force = calendar_create(actor=admin, name=f"{word} office", working_hours=hours)
    spare = calendar_create(actor=admin, name=f"{word} spare", working_hours=hours)
    main = contract_create(
        actor=admin, name=f"{word} managed service", starts_on=dt.date(2024, 1, 1), calendar=in_force
    )
    old = contract_create(
        actor=admin, name=f"{word} old", starts_on=dt.date(2020, 1, 1), calendar=in_force, active=False
    )
    unused = policy_create(
        actor=admin,
        contract=main,
        name="never",
        record_type="incident",
        category="never",
        resolution_target_minutes=60,
    )
    return {"calendar_id": spare.pk, "contract_id": old.pk, "policy_id": unused.pk}


def practice_links(tenant: Tenant, user: User, records: PracticeRecords) -> dict[str, Any]:
    """Add what the DELETE routes remove to ``records`` (made in ``tenant`` by practice_records): a
    record link, a CMDB relationship, a CAB member, a blackout window, the incident linked to the problem,
    the CI on the change and an inbound email address. ``user`` acts as a provider admin (CAB and
    blackouts are admins' work).
    Returns path parameter name -> id, ``records.by_param`` included; ``relationship_id``,
    ``member_id`` and ``address_id`` are bigints, the others UUIDv7s."""
    ids = records.by_param
    with tenant_context(tenant):
        actor = actor_in(tenant, user, "admin")
        link = link_create(
            actor=actor,
            source_type="incident",
            source_id=ids["incident_id"],
            target_type="problem",
            target_id=ids["problem_id"],
            kind="caused_by",
        )
        host = ci_create(actor=actor, name="virtualisation host", ci_class="server")
        relationship = relationship_create(
            actor=actor, source_id=ids["ci_id"], target_id=host.pk, rel_type="hosted_on"
        )
        assert actor.person is not None
        member = cab_member_add(actor=actor, person=actor.person)
        start = dt.datetime(2031, 12, 24, tzinfo=dt.UTC)
        blackout = blackout_create(
            actor=actor, name="Holidays", start=start, end=start + dt.timedelta(days=3)
        )
        problem_incident_link(
            actor=actor,
            problem=Problem.objects.get(pk=ids["problem_id"]),
            incident=Incident.objects.get(pk=ids["incident_id"]),
        )
        change_ci_add(actor=actor, change=Change.objects.get(pk=ids["change_id"]), ci_id=ids["ci_id"])
    address = inbound_address_create(actor=actor, tenant=tenant, address=f"help@{tenant.slug}.example")
    return {
        **ids,
        "link_id": link.pk,
        "relationship_id": relationship.pk,
        "member_id": member.pk,
        "blackout_id": blackout.pk,
        "address_id": address.pk,
    }
