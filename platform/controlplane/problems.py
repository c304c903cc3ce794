"""Domain exceptions and their one mapping to HTTP problem details (RFC 9457, application/problem+json).

Services raise these; the API (controlplane.api) and the console views turn them into responses here,
and nowhere else.
"""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, JsonResponse

PROBLEM_CONTENT_TYPE = "application/problem+json"


class DomainError(Exception):
    """Base of every domain error. ``slug`` names the problem type (``/problems/<slug>``)."""

    status = 400
    slug = "bad-request"
    title = "Bad request"

    def __init__(self, detail: str, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = extra


class NotFound(DomainError):
    """The record does not exist for this actor. Other tenants' ids answer exactly like missing ones."""

    status = 404
    slug = "not-found"
    title = "Not found"


class PermissionDenied(DomainError):
    status = 403
    slug = "forbidden"
    title = "Forbidden"


class Conflict(DomainError):
    status = 409
    slug = "conflict"
    title = "Conflict"


class InvalidTransition(Conflict):
    """A state change the record's state machine does not allow from its current state (every ITIL
    practice's state rules answer with this 409)."""

    slug = "invalid-transition"
    title = "This state change is not allowed"


class InvalidInput(DomainError):
    """Input that fails a domain rule. ``errors`` lists ``{"field": ..., "message": ...}``."""

    status = 422
    slug = "invalid-input"
    title = "Invalid input"


def problem_response(
    request: HttpRequest | None, *, status: int, slug: str, title: str, detail: str = "", **extra: Any
) -> JsonResponse:
    """A problem+json response. ``instance`` is the request path."""
    body: dict[str, Any] = {"type": f"/problems/{slug}", "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if request is not None:
        body["instance"] = request.path
    body.update(extra)
    return JsonResponse(body, status=status, content_type=PROBLEM_CONTENT_TYPE)


def domain_error_response(request: HttpRequest, exc: DomainError) -> JsonResponse:
    return problem_response(
        request, status=exc.status, slug=exc.slug, title=exc.title, detail=exc.detail, **exc.extra
    )
