"""Knowledge writes. Keyword-only, one transaction each, an activity entry for every change.

Rules (ITIL 4 knowledge management; ServiceNow's knowledge workflow and article versioning):

- technicians write articles (create, edit), submit them for review, publish, reject, retire and restore;
- the tenant's ``client_admin`` may publish (and send back, i.e. reject) portal articles: the client
  owns what its own staff read on the portal;
- states: draft -> review -> published -> retired -> (restore) draft; review -> (reject) draft; admins
  (provider owner/admin, client_admin, system) may publish a draft directly, skipping review;
- every edit of the title or body adds a version; editing an article under review or published returns
  it to draft, while ``published_version`` keeps what readers see until the next publish;
- retiring withdraws the published version (``published_version`` = NULL): readers no longer find it.
  A published article whose new version is still a draft or under review may be retired too;
- readers give feedback (helpful or not, one verdict per person per article, replaced when given again).

Every change also rewrites the article's search document (modules.records.services.search_document_set):
a live article is indexed with its *published* text, visible to the portal when its audience is portal
and to technicians otherwise; an article that is not live is indexed with its working copy, visible to
technicians only. So readers never find draft text.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.db.models import F, Max
from django.utils import timezone

from controlplane.permissions import P
from controlplane.problems import Conflict, InvalidInput, InvalidTransition, NotFound, PermissionDenied
from modules.records.actor import Actor
from modules.records.models import RecordLink, SearchDocument
from modules.records.services import activity_record, link_create, number_next, search_document_set

from .models import Article, ArticleFeedback, ArticleVersion
from .selectors import article_visible

RECORD_TYPE = "article"
EDITABLE_FIELDS = ("title", "body", "category", "audience")
TITLE_MAX = 200
CATEGORY_MAX = 100
CHANGE_NOTE_MAX = 300
S = Article.State


class ArticleNotEditable(Conflict):
    slug = "article-not-editable"
    title = "Retired articles cannot be edited; restore the article first"


class ArticleNotPublished(Conflict):
    slug = "article-not-published"
    title = "Only published articles take feedback"


def _require_technician(actor: Actor) -> None:
    if not actor.is_technician:
        raise PermissionDenied("only technicians may do this")


def _require_readable(actor: Actor, article: Article) -> None:
    """NotFound (as for a missing id) unless the actor may see the article."""
    if not article_visible(actor=actor).filter(pk=article.pk).exists():
        raise NotFound("no such article")


def _clean(changes: dict[str, Any]) -> dict[str, Any]:
    """Validate edited fields; raise InvalidInput naming each bad field."""
    errors = []
    unknown = sorted(set(changes) - set(EDITABLE_FIELDS))
    errors += [{"field": f, "message": "not editable"} for f in unknown]
    errors += [
        {"field": f, "message": "cannot be null"}
        for f, value in sorted(changes.items())
        if value is None and f in EDITABLE_FIELDS
    ]
    out = {f: v for f, v in changes.items() if f in EDITABLE_FIELDS and v is not None}
    if "title" in out:
        out["title"] = str(out["title"]).strip()
        if not out["title"]:
            errors.append({"field": "title", "message": "required"})
        elif len(out["title"]) > TITLE_MAX:
            errors.append({"field": "title", "message": f"at most {TITLE_MAX} characters"})
    if "category" in out:
        out["category"] = str(out["category"]).strip()
        if len(out["category"]) > CATEGORY_MAX:
            errors.append({"field": "category", "message": f"at most {CATEGORY_MAX} characters"})
    if "audience" in out and out["audience"] not in Article.Audience.values:
        errors.append({"field": "audience", "message": f"one of {', '.join(Article.Audience.values)}"})
    if errors:
        raise InvalidInput("invalid article", errors=errors)
    return out


def _check_note(change_note: str) -> str:
    if len(change_note.strip()) > CHANGE_NOTE_MAX:
        raise InvalidInput(
            "change note too long",
            errors=[{"field": "change_note", "message": f"at most {CHANGE_NOTE_MAX} characters"}],
        )
    return change_note.strip()


def _index(article: Article) -> None:
    """Rewrite the article's search document (module docstring: readers never find draft text)."""
    live = article.published_version
    if live is not None:
        version = live
        state = S.PUBLISHED.value
        portal = article.audience == Article.Audience.PORTAL
        visibility = SearchDocument.Visibility.PORTAL if portal else SearchDocument.Visibility.TECHNICIANS
    else:
        assert article.current_version is not None
        version, state, visibility = (
            article.current_version,
            article.state,
            SearchDocument.Visibility.TECHNICIANS,
        )
    search_document_set(
        record_type=RECORD_TYPE,
        record_id=article.pk,
        number=article.number,
        title=version.title,
        body=version.body,
        state=state,
        visibility=visibility,
    )


