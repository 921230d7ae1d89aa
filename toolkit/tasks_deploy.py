"""The deploy toolkit's top-level invoke tasks: provision, deploy, rollback, releases, status,
logs, restart, history, render, verify, and the `lock` collection (lock.status, lock.release).
What changes a host (deploy, rollback, restart, provision, lock.release) leaves a line in its
audit trail (toolkit/audit.py), which `history` shows.

Each task is thin: it reads the app's deploy.toml (stopping with a clear message before any
host is touched if it is wrong), then runs library code from toolkit/ and roles/ on each host
in turn, stopping at the first host that fails, and prints a summary per host.

`invoke --list` shows every task; `invoke --help deploy` shows one task's options.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from invoke import Collection, task
from invoke.exceptions import Exit

from toolkit import hosts as hosts_mod
from toolkit.errors import DeployError, fill_next, next_task
from toolkit.report import Reporter
from toolkit.tasking import (APP_HELP, APP_ROLES, DRY_HELP, HOST_HELP, LIMIT_HELP, PARALLEL_HOSTS, HelpTask,
                             host_specs, load_config, run_on_hosts, site_url)

CHECKS = Path(__file__).resolve().parent / "checks" / "test_site.py"


# ----------------------------------------------------------------------------------------------
# The tasks
# ----------------------------------------------------------------------------------------------

@task(klass=HelpTask, iterable=["host", "limit"],
      help={"host": HOST_HELP["provision"], "limit": LIMIT_HELP, "app": APP_HELP, "dry": DRY_HELP})
def provision(c, host=None, limit=None, app=".", dry=False):
    """Prepare hosts for the app: packages, user, folders, systemd units, nginx (safe to re-run)."""
    cfg = load_config(app)
    rep = Reporter(dry=dry)
    specs = host_specs(host, cfg, limit)
    vars_of = None
    if cfg.inventory.multi:
        from toolkit import fleet_run

        addresses = fleet_run.read_addresses(cfg, app)
        database = fleet_run.read_database(cfg, app, addresses)
        vars_of = lambda spec: fleet_run.vars_for(cfg, spec, addresses, database=database)  # noqa: E731
    run_on_hosts(specs, rep, provision_work(cfg, rep, dry, vars_of), app, parallel=PARALLEL_HOSTS)


def provision_work(cfg, rep, dry, vars_of=None):
    """The provision task's work(conn, spec) for run_on_hosts: under the deploy lock, the host
    provisioned by its roles (`vars_of(spec)`: deploy.toml [hosts], toolkit/fleet.py)."""
    from roles.provision import provision as provision_host
    from toolkit import audit
    from toolkit.lock import release_if_ours as unlock_if_ours

    from toolkit.fleet import host_config

    def work(conn, spec):
        lock = _take_lock(conn, cfg, rep) if not dry else ""
        result = "failed"
        try:
            if lock:
                rep.stage("provisioning")
            provision_host(conn, host_config(cfg, str(spec)), rep, dry=dry, lock_held=bool(lock),
                           fleet_vars=vars_of(spec) if vars_of else None)
            result = "ok"
        finally:
            if lock:
                audit.record(conn, cfg, "provision", "-", result)
                unlock_if_ours(conn, cfg, lock)
        return site_url(cfg, conn) if cfg.inventory.serves_site(str(spec)) else ""

    return work


@task(klass=HelpTask, iterable=["host", "limit"], help={
    "host": HOST_HELP["deploy"], "limit": LIMIT_HELP, "app": APP_HELP, "dry": DRY_HELP,
    "force": "make a new release even when the host already runs exactly this code",
    "batch": "with deploy.toml [hosts]: how many app hosts switch at once, out of the load balancer "
             "(default 1)",
})
def deploy(c, host=None, limit=None, app=".", dry=False, force=False, batch=1):
    """Provision, then release the app: upload, install, switch, health check (rolls back on failure)."""
    from concurrent.futures import ThreadPoolExecutor

    from toolkit import stages
    from toolkit.packaging import server_wheel

    cfg = load_config(app)
    rep = Reporter(dry=dry)
    # The server wheel is built here while the first host is provisioned (it takes seconds
    # when ./server changed, and is cached by the hash of its sources otherwise).
    builder = ThreadPoolExecutor(max_workers=1)
    wheel = builder.submit(server_wheel)
    builder.shutdown(wait=False)
    if cfg.inventory.multi:
        from toolkit import fleet_run

        fleet_run.deploy(cfg, rep, host_specs(host, cfg, limit), app, dry=dry, force=force, wheel=wheel,
                         batch=int(batch))
        return

    def work(conn, spec):
        ctx, done = deploy_context(conn, cfg, rep, dry=dry, force=force, wheel=wheel)
        try:
            outcome = stages.run(ctx)
        finally:
            done()
        if outcome is None:
            return ""
        if not dry:
            rep.line(f"  live: releases/{outcome.release}")
        return site_url(cfg, conn)

    run_on_hosts(host_specs(host, cfg, limit), rep, work, app)


def deploy_context(conn, cfg, rep, dry=False, force=False, wheel=None, fleet_vars=None):
    """One host's DeployContext with the deploy's hooks: provisioning after starting (under the
    lock), nginx finished before publishing. Returns (ctx, done): call done() whatever happens
    (provisioning left whole, our lock let go). `fleet_vars`: deploy.toml [hosts]
    (toolkit/fleet.py host_vars)."""
    from roles import app_env
    from roles.provision import provision as provision_host
    from toolkit import lock as deploy_lock
    from toolkit import stages
    from toolkit.releases import Releases

    ctx = stages.DeployContext(conn, cfg, rep, dry=dry, force=force, wheel_future=wheel)
    provisioned = []

    def provision(ctx):
        # After the lock (two deploys must never provision the same host at once). nginx
        # (package and site) may finish while the release is prepared: a first deploy
        # installs nginx and builds the venv at the same time.
        # The host's releases are read in the same round trip as provisioning's facts.
        rep.stage("provisioning")
        provisioned.append(provision_host(conn, cfg, rep, dry=dry, lock_held=bool(ctx.lock_text),
                                          defer_nginx=True, extra_facts=[Releases(cfg)], fleet_vars=fleet_vars))
        ctx.settings_changed = app_env.settings_changed(provisioned[0].facts, provisioned[0].wanted)
        state = provisioned[0].gathered[Releases]
        if Releases.still_true(state):
            ctx.releases = state
        elif dry and not _provisioned(conn, cfg):
            provisioned[0].finish()
            rep.line("  (dry run: the release stages need a provisioned host; run without --dry)")
            ctx.finished = True

    def done():
        if provisioned and not provisioned[0].finished:
            _finish_quietly(provisioned[0])
        if ctx.lock_text:
            deploy_lock.release_if_ours(conn, cfg, ctx.lock_text)

    ctx.hooks.after("starting", provision)
    ctx.hooks.before("publishing", lambda ctx: provisioned[0].finish())
    return ctx, done


def _finish_quietly(provisioned) -> None:
    """Complete the nginx part after a release that stopped early: provisioning stays whole
    (and no apt-get is left running once the lock is gone). The release's error is the one
    shown, so an error here is left out."""
    try:
        provisioned.finish()
    except Exception:
        pass


def _take_lock(conn, cfg, rep) -> str:
    from toolkit import lock as deploy_lock
    from toolkit.interrupted import report_take_over

    rep.stage("starting")
    with rep.step("deploy lock") as st:
        taken = deploy_lock.acquire(conn, cfg)
        report_take_over(conn, cfg, st, taken)
    return taken.text


def _provisioned(conn, cfg) -> bool:
    from toolkit.remote import q, sh

    return sh(conn, f"test -d {q(cfg.layout.releases_dir)}", check=False, timeout=30).ok


@task(klass=HelpTask, iterable=["host", "limit"], help={
    "host": HOST_HELP["rollback"], "limit": LIMIT_HELP, "app": APP_HELP,
    "to": "the release to go back to, e.g. 20250101120000 (see `invoke releases`); "
          "default: the good release before the current one",
    "batch": "with deploy.toml [hosts]: how many app hosts roll back at once, out of the load balancer "
             "(default 1)",
})
def rollback(c, host=None, limit=None, app=".", to=None, batch=1):
    """Go back to an earlier good release (the one before the current one, or --to RELEASE)."""
    from toolkit.stages import rollback as rollback_host

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()
    if cfg.inventory.multi:
        from toolkit import fleet_run

        fleet_run.rollback(cfg, rep, host_specs(host, cfg, limit), app, to, int(batch))
        return

    def work(conn, spec):
        name = rollback_host(conn, cfg, rep, to=to)
        rep.line(f"  live: releases/{name}")
        return site_url(cfg, conn)

    run_on_hosts(host_specs(host, cfg, limit), rep, work, app)


@task(klass=HelpTask, iterable=["host", "limit"], help={"host": HOST_HELP["releases"], "limit": LIMIT_HELP, "app": APP_HELP})
def releases(c, host=None, limit=None, app="."):
    """List the releases on the host: which is live, which are good, which failed."""
    from toolkit.releases import read_releases

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        state = read_releases(conn, cfg)
        if not state.releases:
            rep.line("  no releases yet: " + fill_next(next_task("deploy"), str(spec), app))
        for r in reversed(state.releases):
            mark = "*" if r.name == state.current else " "
            verdict = r.state or "unfinished"
            rep.line(f"  {mark} {r.name}  {verdict:<10}  venv {r.venv or '-'}")
        if state.holder:
            rep.line(f"  deploy lock held by {state.holder.describe()}")
        rep.line("  (* = live; roll back with: " + fill_next(next_task("rollback"), str(spec), app)
                 + " [--to RELEASE])")
        return ""

    run_on_hosts(host_specs(host, cfg, limit, APP_ROLES), rep, work, app)


def _site_check(conn, cfg, rep) -> None:
    """The health check through this host's nginx (on a load balancer: on to the app hosts)."""
    from toolkit.release_commands import health_check

    with rep.step("health check") as st:
        health = health_check(conn, cfg, timeout=5)
        st.info(f"{health.status or 'no answer'} from {cfg.health.path} "
                f"(expected {cfg.health.expect})")
        if not health.ok:
            raise DeployError(f"the site does not answer as expected: {health.body[:300]}",
                              next_task("logs"))


