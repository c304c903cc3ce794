"""CMDB reads, scoped to what the actor may see: technicians see every CI of the tenant they entered;
everyone else sees the CIs they own (their laptop, their phone), as on ServiceNow's portal."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import QuerySet

from controlplane.problems import NotFound
from modules.records.actor import Actor

from .models import CIClass, ConfigurationItem

MAX_IMPACT_DEPTH = 10


def ci_visible(*, actor: Actor) -> QuerySet[ConfigurationItem]:
    qs = ConfigurationItem.objects.select_related("owner", "support_group")
    return qs if actor.is_technician else qs.filter(owner_id=actor.person_id)


def ci_get(*, actor: Actor, ci_id: uuid.UUID | str) -> ConfigurationItem:
    """One CI the actor may see. Raises NotFound for a missing, invisible or malformed id alike."""
    try:
        return ci_visible(actor=actor).get(pk=ci_id)
    except (ConfigurationItem.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such configuration item") from exc


@dataclass
class ImpactedCI:
    """A CI reached by impact analysis. ``depth`` is the number of hops from the start (1 = direct);
    ``path`` lists the CI ids from the start to this CI along one shortest chain, and ``via`` the
    relationship types along that chain, so each entry explains why it is impacted."""

    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    depth: int
    path: list[uuid.UUID] = field(default_factory=list)
    via: list[str] = field(default_factory=list)

    @property
    def is_business_service(self) -> bool:
        return self.ci_class == CIClass.BUSINESS_SERVICE


def ci_impact_get(*, actor: Actor, ci_id: uuid.UUID | str, depth: int = 6) -> list[ImpactedCI]:
    """The CIs (business services included) that a failure of ``ci_id`` reaches, up to ``depth`` hops
    (1..MAX_IMPACT_DEPTH), nearest first, each with a shortest explaining path.

    Breadth-first, one indexed query per level over ``impact_from -> impact_to`` with a visited set, so
    cycles end the walk and no CI is listed twice. Technicians only (NotFound otherwise, like any CI they
    cannot see). Raises NotFound for an unknown start CI.
    """
    start = ci_get(actor=actor, ci_id=ci_id)
    if not actor.is_technician:
        raise NotFound("no such configuration item")
    depth = max(1, min(depth, MAX_IMPACT_DEPTH))
    paths: dict[uuid.UUID, tuple[list[uuid.UUID], list[str]]] = {start.pk: ([start.pk], [])}
    frontier = [start.pk]
    found: list[tuple[uuid.UUID, int]] = []
    with connection.cursor() as cursor:
        for level in range(1, depth + 1):
            if not frontier:
                break
            cursor.execute(
                "SELECT DISTINCT ON (impact_to_id) impact_from_id, impact_to_id, rel_type"
                " FROM cmdb_cirelationship WHERE impact_from_id = ANY(%s)"
                " ORDER BY impact_to_id, impact_from_id, rel_type",
                [frontier],
            )
            next_frontier = []
            for source, target, rel_type in cursor.fetchall():
                if target in paths:
                    continue
                path, via = paths[source]
                paths[target] = ([*path, target], [*via, rel_type])
                next_frontier.append(target)
                found.append((target, level))
            frontier = next_frontier
    details = {
        row[0]: row[1:]
        for row in ConfigurationItem.objects.filter(pk__in=[ci for ci, _ in found]).values_list(
            "id", "number", "name", "ci_class"
        )
    }
    return [
        ImpactedCI(
            id=ci,
            number=details[ci][0],
            name=details[ci][1],
            ci_class=details[ci][2],
            depth=level,
            path=paths[ci][0],
            via=paths[ci][1],
        )
        for ci, level in found
    ]
