"""Writes of the catalog and of service requests. Keyword-only, one transaction each, an activity entry
for every change (catalog changes on the category or item, request changes on the request).

Rules, after ITIL 4 service request management and ServiceNow's service catalog:
- catalog items carry a JSON Schema order form, checked when the item is saved and on every order;
- end users order for themselves; technicians may order on someone's behalf (``opened_by`` is then the
  technician, ``requested_for`` the person served);
- approvals run in ordered steps; a step is one or all of its approvers (a person, the requester's
  manager, the holders of a tenant role, or any member of a group); any rejection ends the request and
  skips the approvals left; once every step is approved the request is approved and goes in progress
  with one fulfilment task per requested item for the item's fulfilment group;
- the request is fulfilled when every task of every item is closed; it can be cancelled until then;
- states: submitted -> pending_approval -> approved | rejected -> in_progress -> fulfilled, or cancelled.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from controlplane.dashboards.services import dashboard_category_add
from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from controlplane.workindex.services import workindex_rollup_opened, workindex_rollup_record, workindex_upsert
from modules.notifications.services import notification_emit, role_holders
from modules.people.models import Group, GroupMembership, Person
from modules.records.actor import Actor
from modules.records.models import SearchDocument
from modules.records.services import (
    activity_record,
    comment_add,
    history_value,
    number_next,
    search_document_set,
)

from . import selectors
from .formschema import form_schema_check, variables_errors
from .models import (
    Approval,
    ApprovalMode,
    ApprovalStepDefinition,
    ApproverRole,
    CatalogCategory,
    CatalogItem,
    FulfilmentTask,
    RequestedItem,
    ServiceRequest,
)
from .workindex import fulfilment_task_work_entry, fulfilment_tasks_work_set, service_request_work_entry

RECORD_TYPE = "service_request"
CATEGORY_RECORD_TYPE = "catalog_category"
ITEM_RECORD_TYPE = "catalog_item"
MAX_QUANTITY = 100
CATEGORY_FIELDS = ("name", "description", "order")
ITEM_FIELDS = (
    "name",
    "short_description",
    "category",
    "form_schema",
    "fulfilment_group",
    "expected_delivery_hours",
    "approval_required",
    "active",
    "approval_steps",
)
TASK_FIELDS = ("short_description", "assignment_group", "assigned_to")

S = ServiceRequest.State
A = Approval.State
T = FulfilmentTask.State
I = RequestedItem.State  # noqa: E741


class ApprovalNotPending(Conflict):
    slug = "approval-not-pending"
    title = "This approval is not waiting for a decision"


def _require_technician(actor: Actor) -> None:
    if not actor.is_technician:
        raise PermissionDenied("only technicians may do this")


def _require_catalog_admin(actor: Actor) -> None:
    if not actor.may(P.CATALOG_MANAGE):
        raise PermissionDenied("only technicians and admins may change the catalog")


def _required_text(value: str, field: str) -> str:
    if not value or not value.strip():
        raise InvalidInput(f"{field} is required", errors=[{"field": field, "message": "required"}])
    return value.strip()


# The catalog


@transaction.atomic
def catalog_category_create(
    *, actor: Actor, name: str, description: str = "", order: int = 100
) -> CatalogCategory:
    """Add a catalog category. Technicians and admins only (PermissionDenied otherwise). Raises
    InvalidInput naming ``name`` when it is empty or already used."""
    _require_catalog_admin(actor)
    name = _required_text(name, "name")
    if CatalogCategory.objects.filter(name__iexact=name).exists():
        raise InvalidInput("name already used", errors=[{"field": "name", "message": "already used"}])
    category = CatalogCategory.objects.create(name=name, description=description, order=order)
    activity_record(
        actor=actor,
        verb="catalog_category.created",
        record_type=CATEGORY_RECORD_TYPE,
        record_id=category.pk,
        changes={f: [None, getattr(category, f)] for f in CATEGORY_FIELDS},
    )
    return category


@transaction.atomic
def catalog_category_update(*, actor: Actor, category: CatalogCategory, **changes: Any) -> CatalogCategory:
    """Change a category's name, description or order. Technicians and admins only. Raises InvalidInput
    for unknown fields and for an empty or duplicate name."""
    _require_catalog_admin(actor)
    unknown = sorted(set(changes) - set(CATEGORY_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    if "name" in changes:
        changes["name"] = _required_text(changes["name"] or "", "name")
        if CatalogCategory.objects.filter(name__iexact=changes["name"]).exclude(pk=category.pk).exists():
            raise InvalidInput("name already used", errors=[{"field": "name", "message": "already used"}])
    if changes.get("order", 0) is None or changes.get("description", "") is None:
        field = "order" if changes.get("order", 0) is None else "description"
        raise InvalidInput(f"{field} cannot be null", errors=[{"field": field, "message": "cannot be null"}])
    category = CatalogCategory.objects.select_for_update().get(pk=category.pk)
    diff = {}
    for field, new in changes.items():
        if getattr(category, field) != new:
            diff[field] = [getattr(category, field), new]
            setattr(category, field, new)
    if diff:
        category.save()
        activity_record(
            actor=actor,
            verb="catalog_category.updated",
            record_type=CATEGORY_RECORD_TYPE,
            record_id=category.pk,
            changes=diff,
        )
    return category


@dataclass(frozen=True)
class StepSpec:
    """An approval step definition as given to the catalog services."""

    order: int
    mode: str = ApprovalMode.ONE
    approver_person: Person | None = None
    approver_role: str = ""
    approver_group: Group | None = None


def _steps_check(steps: list[StepSpec], *, approval_required: bool) -> None:
    errors: list[dict[str, str]] = []
    seen: set[int] = set()
    for index, step in enumerate(steps):
        where = f"approval_steps[{index}]"
        if step.order in seen:
            errors.append({"field": f"{where}.order", "message": "another step has this order"})
        seen.add(step.order)
        if step.mode not in ApprovalMode.values:
            errors.append({"field": f"{where}.mode", "message": "one of one, all"})
        if step.approver_role and step.approver_role not in ApproverRole.values:
            errors.append(
                {"field": f"{where}.approver_role", "message": f"one of {', '.join(ApproverRole.values)}"}
            )
        if step.approver_person is None and not step.approver_role and step.approver_group is None:
            errors.append({"field": where, "message": "name an approver person, role or group"})
    if approval_required and not steps:
        errors.append({"field": "approval_steps", "message": "at least one step when approval is required"})
    if errors:
        raise InvalidInput("invalid approval steps", errors=errors)


def _steps_replace(item: CatalogItem, steps: list[StepSpec]) -> list[dict[str, Any]]:
    item.approval_steps.all().delete()
    ApprovalStepDefinition.objects.bulk_create(
        ApprovalStepDefinition(
            item=item,
            order=s.order,
            mode=s.mode,
            approver_person=s.approver_person,
            approver_role=s.approver_role,
            approver_group=s.approver_group,
        )
        for s in steps
    )
    return _steps_described(item)


def _steps_described(item: CatalogItem) -> list[dict[str, Any]]:
    return [
        {
            "order": s.order,
            "mode": s.mode,
            "approver_person": str(s.approver_person_id) if s.approver_person_id else None,
            "approver_role": s.approver_role,
            "approver_group": str(s.approver_group_id) if s.approver_group_id else None,
        }
        for s in ApprovalStepDefinition.objects.filter(item=item).order_by("order")
    ]


@transaction.atomic
def catalog_item_create(
    *,
    actor: Actor,
    name: str,
    category: CatalogCategory,
    short_description: str = "",
    form_schema: dict[str, Any] | None = None,
    fulfilment_group: Group | None = None,
    expected_delivery_hours: int = 72,
    approval_required: bool = False,
    active: bool = True,
    approval_steps: list[StepSpec] | None = None,
) -> CatalogItem:
    """Add a catalog item with its order form and approval steps. Technicians and admins only.

    ``form_schema`` (default: a form without fields) must be a valid Draft 2020-12 object schema (see
    formschema.py); ``expected_delivery_hours`` are calendar hours from submission. Raises InvalidInput
    (422) naming ``name``, ``form_schema``, ``expected_delivery_hours`` or ``approval_steps[i].<field>``;
    nothing is written then.
    """
    _require_catalog_admin(actor)
    name = _required_text(name, "name")
    schema = {"type": "object", "properties": {}} if form_schema is None else form_schema
    form_schema_check(schema)
    steps = approval_steps or []
    _steps_check(steps, approval_required=approval_required)
    item = CatalogItem.objects.create(
        name=name,
        category=category,
        short_description=short_description,
        form_schema=schema,
        fulfilment_group=fulfilment_group,
        expected_delivery_hours=expected_delivery_hours,
        approval_required=approval_required,
        active=active,
    )
    described = _steps_replace(item, steps)
    changes = {f: [None, history_value(getattr(item, f))] for f in ITEM_FIELDS if f != "approval_steps"}
    changes["approval_steps"] = [None, described]
    activity_record(
        actor=actor,
        verb="catalog_item.created",
        record_type=ITEM_RECORD_TYPE,
        record_id=item.pk,
        changes=changes,
    )
    return item


@transaction.atomic
def catalog_item_update(*, actor: Actor, item: CatalogItem, **changes: Any) -> CatalogItem:
    """Change fields of a catalog item (keys among ITEM_FIELDS; ``approval_steps`` replaces every step).

    Requests already submitted keep their validated answers and approvals. Technicians and admins only.
    Raises InvalidInput naming unknown or bad fields (``form_schema`` is checked against the metaschema),
    nothing written.
    """
    _require_catalog_admin(actor)
    unknown = sorted(set(changes) - set(ITEM_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    clearable = {"fulfilment_group"}
    nulls = sorted(f for f, v in changes.items() if v is None and f not in clearable)
    if nulls:
        raise InvalidInput(
            f"cannot be empty: {', '.join(nulls)}",
            errors=[{"field": f, "message": "cannot be null"} for f in nulls],
        )
    if "name" in changes:
        changes["name"] = _required_text(changes["name"], "name")
    if "form_schema" in changes:
        form_schema_check(changes["form_schema"])
    item = CatalogItem.objects.select_for_update().get(pk=item.pk)
    steps = changes.pop("approval_steps", None)
    approval_required = changes.get("approval_required", item.approval_required)
    if steps is not None:
        _steps_check(steps, approval_required=approval_required)
    elif approval_required and not item.approval_steps.exists():
        _steps_check([], approval_required=True)
    diff: dict[str, list[Any]] = {}
    for field, new in changes.items():
        old = getattr(item, field)
        if old != new:
            diff[field] = [history_value(old), history_value(new)]
            setattr(item, field, new)
    if steps is not None:
        before = _steps_described(item)
        after = _steps_replace(item, steps)
        if before != after:
            diff["approval_steps"] = [before, after]
    if diff:
        item.save()
        activity_record(
            actor=actor,
            verb="catalog_item.updated",
            record_type=ITEM_RECORD_TYPE,
            record_id=item.pk,
            changes=diff,
        )
    return item


# Requests


def _sla(request_id: Any) -> None:
    """Recompute the request's SLA timers from its history (same transaction, after the entries)."""
    from modules.sla.services import sla_refresh

    sla_refresh(record_type=RECORD_TYPE, record_id=request_id)


