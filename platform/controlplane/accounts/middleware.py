"""Session epoch: "sign out everywhere" for django.contrib.sessions' database sessions.

Database sessions cannot be found by user without decoding every row, so each session stores the user's
``session_epoch`` when it signs in (``session_epoch_stamp``, connected to ``user_logged_in``) and this
middleware ends a session whose stamp differs from the user's current epoch. Raising the epoch
(``accounts.services.user_sign_out_everywhere``, password change and reset) therefore ends every session
of that user on every host within one request, at no extra query: AuthenticationMiddleware loads the user
row anyway. docs/decisions/0016-accounts-and-sessions.md.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.contrib.auth import logout
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse

from controlplane.problems import problem_response

from .models import User
from .selectors import mfa_enrolment_missing

SESSION_EPOCH_KEY = "_session_epoch"


def session_epoch_stamp(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """``user_logged_in`` receiver: the new session remembers the user's epoch. Every way in (allauth,
    SSO, the test client's force_login) goes through ``django.contrib.auth.login`` and so through here."""
    if request is not None and hasattr(request, "session"):
        request.session[SESSION_EPOCH_KEY] = user.session_epoch


class SessionEpochMiddleware:
    """After AuthenticationMiddleware: a session without the user's current epoch is signed out (flushed)
    and the request continues as anonymous, so pages redirect to sign-in and the API answers 401."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if user.is_authenticated and request.session.get(SESSION_EPOCH_KEY) != user.session_epoch:
            logout(request)
        return self.get_response(request)


# Paths a user who must set up two-factor authentication may still open: allauth's pages (set up the
# authenticator, reauthenticate, sign out, change password) and static files.
MFA_SETUP_PATHS = ("/accounts/", "/static/")


class MfaRequiredMiddleware:
    """A signed-in user who must use two-factor authentication (``mfa_enrolment_missing``) and has not
    set it up is sent to set up an authenticator app before any other page, with a message; an API
    request authenticated by their session is refused with 403 ``mfa-required`` (problem+json). API
    token requests are left to the token's own rules. Runs after the routing middleware (which marks
    token requests ``auth_via = "token"``) and the message middleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        user = request.user
        if (
            isinstance(user, User)
            and user.is_authenticated
            and getattr(request, "auth_via", None) != "token"
            and not request.path_info.startswith(MFA_SETUP_PATHS)
            and mfa_enrolment_missing(user=user)
        ):
            if request.path_info.startswith("/api/"):
                return problem_response(
                    request,
                    status=403,
                    slug="mfa-required",
                    title="Set up two-factor authentication before using the API with your session",
                )
            messages.warning(
                request, "Your organisation requires two-factor authentication: set up an authenticator app."
            )
            setup = reverse("mfa_activate_totp")
            if request.headers.get("HX-Request") == "true":
                # An htmx request would swap the set-up page into a fragment: load it as a whole page.
                response = HttpResponse(status=204)
                response["HX-Redirect"] = setup
                return response
            return redirect(setup)
        return self.get_response(request)
