"""The console page of a record (incident, problem, change, service request): one way to render it, whole
or (for htmx) its swappable body, and to answer the inline posts on it.

Each practice declares one ``RecordPage``: where its templates and URLs are, how to fetch a record by
number for an actor, and the part of the context that is its own (impact panel, CAB, approvals...). The
rest is the same on every record page and lives here: the timeline, the comment form, the assignment
form, the refused action form, the post/redirect/get after a success and the 4xx page after a refusal.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from django import forms
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from controlplane.http import TenantRequest, form_errors_apply, request_actor
from controlplane.problems import DomainError, InvalidInput

from .actor import Actor
from .forms import AssignForm, CommentForm
from .selectors import timeline_get


@dataclass(frozen=True)
class RecordPage:
    """How one practice's record page is put together.

    ``kind``: the record type as the timeline knows it (``"incident"``, ``"service_request"``).
    ``segment``: the URL segment after ``/t/<tenant>/`` (``"incidents"``); the page is
    ``/t/<tenant>/<segment>/<number>/`` and its inline forms post to ``comments/``, ``assign/`` and
    ``actions/`` below it. ``templates``: the template folder holding ``detail.html`` (the whole page) and
    ``_detail_body.html`` (``#record-body``, what htmx swaps). ``url_name``: the page's URL name, for the
    redirect after a plain post. ``get(actor, number)``: the record the actor may see, else ``Http404``.
    ``context(request, actor, record)``: the practice's own context (the record under its template name,
    ``actions``, panels; ``work_note_default`` when it is not False). ``assignable``: the page has the
    assignment form (technicians only). ``zone(request)``: when given, the timeline and the page are
    rendered with that time zone active. ``reread_refused``: after a refused service call, show the record
    read again rather than the object the service was given (a service that sets fields before it
    refuses, as ``change_transition`` does, must not show them).
    """

    kind: str
    segment: str
    templates: str
    url_name: str
    get: Callable[[Actor, str], Any]
    record_arg: str
    context: Callable[[TenantRequest, Actor, Any], dict[str, Any]]
    assignable: bool = True
    zone: Callable[[TenantRequest], dt.tzinfo] | None = None
    reread_refused: bool = False

    def render(
        self,
        request: TenantRequest,
        actor: Actor,
        record: Any,
        error: DomainError | None = None,
        **refused: Any,
    ) -> HttpResponse:
        """The whole page, or for an htmx request only its body (``#record-body``), with status 200, or
        ``error.status`` (4xx) and ``error`` shown when one is given. ``refused`` is context that shows
        what was refused: the bound form with its errors under its slot (``action_form``,
        ``comment_form``, ``assign_form``) or a practice's own flags (``failed_task``). The timeline is
        oldest first with ``?order=asc``, newest first otherwise."""
        assert request.tenant is not None
        base = f"/t/{request.tenant.slug}/"
        path = f"{base}{self.segment}/{record.number}/"
        context: dict[str, Any] = {
            "is_technician": actor.is_technician,
            "action_form": None,
            "comment_form": None,
            "assign_form": None,
            "work_note_default": False,
            "comment_url": f"{path}comments/",
            "record_path": path,
            "error": error,
        }
        if self.assignable:
            context["assign_url"] = f"{path}assign/"
            if actor.is_technician and "assign_form" not in refused:
                initial = {
                    "assignment_group": record.assignment_group_id,
                    "assigned_to": record.assigned_to_id,
                }
                context["assign_form"] = AssignForm(initial=initial, actor=actor)
        context.update(self.context(request, actor, record))
        context.update(refused)
        action_form = context["action_form"]
        context["action_failed"] = action_form.data.get("action") if action_form is not None else None
        template = f"{self.templates}/_detail_body.html" if request.htmx else f"{self.templates}/detail.html"
        # Times in the page's zone when it has one: the timeline's field values too.
        with timezone.override(self.zone(request)) if self.zone is not None else nullcontext():
            context["timeline"] = timeline_get(
                actor=actor,
                record_type=self.kind,
                record=record,
                order=request.GET.get("order", ""),
                base=base,
            )
            return render(request, template, context, status=error.status if error else 200)

    def done(self, request: TenantRequest, actor: Actor, record: Any, *, reread: bool = True) -> HttpResponse:
        """After a successful inline post: for htmx the fresh body (the record read again, unless
        ``reread`` is False because the caller just did), else a redirect to the page (post/redirect/get)."""
        if request.htmx:
            return self.render(request, actor, self.get(actor, record.number) if reread else record)
        assert request.tenant is not None
        return redirect(self.url_name, tenant=request.tenant.slug, number=record.number)

    def post(
        self,
        request: TenantRequest,
        number: str,
        call: Callable[[Actor, Any], Any],
        *,
        form: forms.Form | None = None,
        slot: str = "",
        done: Callable[[TenantRequest, Actor, Any], HttpResponse] | None = None,
    ) -> HttpResponse:
        """Answer one inline post on record ``number``: validate ``form`` (when given), then run
        ``call(actor, record)``, one service call. Success: ``done(request, actor, record)`` (by default
        ``self.done``). Refused (an invalid form: 422; a ``DomainError``, its messages put next to the
        form's fields by ``form_errors_apply``: its status) the page or its body with the error, and the
        form under ``slot`` (``action_form``, ``comment_form``, ``assign_form``; empty: a form the page
        does not show again). An unknown or invisible record: ``Http404``."""
        actor = request_actor(request)
        record = self.get(actor, number)
        refused = {slot: form} if form is not None and slot else {}
        if form is not None and not form.is_valid():
            return self.render(
                request, actor, record, InvalidInput("check the highlighted fields"), **refused
            )
        try:
            call(actor, record)
        except DomainError as exc:
            if form is not None:
                form_errors_apply(form, exc)
            shown = self.get(actor, number) if self.reread_refused else record
            return self.render(request, actor, shown, exc, **refused)
        return (done or self.done)(request, actor, record)

    def form_post(
        self,
        request: TenantRequest,
        number: str,
        form: forms.Form,
        service: Callable[..., Any],
        *,
        slot: str = "",
        done: Callable[[TenantRequest, Actor, Any], HttpResponse] | None = None,
    ) -> HttpResponse:
        """``post`` with the call ``service(actor=, <record_arg>=record, **form.cleaned_data)``: the form's
        fields are the service's keywords."""

        def call(actor: Actor, record: Any) -> Any:
            return service(actor=actor, **{self.record_arg: record}, **form.cleaned_data)

        return self.post(request, number, call, form=form, slot=slot, done=done)

    def action_post(
        self, request: TenantRequest, number: str, form: forms.Form, service: Callable[..., Any]
    ) -> HttpResponse:
        """A state action from one of the page's per-action forms: ``form``, the practice's action form
        bound to the post, and ``service``, its transition service (see ``form_post``). Refused: the
        message next to the action's fields, 4xx, nothing written."""
        return self.form_post(request, number, form, service, slot="action_form")

    def assign_post(self, request: TenantRequest, number: str, service: Callable[..., Any]) -> HttpResponse:
        """The assignment group and/or assignee (records.forms.AssignForm) set by ``service``, the
        practice's update service (see ``form_post``). Refused: errors next to the fields, 4xx."""
        form = AssignForm(request.POST, actor=request_actor(request))
        return self.form_post(request, number, form, service, slot="assign_form")

    def comment_post(
        self,
        request: TenantRequest,
        number: str,
        service: Callable[..., Any],
        *,
        done: Callable[[TenantRequest, Actor, Any], HttpResponse] | None = None,
    ) -> HttpResponse:
        """A comment or (technicians) a work note (records.forms.CommentForm: ``body``, ``work_note``)
        written by ``service``, the practice's comment service (see ``form_post``; it decides who may write
        work notes). Refused: the message next to the text, 4xx."""
        return self.form_post(
            request, number, CommentForm(request.POST), service, slot="comment_form", done=done
        )
