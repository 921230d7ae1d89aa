"""Provisioning: every role in order, on facts read in one round trip.

1. Render once with secrets masked, only to learn which files the app gets (their paths).
2. Read every fact (packages, user, folders, those files' hashes, units, the current
   shared/.env) in one command.
3. Render for real, with the host's .env, so secrets generated on an earlier deploy are kept.
4. Run the roles on those facts. Order matters: the proxy first (apt needs it), packages,
   the extra CA (needs ca-certificates), the user, the folders, the app's files, the systemd
   units, nginx.
"""

from __future__ import annotations

from roles import app_env, base, facts as facts_mod, layout, nginx, proxy, systemd, user

SUPPORTED_OS = ("debian", "ubuntu")


class UnsupportedHost(Exception):
    pass


def planned_paths(cfg) -> list:
    from toolkit.render import render_all

    return render_all(cfg, mask_secrets=True)


def all_fact_paths(cfg, files) -> list[str]:
    paths = [f.path for f in files]
    paths += [d[0] for d in layout.wanted_dirs(cfg)]
    paths += nginx.fact_paths(nginx.nginx_files(files))
    return list(dict.fromkeys(paths))  # keep the order, drop repeats


def read_facts(c, cfg, planned):
    units = facts_mod.units_of(cfg) + ("nginx.service",)
    return facts_mod.gather(c, cfg, paths=all_fact_paths(cfg, planned), units=units,
                            env_file=cfg.layout.env_file)


def check_os(facts) -> None:
    if facts.os_id and facts.os_id not in SUPPORTED_OS:
        raise UnsupportedHost(f"the host runs {facts.os_id} {facts.os_version}; the toolkit supports "
                              "Ubuntu 22.04/24.04 and Debian 12")


def render_for(cfg, facts) -> list:
    from toolkit.render import render_all

    return render_all(cfg, {"env": facts.env})


class Provisioning:
    """What provision() did (`changed`: how many roles changed something).

    With `defer_nginx`, a missing nginx package installs in the background and the nginx site
    waits for `finish()`, which the deploy calls just before the new release goes live.
    """

    def __init__(self, c, cfg, rep, dry, planned, facts, files, changed: int,
                 reread: bool, apt_job=None):
        self.c, self.cfg, self.rep, self.dry = c, cfg, rep, dry
        self.planned, self.facts, self.files = planned, facts, files
        self.changed, self.reread, self.apt_job = changed, reread, apt_job
        self.finished = False

    def finish(self) -> int:
        """Wait for the background nginx install (if any), then install the nginx site."""
        if self.finished:
            return self.changed
        self.finished = True
        if self.apt_job is not None:
            with self.rep.step("nginx installed") as st:
                self.apt_job.result()
                st.info("background apt-get done")
        # Installing packages adds nginx's default site and starts nginx: read the host again.
        facts = read_facts(self.c, self.cfg, self.planned) if self.reread else self.facts
        self.changed += nginx.ensure_site(self.c, self.cfg, self.rep, self.dry, facts, self.files)
        return self.changed


def provision(c, cfg, rep, dry=False, lock_held=False, defer_nginx=False) -> Provisioning:
    """Bring the host to the wanted state (`.changed`: how many roles changed something).

    `lock_held`: the caller holds the deploy lock (so a lock on the host is ours, not a reason
    to stop). `defer_nginx`: a missing nginx installs in the background and the site waits for
    `.finish()` (a first deploy builds the venv meanwhile); otherwise everything is done here."""
    planned = planned_paths(cfg)
    with rep.step("read the host's state") as st:
        facts = read_facts(c, cfg, planned)
        check_os(facts)
        if facts.locked_by and not dry and not lock_held:
            from toolkit.errors import LockHeld, next_task

            raise LockHeld(f"another deploy holds the lock: {facts.locked_by}",
                           "wait for it to finish; if it crashed, remove the lock with: "
                           + next_task("lock.release"))
        st.info(f"{facts.os_id} {facts.os_version}, python {facts.python_version or 'missing'}")
    files = render_for(cfg, facts)
    changed = 0
    changed += proxy.ensure_proxy(c, cfg, rep, dry, facts, files)
    apt_job = None
    if defer_nginx and not dry:
        packages_changed, apt_job = base.start_packages(c, cfg, rep, facts)
    else:
        packages_changed = base.ensure_packages(c, cfg, rep, dry, facts)
    changed += packages_changed
    changed += proxy.ensure_extra_ca(c, cfg, rep, dry, facts, files)
    changed += user.ensure_user(c, cfg, rep, dry, facts)
    changed += layout.ensure_layout(c, cfg, rep, dry, facts)
    changed += app_env.ensure_app_env(c, cfg, rep, dry, facts, files)
    changed += systemd.ensure_units(c, cfg, rep, dry, facts, files)
    done = Provisioning(c, cfg, rep, dry, planned, facts, files, changed,
                        reread=bool(packages_changed) and not dry, apt_job=apt_job)
    if not defer_nginx:
        done.finish()
    return done