def _search_set(request: ServiceRequest) -> None:
    workindex_upsert(entry=service_request_work_entry(request))  # the cross-client work index
    _sla(request.pk)
    names = RequestedItem.objects.filter(request=request).values_list("catalog_item__name", flat=True)
    search_document_set(
        record_type=RECORD_TYPE,
        record_id=request.pk,
        number=request.number,
        title=request.short_description,
        body=" ".join(names),
        state=request.state,
        visibility=SearchDocument.Visibility.OWNER,
        owner_person_id=request.requested_for_id,
    )


def _state_set(actor: Actor, request: ServiceRequest, state: str, now: dt.datetime, **extra: Any) -> None:
    """Move the request to ``state`` and log ``service_request.<state>``."""
    old = request.state
    request.state = state
    if state == S.APPROVED:
        request.approved_at = now
    if state in ServiceRequest.FINAL_STATES:
        request.closed_at = now
    request.save()
    activity_record(
        actor=actor,
        verb=f"service_request.{state}",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        changes={"state": [old, state], **extra},
        at=now,
    )
    if state == S.FULFILLED:
        workindex_rollup_record(
            record_type=RECORD_TYPE,
            record_id=request.pk,
            opened_at=request.opened_at,
            resolved_before=None,
            resolved_after=request.closed_at,
        )


