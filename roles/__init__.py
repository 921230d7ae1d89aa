"""Provisioning roles: pure functions `plan(facts, wanted) -> list[Change]`.

A role reads the host's facts (toolkit/facts: one gather per host) and what is wanted
(roles/wanted.Wanted: the app, its host layout, its rendered files, its packages) and returns the
changes that would bring the host there; it runs nothing. `provision.provision()` gathers the
facts, plans each role in order and applies each plan as one step with toolkit/executor.py
(which also does the dry run: the plan printed, nothing run):

    proxy.plan_proxy      apt/pip proxy from deploy.toml [proxy] (before any apt-get)
    base.plan             python3, python3-venv, nginx, ca-certificates, ...
    proxy.plan_extra_ca   the extra CA of [proxy] ca_bundle, then update-ca-certificates
    user.plan             the app's system user and group, no login shell
    layout.plan           /srv/APP/{releases,shared/{media,data},venvs,wheels}
    app_env.plan          shared/.env (0600), shared/pronghorn.conf.py, logrotate
    systemd.plan          APP.socket + APP.service; daemon-reload only when changed
    hardening/*           sshd key-only, ufw, fail2ban, security updates, time sync, swap
                          (each a part of [hardening] in deploy.toml; skipped where the host
                          cannot, e.g. a container, with a note saying so)
    nginx.plan            the site; `nginx -t` before reload; the old config back on failure
                          (a deploy runs it last, after the venv: `Provisioning.finish()`,
                          while a missing nginx package installs in the background)

A new role: a module here with `plan(facts, wanted)` (and the facts it needs added to
`provision.facts_to_read`), one line in `provision.provision`, and a unit test with plain data.
"""
