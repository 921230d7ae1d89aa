"""The `maintenance` tasks: a static 503 page from nginx while the app is worked on
(toolkit/maintenance.py says how, and why a deploy meanwhile keeps it on).

    invoke maintenance.on  --host H    visitors get 503, Retry-After and the maintenance page
    invoke maintenance.off --host H    the app answers again

The app keeps running: `invoke run`, `manage`, the deploy's health check and the [processes] go on
as usual. `invoke status` says when maintenance is on; each change is a line in the audit trail.
"""

from __future__ import annotations

from invoke import Collection, task

from toolkit.errors import DeployError, fill_next, next_task
from toolkit.report import Reporter
from toolkit.tasking import APP_HELP, HOST_HELP, HelpTask, host_specs, load_config, run_on_hosts, site_url

_FORMS = HOST_HELP["status"].split(": ", 1)[1]
ON_HOST_HELP = "the host whose site shows the maintenance page (503) to its visitors: " + _FORMS
OFF_HOST_HELP = "the host whose site serves the app again: " + _FORMS


@task(klass=HelpTask, name="on", iterable=["host"], help={"host": ON_HOST_HELP, "app": APP_HELP})
def maintenance_on(c, host=None, app="."):
    """Show visitors a maintenance page (503, Retry-After) instead of the app; the app keeps running."""
    from toolkit import audit, maintenance
    from toolkit.remote import sh

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        with rep.step("maintenance on") as st:
            result = sh(conn, maintenance.on_script(cfg), check=False, timeout=60, what="turning maintenance on")
            if result.exited == maintenance.NO_SITE_EXIT:
                raise DeployError(f"the nginx site of {cfg.name} on this host has no maintenance mode (the app is "
                                  "not deployed here yet, or was deployed by an older toolkit)",
                                  "deploy, then turn it on: " + next_task("deploy"))
            if not result.ok:
                raise DeployError("could not turn maintenance on: " + (result.stdout + result.stderr).strip(),
                                  next_task("maintenance.on"))
            st.changed(f"{cfg.layout.maintenance_flag}: visitors get 503 and the maintenance page")
        audit.record(conn, cfg, "maintenance", "-", "on")
        rep.line("  the app still runs (invoke run, the health check); to serve it again: "
                 + fill_next(next_task("maintenance.off"), str(spec), app))
        return site_url(cfg, conn)

    run_on_hosts(host_specs(host, cfg), rep, work, app)


@task(klass=HelpTask, name="off", iterable=["host"], help={"host": OFF_HOST_HELP, "app": APP_HELP})
def maintenance_off(c, host=None, app="."):
    """End maintenance mode: the site serves the app again."""
    from toolkit import audit, maintenance
    from toolkit.remote import sh

    cfg = load_config(app, check_secrets=False)
    rep = Reporter()

    def work(conn, spec):
        with rep.step("maintenance off") as st:
            result = sh(conn, maintenance.off_script(cfg), check=False, timeout=60, what="turning maintenance off")
            if result.exited == maintenance.WAS_OFF_EXIT:
                st.info("was not on")
                return site_url(cfg, conn)
            if not result.ok:
                raise DeployError("could not turn maintenance off: " + (result.stdout + result.stderr).strip(),
                                  next_task("maintenance.off"))
            st.changed("the app answers again")
        audit.record(conn, cfg, "maintenance", "-", "off")
        return site_url(cfg, conn)

    run_on_hosts(host_specs(host, cfg), rep, work, app)


ns = Collection("maintenance")
ns.add_task(maintenance_on)
ns.add_task(maintenance_off)