@dataclass
class _Slot:
    person: Person | None
    role: str
    group: Group | None


def _approvers(step: ApprovalStepDefinition, requested_for: Person, index: int) -> list[_Slot]:
    """Who decides ``step`` for ``requested_for``. Raises InvalidInput when a person-bound step has nobody
    (no manager, an empty group): the order would otherwise skip its approval."""
    slots: list[_Slot] = []
    if step.approver_person is not None:
        slots.append(_Slot(step.approver_person, "", None))
    if step.approver_role == ApproverRole.REQUESTER_MANAGER:
        manager = requested_for.manager
        if manager is None or not manager.is_active:
            raise InvalidInput(
                f"{requested_for} has no manager to approve",
                errors=[{"field": "requested_for", "message": "has no manager to approve this item"}],
            )
        slots.append(_Slot(manager, "", None))
    elif step.approver_role:
        slots.append(_Slot(None, step.approver_role, None))
    if step.approver_group is not None:
        members = Person.objects.filter(
            pk__in=GroupMembership.objects.filter(group=step.approver_group).values("person_id"),
            is_active=True,
        ).order_by("display_name", "id")
        if not members:
            raise InvalidInput(
                f"approval group {step.approver_group} has no members",
                errors=[
                    {"field": f"items[{index}].catalog_item", "message": "its approval group has no members"}
                ],
            )
        slots += [_Slot(member, "", step.approver_group) for member in members]
    unique: dict[Any, _Slot] = {}
    for slot in slots:
        unique.setdefault(slot.person.pk if slot.person else ("role", slot.role), slot)
    return list(unique.values())


