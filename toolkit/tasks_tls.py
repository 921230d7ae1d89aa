"""The `tls` tasks: the site's certificate ([tls] in deploy.toml; toolkit/tls_issue.py).

    invoke tls.renew --host H [--dry]   get a letsencrypt certificate that a deploy could not
                                        get, or renew the existing one now (--dry: a dry run)

certbot's timer renews by itself; this is for the first certificate after DNS or the firewall
was fixed, and for proving renewal works. With deploy.toml [hosts] and a load balancer, the
certificate is the load balancer's: the task works on the lb hosts (without --host, all of them).
"""

from __future__ import annotations

from invoke import Collection, task

from toolkit.report import Reporter
from toolkit.tasking import APP_HELP, DRY_HELP, HOST_HELP, HelpTask, host_specs, load_config, run_on_hosts

RENEW_HOST_HELP = ("the host whose certificate to get or renew (with [hosts] and a load balancer: the lb "
                   "hosts): " + HOST_HELP["status"].split(": ", 1)[1])


def tls_hosts(cfg) -> tuple | None:
    """The roles that hold the certificate with deploy.toml [hosts]: the load balancers when there
    are any (they end TLS), else the app hosts; None without [hosts] (every host given)."""
    if not cfg.inventory.multi:
        return None
    return ("lb",) if cfg.inventory.balanced else ("app",)


@task(klass=HelpTask, iterable=["host"], help={"host": RENEW_HOST_HELP, "app": APP_HELP, "dry": DRY_HELP})
def renew(c, host=None, app=".", dry=False):
    """Get the site's Let's Encrypt certificate if a deploy could not, or renew it now (nginx reloads)."""
    from toolkit.fleet import host_config
    from toolkit.tls_issue import renew as renew_on

    cfg = load_config(app, check_secrets=False)
    rep = Reporter(dry=dry)
    specs = host_specs(host, cfg, roles=tls_hosts(cfg))
    vars_of = lambda spec: None  # noqa: E731
    if cfg.inventory.multi:
        # A first certificate provisions the host (its https site): as the deploy does, by its roles.
        from toolkit import fleet_run

        addresses = fleet_run.read_addresses(cfg, app)
        # app hosts (no lb) keep their DATABASE_URL from the db host; a load balancer needs none
        database = None if cfg.inventory.balanced else fleet_run.read_database(cfg, app, addresses)
        vars_of = lambda spec: fleet_run.vars_for(cfg, spec, addresses, database=database)  # noqa: E731

    def work(conn, spec):
        renew_on(conn, rep, host_config(cfg, str(spec)), dry, fleet_vars=vars_of(spec))
        return ""

    run_on_hosts(specs, rep, work, app)


ns = Collection("tls")
ns.add_task(renew)
