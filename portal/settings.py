"""Settings, all read from the environment (README lists every variable and its default)."""

from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import dj_database_url
import holidays
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from accounts.config import check_sign_in, parse_role_map
from portal import roles
from portal.env import (
    env_bool,
    env_choice,
    env_int,
    env_list,
    env_str,
    env_together,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("PORTAL_VAR_DIR", str(BASE_DIR / "var")))

# DEBUG is off unless asked for: `make run` too runs without it (over plain HTTP on 127.0.0.1,
# with a SECRET_KEY of its own under var/), so what a developer sees is what production serves.
DEBUG = env_bool("DJANGO_DEBUG", False)

if DEBUG:
    SECRET_KEY = env_str("SECRET_KEY", "insecure-development-key-do-not-use-in-production")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]", "testserver"])
else:
    SECRET_KEY = env_str("SECRET_KEY", required=True)
    if len(SECRET_KEY) < 50 or len(set(SECRET_KEY)) < 5:
        raise ImproperlyConfigured("SECRET_KEY must be at least 50 characters of varied text")
    ALLOWED_HOSTS = env_list("ALLOWED_HOSTS")
    if not ALLOWED_HOSTS:
        raise ImproperlyConfigured("ALLOWED_HOSTS must be set when DJANGO_DEBUG=false")
# Key rotation (docs/operations.md): the previous keys, still accepted for signatures (sessions,
# password reset links) but never used to sign. Comma-separated; secret keys contain no commas.
SECRET_KEY_FALLBACKS = env_list("SECRET_KEY_FALLBACKS")
if not DEBUG:
    for _position, _key in enumerate(SECRET_KEY_FALLBACKS, start=1):
        if len(_key) < 50 or len(set(_key)) < 5:
            # Never the key itself in the message: it is a secret, and logs are not.
            raise ImproperlyConfigured(
                f"SECRET_KEY_FALLBACKS: key {_position} is not 50+ characters of varied text "
                "(keys are separated by commas)"
            )

CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
# An expired form gets a page in the portal's layout that says what to do (portal/views.py).
CSRF_FAILURE_VIEW = "portal.views.csrf_failure"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "django_rq",
    "csp",
    # axes before audit: its sign-in signal receivers mark a locked-out request first.
    "axes",
    "audit",
    "portal",
    "accounts",
    "provisioning",
    "requests_app",
    "releases",
    "incidents",
    "dashboards",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out sign-in into the lockout page.
    "axes.middleware.AxesMiddleware",
]

if not DEBUG:
    # Static files from gunicorn in production; runserver and the test server serve them in DEBUG.
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "portal.urls"
WSGI_APPLICATION = "portal.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "portal.context_processors.portal",
            ],
        },
    },
]

# Database: PostgreSQL in production and tests; SQLite under var/ only as make run's default.
DATABASE_URL = env_url(
    "DATABASE_URL",
    f"sqlite:///{VAR_DIR / 'portal.sqlite3'}",
    schemes={"postgres", "postgresql", "pgsql", "sqlite"},
)
try:
    DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
except ValueError as exc:
    raise ImproperlyConfigured(f"DATABASE_URL is not usable: {exc}") from None
DATABASES["default"]["ATOMIC_REQUESTS"] = False
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # BEGIN IMMEDIATE: a transaction takes the write lock when it starts, so two people acting
    # at once wait for each other instead of one failing with "database is locked".
    DATABASES["default"]["OPTIONS"] = {"timeout": 20, "transaction_mode": "IMMEDIATE"}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Redis and RQ. RQ_INPROCESS=true (set by `make run` when no redis-server is installed) runs
