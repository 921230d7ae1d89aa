"""Check that the app's WSGI entry loads: `python3 import_check.py MODULE:NAME` (or
MODULE:FACTORY()), run in the release folder with the release's venv and the app's environment.
Prints `ok MODULE:NAME`; an import error ends with its traceback and a non-zero exit."""

import importlib
import sys


def check(spec):
    module, _, attr = spec.partition(":")
    factory = attr.endswith("()")
    obj = getattr(importlib.import_module(module), attr[:-2] if factory else attr)
    if not callable(obj):
        raise SystemExit(f"{spec} is not callable")
    return obj


def main(argv):
    sys.path.insert(0, ".")
    check(argv[1])
    print("ok", argv[1])


if __name__ == "__main__":
    main(sys.argv)
