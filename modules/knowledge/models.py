"""Knowledge articles (ITIL 4 knowledge management practice). Tenant plane.

An article is a numbered record (``KB0000001``) whose text lives in versions: every edit of the title or
body adds a version, numbered 1, 2, ... per article. Two pointers say which version is which:

- ``current_version``: the newest text, the one writers work on (the working copy);
- ``published_version``: the text readers see; NULL while the article has never been published and
  after it was retired. An article is *live* (readers find it) exactly when ``published_version`` is set.

``state`` is the state of the working copy: draft -> review -> published -> retired (ServiceNow's
knowledge workflow: Draft, Review, Published, Retired). Editing a published article starts a new draft
version while ``published_version`` keeps pointing at the published text, as ServiceNow's article
versioning does, so readers keep the published text until the new version is published.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from modules.records.models import Record


class Article(Record):
    class State(models.TextChoices):
        DRAFT = "draft", "Draft"
        REVIEW = "review", "Review"
        PUBLISHED = "published", "Published"
        RETIRED = "retired", "Retired"

    class Audience(models.TextChoices):
        TECHNICIANS = "technicians", "Technicians only"
        PORTAL = "portal", "Portal (everyone in the client)"

    number = models.CharField(max_length=20, unique=True)
    category = models.CharField(max_length=100, blank=True)
    audience = models.CharField(max_length=12, choices=Audience.choices, default=Audience.TECHNICIANS)
    state = models.CharField(max_length=12, choices=State.choices, default=State.DRAFT)
    current_version = models.ForeignKey(
        "knowledge.ArticleVersion", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    published_version = models.ForeignKey(
        "knowledge.ArticleVersion", on_delete=models.SET_NULL, null=True, related_name="+"
    )
    author = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")
    published_at = models.DateTimeField(null=True)
    retired_at = models.DateTimeField(null=True)
    view_count = models.PositiveIntegerField(default=0)
    helpful_count = models.PositiveIntegerField(default=0)
    not_helpful_count = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["-updated_at", "-id"]
        indexes = [
            models.Index(fields=["state", "audience"], name="article_state_audience"),
            models.Index(fields=["updated_at", "id"], name="article_updated"),
        ]

    def __str__(self) -> str:
        return self.number

    @property
    def is_live(self) -> bool:
        """Readers find the article (it has a published version)."""
        return self.published_version_id is not None


class ArticleVersion(Record):
    """One version of an article's text. ``body`` is plain text or Markdown source, always shown escaped."""

    article = models.ForeignKey(Article, on_delete=models.PROTECT, related_name="versions")
    number = models.PositiveIntegerField()
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    change_note = models.CharField(max_length=300, blank=True)
    author = models.ForeignKey("people.Person", on_delete=models.PROTECT, null=True, related_name="+")

    class Meta:
        ordering = ["article", "number"]
        constraints = [
            models.UniqueConstraint(fields=["article", "number"], name="uniq_article_version_number"),
        ]

    def __str__(self) -> str:
        return f"{self.title} (v{self.number})"


class ArticleFeedback(models.Model):
    """A reader's verdict on an article (bigint key): one per person per article; giving it again
    replaces it. ``version`` is the published version the reader saw; ``at`` is UTC."""

    article = models.ForeignKey(Article, on_delete=models.PROTECT, related_name="feedback")
    version = models.ForeignKey(ArticleVersion, on_delete=models.PROTECT, related_name="+")
    person = models.ForeignKey("people.Person", on_delete=models.PROTECT, related_name="+")
    helpful = models.BooleanField()
    comment = models.TextField(blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["article", "person"], name="uniq_article_feedback_person"),
        ]
