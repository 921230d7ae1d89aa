"""Provisioning: read the host once, plan every role on those facts, apply with the executor.

1. Render once with secrets masked, only to learn which files the app gets (their paths).
2. Read every fact (OS, packages, user, folders, those files' hashes, units, the current
   shared/.env, the deploy lock) in one round trip (`toolkit.facts.gather`), together with any
   facts the caller adds (a deploy adds the releases').
3. Render for real, with the host's .env, so secrets generated on an earlier deploy are kept.
4. For each role in order, `plan(facts, wanted)` and `executor.apply` it as one step. Order
   matters: the proxy first (apt needs it), packages, the extra CA (needs ca-certificates),
   the user, the folders, the app's files, the systemd units, then the host's hardening
   (roles/hardening: sshd, ufw, fail2ban, security updates, time sync, swap; their packages
   come with the base packages), the TLS certificate (roles/tls.py: nginx -t needs it before
   the site naming it is installed), nginx. Redis, the app's processes and its scheduled jobs
   (roles/redis.py, processes.py, schedule.py) follow the units, for apps that use them.
"""

from __future__ import annotations

import dataclasses

from roles import app_env, base, hardening, layout, nginx, processes, proxy, redis, schedule, systemd, tls, user
from roles import postgres
from roles.wanted import Wanted
from toolkit import executor, facts as facts_api, lock
from toolkit.errors import HostError
from toolkit.facts.extra_units import AppUnitsFacts, ExtraUnits
from toolkit.facts.files import Files
from toolkit.facts.hardening import HardeningFact
from toolkit.facts.names import HostNames
from toolkit.facts.postgres import Postgres
from toolkit.facts.nginx import DefaultServers, NginxVersion, SiteListeners
from toolkit.facts.tls import Certificates
from toolkit.facts.host import (AptLists, DeployLock, EnvFile, Groups, HostFacts, OsRelease, Packages,
                                PythonVersion, Units, Users)

SUPPORTED_OS = ("debian", "ubuntu")


class UnsupportedHost(HostError):
    pass


def planned(cfg, fleet_vars: dict | None = None) -> Wanted:
    from toolkit.render import render_all

    return Wanted.of(cfg, render_all(cfg, dict(fleet_vars or {}), mask_secrets=True))


def render_for(cfg, facts: HostFacts, names: tuple | None = None, tls_ready: bool = True,
               nginx_host: dict | None = None) -> Wanted:
    """`names`: the host's names and addresses (ALLOWED_HOSTS for domains = ["_"]); `tls_ready`:
    nginx can serve https (False: a letsencrypt certificate is not issued yet); `nginx_host`:
    roles/nginx.py's host_vars (the nginx version's http2 syntax, the other sites' listeners)."""
    from toolkit.render import render_all

    return Wanted.of(cfg, render_all(cfg, {"env": facts.env, "names": names, "tls_ready": tls_ready,
                                           **(nginx_host or {})}))


def nginx_host(cfg, facts: HostFacts, gathered) -> dict:
    return nginx.host_vars(cfg.name, gathered.get(SiteListeners, {}), gathered.get(NginxVersion, ()),
                           facts.fact(cfg.layout.tls_default_cert).exists)


def host_names(c, gathered) -> tuple:
    """The names the host answers to: its own (HostNames) and the address we connected to
    (a cloud host's public address is on no interface of it)."""
    connected = HostNames().parse([str(getattr(c, "host", "") or "")])
    return tuple(dict.fromkeys(gathered.get(HostNames, ()) + connected))


def fact_paths(wanted: Wanted) -> list[str]:
    paths = [f.path for f in wanted.files + wanted.extra_unit_files] + [d[0] for d in layout.wanted_dirs(wanted)]
    paths += processes.fact_paths(wanted)
    paths += hardening.fact_paths() + tls.fact_paths(wanted)
    paths += postgres.fact_paths(wanted)
    return list(dict.fromkeys(paths + nginx.fact_paths(wanted)))  # keep the order, drop repeats


def facts_to_read(wanted: Wanted) -> list:
    lay = wanted.layout
    database = [Postgres(lay.db_name)] if wanted.database and wanted.database.postgresql else []
    return database + [OsRelease(), AptLists(), Packages(wanted.all_packages), Users([wanted.app]), Groups([wanted.app]),
            Files(fact_paths(wanted)), Units(lay.units + postgres.units(wanted) + (nginx.UNIT,) + hardening.units()
                                           + processes.units(wanted) + schedule.units(wanted) + redis.units(wanted)),
            ExtraUnits(wanted.app),
            EnvFile(lay.env_file), PythonVersion(), DeployLock(lay), HardeningFact(), HostNames(),
            Certificates(tls.cert_paths(wanted)), DefaultServers(), SiteListeners(), NginxVersion()]


