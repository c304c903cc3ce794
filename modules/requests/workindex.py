"""What the cross-client work index keeps of service requests (``REQ``) and their fulfilment tasks
(``SCTASK``, worked by assignment groups): one function per record builds the entry, used by the
services (same transaction as the record) and the reconciliation (controlplane.workindex)."""

from __future__ import annotations

from collections.abc import Iterator

from controlplane.workindex.services import WorkEntry, workindex_upsert

from .models import FulfilmentTask, ServiceRequest

REQUEST_TYPE = "service_request"
TASK_TYPE = "fulfilment_task"


def service_request_work_entry(request: ServiceRequest) -> WorkEntry:
    """The index entry of a request: open until fulfilled, rejected or cancelled. A request has no
    assignee or priority of its own (its tasks are worked)."""
    return WorkEntry(
        record_type=REQUEST_TYPE,
        record_id=request.pk,
        number=request.number,
        title=request.short_description,
        state=request.state,
        is_open=not request.is_final,
        opened_at=request.opened_at,
    )


def fulfilment_task_work_entry(task: FulfilmentTask) -> WorkEntry:
    """The index entry of a fulfilment task: open while Open or Work in progress; opened when created.
    Reads the assignee's user id (one query unless ``assigned_to`` is loaded)."""
    assignee = task.assigned_to if task.assigned_to_id else None
    return WorkEntry(
        record_type=TASK_TYPE,
        record_id=task.pk,
        number=task.number,
        title=task.short_description,
        state=task.state,
        is_open=task.state in FulfilmentTask.OPEN_STATES,
        opened_at=task.created_at,
        assigned_person_id=task.assigned_to_id,
        assigned_user_id=assignee.user_id if assignee is not None else None,
        assignment_group_id=task.assignment_group_id,
    )


def fulfilment_tasks_work_set(*, request: ServiceRequest) -> None:
    """Rewrite the index rows of every task of ``request`` (after tasks changed in bulk, e.g. a cancel)."""
    for task in FulfilmentTask.objects.filter(requested_item__request=request).select_related("assigned_to"):
        workindex_upsert(entry=fulfilment_task_work_entry(task))


def service_request_open_work_entries() -> Iterator[WorkEntry]:
    """The entries of every open request of the current tenant (for the reconciliation)."""
    for request in ServiceRequest.objects.exclude(state__in=ServiceRequest.FINAL_STATES).order_by():
        yield service_request_work_entry(request)


def fulfilment_task_open_work_entries() -> Iterator[WorkEntry]:
    """The entries of every open fulfilment task of the current tenant (for the reconciliation)."""
    qs = FulfilmentTask.objects.filter(state__in=FulfilmentTask.OPEN_STATES).select_related("assigned_to")
    for task in qs.order_by():
        yield fulfilment_task_work_entry(task)