def _locked(article: Article) -> Article:
    return (
        Article.objects.select_for_update(of=("self",))
        .select_related("current_version", "published_version")
        .get(pk=article.pk)
    )


@transaction.atomic
def article_create(
    *,
    actor: Actor,
    title: str,
    body: str = "",
    category: str = "",
    audience: str = Article.Audience.TECHNICIANS,
    change_note: str = "",
) -> Article:
    """Write a new article (state draft) with the next ``KB`` number of this tenant and its version 1.

    ``audience`` is ``technicians`` (provider staff only) or ``portal`` (the client's staff once it is
    published). Technicians only (PermissionDenied). Raises InvalidInput naming a bad field (empty or
    over-long title, unknown audience); nothing is written on refusal.
    """
    _require_technician(actor)
    fields = _clean({"title": title, "body": body, "category": category, "audience": audience})
    note = _check_note(change_note)
    article = Article.objects.create(
        number=number_next(prefix="KB"),
        category=fields["category"],
        audience=fields["audience"],
        state=S.DRAFT,
        author=actor.person,
    )
    version = ArticleVersion.objects.create(
        article=article,
        number=1,
        title=fields["title"],
        body=fields["body"],
        change_note=note,
        author=actor.person,
    )
    article.current_version = version
    article.save(update_fields=["current_version", "updated_at"])
    activity_record(
        actor=actor,
        verb="article.created",
        record_type=RECORD_TYPE,
        record_id=article.pk,
        changes={
            "title": [None, version.title],
            "category": [None, article.category],
            "audience": [None, article.audience],
            "state": [None, article.state],
            "version": [None, 1],
        },
    )
    _index(article)
    return article


@transaction.atomic
def article_edit(*, actor: Actor, article: Article, change_note: str = "", **changes: Any) -> Article:
    """Change an article. ``changes`` keys are among title, body, category, audience.

    A changed title or body adds a version (number = highest + 1) which becomes the working copy; an
    article under review or published returns to draft, and readers keep the published version until
    the next publish (ServiceNow article versioning). Category and audience apply at once. Nothing
    changed: nothing is written. Technicians only (PermissionDenied); ArticleNotEditable (409) for a
    retired article; InvalidInput naming bad fields (unknown field, null, empty title, bad audience).
    """
    _require_technician(actor)
    fields = _clean(changes)
    note = _check_note(change_note)
    article = _locked(article)
    if article.state == S.RETIRED:
        raise ArticleNotEditable(f"{article.number} is retired")
    current = article.current_version
    assert current is not None
    diff: dict[str, list[Any]] = {}
    for field in ("category", "audience"):
        if field in fields and fields[field] != getattr(article, field):
            diff[field] = [getattr(article, field), fields[field]]
            setattr(article, field, fields[field])
    title = fields.get("title", current.title)
    body = fields.get("body", current.body)
    if title != current.title or body != current.body:
        highest = ArticleVersion.objects.filter(article=article).aggregate(n=Max("number"))["n"] or 0
        version = ArticleVersion.objects.create(
            article=article, number=highest + 1, title=title, body=body, change_note=note, author=actor.person
        )
        diff["version"] = [current.number, version.number]
        if title != current.title:
            diff["title"] = [current.title, title]
        if body != current.body:
            diff["body"] = ["(changed)", "(changed)"]
        article.current_version = version
        if article.state != S.DRAFT:
            diff["state"] = [article.state, S.DRAFT.value]
            article.state = S.DRAFT
    if not diff:
        return article
    article.save()
    activity_record(
        actor=actor, verb="article.edited", record_type=RECORD_TYPE, record_id=article.pk, changes=diff
    )
    _index(article)
    return article


