"""What the cross-client work index keeps of an incident (controlplane.workindex): one function builds the
entry, used by the services (same transaction as the incident), the import and the reconciliation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

from controlplane.workindex.services import WorkEntry, workindex_upsert_many

from .models import Incident

RECORD_TYPE = "incident"
FIELDS = (
    "id",
    "number",
    "short_description",
    "state",
    "opened_at",
    "priority",
    "assigned_to_id",
    "assigned_to__user_id",
    "assignment_group_id",
)


def incident_work_entry(incident: Incident) -> WorkEntry:
    """The index entry of ``incident``: open while New, In Progress or On Hold (ServiceNow's active work;
    a resolved incident waits for the caller, not a technician). Reads the assignee's user id (one query
    unless ``assigned_to`` is loaded)."""
    assignee = incident.assigned_to if incident.assigned_to_id else None
    return WorkEntry(
        record_type=RECORD_TYPE,
        record_id=incident.pk,
        number=incident.number,
        title=incident.short_description,
        state=incident.state,
        is_open=incident.is_open,
        opened_at=incident.opened_at,
        priority=incident.priority,
        assigned_person_id=incident.assigned_to_id,
        assigned_user_id=assignee.user_id if assignee is not None else None,
        assignment_group_id=incident.assignment_group_id,
    )


def incident_open_work_entries() -> Iterator[WorkEntry]:
    """The entries of every open incident of the current tenant (for the reconciliation)."""
    qs = Incident.objects.filter(state__in=Incident.OPEN_STATES).select_related("assigned_to")
    for incident in qs.only(*FIELDS).order_by().iterator(chunk_size=2000):
        yield incident_work_entry(incident)


def incident_workindex_refresh(*, incident_ids: list[uuid.UUID]) -> tuple[int, int]:
    """Write the index rows of many incidents at once (after an import): open ones upserted in bulk,
    others' rows removed. Returns (rows written, rows deleted)."""
    qs = Incident.objects.filter(pk__in=incident_ids).select_related("assigned_to").only(*FIELDS)
    return workindex_upsert_many(entries=[incident_work_entry(i) for i in qs.order_by()])