def _resolve_item(actor: Actor, value: Any) -> CatalogItem | None:
    if isinstance(value, CatalogItem):
        return value if value.active else None
    try:
        item = selectors.catalog_item_get(actor=actor, catalog_item_id=value)
    except NotFound:
        return None
    return item if item.active else None


@transaction.atomic
def request_submit(
    *,
    actor: Actor,
    items: list[dict[str, Any]],
    requested_for: Person | None = None,
    now: dt.datetime | None = None,
) -> ServiceRequest:
    """Order catalog items: a new request (``REQ``) with one requested item (``RITM``) per entry.

    ``items``: ``[{"catalog_item": CatalogItem | id, "variables": {...}, "quantity": 1..100}]``.
    End users order for themselves (``requested_for`` empty or themselves); technicians may order for any
    active person. Each item's answers are validated against its form schema; every bad field is
    reported (``{"field": "variables.<name>", "message": ..., "item": <index>}``) in one InvalidInput and
    nothing is written. ``due_at`` = now + the longest ``expected_delivery_hours`` (calendar hours, UTC).

    Approval steps of the items that require approval become approvals (first step pending, request
    ``pending_approval``); without any, the request is approved at once and goes ``in_progress`` with
    its fulfilment tasks. Raises PermissionDenied (403) for an end user ordering for someone else.
    """
    now = now or timezone.now()
    if requested_for is None:
        requested_for = actor.person
    if requested_for is None:
        raise InvalidInput(
            "requested_for is required", errors=[{"field": "requested_for", "message": "required"}]
        )
    if not actor.is_technician and requested_for.pk != actor.person_id:
        raise PermissionDenied("end users order for themselves only")
    if not requested_for.is_active:
        raise InvalidInput(
            "requested_for is not active", errors=[{"field": "requested_for", "message": "not active"}]
        )
    if not items:
        raise InvalidInput("order at least one item", errors=[{"field": "items", "message": "required"}])
    errors: list[dict[str, Any]] = []
    resolved: list[tuple[CatalogItem, dict[str, Any], int]] = []
    for index, entry in enumerate(items):
        catalog_item = _resolve_item(actor, entry.get("catalog_item"))
        if catalog_item is None:
            errors.append({"field": f"items[{index}].catalog_item", "message": "no such active item"})
            continue
        quantity = entry.get("quantity", 1)
        if not isinstance(quantity, int) or not 1 <= quantity <= MAX_QUANTITY:
            errors.append({"field": f"items[{index}].quantity", "message": f"1-{MAX_QUANTITY}"})
        variables = entry.get("variables") or {}
        for error in variables_errors(actor=actor, schema=catalog_item.form_schema, variables=variables):
            errors.append({**error, "item": index})
        resolved.append((catalog_item, variables, quantity))
    if errors:
        raise InvalidInput("the order has invalid fields", errors=errors)
    plans = []
    for index, (catalog_item, _, _) in enumerate(resolved):
        steps = list(catalog_item.approval_steps.all()) if catalog_item.approval_required else []
        plans.append([(step, _approvers(step, requested_for, index)) for step in steps])

    names = [item.name for item, _, _ in resolved]
    hours = max(item.expected_delivery_hours for item, _, _ in resolved)
    request = ServiceRequest.objects.create(
        number=number_next(prefix="REQ"),
        short_description=", ".join(names)[:300],
        requested_for=requested_for,
        opened_by=actor.person,
        opened_at=now,
        due_at=now + dt.timedelta(hours=hours),
        state=S.SUBMITTED,
    )
    workindex_rollup_opened(record_type=RECORD_TYPE, opened_at=request.opened_at)
    category_ids = {item.category_id for item, _, _ in resolved}
    for category in CatalogCategory.objects.filter(pk__in=category_ids).values_list("name", flat=True):
        dashboard_category_add(record_type=RECORD_TYPE, opened_at=request.opened_at, category=category)
    requested: list[RequestedItem] = []
    for catalog_item, variables, quantity in resolved:
        requested.append(
            RequestedItem.objects.create(
                number=number_next(prefix="RITM"),
                request=request,
                catalog_item=catalog_item,
                variables=variables,
                quantity=quantity,
            )
        )
    activity_record(
        actor=actor,
        verb="service_request.submitted",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        changes={
            "state": [None, S.SUBMITTED],
            "requested_for": [None, history_value(requested_for)],
            "due_at": [None, history_value(request.due_at)],
            "items": [None, [{"number": r.number, "catalog_item": r.catalog_item.name} for r in requested]],
        },
        at=now,
    )
    approvals = [
        Approval(
            request=request,
            requested_item=ritm,
            step=step.order,
            group_key=f"{ritm.pk}:{step.order}",
            mode=step.mode,
            approver=slot.person,
            approver_role=slot.role,
            via_group=slot.group,
        )
        for ritm, plan in zip(requested, plans, strict=True)
        for step, slots in plan
        for slot in slots
    ]
    Approval.objects.bulk_create(approvals)
    if approvals:
        _state_set(actor, request, S.PENDING_APPROVAL, now)
    _advance(actor, request, now)
    _search_set(request)
    return request


