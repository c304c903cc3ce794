"""Knowledge reads, always scoped to what the actor may see.

Who sees what (ITIL 4 knowledge management; ServiceNow knowledge bases with "can read" / "can contribute"
user criteria; Jira Service Management's internal versus customer-visible articles):

- technicians (provider staff) see every article of the tenant they entered, in every state;
- the tenant's ``client_admin`` sees every portal article, in every state, because they may publish
  portal articles (services.article_publish); technician-only articles are invisible to them;
- every other tenant role (end users, approvers, CAB members) is a *reader*: they see only live portal
  articles (a published version exists), and only the published version's text, never a draft.

An article the actor may not see answers NotFound, exactly like a missing id.
"""

from __future__ import annotations

import datetime as dt
import difflib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ValidationError
from django.db.models import CharField, Count, F, Q, QuerySet, Value

from controlplane.permissions import P
from controlplane.problems import DomainError, NotFound, PermissionDenied
from modules.records.actor import Actor
from modules.records.models import ActivityEntry, RecordLink
from modules.records.registry import kind_get, record_get
from modules.records.selectors import activity_list, link_list

from .models import Article, ArticleFeedback, ArticleVersion

Audience = Article.Audience
State = Article.State


def is_editor(actor: Actor) -> bool:
    """Technicians and the tenant's client admin work on articles (see drafts); everyone else reads."""
    return actor.may(P.KNOWLEDGE_READ_INTERNAL)


def article_visible(*, actor: Actor) -> QuerySet[Article]:
    """The articles the actor may see (module docstring), with both version pointers joined."""
    qs = Article.objects.select_related("current_version", "published_version", "author")
    if actor.is_technician:
        return qs
    if actor.may(P.KNOWLEDGE_READ_INTERNAL):  # drafts and reviews of portal articles too
        return qs.filter(audience=Audience.PORTAL)
    return qs.filter(audience=Audience.PORTAL, published_version__isnull=False)


def article_list(
    *,
    actor: Actor,
    state: Iterable[str] | None = None,
    audience: Iterable[str] | None = None,
    category: str = "",
    q: str = "",
    updated_after: dt.datetime | None = None,
) -> QuerySet[Article]:
    """Articles the actor may see, filtered, unordered (callers order; pagination does).

    Each row is annotated with ``title`` and ``shown_state``: the working copy's title and state for
    editors, the published title and ``published`` for readers. ``state`` filters the working copy's state for editors; readers see every visible article
    as ``published`` (they only ever see published text). ``category`` matches exactly (case-insensitive);
    ``q`` matches the number exactly or words of the title or body the actor may read (case-insensitive).
    """
    editor = is_editor(actor)
    prefix = "current_version" if editor else "published_version"
    qs = article_visible(actor=actor).annotate(
        title=F(f"{prefix}__title"),
        shown_state=F("state") if editor else Value(State.PUBLISHED.value, output_field=CharField()),
    )
    states = list(state or [])
    if states:
        if editor:
            qs = qs.filter(state__in=states)
        elif State.PUBLISHED not in states:
            qs = qs.none()
    if audience:
        qs = qs.filter(audience__in=list(audience))
    if category.strip():
        qs = qs.filter(category__iexact=category.strip())
    if updated_after:
        qs = qs.filter(updated_at__gte=updated_after)
    if q.strip():
        text = q.strip()
        qs = qs.filter(
            Q(number__iexact=text)
            | Q(**{f"{prefix}__title__icontains": text})
            | Q(**{f"{prefix}__body__icontains": text})
        )
    return qs


def article_get(*, actor: Actor, article_id: uuid.UUID | str) -> Article:
    """One article the actor may see. Raises NotFound for a missing, invisible or malformed id alike.
    This is the ``article`` record kind's selector (modules.records.registry)."""
    try:
        return article_visible(actor=actor).get(pk=article_id)
    except (Article.DoesNotExist, ValidationError, ValueError, TypeError) as exc:
        raise NotFound("no such article") from exc


def article_get_by_number(*, actor: Actor, number: str) -> Article:
    """One article by its number (``KB0000001``); NotFound as article_get."""
    try:
        return article_visible(actor=actor).get(number=number)
    except Article.DoesNotExist as exc:
        raise NotFound("no such article") from exc


def article_version_get(*, actor: Actor, article: Article, number: int | None = None) -> ArticleVersion:
    """The version of ``article`` to show the actor.

    Readers always get the published version (asking for another number is NotFound, as if it did not
    exist). Editors get version ``number``, or by default the working copy (``current_version``).
    Raises NotFound for a version that does not exist or that the actor may not read.
    """
    if not is_editor(actor):
        version = article.published_version
        if version is None or (number is not None and number != version.number):
            raise NotFound("no such article version")
        return version
    if number is None:
        if article.current_version is None:
            raise NotFound("no such article version")
        return article.current_version
    found = ArticleVersion.objects.filter(article=article, number=number).select_related("author").first()
    if found is None:
        raise NotFound("no such article version")
    return found


