"""The host's way out to the package registries: an HTTP(S) proxy for apt and pip, and an extra
CA certificate to trust (a TLS-inspecting corporate proxy's). From deploy.toml's [proxy].

The files come from the renderer, like every other config file:

    /etc/apt/apt.conf.d/80pronghorn-proxy      Acquire::http(s)::Proxy
    /etc/pip.conf                               [global] proxy, cert (pip in every venv reads it)
    /usr/local/share/ca-certificates/pronghorn-extra-ca.crt   then update-ca-certificates

Sandbox hosts get the same settings from toolkit/sandbox when they are made, so an app's
deploy.toml needs no [proxy] for them. Nothing is written (and no step shown) when [proxy] is
empty. The proxy files are written before any apt-get runs; the CA after the base packages
(update-ca-certificates comes with the ca-certificates package).
"""

from __future__ import annotations

from roles.files import file_changes
from toolkit.executor import Change

PROXY_STEP = "apt and pip proxy"
CA_STEP = "extra CA certificate"
PROXY_PREFIXES = ("/etc/apt/", "/etc/pip.conf")
CA_PREFIX = "/usr/local/share/ca-certificates/"


def proxy_files(wanted) -> list:
    return wanted.select(*PROXY_PREFIXES)


def ca_files(wanted) -> list:
    return wanted.select(CA_PREFIX)


def plan_proxy(facts, wanted) -> list:
    return file_changes(facts, proxy_files(wanted))


def plan_extra_ca(facts, wanted) -> list:
    """The certificate, then update-ca-certificates (only when the certificate changed)."""
    changes = file_changes(facts, ca_files(wanted))
    if changes:
        changes.append(Change("", script="update-ca-certificates >/dev/null", label="update-ca-certificates"))
    return changes
