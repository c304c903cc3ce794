"""CMDB writes. Keyword-only, one transaction each, an activity entry for every change.

Rules (ITIL 4 service configuration management; ServiceNow CMDB behaviour):
- CMDB managers are provider technicians and the tenant's client admins; end users, approvers and CAB
  members may not write (PermissionDenied, nothing written).
- A CI's class decides its attributes (classes.CLASS_ATTRIBUTES); an unknown attribute or a bad value is
  InvalidInput naming ``attributes.<name>``.
- Every change of a field or of an attribute is kept in the activity history as old -> new
  (``attributes.<name>`` for attributes), so the CI's history answers "what changed, when, by whom".
- Relationships are typed and directed; a CI cannot relate to itself; one relationship per
  (source, target, type); a retired CI gets no new relationships (ServiceNow leaves retired CIs out of
  new dependency maps).
"""

from __future__ import annotations

import uuid
from typing import Any

from django.db import IntegrityError, transaction

from controlplane.problems import Conflict, InvalidInput, PermissionDenied
from modules.people.models import Group, Person
from modules.records.actor import Actor
from modules.records.services import activity_record, history_value, number_next, search_document_set

from .classes import attributes_clean
from .models import CIClass, CIRelationship, ConfigurationItem, Lifecycle, RelType, rel_reading
from .selectors import ci_get, cmdb_manager, relationship_get

RECORD_TYPE = "ci"
EDITABLE_FIELDS = ("name", "ci_class", "lifecycle", "owner", "support_group", "description", "attributes")
CLEARABLE_FIELDS = frozenset({"owner", "support_group"})


class RelationshipExists(Conflict):
    slug = "relationship-exists"
    title = "These CIs already have this relationship"


class CIRetired(Conflict):
    slug = "ci-retired"
    title = "A retired CI cannot get new relationships"


def _require_manager(actor: Actor) -> None:
    if not cmdb_manager(actor):
        raise PermissionDenied("only technicians and client admins may manage the CMDB")


def _check_choices(*, name: str | None, ci_class: str | None, lifecycle: str | None) -> None:
    errors = []
    if name is not None and not name.strip():
        errors.append({"field": "name", "message": "required"})
    if name is not None and len(name.strip()) > 200:
        errors.append({"field": "name", "message": "at most 200 characters"})
    if ci_class is not None and ci_class not in CIClass.values:
        errors.append({"field": "ci_class", "message": f"one of {', '.join(CIClass.values)}"})
    if lifecycle is not None and lifecycle not in Lifecycle.values:
        errors.append({"field": "lifecycle", "message": f"one of {', '.join(Lifecycle.values)}"})
    if errors:
        raise InvalidInput("invalid " + ", ".join(e["field"] for e in errors), errors=errors)


def _search_document(ci: ConfigurationItem) -> None:
    body = "\n".join([ci.description, *(str(v) for v in ci.attributes.values())])
    search_document_set(
        record_type=RECORD_TYPE,
        record_id=ci.pk,
        number=ci.number,
        title=ci.name,
        body=body,
        state=ci.lifecycle,
    )


