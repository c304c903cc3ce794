"""Console pages for knowledge: /t/<tenant>/knowledge/... Entry points: parse a form, call a service or
selector. The routing middleware has resolved the tenant and set ``request.actor``. Readers (end users)
reach the same pages and see only live portal articles' published text."""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import PermissionDenied as Forbidden
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from controlplane.http import TenantRequest, form_errors_apply, htmx_render, request_actor
from controlplane.problems import DomainError, NotFound
from modules.records.actor import Actor
from modules.records.listing import (
    WITHIN_CHOICES,
    Column,
    ListFilterForm,
    ListSpec,
    listing_build,
    saved_view_redirect,
    within_since,
)
from modules.records.registry import kind_names

from . import selectors, services
from .models import Article


def _article(actor: Actor, number: str) -> Article:
    try:
        return selectors.article_get_by_number(actor=actor, number=number)
    except NotFound as exc:
        raise Http404(str(exc)) from exc


class ArticleFilterForm(ListFilterForm):
    """The article list's filters (GET; every field optional, see modules.records.listing)."""

    state = forms.MultipleChoiceField(choices=Article.State.choices, required=False)
    audience = forms.MultipleChoiceField(choices=Article.Audience.choices, required=False)
    category = forms.CharField(required=False, max_length=100)
    updated = forms.ChoiceField(choices=WITHIN_CHOICES, required=False, label="Updated within")


ARTICLE_LIST = ListSpec(
    name="articles",
    target="article-table",
    columns=(
        Column("number", "Number", "number"),
        Column("title", "Title", "title"),
        Column("category", "Category", "category"),
        Column("audience", "Audience", "audience"),
        Column("state", "State", "shown_state"),
        Column("views", "Views", "view_count", descending_first=True),
        Column("helpful", "Helpful", "helpful_count", descending_first=True),
        Column("author", "Author", "author__display_name"),
        Column("updated", "Updated", "updated_at", descending_first=True),
    ),
    default_sort="-updated",
)


class ArticleForm(forms.Form):
    title = forms.CharField(max_length=services.TITLE_MAX)
    body = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 14}), required=False, help_text="Plain text or Markdown."
    )
    category = forms.CharField(max_length=services.CATEGORY_MAX, required=False)
    audience = forms.ChoiceField(choices=Article.Audience.choices, initial=Article.Audience.TECHNICIANS)
    change_note = forms.CharField(max_length=services.CHANGE_NOTE_MAX, required=False)


class ActionForm(forms.Form):
    action = forms.ChoiceField(choices=[(a, a) for a in services.TRANSITIONS])
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class FeedbackForm(forms.Form):
    helpful = forms.TypedChoiceField(choices=[("yes", "Yes"), ("no", "No")], coerce=lambda v: v == "yes")
    comment = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}), required=False)


class LinkForm(forms.Form):
    record_type = forms.ChoiceField(choices=())
    record_id = forms.UUIDField()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["record_type"].choices = [(k, k) for k in kind_names() if k != services.RECORD_TYPE]  # type: ignore[attr-defined]


def article_list(request: TenantRequest, tenant: str) -> HttpResponse:
    """Articles the actor may see: filters, sorting, saved views and pages from the query string (see
    modules.records.listing); most recently updated first by default. htmx gets the table."""
    actor = request_actor(request)
    if (applied := saved_view_redirect(request=request, actor=actor, spec=ARTICLE_LIST)) is not None:
        return applied
    form = ArticleFilterForm(request.GET or None)
    data = form.cleaned()
    filters: dict[str, Any] = {
        "state": data.get("state"),
        "audience": data.get("audience"),
        "category": data.get("category", ""),
        "q": data.get("q", ""),
        "updated_after": within_since(data.get("updated", "")),
    }
    qs = selectors.article_list(actor=actor, **filters)
    listing = listing_build(request=request, actor=actor, spec=ARTICLE_LIST, qs=qs)
    context = {"form": form, "listing": listing, "page": listing.page, "may_write": actor.is_technician}
    return htmx_render(request, full="knowledge/list.html", partial="knowledge/_table.html", context=context)


