"""Stageboard settings, read from the environment through django-environ.

Every value can be given as an environment variable (or in a `.env` file
beside manage.py). A value that cannot be parsed stops start-up with a
message naming the variable, rather than running with a surprising default.
"""

from pathlib import Path

import environ
from csp.constants import NONE, SELF
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
environ.Env.read_env(BASE_DIR / ".env")


def _read(name, cast, default):
    try:
        return cast(name, default=default)
    except (ValueError, TypeError, ImproperlyConfigured) as error:
        raise ImproperlyConfigured(f"The environment variable {name} is malformed: {error}") from error


def _strict_bool(name, default):
    raw = env.str(name, default=None)
    if raw is None:
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off", ""}:
        return False
    raise ImproperlyConfigured(
        f"The environment variable {name} is malformed: {raw!r} is not one of true/false/1/0/yes/no/on/off"
    )


DEBUG = _strict_bool("DEBUG", False)

SECRET_KEY = env.str("SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "The environment variable SECRET_KEY is required when DEBUG is off. "
            "Set it to a long random string, or set DEBUG=true for local development."
        )
    SECRET_KEY = "django-insecure-development-only-key-never-use-in-production"

ALLOWED_HOSTS = _read("ALLOWED_HOSTS", env.list, ["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = _read("CSRF_TRUSTED_ORIGINS", env.list, [])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django_htmx",
    "template_partials",
    "csp",
    "django_tasks",
    "django_tasks_db",
    "lifecycle",
    "hotfixes",
]

MIDDLEWARE = [
    # Outermost: trims a 204's headers once every other middleware has added its own.
    "lifecycle.refresh.NoContentMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Compresses pages (the grid 40:1) with Django's BREACH mitigation; below WhiteNoise, which serves
    # its own precompressed static files (docs/security.md, "Compression").
    "django.middleware.gzip.GZipMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless its view is marked @login_not_required.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "lifecycle.htmx.VaryOnHtmxMiddleware",
    "lifecycle.audit.AuditMiddleware",
    "csp.middleware.CSPMiddleware",
    # Innermost: still before any view (and before CSRF and login checks, which run in
    # process_view), but its 400 and a 413 for a form over the limit get every header above.
    "lifecycle.request_values.RefuseNulMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

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
                "lifecycle.context_processors.navigation",
            ],
        },
    },
]