@task(klass=HelpTask, iterable=["host", "limit"], help={"host": HOST_HELP["status"], "limit": LIMIT_HELP, "app": APP_HELP})
def status(c, host=None, limit=None, app="."):
    """Show whether the app runs: its units, the live release, and a health check through nginx (every host of every role)."""
    from toolkit.interrupted import recover_interrupted
    from toolkit.releases import read_releases
    from toolkit import maintenance, tls_status
    from toolkit.remote import q, sh

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    from toolkit.fleet import host_config

    def work(conn, spec):
        roles = cfg.inventory.roles_of(str(spec)) if cfg.inventory.multi else ()
        if roles:
            rep.line(f"  roles: {', '.join(roles)}")
        runs_app = not roles or "app" in roles or "worker" in roles
        units = ((cfg.layout.socket_unit_name, cfg.layout.unit_name) if runs_app else ()) + ("nginx.service",)
        if "db" in roles:
            units += ("postgresql.service",)
        units = " ".join(q(u) for u in units)
        out = sh(conn, f"for u in {units}; do echo \"$u $(systemctl is-enabled $u 2>/dev/null) "
                       f"$(systemctl is-active $u 2>/dev/null)\"; done", check=False, timeout=60).stdout
        down = []
        for line in out.splitlines():
            unit, *states = line.split()
            rep.line(f"  {unit:<28} {' / '.join(states) or 'not installed'}")
            if not runs_app and (not states or states[-1] != "active"):
                down.append(unit)
        if not runs_app:  # a load balancer or the database host: no release of the app here
            if "lb" in roles:  # where visitors arrive: maintenance.on is the load balancers'
                maintenance.show(conn, cfg, rep, str(spec), app)
            if down:
                raise DeployError(f"{', '.join(down)} is not running", next_task("provision"))
            if not cfg.inventory.serves_site(str(spec)):
                return ""
            tls_status.show(conn, cfg, rep, str(spec), app)  # the load balancers hold the certificate
            _site_check(conn, cfg, rep)  # through this load balancer to the app hosts
            return site_url(cfg, conn)
        state = read_releases(conn, cfg)
        recovered = recover_interrupted(conn, cfg, rep, state)  # a deploy killed after its switch
        if recovered:
            rep.line(f"  {recovered}")
            state = read_releases(conn, cfg)
        rep.line(f"  live release: {state.current or 'none yet'}")
        if state.holder:
            rep.line(f"  deploy lock: held by {state.holder.describe()}")
        maintenance.show(conn, cfg, rep, str(spec), app)  # maintenance.on: visitors get 503
        on_host = host_config(cfg, str(spec))  # [processes] on workers only; [tls] on the lbs only
        tls_status.show(conn, on_host, rep, str(spec), app)  # [tls]: the certificate's expiry
        troubled = _process_status(conn, on_host, rep)
        _site_check(conn, on_host, rep)
        if troubled:
            raise DeployError(f"{', '.join(troubled)}: not running, or its last run failed (see above)",
                              next_task("logs", "--process", troubled[0]))
        return site_url(cfg, conn) if cfg.inventory.serves_site(str(spec)) else ""

    run_on_hosts(host_specs(host, cfg, limit), rep, work, app, parallel=PARALLEL_HOSTS)


