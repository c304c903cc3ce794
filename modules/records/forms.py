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
    """Assignment group and assignee of a record (either may be empty). Choices are the tenant's active
    persons and groups as the actor may list them (people.selectors); ``q`` narrows what is shown (by
    name, the current choice always kept), never what a post may choose. Field ids are ``assign-<name>``.
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
        q = q.strip()
        people, groups = person_list(actor=actor), group_list(actor=actor)
        chosen = {
            name: self.data.get(name) or self.initial.get(name)
            for name in ("assignment_group", "assigned_to")
        }
        if q:
            keep_person = _pk(chosen["assigned_to"])
            keep_group = _pk(chosen["assignment_group"])
            people = people.filter(Q(display_name__icontains=q) | Q(pk=keep_person))
            groups = groups.filter(Q(name__icontains=q) | Q(pk=keep_group))
        for name, qs in (("assigned_to", people), ("assignment_group", groups)):
            field = self.fields[name]
            assert isinstance(field, forms.ModelChoiceField)
            field.queryset = qs if self.is_bound and not q else qs[:ASSIGNEE_OPTIONS]


def _pk(value: Any) -> uuid.UUID | None:
    if value is None or isinstance(value, uuid.UUID):
        return value
    if hasattr(value, "pk"):
        return value.pk
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
