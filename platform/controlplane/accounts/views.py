"""Account pages shared by the console host and the portal hosts: sign out everywhere. Entry points:
parse, call one service, redirect."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.views.decorators.http import require_POST

from .adapter import where
from .models import User
from .services import client_ip, user_sign_out_everywhere


@require_POST
@login_required
def sign_out_everywhere(request: HttpRequest) -> HttpResponse:
    """POST: end every session of the signed-in user on every host (this one too), then show the
    sign-in page with a message. Console: ``/me/sign-out-everywhere/``; portal:
    ``/account/sign-out-everywhere/``."""
    user = request.user
    assert isinstance(user, User)
    user_sign_out_everywhere(user=user, ip=client_ip(request), tenant_id=where(request)["tenant_id"])
    logout(request)
    messages.success(request, "You were signed out on every device and browser.")
    return redirect("account_login")
