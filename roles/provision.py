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
                            env_file=cfg.env_file)


def check_os(facts) -> None:
    if facts.os_id and facts.os_id not in SUPPORTED_OS:
        raise UnsupportedHost(f"the host runs {facts.os_id} {facts.os_version}; the toolkit supports "
                              "Ubuntu 22.04/24.04 and Debian 12")


def render_for(cfg, facts) -> list:
    from toolkit.render import render_all

    return render_all(cfg, {"env": facts.env})


def provision(c, cfg, rep, dry=False, lock_held=False) -> int:
    """Bring the host to the wanted state; returns how many roles changed something.

    `lock_held`: the caller holds the deploy lock (so a lock on the host is ours, not a reason
    to stop)."""
    planned = planned_paths(cfg)
    with rep.step("read the host's state") as st:
        facts = read_facts(c, cfg, planned)
        check_os(facts)
        if facts.locked_by and not dry and not lock_held:
            from toolkit.release import LockHeld

            raise LockHeld(f"another deploy holds the lock: {facts.locked_by}",
                           "wait for it to finish; if it crashed, remove the lock with "
                           "`invoke lock.release --host HOST`")
        st.info(f"{facts.os_id} {facts.os_version}, python {facts.python_version or 'missing'}")
    files = render_for(cfg, facts)
    changed = 0
    changed += proxy.ensure_proxy(c, cfg, rep, dry, facts, files)
    if base.ensure_packages(c, cfg, rep, dry, facts):
        changed += 1
        if not dry:
            # Installing nginx adds its default site and starts it: read the state again.
            facts = read_facts(c, cfg, planned)
    changed += proxy.ensure_extra_ca(c, cfg, rep, dry, facts, files)
    changed += user.ensure_user(c, cfg, rep, dry, facts)
    changed += layout.ensure_layout(c, cfg, rep, dry, facts)
    changed += app_env.ensure_app_env(c, cfg, rep, dry, facts, files)
    changed += systemd.ensure_units(c, cfg, rep, dry, facts, files)
    changed += nginx.ensure_site(c, cfg, rep, dry, facts, files)
    return changed