@transaction.atomic
def ci_create(
    *,
    actor: Actor,
    name: str,
    ci_class: str,
    lifecycle: str = Lifecycle.OPERATIONAL,
    owner: Person | None = None,
    support_group: Group | None = None,
    description: str = "",
    attributes: dict[str, Any] | None = None,
    external_ref: str | None = None,
) -> ConfigurationItem:
    """Create a CI with the next ``CI`` number of this tenant (``CI0000001``).

    ``attributes`` are validated and normalised for ``ci_class`` (classes.attributes_clean). Logs
    ``ci.created`` with every set (non-empty) field and attribute as [None, value] and writes the CI's search
    document (technicians' visibility). Raises PermissionDenied for non-managers, InvalidInput naming
    ``name``, ``ci_class``, ``lifecycle`` or ``attributes.<name>``. Nothing is written on any error.
    """
    _require_manager(actor)
    _check_choices(name=name, ci_class=ci_class, lifecycle=lifecycle)
    cleaned = attributes_clean(ci_class=ci_class, attributes=attributes or {})
    ci = ConfigurationItem(
        number=number_next(prefix="CI"),
        name=name.strip(),
        ci_class=ci_class,
        lifecycle=lifecycle,
        owner=owner,
        support_group=support_group,
        description=description,
        attributes=cleaned,
        external_ref=external_ref or None,
    )
    ci.save()
    changes: dict[str, list[Any]] = {
        field: [None, history_value(getattr(ci, field))]
        for field in EDITABLE_FIELDS
        if field != "attributes" and getattr(ci, field) not in (None, "")
    }
    changes.update({f"attributes.{key}": [None, value] for key, value in cleaned.items()})
    activity_record(actor=actor, verb="ci.created", record_type=RECORD_TYPE, record_id=ci.pk, changes=changes)
    _search_document(ci)
    return ci


@transaction.atomic
def ci_update(*, actor: Actor, ci: ConfigurationItem, **changes: Any) -> ConfigurationItem:
    """Change fields of a CI. Keys of ``changes`` are among EDITABLE_FIELDS.

    ``attributes`` is a JSON merge patch (RFC 7386) of the CI's attributes: a key with a value sets it,
    a key with ``None`` removes it, keys not given stay. The merged attributes are validated against the
    (possibly new) class, so a class change must also remove attributes the new class does not have.
    Logs one ``ci.updated`` entry with each changed field and each changed attribute
    (``attributes.<name>``) as [old, new]; no entry when nothing changed. Updates the search document.
    Raises PermissionDenied for non-managers, InvalidInput naming an unknown or non-clearable field (only
    owner and support_group may be None) or a bad value.
    """
    _require_manager(actor)
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    nulls = sorted(f for f, value in changes.items() if value is None and f not in CLEARABLE_FIELDS)
    if nulls:
        raise InvalidInput(
            f"cannot be empty: {', '.join(nulls)}",
            errors=[{"field": f, "message": "cannot be null"} for f in nulls],
        )
    _check_choices(
        name=changes.get("name"), ci_class=changes.get("ci_class"), lifecycle=changes.get("lifecycle")
    )
    ci = ConfigurationItem.objects.select_for_update().get(pk=ci.pk)
    diff: dict[str, list[Any]] = {}
    patch = changes.pop("attributes", None)
    if "name" in changes:
        changes["name"] = changes["name"].strip()
    for field, new in changes.items():
        old = getattr(ci, field)
        if old != new:
            diff[field] = [history_value(old), history_value(new)]
            setattr(ci, field, new)
    merged = dict(ci.attributes)
    for key, value in (patch or {}).items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    cleaned = attributes_clean(ci_class=ci.ci_class, attributes=merged)
    for key in sorted(set(ci.attributes) | set(cleaned)):
        old, new = ci.attributes.get(key), cleaned.get(key)
        if old != new:
            diff[f"attributes.{key}"] = [old, new]
    ci.attributes = cleaned
    if not diff:
        return ci
    ci.save()
    activity_record(actor=actor, verb="ci.updated", record_type=RECORD_TYPE, record_id=ci.pk, changes=diff)
    _search_document(ci)
    return ci


def ci_lifecycle_set(*, actor: Actor, ci: ConfigurationItem, lifecycle: str) -> ConfigurationItem:
    """Move a CI to another lifecycle state (ServiceNow ``install_status``: planned, on order, in stock,
    operational, in maintenance, retired). Any state may follow any other, as in ServiceNow; retiring
    keeps the CI's relationships (its history) but it gets no new ones. Same errors and history entry
    as ``ci_update``."""
    return ci_update(actor=actor, ci=ci, lifecycle=lifecycle)


