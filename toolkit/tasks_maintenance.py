"""The `maintenance` tasks: a static 503 page from nginx while the app is worked on
(toolkit/maintenance.py says how, and why a deploy meanwhile keeps it on).

    invoke maintenance.on  --host H    visitors get 503, Retry-After and the maintenance page
    invoke maintenance.off --host H    the app answers again

With deploy.toml [hosts] they work on the load balancers (where visitors arrive; without one,
the app hosts): the app hosts behind them are not touched and keep answering the load balancers.
The app keeps running: `invoke run`, `manage`, the deploy's health check and the [processes] go on
as usual. `invoke status` says when maintenance is on; each change is a line in the audit trail.
"""

from __future__ import annotations

from invoke import Collection, task

from toolkit.errors import DeployError, fill_next, next_task
from toolkit.report import Reporter
from toolkit.tasking import APP_HELP, HOST_HELP, HelpTask, host_specs, load_config, run_on_hosts, site_url

_FORMS = HOST_HELP["status"].split(": ", 1)[1]
_FLEET = " (with deploy.toml [hosts]: default the load balancers, where visitors arrive)"
ON_HOST_HELP = "the host whose site shows the maintenance page (503) to its visitors" + _FLEET + ": " + _FORMS
OFF_HOST_HELP = "the host whose site serves the app again" + _FLEET + ": " + _FORMS


def switch(on: bool, host, app: str) -> None:
    """maintenance.on / maintenance.off on the hosts whose nginx answers visitors
    (maintenance.front_roles): the flag made or removed, a line in each host's audit trail."""
    from toolkit import audit, maintenance
    from toolkit.remote import sh

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()
    word = "on" if on else "off"
    roles = maintenance.front_roles(cfg)

    def work(conn, spec):
        host_roles = cfg.inventory.roles_of(str(spec)) if roles else ()
        site = maintenance.site_of(cfg, host_roles)
        script = maintenance.on_script(cfg, site) if on else maintenance.off_script(cfg)
        with rep.step(f"maintenance {word}") as st:
            result = sh(conn, script, check=False, timeout=60, what=f"turning maintenance {word}")
            if on and result.exited == maintenance.NO_SITE_EXIT:
                lb = "lb" in host_roles
                raise DeployError(f"the {'load balancer' if lb else 'nginx'} site of {cfg.name} on this host "
                                  f"({site}) has no maintenance mode (the app is not "
                                  f"{'provisioned' if lb else 'deployed'} here yet, or was by an older toolkit)",
                                  ("provision it, then turn it on: " + next_task("provision")) if lb
                                  else "deploy, then turn it on: " + next_task("deploy"))
            if not on and result.exited == maintenance.WAS_OFF_EXIT:
                st.info("was not on")
                return site_url(cfg, conn)
            if not result.ok:
                raise DeployError(f"could not turn maintenance {word}: " + (result.stdout + result.stderr).strip(),
                                  next_task(f"maintenance.{word}"))
            st.changed(f"{cfg.layout.maintenance_flag}: visitors get 503 and the maintenance page" if on
                       else "the app answers again")
        audit.record(conn, cfg, "maintenance", "-", word)
        if on:
            rep.line("  the app still runs (invoke run, the health check); to serve it again: "
                     + fill_next(next_task("maintenance.off"), str(spec), app))
        return site_url(cfg, conn)

    run_on_hosts(host_specs(host, cfg, roles=roles), rep, work, app)


@task(klass=HelpTask, name="on", iterable=["host"], help={"host": ON_HOST_HELP, "app": APP_HELP})
def maintenance_on(c, host=None, app="."):
    """Show visitors a maintenance page (503, Retry-After) instead of the app; the app keeps running."""
    switch(True, host, app)


@task(klass=HelpTask, name="off", iterable=["host"], help={"host": OFF_HOST_HELP, "app": APP_HELP})
def maintenance_off(c, host=None, app="."):
    """End maintenance mode: the site serves the app again."""
    switch(False, host, app)


ns = Collection("maintenance")
ns.add_task(maintenance_on)
ns.add_task(maintenance_off)