def _process_status(conn, cfg, rep) -> list[str]:
    """The [processes] and [schedule] units' lines (toolkit/process_status.py); returns the names
    that need looking at."""
    from toolkit import process_status
    from toolkit.remote import sh

    command = process_status.show_command(cfg)
    if not command:
        return []
    shown = process_status.parse(sh(conn, command, check=False, timeout=60).stdout)
    lines = process_status.describe(cfg, shown)
    for line in lines:
        rep.line(f"  {line.text}")
    return [line.problem for line in lines if line.problem]


def _log_unit(cfg, process, app, host) -> str:
    """The unit whose journal `logs` shows: the web service, or a [processes]/[schedule] one."""
    from toolkit.process_units import process_unit, schedule_unit

    if not process:
        return cfg.layout.unit_name
    if process in cfg.processes:
        return process_unit(cfg.name, process)
    if process in cfg.schedules:
        return schedule_unit(cfg.name, process)
    known = sorted(cfg.processes) + sorted(cfg.schedules)
    hint = next_task("logs", "--process", known[0]) if known else next_task("logs")
    raise Exit(f"error: no process or scheduled job named {process!r} in deploy.toml ([processes] and "
               f"[schedule]: {', '.join(known) or 'none'})\n  next: " + fill_next(hint, str(host), app), code=1)