def check(facts: HostFacts, stop_on_lock: bool) -> None:
    if facts.os_id and facts.os_id not in SUPPORTED_OS:
        raise UnsupportedHost(f"the host runs {facts.os_id} {facts.os_version}; the toolkit supports "
                              "Ubuntu 22.04/24.04 and Debian 12")
    if facts.locked_by and stop_on_lock:
        raise lock.held_error(lock.Holder(facts.locked_by))


def middle_roles(wanted: Wanted) -> list:
    """(step name, plan) of the roles between the packages and nginx, in order."""
    return [
        (user.step(wanted), user.plan),
        (layout.step(wanted), layout.plan),
        (app_env.STEP, app_env.plan),
        (systemd.STEP, systemd.plan),
    ]


def app_service_roles(wanted: Wanted, facts) -> list:
    """(step name, plan) of redis, the processes and the scheduled jobs, after the middle roles:
    each only for an app that uses it or, for the cleanup, still has such units on the host.
    Redis first: a worker starts with redis ready."""
    on_host = getattr(facts, "extra_units", frozenset())
    steps = [(redis.STEP, redis.plan)] if wanted.redis else []
    if wanted.processes or any(u.endswith(".service") for u in on_host):
        steps.append((processes.STEP, processes.plan))
    if wanted.schedules or any(u.endswith(".timer") for u in on_host):
        steps.append((schedule.STEP, schedule.plan))
    return steps


def in_fleet(wanted: Wanted, fleet_vars: dict | None) -> Wanted:
    """`wanted` knowing the host's roles and who may reach its http port (deploy.toml [hosts])."""
    if not fleet_vars:
        return wanted
    return dataclasses.replace(wanted, roles=tuple(fleet_vars.get("roles", ())),
                               web_from=tuple(fleet_vars.get("web_from", ())))


def logged_in(c, wanted: Wanted, facts) -> Wanted:
    """`wanted` knowing how this connection logged in (the hardening roles never lock it out)."""
    handler = getattr(getattr(c, "transport", None), "auth_handler", None)
    port, user = int(getattr(c, "port", None) or 22), getattr(c, "user", None) or "root"
    return hardening.for_host(wanted, facts, port, user, getattr(handler, "auth_method", "") or "")


def apply_hardening(c, rep, facts, wanted, dry) -> int:
    """One step per hardening part deploy.toml leaves on; what a part skipped is its note."""
    changed = 0
    for part in hardening.enabled(wanted.hardening):
        changes, notes = part.plan(facts, wanted), part.notes(facts, wanted)
        if changes:
            changed += executor.apply(c, rep, part.STEP, changes, dry)
            for note in notes:
                rep.line(f"{'':13}note: {note}")
            continue
        with rep.step(part.STEP) as st:
            st.info("; ".join(notes))
    return changed


class Provisioning:
    """What provision() did (`changed`: how many roles changed something; `gathered`: every fact
    read, the caller's extra facts included).

    With `defer_nginx`, missing nginx and hardening packages install in the background, and the
    hardening steps and the nginx site wait for `finish()`, which the deploy calls just before
    the new release goes live (a first deploy builds the venv meanwhile).
    """

    def __init__(self, c, rep, dry, wanted, facts, gathered, changed: int, reread: bool, apt_job=None,
                 with_https=None):
        self.c, self.rep, self.dry = c, rep, dry
        self.wanted, self.facts, self.gathered = wanted, facts, gathered
        self.changed, self.reread, self.apt_job = changed, reread, apt_job
        self.with_https = with_https  # () -> Wanted rendered with https on (after an ACME issue)
        self.finished = False

    @property
    def host_was_provisioned(self) -> bool:
        """The releases folder existed when the facts were read (a dry run needs no other look)."""
        return self.facts.fact(self.wanted.layout.releases_dir).kind == "dir"

    def finish(self) -> int:
        """Wait for the background apt-get (if any), then harden the host and install the site."""
        if self.finished:
            return self.changed
        self.finished = True
        if self.apt_job is not None:
            with self.rep.step("background packages") as st:
                self.apt_job.result()
                st.info("background apt-get done")
        facts = self.facts
        self.changed += apply_hardening(self.c, self.rep, facts, self.wanted, self.dry)
        if self.reread:
            # Installing packages adds nginx's default site and starts nginx: read those again.
            again = facts_api.gather(self.c, [Files(nginx.fact_paths(self.wanted)), Units((nginx.UNIT,)),
                                              SiteListeners()])
            facts = dataclasses.replace(facts, files={**facts.files, **again[Files]},
                                        units={**facts.units, **again[Units]})
            self.gathered.values[SiteListeners.key] = again[SiteListeners]  # the package's default site
        certs = self.gathered.get(Certificates, {})
        if tls.enabled(self.wanted):  # no step at all for a site on plain http
            self.changed += executor.apply(self.c, self.rep, tls.STEP, tls.plan(facts, self.wanted, certs), self.dry)
        self.changed += executor.apply(self.c, self.rep, nginx.STEP, self.nginx_plan(facts), self.dry)
        self.issue_certificate(certs)
        return self.changed

    def issue_certificate(self, certs) -> None:
        """[tls] letsencrypt: certbot through the http site just installed; once issued, the
        site again, now with https (a failure leaves it on http and says why)."""
        from toolkit.tls_issue import obtain

        if not obtain(self.c, self.rep, self.wanted, certs, str(getattr(self.c, "host", "HOST")), self.dry):
            return
        self.changed += 1
        self.wanted = self.with_https()
        again = facts_api.gather(self.c, [Files(nginx.fact_paths(self.wanted)), Units((nginx.UNIT,))])
        facts = dataclasses.replace(self.facts, files={**self.facts.files, **again[Files]},
                                    units={**self.facts.units, **again[Units]})
        executor.apply(self.c, self.rep, nginx.STEP + " (https)", self.nginx_plan(facts), self.dry)

    def nginx_plan(self, facts) -> list:
        return nginx.plan(facts, self.wanted, self.gathered.get(DefaultServers, set()),
                          self.gathered.get(SiteListeners))


