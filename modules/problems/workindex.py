"""What the cross-client work index keeps of a problem: one function builds the entry, used by the
services (same transaction as the problem) and the reconciliation (controlplane.workindex)."""

from __future__ import annotations

from collections.abc import Iterator

from controlplane.workindex.services import WorkEntry

from .models import Problem

RECORD_TYPE = "problem"


def problem_work_entry(problem: Problem) -> WorkEntry:
    """The index entry of a problem: open from New to Fix in progress (Problem.OPEN_STATES). Reads the
    assignee's user id (one query unless ``assigned_to`` is loaded)."""
    assignee = problem.assigned_to if problem.assigned_to_id else None
    return WorkEntry(
        record_type=RECORD_TYPE,
        record_id=problem.pk,
        number=problem.number,
        title=problem.short_description,
        state=problem.state,
        is_open=problem.state in Problem.OPEN_STATES,
        opened_at=problem.opened_at,
        priority=problem.priority,
        assigned_person_id=problem.assigned_to_id,
        assigned_user_id=assignee.user_id if assignee is not None else None,
        assignment_group_id=problem.assignment_group_id,
    )


def problem_open_work_entries() -> Iterator[WorkEntry]:
    """The entries of every open problem of the current tenant (for the reconciliation)."""
    qs = Problem.objects.filter(state__in=Problem.OPEN_STATES).select_related("assigned_to")
    for problem in qs.order_by():
        yield problem_work_entry(problem)
