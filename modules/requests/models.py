"""Service requests and the service catalog (ITIL 4 service request management). Tenant plane.

The shapes follow ServiceNow's service catalog, which most MSP clients come from: a request (``REQ``)
holds one requested item (``RITM``) per catalog item ordered; each item is fulfilled by catalog tasks
(``SCTASK``) assigned to the item's fulfilment group; approvals (sysapproval_approver) gate fulfilment.
"""

from __future__ import annotations

from django.db import models

from modules.records.models import Record


class CatalogCategory(Record):
    """A heading of the catalog (Hardware, Software, Access ...). ``order`` sorts categories ascending."""

    name = models.CharField(max_length=120, unique=True)
    description = models.TextField(blank=True)
    order = models.IntegerField(default=100)

    class Meta:
        ordering = ["order", "name"]

    def __str__(self) -> str:
        return self.name


class CatalogItem(Record):
    """Something end users can order. ``form_schema`` is a JSON Schema (Draft 2020-12) of the order form,
    type ``object``; its answers are stored on the requested item as ``variables``. Supported field kinds:
    string (text), ``enum`` (choice), number/integer, ``format: date``, ``format: person`` (a person id of
    this tenant) and ``format: ci`` (a CI id the orderer may see); ``required``, ``if``/``then`` and
    ``dependentRequired`` express required and conditional fields."""

    name = models.CharField(max_length=160)
    short_description = models.CharField(max_length=300, blank=True)
    category = models.ForeignKey(CatalogCategory, on_delete=models.PROTECT, related_name="items")
    form_schema = models.JSONField(default=dict)
    fulfilment_group = models.ForeignKey(
        "people.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Calendar hours from submission to the promised delivery (the request's due date).
    expected_delivery_hours = models.PositiveIntegerField(default=72)
    approval_required = models.BooleanField(default=False)
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["category", "active"], name="catalog_item_category")]

    def __str__(self) -> str:
        return self.name


class ApprovalMode(models.TextChoices):
    ONE = "one", "Any one approver decides"
    ALL = "all", "Every approver must approve"


class ApproverRole(models.TextChoices):
    """Roles an approval step can name. ``requester_manager`` is resolved from ``Person.manager`` of the
    person the request is for; the tenant roles are decided by whoever holds the role in this tenant."""

    REQUESTER_MANAGER = "requester_manager", "The requester's manager"
    APPROVER = "approver", "Tenant approvers"
    CLIENT_ADMIN = "client_admin", "Client admins"


class ApprovalStepDefinition(models.Model):
    """One approval step of a catalog item (bigint key). Steps run in ascending ``order``; a step's
    approvers are the union of ``approver_person``, ``approver_role`` and the members of ``approver_group``
    (at least one of them is set)."""

    item = models.ForeignKey(CatalogItem, on_delete=models.CASCADE, related_name="approval_steps")
    order = models.PositiveIntegerField()
    mode = models.CharField(max_length=3, choices=ApprovalMode.choices, default=ApprovalMode.ONE)
    approver_person = models.ForeignKey(
        "people.Person", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approver_role = models.CharField(max_length=30, choices=ApproverRole.choices, blank=True)
    approver_group = models.ForeignKey(
        "people.Group", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["item", "order"]
        constraints = [
            models.UniqueConstraint(fields=["item", "order"], name="uniq_approval_step_order"),
            models.CheckConstraint(
                condition=models.Q(approver_person__isnull=False)
                | ~models.Q(approver_role="")
                | models.Q(approver_group__isnull=False),
                name="approval_step_has_approver",
            ),
        ]


class ServiceRequest(Record):
    """A request (``REQ0000001``) for ``requested_for``, opened by ``opened_by`` (the same person, or a
    technician ordering on their behalf). States follow ITIL's request lifecycle as ServiceNow names it:
    submitted -> pending approval -> approved or rejected -> in progress -> fulfilled, or cancelled."""

    class State(models.TextChoices):
        SUBMITTED = "submitted", "Submitted"
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        IN_PROGRESS = "in_progress", "In progress"
        FULFILLED = "fulfilled", "Fulfilled"
        CANCELLED = "cancelled", "Cancelled"

    FINAL_STATES = (State.REJECTED, State.FULFILLED, State.CANCELLED)

    number = models.CharField(max_length=20, unique=True)
    short_description = models.CharField(max_length=300)
    requested_for = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    opened_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.SUBMITTED)
    opened_at = models.DateTimeField()
    due_at = models.DateTimeField(null=True)
    approved_at = models.DateTimeField(null=True)
    closed_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["-opened_at", "-id"]
        indexes = [
            models.Index(fields=["state", "opened_at"], name="request_state_opened"),
            models.Index(fields=["requested_for", "state"], name="request_for_state"),
            models.Index(fields=["opened_at", "id"], name="request_opened"),
        ]

    def __str__(self) -> str:
        return f"{self.number} {self.short_description}"

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


class RequestedItem(Record):
    """One catalog item ordered in a request (``RITM0000001``), with the validated form answers."""

    class State(models.TextChoices):
        PENDING_APPROVAL = "pending_approval", "Pending approval"
        IN_PROGRESS = "in_progress", "In progress"
        FULFILLED = "fulfilled", "Fulfilled"
        REJECTED = "rejected", "Rejected"
        CANCELLED = "cancelled", "Cancelled"

    number = models.CharField(max_length=20, unique=True)
    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="items")
    catalog_item = models.ForeignKey(CatalogItem, on_delete=models.PROTECT, related_name="+")
    variables = models.JSONField(default=dict)
    quantity = models.PositiveIntegerField(default=1)
    state = models.CharField(max_length=20, choices=State.choices, default=State.PENDING_APPROVAL)

    class Meta:
        ordering = ["number"]