def _group_complete(group: list[Approval]) -> bool:
    if group[0].mode == ApprovalMode.ONE:
        return any(a.state == A.APPROVED for a in group)
    return all(a.state == A.APPROVED for a in group)


def _advance(actor: Actor, request: ServiceRequest, now: dt.datetime) -> None:
    """Request the next step's approvals, or, when every step is approved, approve the request and start
    fulfilment. Called with the request locked (or just created)."""
    groups: dict[str, list[Approval]] = defaultdict(list)
    for approval in Approval.objects.filter(request=request).order_by("step", "created_at", "id"):
        groups[approval.group_key].append(approval)
    open_groups = [g for g in groups.values() if not _group_complete(g)]
    if open_groups:
        current = min(g[0].step for g in open_groups)
        for group in open_groups:
            if group[0].step != current:
                continue
            for approval in group:
                if approval.state == A.NOT_REQUESTED:
                    approval.state = A.PENDING
                    approval.save(update_fields=["state", "updated_at"])
                    entry = activity_record(
                        actor=actor,
                        verb="approval.requested",
                        record_type=RECORD_TYPE,
                        record_id=request.pk,
                        changes={
                            "approval_id": str(approval.pk),
                            "step": approval.step,
                            "approver": history_value(approval.approver) or approval.approver_role,
                            "state": [A.NOT_REQUESTED, A.PENDING],
                        },
                        at=now,
                    )
                    _notify_approval(actor, request, approval, entry.pk)
        return
    _state_set(actor, request, S.APPROVED, now)
    _fulfilment_start(actor, request, now)


def _fulfilment_start(actor: Actor, request: ServiceRequest, now: dt.datetime) -> None:
    """Create one task per requested item for the item's fulfilment group; the request goes in progress."""
    tasks = []
    for ritm in RequestedItem.objects.filter(request=request).select_related("catalog_item"):
        item = ritm.catalog_item
        quantity = f" (x{ritm.quantity})" if ritm.quantity > 1 else ""
        task = FulfilmentTask.objects.create(
            number=number_next(prefix="SCTASK"),
            requested_item=ritm,
            short_description=f"Fulfil {item.name}{quantity} for {request.requested_for}"[:300],
            assignment_group=item.fulfilment_group,
        )
        workindex_upsert(entry=fulfilment_task_work_entry(task))
        ritm.state = I.IN_PROGRESS
        ritm.save(update_fields=["state", "updated_at"])
        tasks.append(
            {
                "task": task.number,
                "item": ritm.number,
                "assignment_group": history_value(task.assignment_group),
            }
        )
    _state_set(actor, request, S.IN_PROGRESS, now, tasks=[None, tasks])


def _may_decide(actor: Actor, approval: Approval) -> bool:
    if approval.approver_id is not None:
        return approval.approver_id == actor.person_id
    return bool(approval.approver_role) and approval.approver_role == actor.role


def _locked(approval: Approval) -> tuple[ServiceRequest, Approval]:
    """Lock the request, then the approval (always in this order, so concurrent decisions serialise)."""
    request = ServiceRequest.objects.select_for_update().get(pk=approval.request_id)
    return request, Approval.objects.select_for_update(of=("self",)).select_related("approver").get(
        pk=approval.pk
    )


def _skip(actor: Actor, request: ServiceRequest, approvals: Any, now: dt.datetime, reason: str) -> list[str]:
    skipped = [
        str(pk)
        for pk in approvals.filter(state__in=(A.PENDING, A.NOT_REQUESTED)).values_list("pk", flat=True)
    ]
    if skipped:
        Approval.objects.filter(pk__in=skipped).update(state=A.SKIPPED, updated_at=now)
        activity_record(
            actor=actor,
            verb="approval.skipped",
            record_type=RECORD_TYPE,
            record_id=request.pk,
            changes={"approvals": skipped, "reason": reason},
            at=now,
        )
    return skipped