# jobs synchronously in the web process; every page then says so.
REDIS_URL = env_url("REDIS_URL", "redis://127.0.0.1:6379/0", schemes={"redis", "rediss", "unix"})
RQ_INPROCESS = env_bool("RQ_INPROCESS", False)
RQ_DEFAULT_TIMEOUT = env_int("RQ_DEFAULT_TIMEOUT", 600, minimum=1)
PROVISIONING_JOB_TIMEOUT = env_int("PROVISIONING_JOB_TIMEOUT", 3600, minimum=1)
RQ_QUEUES = {
    "default": {
        "URL": REDIS_URL,
        "DEFAULT_TIMEOUT": RQ_DEFAULT_TIMEOUT,
        "ASYNC": not RQ_INPROCESS,
    },
    "provisioning": {
        "URL": REDIS_URL,
        "DEFAULT_TIMEOUT": PROVISIONING_JOB_TIMEOUT,
        "ASYNC": not RQ_INPROCESS,
    },
}
RQ_SHOW_ADMIN_LINK = False
# The portal enqueues in its own transaction.on_commit hooks (and relays what never reached
# Redis), so django-rq must enqueue at once when asked.
RQ = {"COMMIT_MODE": "auto", "WORKER_CLASS": "portal.worker.Worker"}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
# TIME_ZONE follows SLA_TIMEZONE (set below): date-times typed without an offset (forms, the
# API, the importer) are read in it, and pages show times in it.
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "whitenoise.storage.CompressedManifestStaticFilesStorage"
    },
}