@task(klass=HelpTask, iterable=["host", "limit"], help={
    "host": HOST_HELP["logs"], "limit": LIMIT_HELP, "app": APP_HELP,
    "n": "how many recent lines to show (default 50)",
    "follow": "keep showing new lines as they come (stop with Ctrl-C)",
    "process": "a [processes] or [schedule] name from deploy.toml: show its journal instead of the web server's",
})
def logs(c, host=None, limit=None, app=".", n=50, follow=False, process=None):
    """Show the app's log (journalctl -u APP, or a process's with --process NAME) from the host."""
    from toolkit.remote import as_root, q

    cfg = load_config(app, check_secrets=False)
    unit = _log_unit(cfg, process, app, (list(host or ()) + list(cfg.hosts) + ["HOST"])[0])
    specs = host_specs(host, cfg, limit, APP_ROLES)
    for spec in specs:
        try:
            conn = hosts_mod.connect(spec)
        except hosts_mod.HostError as exc:
            raise Exit(f"error: {exc}\n  next: {fill_next(exc.next_step, str(spec), app)}", code=1)
        if len(specs) > 1:
            print(f"== {spec}")
        cmd = f"journalctl -u {q(unit)} -n {int(n)} --no-pager" + (" -f" if follow else "")
        try:
            conn.run(as_root(conn, cmd), warn=True, pty=follow)
        except KeyboardInterrupt:
            pass
        finally:
            conn.close()


@task(klass=HelpTask, iterable=["host", "limit"], help={"host": HOST_HELP["restart"], "limit": LIMIT_HELP, "app": APP_HELP})
def restart(c, host=None, limit=None, app="."):
    """Restart the app's server (requests wait in the socket meanwhile), then health-check it."""
    from toolkit import audit, stages

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        try:
            health = stages.restart_checked(conn, cfg, rep, "after the restart", next_task("logs"))
        except DeployError:
            audit.record(conn, cfg, "restart", "-", "failed")
            raise
        audit.record(conn, cfg, "restart", "-", "ok" if health.ok else "failed")
        return site_url(cfg, conn)

    run_on_hosts(host_specs(host, cfg, limit, APP_ROLES), rep, work, app)


@task(klass=HelpTask, iterable=["host", "limit"], help={
    "host": HOST_HELP["history"], "limit": LIMIT_HELP, "app": APP_HELP,
    "n": "how many of the latest entries to show (default 20)",
})
def history(c, host=None, limit=None, app=".", n=20):
    """Show the host's audit trail: who deployed, rolled back, restarted or provisioned, when, how it went."""
    from toolkit import audit

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        entries = audit.read(conn, cfg, int(n))
        for entry in entries:
            rep.line("  " + entry.describe())
        if not entries:
            rep.line("  nothing recorded yet: " + fill_next(next_task("deploy"), str(spec), app))
        return ""

    run_on_hosts(host_specs(host, cfg, limit), rep, work, app)


@task(klass=HelpTask, help={
    "app": APP_HELP,
    "out": "the local folder to write the files into (default: rendered)",
})
def render(c, app=".", out="rendered"):
    """Write every config file a deploy would install into a local folder, for review."""
    from toolkit.render import render_to_dir

    cfg = load_config(app, check_secrets=False)
    written = render_to_dir(cfg, out)
    for path in written:
        print(f"  {path}")
    print(f"wrote {len(written)} files for {cfg.name} under {out}/ (secret values masked)")


