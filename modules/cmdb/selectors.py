"""CMDB reads, scoped to what the actor may see: technicians and the tenant's client admins (who manage
the CMDB) see every CI of the tenant; everyone else sees the CIs they own (their laptop, their phone),
as on ServiceNow's portal. Relationships and impact analysis are managers' working data."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import connection
from django.db.models import Q, QuerySet

from controlplane.permissions import P
from controlplane.problems import NotFound
from modules.records.actor import Actor
from modules.records.models import ActivityEntry
from modules.records.selectors import activity_list

from .models import (
    SOURCE_IMPACTS_TARGET,
    CIClass,
    CIRelationship,
    ConfigurationItem,
    rel_reading,
)

MAX_IMPACT_DEPTH = 10


def cmdb_manager(actor: Actor) -> bool:
    """Who may manage the CMDB (create and edit CIs and relationships, see all CIs and the impact):
    provider technicians and the tenant's client admins (ServiceNow's ``itil`` and ``asset`` roles)."""
    return actor.may(P.CMDB_MANAGE)


def ci_visible(*, actor: Actor) -> QuerySet[ConfigurationItem]:
    qs = ConfigurationItem.objects.select_related("owner", "support_group")
    return qs if cmdb_manager(actor) else qs.filter(owner_id=actor.person_id)


def ci_list(
    *,
    actor: Actor,
    ci_class: str | None = None,
    lifecycle: str | None = None,
    owner: uuid.UUID | None = None,
    q: str = "",
    support_group: uuid.UUID | None = None,
) -> QuerySet[ConfigurationItem]:
    """CIs the actor may see, filtered by class, lifecycle state, owner (person id) and support group
    (group id). ``q`` matches the number exactly (case-insensitive) or a part of the name. Ordered by
    name, then id."""
    qs = ci_visible(actor=actor)
    if ci_class:
        qs = qs.filter(ci_class=ci_class)
    if lifecycle:
        qs = qs.filter(lifecycle=lifecycle)
    if owner:
        qs = qs.filter(owner_id=owner)
    if support_group:
        qs = qs.filter(support_group_id=support_group)
    if q.strip():
        qs = qs.filter(Q(number__iexact=q.strip()) | Q(name__icontains=q.strip()))
    return qs.order_by("name", "id")


def ci_get(*, actor: Actor, ci_id: uuid.UUID | str) -> ConfigurationItem:
    """One CI the actor may see. Raises NotFound for a missing, invisible or malformed id alike."""
    try:
        return ci_visible(actor=actor).get(pk=ci_id)
    except (ConfigurationItem.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such configuration item") from exc


def ci_get_by_number(*, actor: Actor, number: str) -> ConfigurationItem:
    """One CI by its number (``CI0000042``, case-insensitive). Raises NotFound like ``ci_get``."""
    ci = ci_visible(actor=actor).filter(number__iexact=number.strip()).first()
    if ci is None:
        raise NotFound("no such configuration item")
    return ci


@dataclass(frozen=True)
class CIRef:
    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    lifecycle: str


@dataclass(frozen=True)
class RelationshipView:
    """A relationship seen from one of its CIs. ``direction`` is ``outgoing`` when that CI is the source;
    ``reading`` is how it reads from that CI ("runs on" outgoing, "runs" incoming); ``other`` is the CI
    at the other end."""

    id: int
    rel_type: str
    direction: str
    reading: str
    other: CIRef


def relationship_view(*, relationship: CIRelationship, ci_id: uuid.UUID) -> RelationshipView:
    """``relationship`` as read from the CI ``ci_id`` (one of its two ends)."""
    outgoing = relationship.source_id == ci_id
    other = relationship.target if outgoing else relationship.source
    return RelationshipView(
        id=relationship.pk,
        rel_type=relationship.rel_type,
        direction="outgoing" if outgoing else "incoming",
        reading=rel_reading(relationship.rel_type, outgoing=outgoing),
        other=CIRef(
            id=other.pk,
            number=other.number,
            name=other.name,
            ci_class=other.ci_class,
            lifecycle=other.lifecycle,
        ),
    )


def ci_relationship_list(*, actor: Actor, ci: ConfigurationItem) -> list[RelationshipView]:
    """The relationships of ``ci``, outgoing first, then incoming, each by type, then the other CI's
    name. Managers only: anyone else gets an empty list (relationships are working data, as links are).
    The caller checked access to ``ci`` itself."""
    if not cmdb_manager(actor):
        return []
    rows = CIRelationship.objects.filter(Q(source=ci) | Q(target=ci)).select_related("source", "target")
    views = [relationship_view(relationship=r, ci_id=ci.pk) for r in rows]
    return sorted(views, key=lambda v: (v.direction != "outgoing", v.rel_type, v.other.name, v.id))


def relationship_get(*, actor: Actor, relationship_id: int | str) -> CIRelationship:
    """One relationship (managers only). Raises NotFound for a missing or malformed id and for anyone
    else."""
    if not cmdb_manager(actor):
        raise NotFound("no such relationship")
    try:
        return CIRelationship.objects.select_related("source", "target").get(pk=relationship_id)
    except (CIRelationship.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such relationship") from exc


def ci_history(*, actor: Actor, ci: ConfigurationItem) -> QuerySet[ActivityEntry]:
    """The CI's activity history, oldest first. Relationship entries name other CIs, so only CMDB
    managers see them (as with ``ci_relationship_list``). The caller checked access to ``ci``."""
    qs = activity_list(actor=actor, record_id=ci.pk)
    return qs if cmdb_manager(actor) else qs.exclude(verb__startswith="relationship.")


@dataclass(frozen=True)
class ImpactStep:
    """One hop of an impact path in the direction the failure travels: ``source`` <reading> ``target``
    (e.g. "CI0000001 used by CI0000002", "CI0000005 contains CI0000006")."""

    source: str
    reading: str
    target: str

    def __str__(self) -> str:
        return f"{self.source} {self.reading} {self.target}"


@dataclass(slots=True)
class ImpactedCI:
    """A CI reached by impact analysis. ``depth`` is the number of hops from the start (1 = direct);
    ``path`` lists the CI ids from the start to this CI along one shortest chain, and ``via`` the
    relationship types along that chain, so each entry explains why it is impacted."""

    id: uuid.UUID
    number: str
    name: str
    ci_class: str
    depth: int
    path_ids: list[str] = field(default_factory=list)
    via: list[str] = field(default_factory=list)
    path_numbers: list[str] = field(default_factory=list)

    @property
    def path(self) -> list[uuid.UUID]:
        """The CI ids from the start to this CI (built on demand: most callers read the numbers)."""
        return [uuid.UUID(hop) for hop in self.path_ids]

    @property
    def is_business_service(self) -> bool:
        return self.ci_class == CIClass.BUSINESS_SERVICE

    @property
    def steps(self) -> list[ImpactStep]:
        """The path read hop by hop in the direction the failure travels: for "B depends on A" the
        failure of A reaches B and reads "A used by B"; for "A contains B" it reads "A contains B"."""
        return [
            ImpactStep(
                source=self.path_numbers[i],
                reading=rel_reading(rel_type, outgoing=rel_type in SOURCE_IMPACTS_TARGET),
                target=self.path_numbers[i + 1],
            )
            for i, rel_type in enumerate(self.via)
        ]

    @property
    def explanation(self) -> str:
        """The path written out: "CI0000001 used by CI0000002, CI0000002 runs CI0000003"."""
        return ", ".join(str(step) for step in self.steps)


def _array(ids: list[str]) -> str:
    """A PostgreSQL array literal of UUID texts (ours, from the database), bound as one string: adapting
    a list of thousands of strings one by one cost more than the query it fed."""
    return "{" + ",".join(ids) + "}"


def ci_impact_get(*, actor: Actor, ci_id: uuid.UUID | str, depth: int = 6) -> list[ImpactedCI]:
    """The CIs (business services included) that a failure of ``ci_id`` reaches, up to ``depth`` hops
    (1..MAX_IMPACT_DEPTH), nearest first, each with a shortest explaining path.

    Breadth-first, one indexed query per level over ``impact_from -> impact_to`` with a visited set, so
    cycles end the walk and no CI is listed twice. Where several shortest paths reach a CI, the one
    through the predecessor with the smallest id (the earliest created, ids being UUIDv7) is kept, so the
    answer is deterministic. CMDB managers only (NotFound otherwise, like any CI they cannot see). Raises
    NotFound for an unknown start CI.
    """
    start = ci_get(actor=actor, ci_id=ci_id)
    if not cmdb_manager(actor):
        raise NotFound("no such configuration item")
    depth = max(1, min(depth, MAX_IMPACT_DEPTH))
    # Parent pointers (predecessor, relationship type) instead of a copied path per CI: paths are built
    # once at the end, walking at most ``depth`` pointers each.
    # Ids travel as text: hashing str is several times cheaper than hashing uuid.UUID in Python.
    first = str(start.pk)
    parent: dict[str, tuple[str, str] | None] = {first: None}
    details: dict[str, tuple[str, str, str]] = {first: (start.number, start.name, start.ci_class)}
    frontier = [first]
    found: list[tuple[str, int]] = []
    with connection.cursor() as cursor:
        for level in range(1, depth + 1):
            if not frontier:
                break
            # One row per reached CI: its smallest predecessor (an index scan on impact_from).
            cursor.execute(
                "SELECT DISTINCT ON (impact_to_id) impact_from_id::text, impact_to_id::text, rel_type"
                " FROM cmdb_cirelationship WHERE impact_from_id = ANY(%s::uuid[])"
                " ORDER BY impact_to_id, impact_from_id, rel_type",
                [_array(frontier)],
            )
            next_frontier = []
            for source, target, rel_type in cursor.fetchall():
                if target in parent:
                    continue
                parent[target] = (source, rel_type)
                next_frontier.append(target)
                found.append((target, level))
            frontier = next_frontier
        # The reached CIs' own columns in one query (joining them into each level made PostgreSQL hash
        # the whole CI table once the frontier grew; a hashed ANY is the cheapest for thousands).
        cursor.execute(
            "SELECT id::text, number, name, ci_class FROM cmdb_configurationitem WHERE id = ANY(%s::uuid[])",
            [_array([ci for ci, _ in found])],
        )
        for ci, number, name, ci_class in cursor.fetchall():
            details[ci] = (number, name, ci_class)
    impacted = []
    for ci, level in found:
        path, via = [ci], []
        step = parent[ci]
        while step is not None:
            path.append(step[0])
            via.append(step[1])
            step = parent[step[0]]
        path.reverse()
        via.reverse()
        number, name, ci_class = details[ci]
        impacted.append(
            ImpactedCI(
                id=uuid.UUID(ci),
                number=number,
                name=name,
                ci_class=ci_class,
                depth=level,
                path_ids=path,
                via=via,
                path_numbers=[details[hop][0] for hop in path],
            )
        )
    return impacted
