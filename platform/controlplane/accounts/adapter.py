"""django-allauth adapter: no public signup; on a tenant's portal host only that tenant's users sign in."""

from __future__ import annotations

from typing import Any

from allauth.account.adapter import DefaultAccountAdapter
from django.contrib.auth.base_user import AbstractBaseUser
from django.http import HttpRequest

from .models import User
from .selectors import portal_role_get


class AccountAdapter(DefaultAccountAdapter):
    def is_open_for_signup(self, request: HttpRequest) -> bool:
        """Users are created by their provider or by provisioning, never by self-signup."""
        return False

    def login(self, request: HttpRequest, user: AbstractBaseUser) -> None:
        """Sign in, then bind the session to this host (see tenants.routing.session_host_check)."""
        super().login(request, user)
        from tenants.routing import SESSION_HOST_KEY, hostname_of

        request.session[SESSION_HOST_KEY] = hostname_of(request)

    def authenticate(self, request: HttpRequest, **credentials: Any) -> AbstractBaseUser | None:
        """On a portal host, a user without a membership in that tenant fails like a wrong password."""
        user = super().authenticate(request, **credentials)
        tenant = getattr(request, "portal_tenant", None)
        if user is not None and tenant is not None:
            assert isinstance(user, User)
            if portal_role_get(user=user, tenant=tenant) is None:
                return None
        return user
