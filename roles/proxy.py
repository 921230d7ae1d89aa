"""The host's way out to the package registries: an HTTP(S) proxy for apt and pip, and an extra
CA certificate to trust (a TLS-inspecting corporate proxy's). From deploy.toml's [proxy].

The files come from core's renderer, like every other config file:

    /etc/apt/apt.conf.d/80pronghorn-proxy      Acquire::http(s)::Proxy
    /etc/pip.conf                               [global] proxy, cert (pip in every venv reads it)
    /usr/local/share/ca-certificates/pronghorn-extra-ca.crt   then update-ca-certificates

Sandbox hosts get the same settings from toolkit/sandbox.py when they are made, so an app's
deploy.toml needs no [proxy] for them. Nothing is written when [proxy] is empty.

The proxy files are written before any apt-get runs; the CA after the base packages
(update-ca-certificates comes with the ca-certificates package).
"""

from __future__ import annotations

from roles import facts as facts_mod
from roles.files import rendered_files, select, write_changed
from toolkit.remote import sh

PROXY_PREFIXES = ("/etc/apt/", "/etc/pip.conf")
CA_PREFIX = "/usr/local/share/ca-certificates/"


def proxy_files(files) -> list:
    return select(files, *PROXY_PREFIXES)


def ca_files(files) -> list:
    return select(files, CA_PREFIX)


def ensure_proxy(c, cfg, rep, dry=False, facts=None, files=None) -> bool:
    """Point the host's apt and pip at the proxy from deploy.toml [proxy]."""
    mine = proxy_files(files if files is not None else rendered_files(cfg))
    if not mine:
        return False
    with rep.step("apt and pip proxy") as st:
        if facts is None:
            facts = facts_mod.gather(c, cfg, paths=[f.path for f in mine])
        return bool(write_changed(c, mine, st, dry, facts))


def ensure_extra_ca(c, cfg, rep, dry=False, facts=None, files=None) -> bool:
    """Make the host trust the extra CA of deploy.toml [proxy] ca_bundle."""
    mine = ca_files(files if files is not None else rendered_files(cfg))
    if not mine:
        return False
    with rep.step("extra CA certificate") as st:
        if facts is None:
            facts = facts_mod.gather(c, cfg, paths=[f.path for f in mine])
        changed = write_changed(c, mine, st, dry, facts)
        if changed and not dry:
            sh(c, "update-ca-certificates >/dev/null", what="update-ca-certificates")
        return bool(changed)
