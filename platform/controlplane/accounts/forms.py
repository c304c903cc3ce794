"""allauth forms with the portal's tenant rule (ACCOUNT_FORMS)."""

from __future__ import annotations

from typing import Any

from allauth.account.forms import ResetPasswordForm as AllauthResetPasswordForm
from allauth.core import context

from .models import User
from .selectors import portal_role_get


class ResetPasswordForm(AllauthResetPasswordForm):
    """On a tenant's portal host, only that tenant's users are sent a reset link: anyone else's address
    is treated as unknown (allauth then sends the "no account here" notice, ACCOUNT_PREVENT_ENUMERATION),
    so one client's portal never mails another client's user a link branded as its own. The console
    host serves every user."""

    users: list[Any]  # set by allauth's clean_email: the active users with this address

    def clean_email(self) -> str:
        email = super().clean_email()
        request = context.request
        tenant = getattr(request, "portal_tenant", None) if request is not None else None
        if tenant is not None:
            found: list[Any] = self.users
            kept = [
                u for u in found if isinstance(u, User) and portal_role_get(user=u, tenant=tenant) is not None
            ]
            self.users = kept
        return email