class Approval(Record):
    """One approver's decision in one step of a request (ServiceNow's sysapproval_approver).

    ``step`` is the definition's order; approvals of later steps wait as ``not_requested`` until the
    earlier steps are complete. ``group_key`` ties the approvals made from one step definition of one
    requested item: ``mode`` one is decided by the first decision among them, ``all`` needs each to
    approve. ``approver`` is the person who decides; when it is empty, anyone holding ``approver_role``
    in this tenant decides (a tenant-role step). ``delegated_from`` is the approver before a delegation.
    """

    class State(models.TextChoices):
        NOT_REQUESTED = "not_requested", "Not yet requested"
        PENDING = "pending", "Pending"
        APPROVED = "approved", "Approved"
        REJECTED = "rejected", "Rejected"
        SKIPPED = "skipped", "Skipped"

    request = models.ForeignKey(ServiceRequest, on_delete=models.CASCADE, related_name="approvals")
    requested_item = models.ForeignKey(
        RequestedItem, on_delete=models.CASCADE, null=True, related_name="approvals"
    )
    step = models.PositiveIntegerField()
    group_key = models.CharField(max_length=80)
    mode = models.CharField(max_length=3, choices=ApprovalMode.choices)
    approver = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    approver_role = models.CharField(max_length=30, blank=True)
    via_group = models.ForeignKey("people.Group", on_delete=models.PROTECT, null=True, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.NOT_REQUESTED)
    comment = models.TextField(blank=True)
    decided_at = models.DateTimeField(null=True)
    decided_by = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    delegated_from = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    reminder_count = models.PositiveIntegerField(default=0)
    resent_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["step", "created_at", "id"]
        indexes = [
            models.Index(fields=["approver", "state"], name="approval_approver_state"),
            models.Index(fields=["approver_role", "state"], name="approval_role_state"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(approver__isnull=False) | ~models.Q(approver_role=""),
                name="approval_has_approver",
            ),
        ]


class FulfilmentTask(Record):
    """A catalog task (``SCTASK0000001``) that fulfils a requested item, worked by its assignment group."""

    class State(models.TextChoices):
        OPEN = "open", "Open"
        IN_PROGRESS = "in_progress", "Work in progress"
        CLOSED_COMPLETE = "closed_complete", "Closed complete"
        CLOSED_SKIPPED = "closed_skipped", "Closed skipped"

    OPEN_STATES = (State.OPEN, State.IN_PROGRESS)

    number = models.CharField(max_length=20, unique=True)
    requested_item = models.ForeignKey(RequestedItem, on_delete=models.CASCADE, related_name="tasks")
    short_description = models.CharField(max_length=300)
    assignment_group = models.ForeignKey(
        "people.Group", on_delete=models.PROTECT, null=True, related_name="+"
    )
    assigned_to = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    state = models.CharField(max_length=20, choices=State.choices, default=State.OPEN)
    closed_at = models.DateTimeField(null=True)

    class Meta:
        ordering = ["number"]
        indexes = [models.Index(fields=["assignment_group", "state"], name="task_group_state")]
