"""Forms shared by the practices' console pages."""

from __future__ import annotations

import uuid
from typing import Any

from django import forms
from django.db.models import Q

from modules.people.selectors import group_list, person_list

from .actor import Actor

# At most this many persons (and groups) are offered at once; typing narrows the list.
ASSIGNEE_OPTIONS = 200


class CommentForm(forms.Form):
    """A comment or, with ``work_note``, an internal work note on a record page (every practice's)."""

    body = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}))
    work_note = forms.BooleanField(required=False)


class AssignForm(forms.Form):
    """Assignment group and assignee of a record (either may be empty). Field ids are ``assign-<name>``.

    A post may choose any of the tenant's active persons and groups as the actor may list them
    (people.selectors); the service decides the rest. What the page offers is narrower, as ServiceNow's
    "Assigned to" does: the members of the chosen assignment group (of any group when none is chosen), the
    actor and the current assignee, narrowed by name with ``q``; groups narrowed by name with ``q``; at
    most ASSIGNEE_OPTIONS of each.
    """

    assignment_group: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="— no group —"
    )
    assigned_to: forms.ModelChoiceField[Any] = forms.ModelChoiceField(
        queryset=None, required=False, empty_label="— nobody —"
    )

    def __init__(self, *args: Any, actor: Actor, q: str = "", **kwargs: Any) -> None:
        kwargs.setdefault("auto_id", "assign-%s")
        super().__init__(*args, **kwargs)
        people, groups = person_list(actor=actor), group_list(actor=actor)
        source = self.data if self.is_bound else self.initial
        keep_person = _pk(source.get("assigned_to"))
        keep_group = _pk(source.get("assignment_group"))
        members = Q(groups=keep_group) if keep_group else Q(groups__isnull=False)
        shown_people = people.filter(members | Q(pk=keep_person) | Q(pk=actor.person_id)).distinct()
        shown_groups = groups
        if q := q.strip():
            shown_people = shown_people.filter(Q(display_name__icontains=q) | Q(pk=keep_person))
            shown_groups = groups.filter(Q(name__icontains=q) | Q(pk=keep_group))
        for name, everything, shown in (
            ("assigned_to", people, shown_people),
            ("assignment_group", groups, shown_groups),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            # The widget keeps the iterator over the offered rows; the field validates against all of them.
            field.queryset = shown[:ASSIGNEE_OPTIONS]
            offered = field.widget.choices
            field.queryset = everything
            field.widget.choices = offered


def _pk(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    if hasattr(value, "pk"):
        return value.pk
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
