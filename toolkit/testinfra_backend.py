"""A testinfra backend, `pronghorn://HOST`, whose ssh connection is the toolkit's own: `invoke verify`
checks a host over a connection that verified its host key exactly as every deploy does.

testinfra's paramiko backend uses paramiko's WarningPolicy (any key is accepted with a warning) and
reads no known_hosts, so the checks would run on whichever machine answers. This backend is that
backend with one change: the client comes from toolkit/hosts.connect, which understands the same
--host forms as the other tasks (sandbox-NAME, ~/.ssh/config names) and refuses an unknown or
changed host key. Load it with `pytest -p toolkit.testinfra_backend --hosts=pronghorn://HOST`.
"""

from __future__ import annotations

import functools

from testinfra.backend import BACKENDS
from testinfra.backend.paramiko import ParamikoBackend

NAME = "pronghorn"


class VerifiedParamikoBackend(ParamikoBackend):
    """testinfra's paramiko backend over a host-key-verified toolkit connection."""

    NAME = NAME

    def __init__(self, hostspec: str, *args, **kwargs):
        self.toolkit_host = hostspec  # as the person typed it after --host
        super().__init__(hostspec, *args, **kwargs)

    @functools.cached_property
    def client(self):
        from toolkit import hosts

        conn = hosts.connect(hosts.parse_host(self.toolkit_host))
        self.toolkit_connection = conn  # keeps Fabric's connection, and so the transport, alive
        return conn.client


# testinfra finds a backend by the scheme of --hosts in this table.
BACKENDS[NAME] = f"{__name__}.{VerifiedParamikoBackend.__name__}"
