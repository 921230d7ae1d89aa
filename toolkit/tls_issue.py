"""Getting a Let's Encrypt (ACME) certificate during provisioning, after nginx serves the
challenge path on http: runs the TLS role's `issue_plan` (certbot) as its own step.

A certificate that cannot be issued does not fail the deploy: the site keeps serving http, the
step says why in words (`why_not_issued`: DNS not pointing at the host, port 80 closed, the ACME
server unreachable, a rate limit) and what to do next. A later deploy or `invoke tls.renew`
tries again.
"""

from __future__ import annotations

import re
from pathlib import Path

from roles import tls
from toolkit import executor
from toolkit.errors import RemoteError, fill_next, next_task

# certbot's output -> what it means, most specific first.
REASONS = (
    (re.compile(r"DNS problem|NXDOMAIN|no valid A records|SERVFAIL|could not resolve|no such host", re.I),
     "the domain's DNS does not point at this host (no A/AAAA record for it, or a wrong one)"),
    (re.compile(r"Timeout during connect|Connection refused|likely firewall", re.I),
     "the ACME server could not reach this host on port 80 (a firewall, or the domain points elsewhere)"),
    (re.compile(r"Invalid response from|unauthorized|404", re.I),
     "another server answered the challenge: the domain's DNS points somewhere else"),
    (re.compile(r"rateLimited|too many certificates|too many failed", re.I),
     "the ACME server's rate limit: wait an hour or more (use the staging acme_directory to test)"),
    (re.compile(r"Failed to establish|Max retries exceeded|SSLError|certificate verify failed|"
                r"Name or service not known|Temporary failure in name resolution", re.I),
     "the host cannot reach the ACME server at [tls] acme_directory"),
)


def why_not_issued(output: str) -> str:
    return next((reason for pattern, reason in REASONS if pattern.search(output)), "certbot failed")


def detail(output: str) -> str:
    """certbot's own words: its `Detail:` line, else the line that told the reason, else its
    last non-empty line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for line in lines:
        if line.startswith("Detail:"):
            return line
    for pattern, _ in REASONS:
        for line in lines:
            if pattern.search(line):
                return line[:400]
    return lines[-1] if lines else ""


def obtain(c, rep, wanted, certs: dict, host: str, dry: bool = False) -> bool:
    """Run certbot when the role plans it; True when a new certificate is there (nginx can now be
    given the https site). A failure is reported, never raised: the site stays on http."""
    changes = tls.issue_plan(wanted, certs)
    if not changes:
        return False
    failure = None
    with rep.step(tls.ISSUE_STEP) as st:
        st.changed(executor.describe(changes))
        if dry:
            return False
        try:
            executor.run(c, changes)
        except RemoteError as exc:
            failure = exc.output
            st.info(f"not issued: {why_not_issued(failure)}; the site serves http until then")
    if failure is None:
        return True
    rep.line(f"{'':13}certbot: {detail(failure)}")
    typed = str(getattr(c, "spec", "") or host)  # the --host as given (hosts.make_connection keeps it)
    renew_cmd = fill_next(next_task("tls.renew"), typed, shown_dir(wanted.app_dir))
    rep.line(f"{'':13}next: point the DNS of {', '.join(wanted.domains)} at this host and let port 80 in, "
             f"then run: {renew_cmd}")
    return False


def shown_dir(path: str) -> str:
    """The app folder as a person would type it here: relative when under the working directory."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd())) or "."
    except ValueError:
        return path


def certbot_verdict(output: str) -> str:
    """certbot's last line of words (it ends its report with a ruler of dashes)."""
    said = [line.strip() for line in output.splitlines() if line.strip().strip("- ")]
    return said[-1] if said else "certbot said nothing"


def renew(c, rep, cfg, dry: bool = False, fleet_vars: dict | None = None) -> None:
    """`invoke tls.renew`: a certificate that was never issued is got now (provisioning, which
    then gives nginx the https site; `fleet_vars`: the host's with deploy.toml [hosts],
    toolkit/fleet_run.py vars_for); an existing one is renewed at once (`--dry`: certbot's
    `renew --dry-run`, which changes nothing). certbot's deploy hook reloads nginx."""
    from roles.provision import provision
    from toolkit.config import ConfigError
    from toolkit.facts import gather
    from toolkit.facts.tls import Certificates
    from toolkit.remote import q, sh

    if cfg.tls.mode != "letsencrypt":
        raise ConfigError(f'[tls] mode = "{cfg.tls.mode}": only letsencrypt certificates are renewed by '
                          f'certbot (self-signed ones are made again by provision 30 days before they expire)',
                          "set [tls] mode = \"letsencrypt\" and email in deploy.toml, then " + next_task("deploy"))
    cert = cfg.layout.letsencrypt_cert
    if not gather(c, [Certificates([cert])])[Certificates][cert].exists:
        provision(c, cfg, rep, dry=dry, fleet_vars=fleet_vars)
        return
    with rep.step("certbot renew" + (" --dry-run" if dry else "")) as st:
        # --no-random-sleep-on-renew: without a terminal certbot first sleeps up to 8 minutes (so
        # that cron jobs everywhere do not hit the CA at once); a person is waiting here.
        # --server: a dry run against this directory (certbot's own default would be Let's Encrypt's
        # staging server, which stays so for Let's Encrypt's directory). [proxy] from the file
        # the first certificate and certbot's timer use too (roles/tls.py).
        flags = "--dry-run" if dry else "--force-renewal"
        proxy_env = q(cfg.layout.certbot_proxy_env)
        env = f"if [ -f {proxy_env} ]; then set -a; . {proxy_env}; set +a; fi; "
        out = sh(c, f"{env}certbot renew --non-interactive --no-random-sleep-on-renew --cert-name {q(cfg.name)} "
                    f"--server {q(cfg.tls.acme_directory)} {flags} 2>&1",
                 what="certbot renew", timeout=300).stdout
        st.info(certbot_verdict(out) if dry else "renewed; nginx reloaded")
        if not dry:
            st.changed("renewed; nginx reloaded (certbot's deploy hook)")
