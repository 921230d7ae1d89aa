"""Django's collectstatic into a folder the app user may write, for a release the app user may
not: `python3 collectstatic.py SETTINGS_MODULE OUT_DIR`, run as the app user in the release
folder with the release's venv and the app's environment.

The release is root's (the app never owns code it runs), so collectstatic cannot write
STATIC_ROOT inside it. This runs collectstatic with STATIC_ROOT pointed at OUT_DIR and prints,
last, the app's own STATIC_ROOT after a `@@static_root` line and the release folder as the
kernel names it (symlinks resolved, as Django's BASE_DIR is) after `@@cwd`: root then copies
OUT_DIR to that place in the release (toolkit/release_commands.py, which refuses a STATIC_ROOT
outside the release).
"""

import os
import sys


def main(argv):
    settings_module, out_dir = argv[1], argv[2]
    sys.path.insert(0, ".")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    static_root = settings.STATIC_ROOT
    # The storage reads STATIC_ROOT when first used, which is after this line.
    settings.STATIC_ROOT = out_dir
    call_command("collectstatic", interactive=False, verbosity=1)
    print("@@static_root")
    print(os.fspath(static_root) if static_root else "")
    print("@@cwd")
    print(os.getcwd())


if __name__ == "__main__":
    main(sys.argv)
