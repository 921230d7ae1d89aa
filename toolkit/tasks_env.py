"""The `env` tasks: the app's settings and secrets on a host, without editing files
(toolkit/host_env.py says where they live and why they survive deploys).

    invoke env.list  --host H                names, values of deploy.toml's [env] only
    invoke env.set   --host H --name NAME    the value typed (not shown) or piped in; restart + check
    invoke env.unset --host H --name NAME    back to deploy.toml's value, or none; restart + check

A value is never taken from the command line: `env.set --name NAME=VALUE` is refused. NAME is a
flag, not a bare word: a bare first word would take `-h` as the name instead of showing the help.
"""

from __future__ import annotations

import getpass
import sys

from invoke import Collection, task
from invoke.exceptions import Exit

from toolkit.errors import ConfigError, fill_next, next_task
from toolkit.report import Reporter
from toolkit.tasking import APP_HELP, APP_ROLES, HOST_HELP, HelpTask, host_specs, load_config, run_on_hosts, site_url

@task(klass=HelpTask, name="list", iterable=["host"], help={"host": HOST_HELP["env.list"], "app": APP_HELP})
def env_list(c, host=None, app="."):
    """List the app's environment on the host: names, with every value masked but deploy.toml's [env]."""
    from toolkit import host_env

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        entries = host_env.read(conn, cfg)
        width = max((len(e.name) for e in entries), default=0)
        for e in entries:
            note = "  (set on the host: invoke env.unset to remove)" if e.source == "host" else ""
            rep.line(f"  {e.name}={e.value}{' ' * (width - len(e.name))}{note}")
        if not entries:
            rep.line("  nothing yet: " + fill_next(next_task("deploy"), str(spec), app))
        return ""

    run_on_hosts(host_specs(host, cfg, roles=APP_ROLES), rep, work, app)


@task(klass=HelpTask, name="set", iterable=["host"], help={
    "name": "the variable to set, e.g. SECRET_KEY (its value is asked for, or read from stdin; "
            "never NAME=VALUE on the command line)",
    "host": HOST_HELP["env.set"], "app": APP_HELP})
def env_set(c, name="", host=None, app="."):
    """Set a variable of the app on the host (value typed unseen or piped in), then restart and check."""
    from toolkit import host_env

    cfg = load_config(app, check_secrets=False)
    specs = host_specs(host, cfg, roles=APP_ROLES)
    name = _checked(lambda: host_env.check_name(name), specs[0], app)
    value = _checked(lambda: host_env.value_from(_read_value(name), name), specs[0], app)
    rep = Reporter()

    def change(st, conn):
        host_env.set_value(conn, cfg, name, value)
        st.changed()
        return True

    def work(conn, spec):
        host_env.require_unit_reads_local(conn, cfg)
        return _changing(conn, cfg, rep, f"set {name}", lambda st: change(st, conn),
                         hint=next_task("env.unset", "--name", name))

    run_on_hosts(specs, rep, work, app)


@task(klass=HelpTask, name="unset", iterable=["host"], help={
    "name": "the variable set with env.set to remove, e.g. SECRET_KEY",
    "host": HOST_HELP["env.unset"], "app": APP_HELP})
def env_unset(c, name="", host=None, app="."):
    """Remove a variable set on the host with env.set (deploy.toml's value, if any, applies again)."""
    from toolkit import host_env
    from toolkit.render import base_env

    cfg = load_config(app, check_secrets=False)
    specs = host_specs(host, cfg, roles=APP_ROLES)
    name = _checked(lambda: host_env.check_name(name), specs[0], app)
    from_deploy = name in base_env(cfg) or name in cfg.secrets
    rep = Reporter()

    def remove(st, conn):
        if not host_env.unset_value(conn, cfg, name):
            if from_deploy:
                raise ConfigError(f"{name} comes from deploy.toml ([env] or [app] secrets), not from "
                                  "env.set: remove it there, then deploy", next_task("deploy"))
            st.info("was not set on the host")
            return False
        st.changed("deploy.toml's value applies again" if from_deploy else "")
        return True

    def work(conn, spec):
        return _changing(conn, cfg, rep, f"unset {name}", lambda st: remove(st, conn),
                         hint=next_task("env.set", "--name", name))

    run_on_hosts(specs, rep, work, app)


def _changing(conn, cfg, rep, what: str, change, hint: str) -> str:
    """Under the deploy lock (a deploy must not restart the app meanwhile): `change(step)`, then,
    when it changed something, a line in the audit trail (the name, never the value), a restart
    and a health check."""
    from toolkit import audit
    from toolkit import lock as deploy_lock

    with rep.step("deploy lock") as st:
        taken = deploy_lock.take(conn, cfg)
        st.info("taken")
    try:
        with rep.step(what) as st:
            changed = change(st)
        if changed:
            audit.record(conn, cfg, "env", "-", what)  # the name, never the value
            _restart_checked(conn, cfg, rep, hint)
    finally:
        deploy_lock.release_if_ours(conn, cfg, taken)
    return site_url(cfg, conn)


def _restart_checked(conn, cfg, rep, hint: str) -> None:
    from toolkit import stages

    stages.restart_checked(conn, cfg, rep, "with the new environment",
                           f"see its log: {next_task('logs')}; or undo the change: {hint}")


def _read_value(name: str) -> str:
    """The value from the prompt (not echoed) at a terminal, else from stdin."""
    from toolkit import host_env

    if sys.stdin is not None and sys.stdin.isatty():
        return getpass.getpass(f"value of {name} (not shown): ")
    return sys.stdin.read(host_env.MAX_VALUE + 1) if sys.stdin is not None else ""


def _checked(get, spec, app: str):
    """get(), or the task stopped with the error and its next step filled for this command."""
    from toolkit.tasking import explain

    try:
        return get()
    except ConfigError as exc:
        message, next_step, _ = explain(exc, spec, app)
        raise Exit(f"error: {message}\n  next: {next_step}", code=2)


ns = Collection("env", env_list, env_set, env_unset)