@transaction.atomic
def approval_decide(
    *,
    actor: Actor,
    approval: Approval,
    decision: str,
    comment: str = "",
    now: dt.datetime | None = None,
) -> Approval:
    """Approve or reject a pending approval. Only its approver decides (the person, or for a tenant-role
    step a holder of that role): anyone else gets PermissionDenied (403) and nothing is written.

    ``decision`` is ``approve`` or ``reject``; a rejection needs a ``comment`` saying why (422 naming
    ``comment``). Rejection ends the request: it becomes ``rejected`` and every approval left is skipped.
    An approval completes its step group in mode ``one`` (the other approvers of the group are skipped)
    or, in mode ``all``, when the last of them approves; after the last step the request is approved
    and goes in progress with its tasks. Raises ApprovalNotPending (409) when the approval is not
    pending.
    """
    if decision not in ("approve", "reject"):
        raise InvalidInput(
            f"unknown decision {decision!r}", errors=[{"field": "decision", "message": "approve or reject"}]
        )
    now = now or timezone.now()
    request, approval = _locked(approval)
    if not _may_decide(actor, approval):
        raise PermissionDenied("only the approver decides this approval")
    if approval.state != A.PENDING or request.state != S.PENDING_APPROVAL:
        raise ApprovalNotPending(
            f"this approval is {approval.get_state_display()}", current_state=approval.state
        )
    if decision == "reject" and not comment.strip():
        raise InvalidInput("a rejection needs a comment", errors=[{"field": "comment", "message": "say why"}])
    approval.state = A.APPROVED if decision == "approve" else A.REJECTED
    approval.comment = comment.strip()
    approval.decided_at = now
    approval.decided_by = actor.person
    approval.save()
    activity_record(
        actor=actor,
        verb=f"approval.{approval.state}",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        changes={
            "approval_id": str(approval.pk),
            "step": approval.step,
            "state": [A.PENDING, approval.state],
            "comment": approval.comment,
        },
        at=now,
    )
    others = Approval.objects.filter(request=request).exclude(pk=approval.pk)
    if decision == "reject":
        _skip(actor, request, others, now, "rejected")
        RequestedItem.objects.filter(request=request).update(state=I.REJECTED, updated_at=now)
        _state_set(actor, request, S.REJECTED, now)
    else:
        if approval.mode == ApprovalMode.ONE:
            _skip(actor, request, others.filter(group_key=approval.group_key), now, "step decided")
        _advance(actor, request, now)
    _search_set(request)
    return approval


@transaction.atomic
def approval_resend(*, actor: Actor, approval: Approval, now: dt.datetime | None = None) -> Approval:
    """Remind the approver of a pending approval (technicians only, 403 otherwise): counts the reminder
    (``reminder_count``, ``resent_at`` UTC) and logs ``approval.resent`` on the request. Raises
    ApprovalNotPending (409) when the approval is not pending."""
    _require_technician(actor)
    now = now or timezone.now()
    request, approval = _locked(approval)
    if approval.state != A.PENDING:
        raise ApprovalNotPending(
            f"this approval is {approval.get_state_display()}", current_state=approval.state
        )
    approval.reminder_count += 1
    approval.resent_at = now
    approval.save(update_fields=["reminder_count", "resent_at", "updated_at"])
    entry = activity_record(
        actor=actor,
        verb="approval.resent",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        changes={
            "approval_id": str(approval.pk),
            "approver": history_value(approval.approver) or approval.approver_role,
            "reminder_count": [approval.reminder_count - 1, approval.reminder_count],
        },
        at=now,
    )
    _notify_approval(actor, request, approval, entry.pk, reminder=approval.reminder_count)
    return approval


@transaction.atomic
def approval_delegate(
    *, actor: Actor, approval: Approval, delegate_to: Person, now: dt.datetime | None = None
) -> Approval:
    """Hand an approval that is pending (or not yet requested) to another person, who then decides it.

    The approver (or, for a tenant-role step, a holder of the role) or a technician may delegate; anyone
    else gets PermissionDenied (403), nothing written. ``delegated_from`` keeps the approver before.
    Raises ApprovalNotPending (409) for a decided or skipped approval, InvalidInput naming ``delegate_to``
    for an inactive person, the current approver or the request's requester (requested for or opened by),
    PermissionDenied when a technician who is not the approver delegates to themselves.
    """
    now = now or timezone.now()
    request, approval = _locked(approval)
    if not (_may_decide(actor, approval) or actor.is_technician):
        raise PermissionDenied("only the approver or a technician may delegate this approval")
    if approval.state not in (A.PENDING, A.NOT_REQUESTED):
        raise ApprovalNotPending(
            f"this approval is {approval.get_state_display()}", current_state=approval.state
        )
    if not delegate_to.is_active or delegate_to.pk == approval.approver_id:
        message = "not active" if not delegate_to.is_active else "already the approver"
        raise InvalidInput(message, errors=[{"field": "delegate_to", "message": message}])
    # Separation of duties: nobody approves their own order, and a technician who is not the approver
    # cannot hand the decision to themselves (ITIL 4 service request management; ServiceNow refuses both).
    if delegate_to.pk in (request.requested_for_id, request.opened_by_id):
        message = "the requester cannot approve their own request"
        raise InvalidInput(message, errors=[{"field": "delegate_to", "message": message}])
    if delegate_to.pk == actor.person_id and not _may_decide(actor, approval):
        message = "only the approver may hand this approval to you"
        raise PermissionDenied(message)
    before = history_value(approval.approver) or approval.approver_role
    approval.delegated_from = approval.approver
    approval.approver = delegate_to
    approval.approver_role = ""
    approval.save()
    entry = activity_record(
        actor=actor,
        verb="approval.delegated",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        changes={"approval_id": str(approval.pk), "approver": [before, history_value(delegate_to)]},
        at=now,
    )
    if approval.state == A.PENDING:
        _notify_approval(actor, request, approval, entry.pk)
    return approval