@task(klass=HelpTask, iterable=["host", "limit"], help={"host": HOST_HELP["verify"], "limit": LIMIT_HELP, "app": APP_HELP})
def verify(c, host=None, limit=None, app="."):
    """Check a deployed host with testinfra: user, file modes, units, socket, nginx, the site."""
    cfg = load_config(app, check_secrets=False)
    failed = []
    for spec in host_specs(host, cfg, limit, APP_ROLES):
        try:  # an unknown or changed host key stops here with its own message, not as 9 failed checks
            hosts_mod.connect(spec).close()
        except hosts_mod.HostError as exc:
            raise Exit(f"error: {exc}\n  next: {fill_next(exc.next_step, str(spec), app)}", code=1)
        argv = [sys.executable, "-m", "pytest", str(CHECKS), "-q", "-p", "no:cacheprovider",
                "-o", "addopts=", "--rootdir", str(CHECKS.parent), *testinfra_args(spec)]
        repo = str(CHECKS.parents[2])  # the checks import toolkit.config from this checkout
        env = dict(os.environ, PRONGHORN_APP_DIR=str(Path(app).resolve()),
                   PYTHONPATH=os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")])))
        print(f"== {spec}: testinfra checks ({CHECKS.relative_to(Path.cwd()) if _under_cwd(CHECKS) else CHECKS})")
        if subprocess.run(argv, env=env).returncode != 0:
            failed.append(str(spec))
    if failed:
        raise Exit(f"verify failed on {', '.join(failed)}: see the checks above\n  next: "
                   + fill_next(next_task("status"), failed[0], app) + " and "
                   + fill_next(next_task("logs"), failed[0], app), code=1)


def testinfra_args(spec) -> list[str]:
    """pytest-testinfra's arguments for `spec`: the toolkit's own backend (toolkit/testinfra_backend.py),
    so the checks run over a connection that verified the host key as every deploy does (testinfra's
    paramiko backend accepts any key) and is one connection for every check."""
    return ["-p", "toolkit.testinfra_backend", f"--hosts=pronghorn://{spec.raw}"]


def _under_cwd(path: Path) -> bool:
    try:
        path.relative_to(Path.cwd())
        return True
    except ValueError:
        return False


# ----------------------------------------------------------------------------------------------
# lock.status, lock.release
# ----------------------------------------------------------------------------------------------

@task(klass=HelpTask, name="status", iterable=["host", "limit"],
      help={"host": HOST_HELP["lock.status"], "limit": LIMIT_HELP, "app": APP_HELP})
def lock_status(c, host=None, limit=None, app="."):
    """Show who holds the deploy lock on the host, if anyone."""
    from toolkit.releases import read_releases

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        holder = read_releases(conn, cfg).holder
        if holder is None:
            rep.line("  free")
        elif holder.dead():
            rep.line(f"  held by {holder.describe()}")
            rep.line("  the next deploy, rollback or status from this machine takes it over (and puts back "
                     "a release it left unverified); or release it now with: "
                     + fill_next(next_task("lock.release"), str(spec), app))
        else:
            rep.line(f"  held by {holder.text}")
        return ""

    run_on_hosts(host_specs(host, cfg, limit), rep, work, app)


@task(klass=HelpTask, name="release", iterable=["host", "limit"],
      help={"host": HOST_HELP["lock.release"], "limit": LIMIT_HELP, "app": APP_HELP})
def lock_release(c, host=None, limit=None, app="."):
    """Remove a deploy lock left behind by a deploy that crashed or was interrupted."""
    from toolkit import audit
    from toolkit import lock as deploy_lock
    from toolkit.releases import read_releases

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        holder = read_releases(conn, cfg).holder
        with rep.step("deploy lock") as st:
            if not holder:
                st.info("was not held")
            elif deploy_lock.release(conn, cfg, holder):
                audit.record(conn, cfg, "lock", "-", f"released (was held by {holder.text})")
                st.changed(f"removed (was held by {holder.text})")
            else:
                raise DeployError("the lock changed hands while it was being released; it was left alone",
                                  "see who holds it now: " + next_task("lock.status"))
        return ""

    run_on_hosts(host_specs(host, cfg, limit), rep, work, app)


lock = Collection("lock", lock_status, lock_release)

# tasks.py does Collection.from_module(tasks_deploy). from_module adds only a module's Task
# objects, not its Collections, unless the module defines `ns`: then it copies `ns`, sub-
# collections included. So the tasks are listed here (which also keeps lock's tasks from
# appearing a second time at the top level).
ns = Collection(provision, deploy, rollback, releases, status, logs, restart, history, render, verify)
ns.add_collection(lock)