def article_detail(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """The article's text (readers: the published version; editors: the working copy or ``?version=n``),
    versions with a diff (``?old=n&new=m``), feedback, links, history and actions."""
    actor = request_actor(request)
    article = _article(actor, number)
    return _render_detail(request, actor, article)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _render_detail(
    request: TenantRequest,
    actor: Actor,
    article: Article,
    error: DomainError | None = None,
    *,
    feedback_form: FeedbackForm | None = None,
    link_form: LinkForm | None = None,
) -> HttpResponse:
    try:
        shown = selectors.article_version_get(
            actor=actor, article=article, number=_int(request.GET.get("version"))
        )
    except NotFound as exc:
        raise Http404(str(exc)) from exc
    if request.method == "GET" and shown.pk == article.published_version_id:
        services.article_viewed(actor=actor, article=article)
    editor = selectors.is_editor(actor)
    versions = list(selectors.article_version_list(actor=actor, article=article))
    diff: list[str] = []
    old, new = _int(request.GET.get("old")), _int(request.GET.get("new"))
    if editor and old and new:
        try:
            diff = selectors.article_version_diff(actor=actor, article=article, old=old, new=new)
        except NotFound as exc:
            raise Http404(str(exc)) from exc
    context = {
        "article": article,
        "shown": shown,
        "editor": editor,
        "state": article.get_state_display() if editor else Article.State.PUBLISHED.label,
        "versions": versions,
        "diff": diff,
        "diff_old": old,
        "diff_new": new,
        "feedback": selectors.article_feedback_summary(actor=actor, article=article),
        "feedback_form": feedback_form or FeedbackForm(),
        "link_form": link_form or LinkForm(),
        "history": selectors.article_history(actor=actor, article=article) if editor else [],
        "actions": services.allowed_actions(actor=actor, article=article),
        "may_write": actor.is_technician,
        "error": error,
    }
    return render(request, "knowledge/detail.html", context, status=error.status if error else 200)


def _require_writer(actor: Actor) -> None:
    """The forms show working copies (drafts): technicians only, a plain 403 page for anyone else."""
    if not actor.is_technician:
        raise Forbidden("only technicians write articles")


def article_create(request: TenantRequest, tenant: str) -> HttpResponse:
    actor = request_actor(request)
    _require_writer(actor)
    form = ArticleForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            article = services.article_create(actor=actor, **form.cleaned_data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("article_detail", tenant=tenant, number=article.number)
    return render(request, "knowledge/form.html", {"form": form, "article": None}, status=status)


def article_edit(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    """Edit the working copy: a changed title or body adds a version."""
    actor = request_actor(request)
    article = _article(actor, number)
    _require_writer(actor)
    current = article.current_version
    assert current is not None
    initial = {
        "title": current.title,
        "body": current.body,
        "category": article.category,
        "audience": article.audience,
    }
    form = ArticleForm(request.POST or None, initial=initial)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            services.article_edit(actor=actor, article=article, **form.cleaned_data)
        except DomainError as exc:
            form_errors_apply(form, exc)
            status = exc.status
        else:
            return redirect("article_detail", tenant=tenant, number=article.number)
    return render(request, "knowledge/form.html", {"form": form, "article": article}, status=status)


@require_POST
def article_action(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    article = _article(actor, number)
    form = ActionForm(request.POST)
    if form.is_valid():
        try:
            services.article_transition(actor=actor, article=article, **form.cleaned_data)
        except DomainError as exc:
            return _render_detail(request, actor, article, exc)
    return redirect("article_detail", tenant=tenant, number=article.number)


@require_POST
def article_feedback(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    article = _article(actor, number)
    form = FeedbackForm(request.POST)
    if form.is_valid():
        try:
            services.article_feedback_set(actor=actor, article=article, **form.cleaned_data)
        except DomainError as exc:
            return _render_detail(request, actor, article, exc, feedback_form=form)
    return redirect("article_detail", tenant=tenant, number=article.number)


@require_POST
def article_link_add(request: TenantRequest, tenant: str, number: str) -> HttpResponse:
    actor = request_actor(request)
    article = _article(actor, number)
    form = LinkForm(request.POST)
    if form.is_valid():
        try:
            services.article_link(actor=actor, article=article, **form.cleaned_data)
        except DomainError as exc:
            return _render_detail(request, actor, article, exc, link_form=form)
    return redirect("article_detail", tenant=tenant, number=article.number)
