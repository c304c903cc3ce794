"""What the cross-client work index keeps of a change: one function builds the entry, used by the
services (same transaction as the change) and the reconciliation (controlplane.workindex)."""

from __future__ import annotations

from collections.abc import Iterator

from controlplane.workindex.services import WorkEntry

from .models import Change

RECORD_TYPE = "change"


def change_work_entry(change: Change) -> WorkEntry:
    """The index entry of a change: open until Closed or Cancelled; opened when created; no priority (a
    change carries a risk instead). Reads the assignee's user id (one query unless loaded)."""
    assignee = change.assigned_to if change.assigned_to_id else None
    return WorkEntry(
        record_type=RECORD_TYPE,
        record_id=change.pk,
        number=change.number,
        title=change.short_description,
        state=change.state,
        is_open=change.is_open,
        opened_at=change.created_at,
        assigned_person_id=change.assigned_to_id,
        assigned_user_id=assignee.user_id if assignee is not None else None,
        assignment_group_id=change.assignment_group_id,
    )


def change_open_work_entries() -> Iterator[WorkEntry]:
    """The entries of every open change of the current tenant (for the reconciliation)."""
    qs = Change.objects.exclude(state__in=Change.FINAL_STATES).select_related("assigned_to")
    for change in qs.order_by():
        yield change_work_entry(change)