def provision(c, cfg, rep, dry=False, lock_held=False, defer_nginx=False, extra_facts=(),
              fleet_vars: dict | None = None) -> Provisioning:
    """Bring the host to the wanted state (`.changed`: how many roles changed something).

    `lock_held`: the caller holds the deploy lock (so a lock on the host is ours, not a reason
    to stop). `defer_nginx`: a missing nginx installs in the background and the site waits for
    `.finish()` (a first deploy builds the venv meanwhile); otherwise everything is done here.
    `extra_facts`: more facts to read in the same round trip (in `.gathered`). `fleet_vars`: with
    deploy.toml [hosts], what this host is and knows of the others (toolkit/fleet.py host_vars):
    a load balancer gets packages, hardening and its nginx site only."""
    first = planned(cfg, fleet_vars)
    to_read = facts_to_read(first) + list(extra_facts)
    with rep.step("read the host's state") as st:
        gathered = facts_api.gather(c, to_read)
        facts = AppUnitsFacts.of(gathered)
        check(facts, stop_on_lock=not dry and not lock_held)
        st.info(f"{facts.os_id} {facts.os_version}, python {facts.python_version or 'missing'}")
    names = host_names(c, gathered)
    ready = tls.tls_ready(first, gathered.get(Certificates, {}))
    on_host = {**nginx_host(cfg, facts, gathered), **(fleet_vars or {})}
    wanted = in_fleet(logged_in(c, render_for(cfg, facts, names, ready, on_host), facts), fleet_vars)
    changed = 0
    if proxy.proxy_files(wanted):
        changed += executor.apply(c, rep, proxy.PROXY_STEP, proxy.plan_proxy(facts, wanted), dry)
    packages_changed, apt_job = executor.apply_started(
        c, rep, base.STEP, base.plan(facts, wanted, defer=defer_nginx and not dry), dry)
    changed += packages_changed
    if proxy.ca_files(wanted):
        changed += executor.apply(c, rep, proxy.CA_STEP, proxy.plan_extra_ca(facts, wanted), dry)
    if wanted.runs_app:
        for name, plan in middle_roles(wanted) + app_service_roles(wanted, facts):
            changed += executor.apply(c, rep, name, plan(facts, wanted), dry)
    # [database]: after the .env (DATABASE_URL) and the units (the backup timer's); a step only
    # for apps that use it, or to retire a backup timer that was turned off.
    database = postgres.plan(facts, wanted, gathered.get(Postgres))
    if wanted.roles is None and (database or postgres.needed(wanted)):
        changed += executor.apply(c, rep, postgres.STEP, database, dry)
    elif (fleet_vars or {}).get("db_host") is not None:
        # The database host of [hosts]: listening on its private address for the app hosts only.
        from toolkit import db_host

        changed += db_host.apply(c, cfg, rep, fleet_vars["db_host"], dry)
    done = Provisioning(c, rep, dry, wanted, facts, gathered, changed,
                        reread=bool(packages_changed) and not dry, apt_job=apt_job,
                        with_https=lambda: in_fleet(logged_in(c, render_for(cfg, facts, names, True, on_host), facts),
                                                    fleet_vars))
    if not defer_nginx:
        done.finish()
    return done