def _relationship_entry(*, actor: Actor, verb: str, relationship: CIRelationship, added: bool) -> None:
    """One history entry on each end: ``relationship`` [None, "runs on CI0000002"] on the source and
    [None, "runs CI0000001"] on the target (reversed for a removal)."""
    ends = (
        (relationship.source, relationship.target, True),
        (relationship.target, relationship.source, False),
    )
    for ci, other, outgoing in ends:
        text = f"{rel_reading(relationship.rel_type, outgoing=outgoing)} {other.number}"
        activity_record(
            actor=actor,
            verb=verb,
            record_type=RECORD_TYPE,
            record_id=ci.pk,
            changes={
                "relationship": [None, text] if added else [text, None],
                "relationship_id": [None, relationship.pk] if added else [relationship.pk, None],
            },
        )


@transaction.atomic
def relationship_create(
    *,
    actor: Actor,
    source_id: uuid.UUID | str,
    target_id: uuid.UUID | str,
    rel_type: str,
) -> CIRelationship:
    """Relate two CIs: ``source`` <rel_type> ``target`` (an application *runs on* a server).

    Checks, in order: the actor manages the CMDB (PermissionDenied); ``rel_type`` is a RelType
    (InvalidInput ``rel_type``); the CIs differ (InvalidInput ``target_id``); both CIs are visible
    (NotFound, as a missing id); neither is retired (CIRetired, 409); no equal relationship exists
    (RelationshipExists, 409). Logs ``relationship.added`` on both CIs. Nothing is written on error.
    """
    _require_manager(actor)
    if rel_type not in RelType.values:
        raise InvalidInput(
            f"unknown relationship type {rel_type!r}",
            errors=[{"field": "rel_type", "message": f"one of {', '.join(RelType.values)}"}],
        )
    if str(source_id) == str(target_id):
        raise InvalidInput(
            "a CI cannot relate to itself", errors=[{"field": "target_id", "message": "same CI"}]
        )
    source = ci_get(actor=actor, ci_id=source_id)
    target = ci_get(actor=actor, ci_id=target_id)
    for ci in (source, target):
        if ci.lifecycle == Lifecycle.RETIRED:
            raise CIRetired(f"{ci.number} is retired")
    if CIRelationship.objects.filter(source=source, target=target, rel_type=rel_type).exists():
        raise RelationshipExists(f"{source.number} already {RelType(rel_type).label} {target.number}")
    relationship = CIRelationship(source=source, target=target, rel_type=rel_type)
    try:
        with transaction.atomic():  # a concurrent equal insert loses on the unique constraint
            relationship.save()
    except IntegrityError as exc:
        raise RelationshipExists(
            f"{source.number} already {RelType(rel_type).label} {target.number}"
        ) from exc
    _relationship_entry(actor=actor, verb="relationship.added", relationship=relationship, added=True)
    return relationship


@transaction.atomic
def relationship_delete(*, actor: Actor, relationship_id: int | str) -> None:
    """Remove a relationship and log ``relationship.removed`` on both CIs (retired CIs included: removing
    is always allowed). Raises PermissionDenied for non-managers and NotFound for an unknown id."""
    _require_manager(actor)
    relationship = relationship_get(actor=actor, relationship_id=relationship_id)
    _relationship_entry(actor=actor, verb="relationship.removed", relationship=relationship, added=False)
    relationship.delete()


def ci_import_reference(*, actor: Actor, external_ref: str, name: str) -> tuple[ConfigurationItem, bool]:
    """The CI an import refers to by ``external_ref`` (e.g. ``servicenow:cmdb_ci 31``), created as an
    unclassified (``generic``) CI named ``name`` when it does not exist yet. Returns (CI, created). Safe to
    run again: the external reference is unique, so a second import finds the first one's CI."""
    existing = ConfigurationItem.objects.filter(external_ref=external_ref).first()
    if existing is not None:
        return existing, False
    return ci_create(actor=actor, name=name, ci_class=CIClass.GENERIC, external_ref=external_ref), True
