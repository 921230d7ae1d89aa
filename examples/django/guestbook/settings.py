"""Settings of the Django example project, read from the environment.

On a deployed host the environment comes from /srv/APP/shared/.env, written by the deploy
toolkit: SECRET_KEY (a secret), DEBUG, ALLOWED_HOSTS, APP_DATA_DIR and APP_MEDIA_DIR, and
DATABASE_URL ([database] engine = "postgresql") and REDIS_URL ([services] redis = true).
Locally, without any of them, the project runs in DEBUG mode with a throwaway key, a sqlite
file, and Celery tasks run at once in the request (no broker needed).
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlsplit

from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

DEBUG = os.environ.get("DEBUG", "false").lower() in ("1", "true", "yes", "on")

SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. On a deployed host it comes from shared/.env "
            "(deploy.toml: [app] secrets/generate_secrets); locally run with DEBUG=true.")
    SECRET_KEY = "insecure-local-development-key"

# A comma-separated list; the toolkit writes the app's domains here (with domains = ["_"], the
# host's own names and addresses and localhost: never "*").
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1").split(",")
                 if h.strip()]

# nginx talks to pronghorn over a unix socket and sets X-Forwarded-Proto to the scheme the
# client used. Trust it ONLY because nginx overwrites whatever the client sent (the site config
# does `proxy_set_header X-Forwarded-Proto $scheme`): then request.is_secure() is right behind
# a TLS-terminating nginx. If anything else can reach the app directly, remove this line, or a
# client could claim https. See Django's SECURE_PROXY_SSL_HEADER documentation.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")

CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "guestbook.urls"
WSGI_APPLICATION = "guestbook.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request",
                                       "django.contrib.auth.context_processors.auth",
                                       "django.contrib.messages.context_processors.messages"]},
}]

# Releases are replaced on every deploy; state lives in shared/, the one place the service may
# write (systemd's ProtectSystem=strict + ReadWritePaths).
DATA_DIR = Path(os.environ.get("APP_DATA_DIR", BASE_DIR))
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "db.sqlite3",
    }
}
# [database] engine = "postgresql": the toolkit writes DATABASE_URL (postgresql://USER:PASSWORD@
# localhost:5432/NAME) into shared/.env; without it (your machine) the sqlite file above.
if os.environ.get("DATABASE_URL"):
    _db = urlsplit(os.environ["DATABASE_URL"])
    DATABASES = {"default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": _db.path.lstrip("/"),
        "USER": unquote(_db.username or ""),
        "PASSWORD": unquote(_db.password or ""),
        "HOST": _db.hostname or "localhost",
        "PORT": _db.port or 5432,
        "CONN_MAX_AGE": 60,  # keep a connection per worker thread for a minute
    }}

# Celery (guestbook/celery.py): [services] redis = true writes REDIS_URL, the broker the web
# process sends tasks through and the worker process takes them from. Without it (your
# machine) a task runs at once, in the request that sent it.
REDIS_URL = os.environ.get("REDIS_URL", "")
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_IGNORE_RESULT = True            # the tasks leave their results in the database
CELERY_BEAT_SCHEDULE = {
    "heartbeat": {"task": "notes.tasks.heartbeat",
                  "schedule": float(os.environ.get("HEARTBEAT_SECONDS", "300"))},
}
# beat remembers its last runs in a file: in shared/data, the one place it may write.
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# `manage.py collectstatic` (run by the toolkit for each release) gathers static files here;
# nginx serves /static/ from this directory of the current release.
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("APP_MEDIA_DIR", BASE_DIR / "media"))

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
LANGUAGE_CODE = "en-us"

# Errors you can read: with DEBUG off Django sends a 500's traceback only by e-mail to ADMINS
# (none here), so it would be lost. Log it to stderr instead: systemd keeps the service's
# stderr in its journal, where `invoke logs` shows it; the client still gets a bare 500 page.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(levelname)s %(name)s: %(message)s"}},
    "handlers": {"stderr": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        # django.request: a 500 with its traceback (ERROR; 4xx answers are WARNINGs, left out:
        # the access log has them); django.security: refused hosts, CSRF failures.
        "django": {"handlers": ["stderr"], "level": "WARNING", "propagate": False},
        "django.request": {"level": "ERROR"},
        "notes": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
    },
}
