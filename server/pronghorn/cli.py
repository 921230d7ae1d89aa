"""`pronghorn` and `python -m pronghorn`: read the settings, then check, print or run.

`pronghorn ctl ...` is the control client instead (ctl.py); an app module named `ctl` is still
served when spelled `ctl:app`.

Exit statuses: 0 ok (and --help, --version, --print-config, a passing --check-config, warnings or not),
1 --check-config found a problem (in the settings or loading the app), 2 a bad flag or setting
otherwise. Every error is one line on stderr: `pronghorn: error: ...`. A running server exits with whatever the arbiter decides.
"""

from __future__ import annotations

import sys
from typing import NoReturn

from pronghorn.config import (Config, ConfigError, InfoRequested, load_config, no_effect_warnings,
                              print_config_lines)

EXIT_USAGE = 2


def fail(message: str, status: int = EXIT_USAGE) -> NoReturn:
    sys.stderr.write(f"pronghorn: error: {message}\n")
    sys.stderr.flush()
    raise SystemExit(status)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["ctl"]:  # `pronghorn ctl ...`: a client of a running server (ctl.py)
        from pronghorn.ctl import main as ctl_main
        return ctl_main(argv[1:])
    try:
        cfg = load_config(argv)
    except InfoRequested as info:
        print(info)
        raise SystemExit(0)
    except ConfigError as err:
        # --check-config promises 0 or 1 to the scripts that run it, whatever was wrong.
        fail(str(err), 1 if "--check-config" in argv else EXIT_USAGE)

    if cfg.print_config:
        print("\n".join(print_config_lines(cfg)))
        raise SystemExit(0)
    if cfg.check_config:
        raise SystemExit(check_config(cfg))
    run(cfg)


def check_config(cfg: Config) -> int:
    """Import the app (when one is named); print 'config ok' or the error. Returns the status.

    The warnings the server would log at start (a gunicorn setting accepted but without effect
    here, and why) go to stderr first: a gunicorn user switching over sees them before starting.
    They do not fail the check."""
    for line in no_effect_warnings(cfg):
        sys.stderr.write(f"pronghorn: warning: {line}\n")
    if cfg.app_uri:
        from pronghorn.loader import AppImportError, load_app

        try:
            load_app(cfg)
        except AppImportError as err:
            sys.stderr.write(f"pronghorn: error: {err}\n")
            return 1
    print("config ok")
    return 0


def run(cfg: Config) -> None:
    try:
        from pronghorn.arbiter import Arbiter
    except ImportError as err:
        fail(f"the server cannot start: {err}", 1)
    Arbiter(cfg).run()