@dataclass(frozen=True)
class Transition:
    action: str
    target: str
    verb: str


TRANSITIONS = {
    t.action: t
    for t in (
        Transition("submit", S.REVIEW, "article.submitted"),
        Transition("publish", S.PUBLISHED, "article.published"),
        Transition("reject", S.DRAFT, "article.rejected"),
        Transition("retire", S.RETIRED, "article.retired"),
        Transition("restore", S.DRAFT, "article.restored"),
    )
}


def _may(actor: Actor, article: Article, action: str) -> bool:
    """Whether the actor's role may take ``action`` on this article at all (whatever its state)."""
    if actor.is_technician:
        return True
    return (
        action in ("publish", "reject")
        and actor.may(P.KNOWLEDGE_PUBLISH)
        and article.audience == Article.Audience.PORTAL
    )


def _sources(actor: Actor, article: Article, action: str) -> tuple[str, ...]:
    """The states from which the actor may take ``action`` on this article."""
    if action == "submit":
        return (S.DRAFT,)
    if action == "publish":
        return (S.REVIEW, S.DRAFT) if actor.may(P.CONFIG_MANAGE) else (S.REVIEW,)
    if action == "reject":
        return (S.REVIEW,)
    if action == "retire":
        return (S.PUBLISHED, S.DRAFT, S.REVIEW) if article.is_live else (S.PUBLISHED,)
    if action == "restore":
        return (S.RETIRED,)
    return ()


def allowed_actions(*, actor: Actor, article: Article) -> list[str]:
    """The actions the actor may take on the article in its current state, in workflow order."""
    return [
        a for a in TRANSITIONS if _may(actor, article, a) and article.state in _sources(actor, article, a)
    ]


@transaction.atomic
def article_transition(*, actor: Actor, article: Article, action: str, note: str = "") -> Article:
    """Apply a workflow action: submit, publish, reject, retire or restore (module docstring).

    ``note`` (optional, e.g. why a review was rejected) is kept in the activity entry. publish makes the
    working copy the published version (``published_at`` = now, UTC); retire withdraws it
    (``published_version`` = NULL, ``retired_at`` = now); restore makes a retired article a draft again.
    Raises InvalidInput (422) for an unknown action, PermissionDenied (403) when the actor's role may
    not take it, InvalidTransition (409, with ``current_state`` and ``allowed_actions``) when the
    article's state does not allow it. Nothing is written on refusal.
    """
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise InvalidInput(
            f"unknown action {action!r}", errors=[{"field": "action", "message": "unknown action"}]
        )
    if not _may(actor, article, action):
        raise PermissionDenied(f"you may not {action} this article")
    article = _locked(article)
    if article.state not in _sources(actor, article, action):
        detail = f"cannot {action} {article.number}: it is {article.get_state_display()}"
        if action == "publish" and article.state == S.DRAFT:
            detail += "; only admins may publish without review: submit it for review"
        raise InvalidTransition(
            detail, current_state=article.state, allowed_actions=allowed_actions(actor=actor, article=article)
        )
    now = timezone.now()
    diff: dict[str, list[Any]] = {"state": [article.state, transition.target]}
    published = article.published_version.number if article.published_version else None
    if action == "publish":
        assert article.current_version is not None
        article.published_version = article.current_version
        article.published_at = now
        diff["published_version"] = [published, article.current_version.number]
    elif action == "retire":
        article.published_version = None
        article.retired_at = now
        diff["published_version"] = [published, None]
    elif action == "restore":
        article.retired_at = None
    article.state = transition.target
    article.save()
    if note.strip():
        diff["note"] = [None, note.strip()]
    activity_record(
        actor=actor, verb=transition.verb, record_type=RECORD_TYPE, record_id=article.pk, changes=diff
    )
    _index(article)
    return article


def article_submit_for_review(*, actor: Actor, article: Article, note: str = "") -> Article:
    """Draft -> review (technicians). Errors as article_transition."""
    return article_transition(actor=actor, article=article, action="submit", note=note)