# Security: strict unless DEBUG. Behind a TLS-terminating proxy set SECURE_PROXY_SSL_HEADER.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", not DEBUG)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", not DEBUG)
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31536000, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)
if env_bool("SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

# Sign-in rate limit (django-axes): after LOGIN_FAILURE_LIMIT failed sign-ins a username, and
# separately an address, is locked out for LOGIN_LOCKOUT_MINUTES; a success resets the count.
# Behind proxies that append to X-Forwarded-For, TRUSTED_PROXY_COUNT says how many there are, so
# the lockout and the audit log see the client's address and not the proxy's.
AUTHENTICATION_BACKENDS = [
    "audit.backends.LockoutBackend",  # refuses a locked-out sign-in before the password check
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env_int("LOGIN_FAILURE_LIMIT", 5, minimum=1)
AXES_COOLOFF_TIME = timedelta(minutes=env_int("LOGIN_LOCKOUT_MINUTES", 15, minimum=1))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
# A lockout lasts LOGIN_LOCKOUT_MINUTES from the failure that caused it; more attempts during it
# do not extend it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_CLIENT_IP_CALLABLE = "audit.client.client_ip"
AXES_LOCKOUT_CALLABLE = "audit.views.locked_out"
# The audit app logs sign-ins and sign-outs; axes keeps only its failed attempts.
AXES_DISABLE_ACCESS_LOG = True
TRUSTED_PROXY_COUNT = env_int("TRUSTED_PROXY_COUNT", 0, minimum=0)

# Sign-in (docs/sign-in.md): single sign-on with OpenID Connect when the three OIDC_ credentials
# are set (accounts/oidc.py), the groups set from the roles claim through OIDC_ROLE_MAP at every
# sign-in; the password form can be turned off, or left to superusers. accounts/config.py stops
# the start when these cannot work together.
OIDC_ISSUER = env_url("OIDC_ISSUER", None, schemes={"http", "https"})
OIDC_CLIENT_ID = env_str("OIDC_CLIENT_ID")
OIDC_CLIENT_SECRET = env_str("OIDC_CLIENT_SECRET")
OIDC_SCOPES = env_str("OIDC_SCOPES", "openid email profile")
OIDC_ROLES_CLAIM = env_str("OIDC_ROLES_CLAIM", "groups")
OIDC_ROLE_MAP = parse_role_map(env_str("OIDC_ROLE_MAP"), roles.ALL_ROLES)
PASSWORD_LOGIN = env_bool("PASSWORD_LOGIN", True)
PASSWORD_LOGIN_SUPERUSERS = env_bool("PASSWORD_LOGIN_SUPERUSERS", False)
check_sign_in(
    {
        "OIDC_ISSUER": OIDC_ISSUER,
        "OIDC_CLIENT_ID": OIDC_CLIENT_ID,
        "OIDC_CLIENT_SECRET": OIDC_CLIENT_SECRET,
    },
    scopes=OIDC_SCOPES,
    role_map=OIDC_ROLE_MAP,
    password_login=PASSWORD_LOGIN,
)

# Content-Security-Policy (django-csp 4): scripts and styles from the portal's own static files
# only, no inline code or style attributes. The one hash is django-rq's inline script on the job
# dashboard (/jobs/: select all rows); tests/portal/test_security.py recomputes it.
DJANGO_RQ_INLINE_SCRIPT_HASH = "'sha256-1kZe1KRxelr3ptMPsod17Z6BDvbtm4WcufgsZGvsErM='"
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, DJANGO_RQ_INLINE_SCRIPT_HASH],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [NONE],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
SILENCED_SYSTEM_CHECKS = env_list("SILENCED_SYSTEM_CHECKS")

# Mail and chat notifications.
EMAIL_URL = env_url("EMAIL_URL", None, schemes={"smtp", "smtps", "console", "locmem"})
if EMAIL_URL is None:
    EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
else:
    _mail = urlsplit(EMAIL_URL)
    if _mail.scheme == "console":
        EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
    elif _mail.scheme == "locmem":
        EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    else:
        EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        EMAIL_HOST = _mail.hostname or "localhost"
        EMAIL_PORT = _mail.port or (465 if _mail.scheme == "smtps" else 25)
        EMAIL_HOST_USER = _mail.username or ""
        EMAIL_HOST_PASSWORD = _mail.password or ""
        EMAIL_USE_SSL = _mail.scheme == "smtps"
DEFAULT_FROM_EMAIL = env_str("DEFAULT_FROM_EMAIL", "portal@localhost")
SLACK_WEBHOOK_URL = env_url("SLACK_WEBHOOK_URL", None, schemes={"http", "https"})
# Slack approvals (docs/slack.md): the Slack app's bot token, its signing secret and the channel
# where approval requests are posted, all three or none. SLACK_API_URL is Slack's Web API (the
# tests point it at a local stand-in); the client joins method names to it, hence the slash.
_slack_app = env_together("SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APPROVALS_CHANNEL")
SLACK_APPROVALS = _slack_app is not None
SLACK_BOT_TOKEN = _slack_app["SLACK_BOT_TOKEN"] if _slack_app else ""
SLACK_SIGNING_SECRET = _slack_app["SLACK_SIGNING_SECRET"] if _slack_app else ""
SLACK_APPROVALS_CHANNEL = _slack_app["SLACK_APPROVALS_CHANNEL"] if _slack_app else ""
SLACK_API_URL = env_url("SLACK_API_URL", "https://slack.com/api/", schemes={"http", "https"})
if not SLACK_API_URL.endswith("/"):
    SLACK_API_URL += "/"
PORTAL_BASE_URL = env_url("PORTAL_BASE_URL", "http://127.0.0.1:8000", schemes={"http", "https"})

# The request domain.
INSTANCE_PROJECT_PREFIX = env_str("INSTANCE_PROJECT_PREFIX", "mi")
INSTANCE_DOMAIN = env_str("INSTANCE_DOMAIN", "managed.example.com")
INSTANCE_DEFAULT_VERSION = env_str("INSTANCE_DEFAULT_VERSION", "6.0.0")
SLA_TIMEZONE = env_str("SLA_TIMEZONE", "America/Los_Angeles")
SLA_HOLIDAYS = env_str("SLA_HOLIDAYS", "US")
try:
    ZoneInfo(SLA_TIMEZONE)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(f"SLA_TIMEZONE={SLA_TIMEZONE!r} is not a known time zone") from None
TIME_ZONE = SLA_TIMEZONE
try:
    _country, _, _subdivision = SLA_HOLIDAYS.partition("-")
    if SLA_HOLIDAYS.lower() != "none":
        holidays.country_holidays(_country.upper(), subdiv=_subdivision.upper() or None)
except NotImplementedError:
    raise ImproperlyConfigured(
        f"SLA_HOLIDAYS={SLA_HOLIDAYS!r} is not a holidays calendar (e.g. US, US-CA, GB, none)"
    ) from None
DEMO_PASSWORD = env_str("DEMO_PASSWORD", "demo")

# Provisioning.
PROVISIONING_BACKEND = env_choice("PROVISIONING_BACKEND", "sandbox", choices=("sandbox", "gcp"))
TERRAFORM_BIN = env_str("TERRAFORM_BIN", "terraform")
# The project whose Compute API lists the zones the request forms offer (any project the
# portal's credentials can read; the sandbox answers for any name). Empty: the built-in list.
COMPUTE_ZONES_PROJECT = env_str("COMPUTE_ZONES_PROJECT", f"{INSTANCE_PROJECT_PREFIX}-portal")
SANDBOX_COMPUTE_URL = env_url("SANDBOX_COMPUTE_URL", None, schemes={"http"})

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        # Token first: an anonymous API call then gets 401 with WWW-Authenticate, not 403.
        # Named API tokens (accounts/tokens.py) and the keys of drf_create_token alike.
        "accounts.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    # drf-spectacular's, plus the error responses every operation can give (401, 403, 404).
    "DEFAULT_SCHEMA_CLASS": "requests_app.api.PortalAutoSchema",
    "EXCEPTION_HANDLER": "requests_app.api.handle_exception",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Managed Instance Portal API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema describes JSON bodies (the pages' form encoding still works, undocumented).
    "PARSER_WHITELIST": ["rest_framework.parsers.JSONParser"],
    # One name for each choice set, whichever fields use it (a request's and a run's `state`
    # differ; the filing bodies' one-kind enums are named after their component).
    "ENUM_NAME_OVERRIDES": {
        "KindEnum": "requests_app.models.Kind",
        "StateEnum": "requests_app.models.State",
        "RunStateEnum": "provisioning.models.RunState",
        "StatusEnum": "provisioning.models.InstanceStatus",
        "MachineTypeEnum": "provisioning.models.MachineType",
        "AccessEnum": "provisioning.models.Access",
        "ReleaseKindEnum": "releases.models.ReleaseKind",
        "ReleaseSourceEnum": "releases.models.Release.Source",
        "SeverityEnum": "incidents.models.Severity",
        "IncidentStateEnum": "incidents.models.IncidentState",
    },
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {
        "handlers": ["console"],
        "level": env_choice(
            "LOG_LEVEL", "INFO", choices=("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
        ),
    },
    # Authlib logs the PKCE code verifier of each SSO sign-in at DEBUG: never, whatever LOG_LEVEL.
    "loggers": {"authlib": {"level": "INFO"}},
}
# Seconds without a heartbeat after which a run's worker is taken for dead.
PROVISIONING_HEARTBEAT_TIMEOUT = env_int("PROVISIONING_HEARTBEAT_TIMEOUT", 90, minimum=10)
# How often every live instance is compared with Compute and with a terraform plan.
VERIFY_INTERVAL_MINUTES = env_int("VERIFY_INTERVAL_MINUTES", 60, minimum=1)
# Releases and maintenance (docs/releases.md): the GitHub-style releases list polled for new
# releases (empty: off), how often, how many upgrades of a rollout wave apply at once, and when
# a suspended instance's requester is reminded that it is still suspended.
RELEASES_FEED_URL = env_url("RELEASES_FEED_URL", "", schemes={"http", "https"})
RELEASES_POLL_MINUTES = env_int("RELEASES_POLL_MINUTES", 60, minimum=1)
ROLLOUT_MAX_PARALLEL = env_int("ROLLOUT_MAX_PARALLEL", 3, minimum=1)
SUSPENDED_REMINDER_DAYS = env_int("SUSPENDED_REMINDER_DAYS", 60, minimum=1)
# How long granted access lasts when its request names no expiry (docs/workflow.md).
ACCESS_DEFAULT_DAYS = env_int("ACCESS_DEFAULT_DAYS", 90, minimum=1, maximum=3650)
# Multiplies the retry backoff of known transient errors (tests make it small).
PROVISIONING_BACKOFF_SCALE = float(env_int("PROVISIONING_BACKOFF_PERCENT", 100, minimum=0)) / 100