def _notify_approval(
    actor: Actor, request: ServiceRequest, approval: Approval, entry_id: Any, reminder: int = 0
) -> None:
    """``approval.requested`` (critical: always emailed) to the approval's approver, or for a tenant-role
    step to every holder of the role; keyed by the activity entry, so a retried service emits once.
    Re-sending (``reminder`` > 0) tells them again."""
    persons = (
        [approval.approver] if approval.approver is not None else role_holders(role=approval.approver_role)
    )
    notification_emit(
        event="approval.requested",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        number=request.number,
        title=request.short_description,
        persons=persons,
        critical=True,
        key=f"approval.requested:{entry_id}",
        actor=actor,
        skip_actor=False,
        context={"approval_id": str(approval.pk), "step": approval.step, "reminder": reminder},
    )


# Fulfilment


@transaction.atomic
def task_update(*, actor: Actor, task: FulfilmentTask, **changes: Any) -> FulfilmentTask:
    """Change a task's short description, assignment group or assignee (technicians only). The assignee
    must be a member of the task's assignment group when it has one (ServiceNow's reference
    qualifier). Raises InvalidInput naming the field, InvalidTransition (409) for a closed task."""
    _require_technician(actor)
    unknown = sorted(set(changes) - set(TASK_FIELDS))
    if unknown:
        raise InvalidInput(
            f"not editable: {', '.join(unknown)}",
            errors=[{"field": f, "message": "not editable"} for f in unknown],
        )
    if "short_description" in changes:
        changes["short_description"] = _required_text(changes["short_description"] or "", "short_description")
    task = FulfilmentTask.objects.select_for_update().get(pk=task.pk)
    if task.state not in FulfilmentTask.OPEN_STATES:
        raise InvalidTransition(f"{task.number} is {task.get_state_display()}", current_state=task.state)
    group = changes.get("assignment_group", task.assignment_group)
    person = changes.get("assigned_to", task.assigned_to)
    if (
        person is not None
        and group is not None
        and not GroupMembership.objects.filter(group=group, person=person).exists()
    ):
        raise InvalidInput(
            "the assignee is not in the assignment group",
            errors=[{"field": "assigned_to", "message": "not a member of the assignment group"}],
        )
    diff: dict[str, Any] = {}
    for field, new in changes.items():
        old = getattr(task, field)
        if old != new:
            diff[field] = [history_value(old), history_value(new)]
            setattr(task, field, new)
    if diff:
        task.save()
        workindex_upsert(entry=fulfilment_task_work_entry(task))
        activity_record(
            actor=actor,
            verb="task.updated",
            record_type=RECORD_TYPE,
            record_id=task.requested_item.request_id,
            changes={"task": task.number, **diff},
        )
        _sla(task.requested_item.request_id)
    return task


TASK_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": ((T.OPEN,), T.IN_PROGRESS),
    "complete": ((T.OPEN, T.IN_PROGRESS), T.CLOSED_COMPLETE),
    "skip": ((T.OPEN, T.IN_PROGRESS), T.CLOSED_SKIPPED),
}


