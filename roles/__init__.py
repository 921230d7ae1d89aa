"""Provisioning roles: plain functions on a Fabric Connection that read the host's state
and act only where it differs from what is wanted.

Each role module has `ensure_...(c, cfg, rep, dry=False, facts=None, ...) -> bool` (True when
it changed something, or would in a dry run). `provision.provision()` runs them in order on facts
read in one ssh round trip (`facts.gather()`):

    proxy.ensure_proxy      apt/pip proxy from deploy.toml [proxy] (before any apt-get)
    base.ensure_packages    python3, python3-venv, nginx, ca-certificates, ...
    proxy.ensure_extra_ca   the extra CA of [proxy] ca_bundle
    user.ensure_user        the app's system user and group, no login shell
    layout.ensure_layout    /srv/APP/{releases,shared/{media,data},venvs,wheels}
    app_env.ensure_app_env  shared/.env (0600), shared/pronghorn.conf.py, logrotate
    systemd.ensure_units    APP.socket + APP.service; daemon-reload only when changed
    nginx.ensure_site       the site; `nginx -t` before reload; the old config back on failure
                            (a deploy runs it last, after the venv: `Provisioning.finish()`,
                            while a missing nginx package installs in the background)

Config files come from toolkit/render.py; `files.write_changed()` writes only those whose
sha256, mode or owner differ, all in one tar stream.
"""
