"""REST API for knowledge: /api/v1/t/{tenant}/knowledge/articles. Parse, call a service or selector, return.

Readers (end users and other tenant roles) get only live portal articles and only their published
text; technicians (and the client admin for portal articles) get the working copy and any version.
"""

import datetime as dt
import uuid
from typing import Any, Literal

from django.core.exceptions import ValidationError
from django.http import HttpRequest
from ninja import Field, FilterSchema, Query, Router, Schema, Status
from ninja.pagination import CursorPagination, paginate

from controlplane.api_auth import TenantSlug
from controlplane.http import TenantRequest
from controlplane.problems import InvalidInput
from modules.records.actor import Actor
from modules.records.schemas import ActivityOut, PersonRef

from . import selectors, services
from .models import Article, ArticleVersion

router = Router(tags=["knowledge"])

StateName = Literal["draft", "review", "published", "retired"]
AudienceName = Literal["technicians", "portal"]
Ordering = Literal["-updated_at", "updated_at", "-created_at", "created_at", "number", "-number"]


class ArticleOut(Schema):
    id: uuid.UUID
    number: str
    category: str
    audience: AudienceName
    state: StateName = Field(..., description="readers always see 'published'")
    version: int = Field(..., description="the version whose title and body this is")
    title: str
    body: str = Field(..., description="plain text or Markdown source; clients must show it escaped")
    current_version: int | None = Field(..., description="the working copy's number (null for readers)")
    published_version: int | None = Field(..., description="what readers see; null when not live")
    author: PersonRef | None
    published_at: dt.datetime | None
    retired_at: dt.datetime | None
    view_count: int
    helpful_count: int
    not_helpful_count: int
    created_at: dt.datetime
    updated_at: dt.datetime
    allowed_actions: list[str]


class ArticleListOut(Schema):
    id: uuid.UUID
    number: str
    title: str
    category: str
    audience: AudienceName
    state: StateName = Field(..., alias="shown_state")
    published_at: dt.datetime | None
    updated_at: dt.datetime
    view_count: int
    helpful_count: int
    not_helpful_count: int


class ArticleIn(Schema):
    title: str = Field(..., min_length=1, max_length=services.TITLE_MAX)
    body: str = ""
    category: str = Field("", max_length=services.CATEGORY_MAX)
    audience: AudienceName = "technicians"
    change_note: str = Field("", max_length=services.CHANGE_NOTE_MAX)


class ArticlePatch(Schema):
    title: str | None = Field(None, min_length=1, max_length=services.TITLE_MAX)
    body: str | None = None
    category: str | None = Field(None, max_length=services.CATEGORY_MAX)
    audience: AudienceName | None = None
    change_note: str = Field("", max_length=services.CHANGE_NOTE_MAX)


class ArticleActionIn(Schema):
    action: Literal["submit", "publish", "reject", "retire", "restore"]
    note: str = ""


class ArticleFilters(FilterSchema):
    state: list[StateName] | None = None
    audience: list[AudienceName] | None = None
    category: str = ""
    q: str = ""


class VersionOut(Schema):
    number: int
    title: str
    body: str
    change_note: str
    author: PersonRef | None
    created_at: dt.datetime


class FeedbackIn(Schema):
    helpful: bool
    comment: str = Field("", max_length=2000)


class FeedbackMine(Schema):
    helpful: bool
    comment: str
    version: int
    at: dt.datetime


class FeedbackComment(Schema):
    person: PersonRef
    helpful: bool
    comment: str
    version: int
    at: dt.datetime


class FeedbackSummaryOut(Schema):
    helpful_count: int
    not_helpful_count: int
    mine: FeedbackMine | None
    comments: list[FeedbackComment] = Field(..., description="editors only; empty for readers")


class LinkIn(Schema):
    record_type: str = Field(..., min_length=1, max_length=40, description="e.g. incident, known_error")
    record_id: uuid.UUID
    kind: Literal["documents", "relates_to"] = "documents"


class LinkOut(Schema):
    id: uuid.UUID
    kind: str
    reading: str = Field(..., description="from the article's side: 'documents' or the inverse reading")
    record_type: str
    record_id: uuid.UUID
    number: str = Field(..., description="the other record's number; empty if not visible")
    created_at: dt.datetime


class ArticleCursorPagination(CursorPagination):
    """ninja's cursor pagination with the ordering chosen per request and the UUIDv7 id as tie-breaker."""

    class Input(CursorPagination.Input):
        ordering: Ordering = "-updated_at"

    def paginate_queryset(self, queryset: Any, pagination: Any, request: HttpRequest, **params: Any) -> Any:
        ordering = pagination.ordering
        tie = "-id" if ordering.startswith("-") else "id"
        inner = CursorPagination(
            ordering=(ordering, tie), page_size=self.page_size, max_page_size=self.max_page_size
        )
        try:
            return inner.paginate_queryset(queryset, pagination, request, **params)
        except (ValueError, ValidationError) as exc:
            raise InvalidInput(
                "invalid cursor for this ordering",
                errors=[{"field": "cursor", "message": "start again without a cursor"}],
            ) from exc


