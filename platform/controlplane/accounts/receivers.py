"""Receivers of allauth's and Django's account signals: the security audit (accounts.SecurityEvent) and
the session epoch. Logging and session bookkeeping only; no business rule hangs on a signal."""

from __future__ import annotations

from typing import Any

from allauth.account.models import EmailAddress
from allauth.account.signals import email_confirmed, password_changed, password_reset
from allauth.mfa import signals as mfa_signals
from allauth.mfa.models import Authenticator
from django.contrib.auth.signals import user_logged_in
from django.http import HttpRequest

from .adapter import where
from .middleware import SESSION_EPOCH_KEY, session_epoch_stamp
from .models import User
from .services import client_ip, security_event_record, user_session_epoch_bump


def password_changed_record(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """Password changed by its owner: every other session ends (epoch raised); this one is kept (the
    new epoch is stamped into it, as allauth keeps it signed in). Recorded as ``password.changed``."""
    epoch = user_session_epoch_bump(user=user)
    if hasattr(request, "session"):
        request.session[SESSION_EPOCH_KEY] = epoch
    security_event_record(verb="password.changed", user_id=user.pk, ip=client_ip(request), **where(request))


def password_reset_record(sender: Any, request: HttpRequest, user: User, **kwargs: Any) -> None:
    """Password set from an emailed reset link: every session of the user ends; ``password.reset``."""
    user_session_epoch_bump(user=user)
    security_event_record(
        verb="password.reset",
        user_id=user.pk,
        ip=client_ip(request),
        details={"host": request.get_host()},
        **where(request),
    )


def email_confirmed_record(
    sender: Any, request: HttpRequest, email_address: EmailAddress, **kwargs: Any
) -> None:
    """An address proven by its emailed link: ``email.verified``."""
    security_event_record(
        verb="email.verified",
        user_id=email_address.user_id,
        ip=client_ip(request),
        details={"email": email_address.email},
        **where(request),
    )


def connect() -> None:
    """Connect the receivers (AccountsConfig.ready)."""
    user_logged_in.connect(session_epoch_stamp, dispatch_uid="accounts.session_epoch_stamp")
    password_changed.connect(password_changed_record, dispatch_uid="accounts.password_changed")
    password_reset.connect(password_reset_record, dispatch_uid="accounts.password_reset")
    email_confirmed.connect(email_confirmed_record, dispatch_uid="accounts.email_confirmed")
    connect_mfa()


def mfa_event_record(verb_suffix: str) -> Any:
    """A receiver of an allauth.mfa signal recording ``mfa.<type>.<verb_suffix>`` (``mfa.totp.added``,
    ``mfa.recovery_codes.reset``, ``mfa.totp.failed``...)."""

    def record(
        sender: Any, request: HttpRequest, user: User, authenticator: Authenticator, **kwargs: Any
    ) -> None:
        details: dict[str, Any] = {"host": request.get_host()} if request is not None else {}
        if kwargs.get("reauthenticated") or kwargs.get("reauthentication"):
            details["reauthentication"] = True
        security_event_record(
            verb=f"mfa.{authenticator.type}.{verb_suffix}",
            user_id=user.pk,
            ip=client_ip(request) if request is not None else None,
            details=details,
            **(where(request) if request is not None else {}),
        )

    return record


MFA_RECEIVERS = {
    "added": mfa_event_record("added"),
    "removed": mfa_event_record("removed"),
    "reset": mfa_event_record("reset"),
    "used": mfa_event_record("used"),
    "failed": mfa_event_record("failed"),
}


def connect_mfa() -> None:
    """Connect the MFA audit receivers (AccountsConfig.ready)."""
    mfa_signals.authenticator_added.connect(MFA_RECEIVERS["added"], dispatch_uid="accounts.mfa_added")
    mfa_signals.authenticator_removed.connect(MFA_RECEIVERS["removed"], dispatch_uid="accounts.mfa_removed")
    mfa_signals.authenticator_reset.connect(MFA_RECEIVERS["reset"], dispatch_uid="accounts.mfa_reset")
    mfa_signals.authenticator_used.connect(MFA_RECEIVERS["used"], dispatch_uid="accounts.mfa_used")
    mfa_signals.authentication_failed.connect(MFA_RECEIVERS["failed"], dispatch_uid="accounts.mfa_failed")
