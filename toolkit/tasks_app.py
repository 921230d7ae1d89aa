"""Tasks that run commands in the app's world on a host: `run`, `manage` (Django's manage.py)
and `shell` (the framework's shell), each as the app user in the live release, its venv and
environment (toolkit/app_commands.py), on a terminal when you are at one, with the command's
exit code as the task's.

    invoke run --host H -- python -c 'import sys; print(sys.version)'
    invoke manage --host H -- createsuperuser
    invoke shell --host H
"""

from __future__ import annotations

import sys

from invoke import task

from toolkit.errors import ConfigError, ToolkitError, next_task
from toolkit.tasking import APP_HELP, APP_ROLES, HOST_HELP, HelpTask, host_specs, load_config, run_attached, stop


@task(klass=HelpTask, name="run", iterable=["host"], help={"host": HOST_HELP["run"], "app": APP_HELP})
def run_command(c, host=None, app="."):
    """Run a command (after --) as the app user in the live release: invoke run --host H -- CMD ..."""
    from toolkit.app_commands import command_after_dashes

    argv = command_after_dashes(sys.argv)

    def command(cfg):
        if not argv:
            raise ConfigError("say what to run after --, e.g. `invoke run --host H -- python --version`",
                              next_task("run", "--", "python", "--version"))
        return argv

    _run_in_app(host, app, command)


@task(klass=HelpTask, iterable=["host"], help={"host": HOST_HELP["manage"], "app": APP_HELP})
def manage(c, host=None, app="."):
    """Run Django's manage.py (arguments after --) as the app user in the live release, e.g. -- migrate"""
    from toolkit.app_commands import command_after_dashes, manage_argv

    args = command_after_dashes(sys.argv)
    _run_in_app(host, app, lambda cfg: manage_argv(cfg, args))


@task(klass=HelpTask, iterable=["host"], help={"host": HOST_HELP["shell"], "app": APP_HELP})
def shell(c, host=None, app="."):
    """Open the framework's shell (Django's, Flask's, else Python) in the live release, as the app user."""
    from toolkit.app_commands import shell_argv

    _run_in_app(host, app, shell_argv)


def _run_in_app(host, app, argv_for) -> None:
    """Run argv_for(cfg) on each host in turn; stop with the first non-zero exit code."""
    from toolkit.app_commands import as_app_line, live_release, wants_tty

    cfg = load_config(app, check_secrets=False)
    specs = host_specs(host, cfg, roles=APP_ROLES)
    if cfg.inventory.multi and not host and len(specs) > 1:
        # With [hosts] the app hosts share one database: `manage createsuperuser` or a data fix
        # must run once, not once per host (the second would ask again, then fail or do it twice).
        print(f"(on {specs[0]}, the first app host; --host app runs it on every app host in turn)",
              flush=True)
        specs = specs[:1]
    try:
        argv = argv_for(cfg)
    except ToolkitError as exc:
        stop(exc, specs[0], app)
    run_attached(specs, app, lambda conn: as_app_line(cfg, live_release(conn, cfg), argv),
                 wants_tty(sys.stdin, sys.stdout))