def article_publish(*, actor: Actor, article: Article, note: str = "") -> Article:
    """Review -> published (technicians; client_admin for portal articles); draft -> published for
    admins. Readers see the working copy from now on. Errors as article_transition."""
    return article_transition(actor=actor, article=article, action="publish", note=note)


def article_reject(*, actor: Actor, article: Article, note: str = "") -> Article:
    """Review -> draft (whoever may publish it); ``note`` says why. Errors as article_transition."""
    return article_transition(actor=actor, article=article, action="reject", note=note)


def article_retire(*, actor: Actor, article: Article, note: str = "") -> Article:
    """Published -> retired (technicians): readers no longer find it. Errors as article_transition."""
    return article_transition(actor=actor, article=article, action="retire", note=note)


def article_restore(*, actor: Actor, article: Article, note: str = "") -> Article:
    """Retired -> draft (technicians); publish again to bring it back to readers."""
    return article_transition(actor=actor, article=article, action="restore", note=note)


@transaction.atomic
def article_feedback_set(
    *, actor: Actor, article: Article, helpful: bool, comment: str = ""
) -> ArticleFeedback:
    """Record the actor's verdict on a published article (helpful or not, optional comment).

    One verdict per person per article (the thumbs of ServiceNow's knowledge feedback): giving it again
    replaces the earlier one, and the article's ``helpful_count`` / ``not_helpful_count`` move with it,
    so they always equal the counts of feedback rows. The verdict is tied to the published version the
    reader saw. Anyone who may read the article may give it (NotFound otherwise, as for a missing id);
    ArticleNotPublished (409) when the article is not live; InvalidInput when the actor has no person.
    Logs ``article.feedback``.
    """
    _require_readable(actor, article)
    if actor.person is None:
        raise InvalidInput("feedback needs a person", errors=[{"field": "person", "message": "required"}])
    article = _locked(article)
    if article.published_version is None:
        raise ArticleNotPublished(f"{article.number} is not published")
    feedback = ArticleFeedback.objects.filter(article=article, person=actor.person).first()
    old = feedback.helpful if feedback is not None else None
    if feedback is None:
        feedback = ArticleFeedback(article=article, person=actor.person)
    feedback.version = article.published_version
    feedback.helpful = helpful
    feedback.comment = comment.strip()
    feedback.at = timezone.now()
    feedback.save()
    if old != helpful:
        if old is True:
            article.helpful_count -= 1
        elif old is False:
            article.not_helpful_count -= 1
        if helpful:
            article.helpful_count += 1
        else:
            article.not_helpful_count += 1
        article.save(update_fields=["helpful_count", "not_helpful_count"])
    activity_record(
        actor=actor,
        verb="article.feedback",
        record_type=RECORD_TYPE,
        record_id=article.pk,
        changes={"helpful": [old, helpful], "version": [None, article.published_version.number]},
    )
    return feedback


def article_viewed(*, actor: Actor, article: Article) -> int:
    """Count one view of the article's published text; returns the new ``view_count``.

    A counter, not a change of the record: no activity entry (an entry per read would bury the history;
    ServiceNow also keeps views apart, in its knowledge use table) and ``updated_at`` stays. Only views of
    a live article by someone who may read it count (NotFound otherwise); one atomic UPDATE, safe under
    concurrent readers.
    """
    _require_readable(actor, article)
    Article.objects.filter(pk=article.pk, published_version__isnull=False).update(
        view_count=F("view_count") + 1
    )
    count = Article.objects.filter(pk=article.pk).values_list("view_count", flat=True).get()
    article.view_count = count
    return int(count)


def article_link(
    *, actor: Actor, article: Article, record_type: str, record_id: uuid.UUID, kind: str = "documents"
) -> RecordLink:
    """Link the article to another record of this tenant, by default ``article documents <record>``
    (a known error, an incident, a problem...), through the shared typed links
    (modules.records.services.link_create: technicians only, both records must be visible, LinkExists
    409 for a duplicate, InvalidInput for an unknown record type or kind). Logs ``link.added`` on both.
    """
    return link_create(
        actor=actor,
        source_type=RECORD_TYPE,
        source_id=article.pk,
        target_type=record_type,
        target_id=record_id,
        kind=kind,
    )