def _article_out(actor: Actor, article: Article, version: ArticleVersion) -> dict[str, Any]:
    """The article as ``actor`` may see it, with the text of ``version``."""
    editor = selectors.is_editor(actor)
    current = article.current_version
    published = article.published_version
    return {
        "id": article.pk,
        "number": article.number,
        "category": article.category,
        "audience": article.audience,
        "state": article.state if editor else Article.State.PUBLISHED.value,
        "version": version.number,
        "title": version.title,
        "body": version.body,
        "current_version": current.number if editor and current else None,
        "published_version": published.number if published else None,
        "author": article.author,
        "published_at": article.published_at,
        "retired_at": article.retired_at,
        "view_count": article.view_count,
        "helpful_count": article.helpful_count,
        "not_helpful_count": article.not_helpful_count,
        "created_at": article.created_at,
        "updated_at": article.updated_at,
        "allowed_actions": services.allowed_actions(actor=actor, article=article),
    }


def _summary_out(summary: selectors.FeedbackSummary) -> dict[str, Any]:
    mine = summary.mine
    return {
        "helpful_count": summary.helpful,
        "not_helpful_count": summary.not_helpful,
        "mine": (
            {"helpful": mine.helpful, "comment": mine.comment, "version": mine.version.number, "at": mine.at}
            if mine is not None
            else None
        ),
        "comments": [
            {
                "person": f.person,
                "helpful": f.helpful,
                "comment": f.comment,
                "version": f.version.number,
                "at": f.at,
            }
            for f in summary.comments
        ],
    }


def _link_out(item: selectors.ArticleLink) -> dict[str, Any]:
    return {
        "id": item.link.pk,
        "kind": item.link.kind,
        "reading": item.reading,
        "record_type": item.other_type,
        "record_id": item.other_id,
        "number": item.other_number,
        "created_at": item.link.created_at,
    }


@router.get("/articles", response=list[ArticleListOut], summary="List knowledge articles")
@paginate(ArticleCursorPagination)
def list_articles(request: TenantRequest, tenant: TenantSlug, filters: Query[ArticleFilters]) -> Any:
    return selectors.article_list(actor=request.actor, **filters.dict())


@router.post("/articles", response={201: ArticleOut}, summary="Write an article (draft, version 1)")
def create_article(request: TenantRequest, tenant: TenantSlug, payload: ArticleIn) -> Any:
    actor = request.actor
    article = services.article_create(actor=actor, **payload.dict())
    assert article.current_version is not None
    return Status(201, _article_out(actor, article, article.current_version))


@router.get("/articles/{article_id}", response=ArticleOut, summary="Get an article")
def get_article(
    request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID, version: int | None = None
) -> Any:
    """Readers get the published version (and count a view); editors get the working copy, or version
    ``version``."""
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    shown = selectors.article_version_get(actor=actor, article=article, number=version)
    if shown.pk == article.published_version_id:
        services.article_viewed(actor=actor, article=article)
    return _article_out(actor, article, shown)


@router.patch("/articles/{article_id}", response=ArticleOut, summary="Edit an article (adds a version)")
def edit_article(
    request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID, payload: ArticlePatch
) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    article = services.article_edit(actor=actor, article=article, **payload.dict(exclude_unset=True))
    assert article.current_version is not None
    return _article_out(actor, article, article.current_version)


@router.post("/articles/{article_id}/actions", response=ArticleOut, summary="Change an article's state")
def act_on_article(
    request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID, payload: ArticleActionIn
) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    article = services.article_transition(actor=actor, article=article, **payload.dict())
    return _article_out(actor, article, selectors.article_version_get(actor=actor, article=article))


@router.get("/articles/{article_id}/versions", response=list[VersionOut], summary="Versions, oldest first")
def list_versions(request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    return selectors.article_version_list(actor=actor, article=article)


@router.get("/articles/{article_id}/feedback", response=FeedbackSummaryOut, summary="Feedback counts")
def get_feedback(request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    return _summary_out(selectors.article_feedback_summary(actor=actor, article=article))


@router.post(
    "/articles/{article_id}/feedback", response=FeedbackSummaryOut, summary="Give or replace feedback"
)
def set_feedback(
    request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID, payload: FeedbackIn
) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    services.article_feedback_set(actor=actor, article=article, **payload.dict())
    return _summary_out(selectors.article_feedback_summary(actor=actor, article=article))


@router.get("/articles/{article_id}/links", response=list[LinkOut], summary="Links (technicians)")
def list_links(request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    return [_link_out(item) for item in selectors.article_link_list(actor=actor, article=article)]


@router.post("/articles/{article_id}/links", response={201: LinkOut}, summary="Link a record (technicians)")
def add_link(request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID, payload: LinkIn) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    link = services.article_link(actor=actor, article=article, **payload.dict())
    item = next(i for i in selectors.article_link_list(actor=actor, article=article) if i.link.pk == link.pk)
    return Status(201, _link_out(item))


@router.get(
    "/articles/{article_id}/history", response=list[ActivityOut], summary="Activity history (editors)"
)
def get_history(request: TenantRequest, tenant: TenantSlug, article_id: uuid.UUID) -> Any:
    actor = request.actor
    article = selectors.article_get(actor=actor, article_id=article_id)
    return selectors.article_history(actor=actor, article=article)
