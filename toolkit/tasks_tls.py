"""The `tls` tasks: the site's certificate ([tls] in deploy.toml; toolkit/tls_issue.py).

    invoke tls.renew --host H [--dry]   get a letsencrypt certificate that a deploy could not
                                        get, or renew the existing one now (--dry: a dry run)

certbot's timer renews by itself; this is for the first certificate after DNS or the firewall
was fixed, and for proving renewal works.
"""

from __future__ import annotations

from invoke import Collection, task

from toolkit.report import Reporter
from toolkit.tasking import APP_HELP, DRY_HELP, HOST_HELP, HelpTask, host_specs, load_config, run_on_hosts

RENEW_HOST_HELP = "the host whose certificate to get or renew: " + HOST_HELP["status"].split(": ", 1)[1]


@task(klass=HelpTask, iterable=["host"], help={"host": RENEW_HOST_HELP, "app": APP_HELP, "dry": DRY_HELP})
def renew(c, host=None, app=".", dry=False):
    """Get the site's Let's Encrypt certificate if a deploy could not, or renew it now (nginx reloads)."""
    from toolkit.tls_issue import renew as renew_on

    cfg = load_config(app, check_secrets=False)
    rep = Reporter(dry=dry)

    def work(conn, spec):
        renew_on(conn, rep, cfg, dry)
        return ""

    run_on_hosts(host_specs(host, cfg), rep, work, app)


ns = Collection("tls")
ns.add_task(renew)
