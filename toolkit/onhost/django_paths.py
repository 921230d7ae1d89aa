"""Where a Django project keeps its data and static files, as its settings say:
`python django_paths.py`, run in the release folder as the app user, with the release's venv
and the app's environment (DJANGO_SETTINGS_MODULE from shared/.env).

Prints one line `@@django-paths JSON` (the settings module may print too): the release folder,
each database's alias, engine and NAME, MEDIA_ROOT, STATIC_ROOT and STATIC_URL, every path
resolved (symlinks followed), so the toolkit can tell which of them lie inside the release and
would be lost with it (toolkit/shared_paths.py decides what to do about them).
"""

import json
import os
import sys


def resolved(value):
    value = str(value or "")
    if not value or value == ":memory:" or value.startswith("file:"):
        return value
    return os.path.realpath(value)


def report(settings):
    return {
        "release": os.path.realpath("."),
        "databases": [{"alias": alias, "engine": str(db.get("ENGINE", "")), "name": resolved(db.get("NAME"))}
                      for alias, db in settings.DATABASES.items()],
        "media_root": resolved(settings.MEDIA_ROOT),
        "static_root": resolved(getattr(settings, "STATIC_ROOT", "")),
        "static_url": str(settings.STATIC_URL or ""),
    }


def main():
    sys.path.insert(0, ".")
    from django.conf import settings

    print("@@django-paths " + json.dumps(report(settings)))


if __name__ == "__main__":
    main()
