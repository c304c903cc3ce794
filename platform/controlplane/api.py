"""The one project-level API (django-ninja), mounted at /api/v1/. Each app adds one Router.

Tenant routers live under ``/t/{tenant}/``: the routing middleware has already resolved the tenant,
checked the user's access and set ``request.actor``. Authentication: a personal API token
(``Authorization: Bearer ...``, never the session) or the browser session, which must pass CSRF on
unsafe methods. Errors are RFC 9457 problem+json, mapped here only.
"""

from __future__ import annotations

import json
from typing import Any, cast

from django.http import HttpRequest, HttpResponse
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError, ValidationError
from ninja.parser import Parser

from controlplane.api_auth import TenantActorAuth
from controlplane.problems import DomainError, domain_error_response, problem_response
from controlplane.routes import api_route_guard


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


class StrictJsonParser(Parser):
    """JSON bodies as RFC 8259 defines them: Python's parser accepts NaN and Infinity, which PostgreSQL's
    jsonb then refuses on save (a 500). Refused here, they are a 400 like any unparsable body."""

    def parse_body(self, request: HttpRequest) -> dict[str, Any]:
        return cast(dict[str, Any], json.loads(request.body, parse_constant=_refuse_constant))


api = NinjaAPI(
    parser=StrictJsonParser(),
    title="MSP ITSM API",
    version="1",
    description="Multi-tenant ITSM for MSPs. Tenant paths: /api/v1/t/{tenant}/... Errors: RFC 9457.",
    auth=TenantActorAuth(),
    urls_namespace="api",
    docs_url="/docs",
    openapi_url="/openapi.json",
)


# Every operation's permission (controlplane.routes.ROUTES) is checked before it parses or authenticates.
api.add_decorator(api_route_guard, mode="view")


@api.exception_handler(DomainError)
def on_domain_error(request: HttpRequest, exc: DomainError) -> HttpResponse:
    return domain_error_response(request, exc)


@api.exception_handler(ValidationError)
def on_validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    errors = [
        {"field": ".".join(str(p) for p in e.get("loc", [])[1:]) or "body", "message": e.get("msg", "")}
        for e in exc.errors
    ]
    return problem_response(
        request,
        status=422,
        slug="invalid-input",
        title="Invalid input",
        detail="request failed validation",
        errors=errors,
    )


@api.exception_handler(AuthenticationError)
def on_unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
    return problem_response(request, status=401, slug="unauthenticated", title="Sign in or send an API token")


@api.exception_handler(HttpError)
def on_http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
    slug = {400: "bad-request", 403: "forbidden", 404: "not-found", 405: "method-not-allowed"}.get(
        exc.status_code, "error"
    )
    return problem_response(request, status=exc.status_code, slug=slug, title=str(exc))


api.add_router("/me", "controlplane.accounts.api.router")
api.add_router("/queue", "controlplane.workindex.api.router")
api.add_router("/t/{tenant}/incidents", "modules.incidents.api.router")
api.add_router("/t/{tenant}/cmdb", "modules.cmdb.api.router")
api.add_router("/t/{tenant}/people", "modules.people.api.router")
api.add_router("/t/{tenant}/problems", "modules.problems.api.router")
api.add_router("/t/{tenant}/changes", "modules.changes.api.router")
api.add_router("/t/{tenant}/knowledge", "modules.knowledge.api.router")
api.add_router("/t/{tenant}/catalog", "modules.requests.api.catalog_router")
api.add_router("/t/{tenant}/requests", "modules.requests.api.router")
api.add_router("/t/{tenant}/notifications", "modules.notifications.api.router")
api.add_router("/t/{tenant}/webhooks", "modules.notifications.api.webhook_router")
api.add_router("/t/{tenant}/mailin", "controlplane.mailin.api.router")
api.add_router("/t/{tenant}/sla", "modules.sla.api.router")
api.add_router("/t/{tenant}", "modules.records.api.router")
