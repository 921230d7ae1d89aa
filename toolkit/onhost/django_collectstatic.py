"""`manage.py collectstatic` for a project without STATIC_ROOT (a stock `startproject` has none):
`python django_collectstatic.py DIR`, run like manage.py (release folder, app user, the app's
environment). STATIC_ROOT is set to DIR when the settings leave it empty, then collectstatic
runs; the app itself never needs STATIC_ROOT, since nginx serves DIR.
"""

import sys


def main(argv):
    sys.path.insert(0, ".")
    import django
    from django.conf import settings
    from django.core.management import call_command

    if not settings.STATIC_ROOT:
        settings.STATIC_ROOT = argv[1]
    django.setup()
    call_command("collectstatic", interactive=False)


if __name__ == "__main__":
    main(sys.argv)
