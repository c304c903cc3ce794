"""The technician's queue page on the console host (public schema): /queue/."""

from __future__ import annotations

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse

from controlplane.accounts.models import User
from controlplane.http import htmx_render
from controlplane.problems import DomainError

from . import selectors


class QueueFilterForm(forms.Form):
    assigned_to_me = forms.BooleanField(required=False, label="Assigned to me")
    my_groups = forms.BooleanField(required=False, label="My groups")
    unassigned = forms.BooleanField(required=False, label="Unassigned")
    breached = forms.BooleanField(required=False, label="Breached")
    due_within_hours = forms.IntegerField(
        required=False, min_value=1, max_value=selectors.MAX_DUE_WITHIN_HOURS, label="Due within (hours)"
    )
    tenant = forms.ChoiceField(required=False, label="Client")
    record_type = forms.ChoiceField(
        required=False,
        label="Type",
        choices=[("", "All types"), *selectors.RECORD_LABELS.items()],
    )
    cursor = forms.CharField(required=False, widget=forms.HiddenInput)


@login_required
def queue(request: HttpRequest) -> HttpResponse:
    """All open records of the clients this user may enter, next SLA deadline first, 50 a page. Each row
    links to the record's console page in its tenant (the routing middleware checks access there).
    Filters are a plain GET form; htmx requests get only the rows."""
    user = request.user
    assert isinstance(user, User)
    form = QueueFilterForm(request.GET or None)
    tenants = list(selectors.queue_filters_valid_tenants(user=user).values_list("slug", "name"))
    form.fields["tenant"].choices = [("", "All clients"), *tenants]  # type: ignore[attr-defined]
    page = None
    error = ""
    status = 422 if form.is_bound and not form.is_valid() else 200
    if status == 200:
        data = form.cleaned_data if form.is_bound else {}
        try:
            page = selectors.workindex_queue(
                user=user,
                assigned_to_me=data.get("assigned_to_me", False),
                my_groups=data.get("my_groups", False),
                unassigned=data.get("unassigned", False),
                breached=data.get("breached", False),
                due_within_hours=data.get("due_within_hours"),
                tenant=data.get("tenant") or None,
                record_type=data.get("record_type") or None,
                cursor=data.get("cursor") or None,
            )
        except DomainError as exc:
            error, status = exc.detail, exc.status
    query = request.GET.copy()
    query.pop("cursor", None)
    context = {"form": form, "page": page, "error": error, "query": query.urlencode(), "user_id": user.pk}
    return htmx_render(
        request,
        full="workindex/queue.html",
        partial="workindex/_queue_rows.html",
        context=context,
        status=status,
    )
