"""Writes to the tenant directory."""

from __future__ import annotations

from django.db import IntegrityError, connection, models, transaction

from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, NotFound, PermissionDenied
from controlplane.workindex.services import workindex_group_member_set
from modules.records.actor import Actor
from modules.records.services import activity_record, history_value

from .models import Group, GroupMembership, Person


class AlreadyMember(Conflict):
    slug = "already-member"
    title = "This person is already a member of the group"


def person_for_user(*, user_id: int, display_name: str, email: str) -> Person:
    """The person linked to control-plane user ``user_id``, created on first use in this tenant.

    Technicians are mirrored into each tenant they enter this way; the name is kept current.
    """
    person = Person.objects.filter(user_id=user_id).first()
    if person is None:
        try:
            with transaction.atomic():
                person = Person.objects.create(user_id=user_id, display_name=display_name, email=email)
        except IntegrityError:  # created concurrently by another request
            person = Person.objects.get(user_id=user_id)
    elif person.display_name != display_name or person.email != email:
        person.display_name, person.email = display_name, email
        person.save(update_fields=["display_name", "email", "updated_at"])
    return person


@transaction.atomic
def person_for_email(*, email: str, display_name: str = "") -> Person:
    """The active person of this tenant's directory with ``email`` (compared case-insensitively; a
    person linked to a user first, then the oldest), created with ``display_name`` (or the address) when
    there is none: callers who write in by email become persons (ARCHITECTURE.md "Words").

    A transaction-scoped advisory lock on (schema, address) makes two messages from a new sender,
    processed at once, create one person, not two.
    """
    email = email.strip().lower()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
            [f"person-email:{getattr(connection, 'schema_name', '')}:{email}"],
        )
    person = (
        Person.objects.filter(email__iexact=email, is_active=True)
        .order_by(models.F("user_id").asc(nulls_last=True), "created_at", "id")
        .first()
    )
    if person is None:
        person = Person.objects.create(display_name=(display_name.strip() or email)[:200], email=email)
    return person


@transaction.atomic
def person_manager_set(*, actor: Actor, person: Person, manager: Person | None) -> Person:
    """Set (or clear, with None) a person's line manager: the approver of "requester's manager" approval
    steps of service requests (ServiceNow's ``sys_user.manager``). Technicians and client admins only
    (PermissionDenied). Raises InvalidInput naming ``manager_id`` for the person themselves, an inactive
    manager, or a chain that would lead back to the person. Logs ``person.manager_set``."""
    _require_directory_admin(actor)
    if manager is not None:
        problem = ""
        if manager.pk == person.pk:
            problem = "a person cannot be their own manager"
        elif not manager.is_active:
            problem = "the manager is not active"
        else:
            seen: set[object] = {person.pk}
            above: Person | None = manager
            while above is not None and not problem:
                if above.pk in seen:
                    problem = "this would make a circle of managers"
                seen.add(above.pk)
                above = above.manager
        if problem:
            raise InvalidInput(problem, errors=[{"field": "manager_id", "message": problem}])
    before = person.manager
    if before == manager:
        return person
    person.manager = manager
    person.save(update_fields=["manager", "updated_at"])
    activity_record(
        actor=actor,
        verb="person.manager_set",
        record_type="person",
        record_id=person.pk,
        changes={"manager": [history_value(before), history_value(manager)]},
    )
    return person


def _require_directory_admin(actor: Actor) -> None:
    if not actor.may(P.DIRECTORY_MANAGE):
        raise PermissionDenied("only technicians and client admins may change the directory")


@transaction.atomic
def group_member_add(*, actor: Actor, group: Group, person: Person) -> GroupMembership:
    """Make ``person`` a member of assignment group ``group``. Technicians and client admins only
    (PermissionDenied). Raises InvalidInput naming ``person_id`` for an inactive person and
    AlreadyMember (409) for a member. Logs ``group.member_added`` on the group. A person linked to a
    control-plane user also joins the work index's group members in the same transaction (the queue's
    "my groups"; controlplane.workindex)."""
    _require_directory_admin(actor)
    if not person.is_active:
        raise InvalidInput(
            "the person is not active", errors=[{"field": "person_id", "message": "not active"}]
        )
    if GroupMembership.objects.filter(group=group, person=person).exists():
        raise AlreadyMember(f"{person} is already in {group}")
    membership = GroupMembership.objects.create(group=group, person=person)
    if person.user_id is not None:
        workindex_group_member_set(group_id=group.pk, user_id=person.user_id, member=True)
    activity_record(
        actor=actor,
        verb="group.member_added",
        record_type="group",
        record_id=group.pk,
        changes={"members": [None, history_value(person)]},
    )
    return membership


@transaction.atomic
def group_member_remove(*, actor: Actor, group: Group, person: Person) -> None:
    """Take ``person`` out of assignment group ``group`` (and out of the work index's group members).
    Technicians and client admins only (PermissionDenied); NotFound when the person is not a member.
    Logs ``group.member_removed`` on the group."""
    _require_directory_admin(actor)
    deleted, _ = GroupMembership.objects.filter(group=group, person=person).delete()
    if not deleted:
        raise NotFound(f"{person} is not in {group}")
    if person.user_id is not None:
        workindex_group_member_set(group_id=group.pk, user_id=person.user_id, member=False)
    activity_record(
        actor=actor,
        verb="group.member_removed",
        record_type="group",
        record_id=group.pk,
        changes={"members": [history_value(person), None]},
    )