@transaction.atomic
def task_transition(
    *, actor: Actor, task: FulfilmentTask, action: str, comment: str = "", now: dt.datetime | None = None
) -> FulfilmentTask:
    """Start, complete or skip a fulfilment task (technicians only). When every task of an item is closed
    the item is fulfilled; when every item is, the request is fulfilled. ``comment`` is added as a work
    note. Raises InvalidInput for an unknown action, InvalidTransition (409) when the task's state does
    not allow the action or the request is not in progress."""
    _require_technician(actor)
    if action not in TASK_TRANSITIONS:
        raise InvalidInput(
            f"unknown action {action!r}",
            errors=[{"field": "action", "message": f"one of {', '.join(TASK_TRANSITIONS)}"}],
        )
    now = now or timezone.now()
    request = ServiceRequest.objects.select_for_update().get(pk=task.requested_item.request_id)
    task = FulfilmentTask.objects.select_for_update().select_related("requested_item").get(pk=task.pk)
    sources, target = TASK_TRANSITIONS[action]
    if task.state not in sources or request.state != S.IN_PROGRESS:
        raise InvalidTransition(
            f"cannot {action} {task.number}: it is {task.get_state_display()}",
            current_state=task.state,
            allowed_actions=[a for a, (src, _) in TASK_TRANSITIONS.items() if task.state in src],
        )
    old = task.state
    task.state = target
    if target not in FulfilmentTask.OPEN_STATES:
        task.closed_at = now
    task.save()
    workindex_upsert(entry=fulfilment_task_work_entry(task))
    activity_record(
        actor=actor,
        verb=f"task.{action}",
        record_type=RECORD_TYPE,
        record_id=request.pk,
        changes={"task": task.number, "state": [old, target]},
        at=now,
    )
    if comment.strip():
        comment_add(
            actor=actor,
            record_type=RECORD_TYPE,
            record_id=request.pk,
            body=f"{task.number}: {comment.strip()}",
            is_work_note=True,
        )
    ritm = task.requested_item
    if not ritm.tasks.filter(state__in=FulfilmentTask.OPEN_STATES).exists():
        ritm.state = I.FULFILLED
        ritm.save(update_fields=["state", "updated_at"])
        activity_record(
            actor=actor,
            verb="requested_item.fulfilled",
            record_type=RECORD_TYPE,
            record_id=request.pk,
            changes={"item": ritm.number, "state": [I.IN_PROGRESS, I.FULFILLED]},
            at=now,
        )
    if not RequestedItem.objects.filter(request=request, state=I.IN_PROGRESS).exists():
        _state_set(actor, request, S.FULFILLED, now)
        _search_set(request)
    else:
        _sla(request.pk)
    return task


@transaction.atomic
def request_cancel(
    *, actor: Actor, request: ServiceRequest, reason: str = "", now: dt.datetime | None = None
) -> ServiceRequest:
    """Cancel a request that is not yet final: its open approvals are skipped, open tasks closed skipped,
    items cancelled. The requester (requested for or opened by) or a technician may cancel; others get
    PermissionDenied (403). Raises InvalidTransition (409) for a fulfilled, rejected or cancelled
    request. ``reason`` is kept in the history and added as a public comment."""
    now = now or timezone.now()
    request = ServiceRequest.objects.select_for_update().get(pk=request.pk)
    if not (actor.is_technician or actor.person_id in (request.requested_for_id, request.opened_by_id)):
        raise PermissionDenied("only the requester or a technician may cancel a request")
    if request.is_final:
        raise InvalidTransition(
            f"cannot cancel {request.number}: it is {request.get_state_display()}",
            current_state=request.state,
            allowed_actions=[],
        )
    _skip(actor, request, Approval.objects.filter(request=request), now, "cancelled")
    tasks = FulfilmentTask.objects.filter(
        requested_item__request=request, state__in=FulfilmentTask.OPEN_STATES
    )
    closed = list(tasks.values_list("number", flat=True))
    tasks.update(state=T.CLOSED_SKIPPED, closed_at=now, updated_at=now)
    fulfilment_tasks_work_set(request=request)
    RequestedItem.objects.filter(request=request).exclude(state=I.FULFILLED).update(
        state=I.CANCELLED, updated_at=now
    )
    _state_set(actor, request, S.CANCELLED, now, reason=reason.strip(), tasks_skipped=closed)
    if reason.strip():
        comment_add(
            actor=actor,
            record_type=RECORD_TYPE,
            record_id=request.pk,
            body=reason.strip(),
            is_work_note=False,
        )
    _search_set(request)
    return request


def request_comment(*, actor: Actor, request: ServiceRequest, body: str, work_note: bool = False) -> Any:
    """Add a public comment (anyone who sees the request) or a work note (technicians only) to a request.

    Raises InvalidInput for an empty body, PermissionDenied for a non-technician's work note."""
    if not body.strip():
        raise InvalidInput("body is required", errors=[{"field": "body", "message": "required"}])
    if work_note:
        _require_technician(actor)
    return comment_add(
        actor=actor, record_type=RECORD_TYPE, record_id=request.pk, body=body.strip(), is_work_note=work_note
    )


def request_allowed_actions(*, actor: Actor, request: ServiceRequest) -> list[str]:
    """``cancel`` when the actor may cancel the request in its state (for pages)."""
    may = actor.is_technician or actor.person_id in (request.requested_for_id, request.opened_by_id)
    return ["cancel"] if may and not request.is_final else []


def approval_may_decide(*, actor: Actor, approval: Approval) -> bool:
    """Whether ``actor`` decides ``approval`` now (it is pending and theirs)."""
    return approval.state == A.PENDING and _may_decide(actor, approval)