def article_version_list(*, actor: Actor, article: Article) -> QuerySet[ArticleVersion]:
    """Versions of an article, oldest first: all of them for editors, only the published one for
    readers (whose article_get already guaranteed there is one)."""
    qs = ArticleVersion.objects.filter(article=article).select_related("author").order_by("number")
    if is_editor(actor):
        return qs
    if article.published_version_id is None:
        return qs.none()
    return qs.filter(pk=article.published_version_id)


def article_version_diff(*, actor: Actor, article: Article, old: int, new: int) -> list[str]:
    """A unified diff (difflib, lines without trailing newlines) of title and body from version ``old``
    to version ``new``. Editors only (PermissionDenied otherwise); NotFound for an unknown version."""
    if not is_editor(actor):
        raise PermissionDenied("only technicians compare versions")
    before = article_version_get(actor=actor, article=article, number=old)
    after = article_version_get(actor=actor, article=article, number=new)

    def lines(version: ArticleVersion) -> list[str]:
        return [f"# {version.title}", "", *version.body.splitlines()]

    return list(
        difflib.unified_diff(
            lines(before), lines(after), fromfile=f"v{old}", tofile=f"v{new}", lineterm="", n=3
        )
    )


@dataclass(frozen=True)
class FeedbackSummary:
    """Feedback counts (from the feedback rows), the actor's own verdict, and for editors the comments."""

    helpful: int
    not_helpful: int
    mine: ArticleFeedback | None
    comments: list[ArticleFeedback]

    @property
    def total(self) -> int:
        return self.helpful + self.not_helpful


def article_feedback_summary(*, actor: Actor, article: Article) -> FeedbackSummary:
    """Helpful / not helpful counts of an article, counted from the feedback rows (one per person), the
    actor's own feedback, and the comments (editors only; readers see counts and their own)."""
    rows = ArticleFeedback.objects.filter(article=article)
    counts = rows.aggregate(yes=Count("id", filter=Q(helpful=True)), no=Count("id", filter=Q(helpful=False)))
    mine = rows.filter(person_id=actor.person_id).first() if actor.person_id else None
    comments: list[ArticleFeedback] = []
    if is_editor(actor):
        comments = list(
            rows.exclude(comment="").select_related("person", "version").order_by("-at", "-id")[:50]
        )
    return FeedbackSummary(helpful=counts["yes"], not_helpful=counts["no"], mine=mine, comments=comments)


def article_history(*, actor: Actor, article: Article) -> QuerySet[ActivityEntry]:
    """The article's activity history, oldest first. Editors only: entries carry draft titles, which
    readers must never see (PermissionDenied for readers)."""
    if not is_editor(actor):
        raise PermissionDenied("only technicians see an article's history")
    return activity_list(actor=actor, record_id=article.pk)


@dataclass(frozen=True)
class ArticleLink:
    """A link seen from the article: ``reading`` is the phrase from the article's side ("documents" or,
    for a link pointing at the article, the inverse reading), ``other_*`` the record at the other end
    (``other_number`` and ``other_path``, the console path below ``/t/<tenant>/``, empty if the actor
    may not see it)."""

    link: RecordLink
    reading: str
    other_type: str
    other_id: uuid.UUID
    other_number: str
    other_path: str = ""


def article_link_list(*, actor: Actor, article: Article) -> list[ArticleLink]:
    """Links from and to an article, oldest first. Technicians only see links (modules.records rule);
    others get an empty list."""
    out = []
    for link in link_list(actor=actor, record_id=article.pk):
        outgoing = link.source_id == article.pk
        other_type = link.target_type if outgoing else link.source_type
        other_id = link.target_id if outgoing else link.source_id
        reading = link.get_kind_display() if outgoing else RecordLink.INVERSE[link.kind]
        number = path = ""
        try:
            other: Any = record_get(actor=actor, record_type=other_type, record_id=other_id)
            number = str(getattr(other, "number", ""))
            path = kind_get(other_type).console_path.format(**vars(other))
        except DomainError:  # a kind unregistered since, or a record the actor may not see
            pass
        except (KeyError, IndexError, AttributeError):  # a console path naming an attribute it lacks
            path = ""
        out.append(
            ArticleLink(
                link=link,
                reading=reading,
                other_type=other_type,
                other_id=other_id,
                other_number=number,
                other_path=path,
            )
        )
    return out


def article_portal_list(*, actor: Actor, q: str = "") -> QuerySet[Article]:
    """Live portal articles, as the branded portal lists them to anyone in the tenant (client admins
    included: the portal shows only published text, never a draft). Each row has ``published_version``
    joined. ``q`` is split into words; every word must appear in the published title or body
    (case-insensitive), or ``q`` equals the number. Unordered."""
    qs = article_visible(actor=actor).filter(audience=Audience.PORTAL, published_version__isnull=False)
    words = q.split()
    if words:
        match = Q()
        for word in words[:8]:
            match &= Q(published_version__title__icontains=word) | Q(published_version__body__icontains=word)
        qs = qs.filter(match | Q(number__iexact=q.strip()))
    return qs


def article_portal_get(*, actor: Actor, number: str) -> Article:
    """One live portal article by number, as the portal shows it (published version joined). NotFound
    for a missing, technician-only, unpublished or retired article alike."""
    found = article_portal_list(actor=actor).filter(number=number).first()
    if found is None:
        raise NotFound("no such article")
    return found
