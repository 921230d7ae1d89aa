"""What is recorded about each host: a `SandboxRecord`, saved as hosts/NAME/state.json and loaded
back, and the `Sandbox` the rest of the toolkit and the tests see (addresses, ssh name, running or
not). Records are frozen: a change is a new record (`dataclasses.replace`), saved when made.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from toolkit.sandbox import common
from toolkit.sandbox.common import NAME_RE, SandboxError, host_dir, validate_name, write_atomically
from toolkit.sandbox.image import DEFAULT_RELEASE
from toolkit.sandbox.network import addresses
from toolkit.sandbox.processes import PROXY_PORT, same_process_alive

# The PIDs of a running host (with their start times, so a reused PID is never taken for ours).
PROCESS_FIELDS = ("nspawn_pid", "nspawn_start", "init_pid", "init_start", "proxy_pid", "proxy_start")


@dataclasses.dataclass(frozen=True)
class SandboxRecord:
    """One host's state file: its address number, release, key, private network, and the processes
    running it."""

    name: str
    index: int
    release: str
    key_path: str
    nspawn_pid: int | None = None
    nspawn_start: int | None = None
    init_pid: int | None = None  # the container's systemd, to end it if nspawn is gone
    init_start: int | None = None
    proxy_pid: int | None = None
    proxy_start: int | None = None
    net: str | None = None  # the private network it is on (`up --net`), or None
    private_address: str | None = None  # its address there, 10.78.K.N (privnet.py)

    @staticmethod
    def path(name: str) -> Path:
        return host_dir(name) / "state.json"

    @classmethod
    def load(cls, name: str) -> SandboxRecord | None:
        """The record of sandbox `name`, or None if there is none."""
        path = cls.path(name)
        try:
            data = json.loads(path.read_text())
            fields = {field.name for field in dataclasses.fields(cls)}
            return cls(**{key: value for key, value in data.items() if key in fields})
        except FileNotFoundError:
            return None
        except (ValueError, TypeError) as error:
            raise SandboxError(
                f"{path} is not a valid sandbox state ({error}); remove the sandbox with "
                f"`invoke sandbox.down --name {name}`"
            )

    def save(self) -> SandboxRecord:
        """Write the record (atomically) and return it, so `rec = replace(rec, ...).save()` reads well."""
        data = {key: value for key, value in dataclasses.asdict(self).items() if value is not None}
        write_atomically(self.path(self.name), json.dumps(data, indent=2, sort_keys=True) + "\n")
        return self

    def stopped(self) -> SandboxRecord:
        """The same host with no processes recorded."""
        return dataclasses.replace(self, **{field: None for field in PROCESS_FIELDS})

    @property
    def nspawn(self) -> tuple[int | None, int | None]:
        return self.nspawn_pid, self.nspawn_start

    @property
    def init(self) -> tuple[int | None, int | None]:
        return self.init_pid, self.init_start

    def sandbox(self) -> Sandbox:
        host, container = addresses(self.index)
        running = bool(self.nspawn_pid) and same_process_alive(self.nspawn_pid, self.nspawn_start)
        return Sandbox(
            name=self.name, address=container, host_address=host, ssh_alias=ssh_alias(self.name),
            key_path=self.key_path, pid=self.nspawn_pid if running else None, running=running,
            index=self.index, release=self.release, net=self.net, private_address=self.private_address,
        )


@dataclasses.dataclass
class Sandbox:
    """One sandbox host as the toolkit and the tests see it."""

    name: str
    address: str  # the container: ssh root@address
    host_address: str  # this machine's end of the veth; the proxy listens here
    ssh_alias: str  # "sandbox-NAME", a Host block in ssh_config_path()
    key_path: str
    pid: int | None  # the systemd-nspawn process
    running: bool
    index: int = 0
    release: str = DEFAULT_RELEASE
    net: str | None = None  # the private network (`up(name, net="shop")`), None if not on one
    private_address: str | None = None  # its address on that network (10.78.K.N); other hosts
    #                                     on the network reach it there, this machine does not

    @property
    def proxy_url(self) -> str:
        return f"http://{self.host_address}:{PROXY_PORT}"


def ssh_alias(name: str) -> str:
    return f"sandbox-{name}"


def records() -> list[SandboxRecord]:
    """Every recorded host, by name."""
    hosts = common.STATE_DIR / "hosts"
    if not hosts.is_dir():
        return []
    found = (SandboxRecord.load(path.name) for path in sorted(hosts.iterdir()) if NAME_RE.match(path.name))
    return [record for record in found if record]


def get(name: str) -> Sandbox | None:
    """The sandbox called `name`, or None if there is none."""
    record = SandboxRecord.load(validate_name(name))
    return record.sandbox() if record else None


def list_sandboxes() -> list[Sandbox]:
    return [record.sandbox() for record in records()]
