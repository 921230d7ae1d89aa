"""Settings of the Django example project, read from the environment.

On a deployed host the environment comes from /srv/APP/shared/.env, written by the deploy
toolkit: SECRET_KEY (a secret), DEBUG, ALLOWED_HOSTS, APP_DATA_DIR and APP_MEDIA_DIR.
Locally, without any of them, the project runs in DEBUG mode with a throwaway key.
"""

import os
from pathlib import Path

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
    "django.contrib.contenttypes",
    "django.contrib.staticfiles",
    "notes",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "guestbook.urls"
WSGI_APPLICATION = "guestbook.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [],
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": ["django.template.context_processors.request"]},
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