DATABASES = {"default": _read("DATABASE_URL", env.db_url, f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"].get("ENGINE") not in {"django.db.backends.sqlite3", "django.db.backends.postgresql"}:
    raise ImproperlyConfigured(
        "The environment variable DATABASE_URL is malformed: use postgres://user@host:port/name "
        "or sqlite:///path/to/file.sqlite3"
    )
DATABASES["default"]["ATOMIC_REQUESTS"] = False
# Connections stay open between requests (docs/deployment.md): a new PostgreSQL backend per request cost
# more CPU than the request itself (bench/agents.py). `?conn_max_age=N` in DATABASE_URL wins; 0 closes
# each connection after its request. The health check replaces one that broke while idle.
if "CONN_MAX_AGE" not in DATABASES["default"]:
    DATABASES["default"]["CONN_MAX_AGE"] = _read("CONN_MAX_AGE", env.int, 60)
if DATABASES["default"]["CONN_MAX_AGE"] is not None and DATABASES["default"]["CONN_MAX_AGE"] < 0:
    raise ImproperlyConfigured("The environment variable CONN_MAX_AGE is malformed: use 0 or more seconds")
DATABASES["default"]["CONN_HEALTH_CHECKS"] = _strict_bool("CONN_HEALTH_CHECKS", True)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite serves one machine (docs/deployment.md). Concurrent requests must queue, never fail with
    # "database is locked": a transaction that read and then writes while another writes gets that at
    # once, whatever the timeout. So every transaction takes the write lock when it begins (IMMEDIATE)
    # and a second writer waits up to `timeout` seconds for it.
    _sqlite = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    _sqlite_name = str(DATABASES["default"]["NAME"])
    if _sqlite_name not in ("", ":memory:") and "mode=memory" not in _sqlite_name:
        # A file: readers never wait for a writer (WAL), and a commit syncs the disk at checkpoints only.
        _sqlite["init_command"] = "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL"
    DATABASES["default"]["OPTIONS"] = {**_sqlite, **DATABASES["default"].get("OPTIONS", {})}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "lifecycle:pipeline"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = _read("TIME_ZONE", env.str, "UTC")
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = BASE_DIR / "staticfiles"
# Hashed file names need `collectstatic`; production runs it, development and tests don't.
STATIC_MANIFEST = _strict_bool("STATIC_MANIFEST", not DEBUG)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if STATIC_MANIFEST
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# HTTPS: on by default in production. Behind a TLS-terminating proxy set
# SECURE_PROXY_SSL_HEADER_NAME (e.g. HTTP_X_FORWARDED_PROTO) so Django sees https.
HTTPS = _strict_bool("HTTPS", not DEBUG)
SECURE_SSL_REDIRECT = HTTPS
SESSION_COOKIE_SECURE = HTTPS
CSRF_COOKIE_SECURE = HTTPS
SECURE_HSTS_SECONDS = _read("SECURE_HSTS_SECONDS", env.int, 31536000 if HTTPS else 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = HTTPS
SECURE_HSTS_PRELOAD = _strict_bool("SECURE_HSTS_PRELOAD", HTTPS)
_proxy_header = env.str("SECURE_PROXY_SSL_HEADER_NAME", default="")
if _proxy_header:
    SECURE_PROXY_SSL_HEADER = (_proxy_header, "https")
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"

CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "font-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

# How often the pipeline grid refreshes itself, in seconds.
GRID_REFRESH_SECONDS = _read("GRID_REFRESH_SECONDS", env.int, 5)
# Applications per page of the pipeline grid: a page renders in time linear in its rows.
GRID_PAGE_SIZE = _read("GRID_PAGE_SIZE", env.int, 200)
if GRID_PAGE_SIZE < 1:
    raise ImproperlyConfigured(
        f"The environment variable GRID_PAGE_SIZE must be at least 1, not {GRID_PAGE_SIZE}."
    )

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": _read("LOG_LEVEL", env.str, "INFO")},
}

# Limits on module content, for every way of publishing (editor, zip, command line, API).
MODULE_MAX_FILES = _read("MODULE_MAX_FILES", env.int, 5000)
MODULE_MAX_FILE_BYTES = _read("MODULE_MAX_FILE_BYTES", env.int, 5 * 1024 * 1024)
MODULE_MAX_TOTAL_BYTES = _read("MODULE_MAX_TOTAL_BYTES", env.int, 50 * 1024 * 1024)
MODULE_MAX_ARCHIVE_BYTES = _read("MODULE_MAX_ARCHIVE_BYTES", env.int, 50 * 1024 * 1024)
# A zip entry that expands more than this many times its compressed size is treated as a zip bomb.
MODULE_MAX_COMPRESSION_RATIO = _read("MODULE_MAX_COMPRESSION_RATIO", env.int, 200)
# Uploaded zips are streamed to a temporary file above this size instead of kept in memory.
FILE_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024
# The form fields Django reads into memory (uploaded files do not count). The editor posts a file's
# text as multipart, where a browser sends every line break as CRLF: a file at the limit, made only of
# LF line breaks, doubles. Room for that and the other fields, so any file under the limit can be saved;
# a larger request is answered 413 with a page (lifecycle.request_limits), not a bare 400.
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * MODULE_MAX_FILE_BYTES + 1024 * 1024
# The merge form has a checkbox per changed file and per hunk: Django's default of 1,000 fields
# refused a hotfix of 1,000 files with a bare 400, so it could not be merged in the browser.
DATA_UPLOAD_MAX_NUMBER_FIELDS = 20 * MODULE_MAX_FILES

# Background work (deployments, deliveries, webhooks) runs as tasks of Django's Tasks framework, on
# the database: `manage.py db_worker` runs them (docs/deployment.md). Tests run them at once instead.
TASKS = {"default": {"BACKEND": _read("TASKS_BACKEND", env.str, "django_tasks_db.DatabaseBackend")}}
# A running deployment whose worker has not renewed its heartbeat for this long is aborted.
DEPLOYMENT_HEARTBEAT_SECONDS = _read("DEPLOYMENT_HEARTBEAT_SECONDS", env.int, 60)
# A deployment to agent or webhook machines ends with errors when they do not confirm within this.
DELIVERY_TIMEOUT_SECONDS = _read("DELIVERY_TIMEOUT_SECONDS", env.int, 600)
# Webhooks to loopback or private addresses are refused (server-side request forgery) unless this is set.
ALLOW_PRIVATE_WEBHOOKS = _strict_bool("ALLOW_PRIVATE_WEBHOOKS", False)
# The address agents and webhook receivers reach this console at, for the callback URLs it sends.
SITE_URL = _read("SITE_URL", env.str, "http://127.0.0.1:8000").rstrip("/")
for _name in ("DEPLOYMENT_HEARTBEAT_SECONDS", "DELIVERY_TIMEOUT_SECONDS"):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"The environment variable {_name} is malformed: it must be at least 1")

# How many proxies in front of Stageboard append to X-Forwarded-For: the client's address, for the
# audit trail and login throttling, is taken that many entries from the right. 0 (no proxy) uses the
# connection's address. Never count a proxy that is not there: clients could lie. See docs/security.md.
# TRUST_X_FORWARDED_FOR=true, the old setting, still means one proxy.
TRUSTED_PROXY_COUNT = _read(
    "TRUSTED_PROXY_COUNT", env.int, 1 if _strict_bool("TRUST_X_FORWARDED_FOR", False) else 0
)
if TRUSTED_PROXY_COUNT < 0:
    raise ImproperlyConfigured(
        f"The environment variable TRUSTED_PROXY_COUNT is malformed: {TRUSTED_PROXY_COUNT} is negative; "
        "give the number of proxies in front of Stageboard (0 for none)"
    )
# Login throttling (docs/security.md): this many failed logins for one username from one address...
LOGIN_FAILURES_ALLOWED = _read("LOGIN_FAILURES_ALLOWED", env.int, 5)
# ...within this many minutes lock that pair until the window has passed;
LOGIN_FAILURE_WINDOW_MINUTES = _read("LOGIN_FAILURE_WINDOW_MINUTES", env.int, 15)
# this many from one address, whatever the usernames, lock the address;
LOGIN_ADDRESS_FAILURES_ALLOWED = _read("LOGIN_ADDRESS_FAILURES_ALLOWED", env.int, 20)
# and after this many for one username from anywhere, its logins slow down (but never lock).
LOGIN_USERNAME_FAILURES_BEFORE_SLOWDOWN = _read("LOGIN_USERNAME_FAILURES_BEFORE_SLOWDOWN", env.int, 10)
for _name in (
    "LOGIN_FAILURES_ALLOWED",
    "LOGIN_FAILURE_WINDOW_MINUTES",
    "LOGIN_ADDRESS_FAILURES_ALLOWED",
    "LOGIN_USERNAME_FAILURES_BEFORE_SLOWDOWN",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"The environment variable {_name} is malformed: it must be at least 1")
