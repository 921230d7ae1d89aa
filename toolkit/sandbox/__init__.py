"""Sandbox hosts: throw-away Debian/Ubuntu machines for tests, CI and `make demo`.

A sandbox host is a systemd-nspawn container that boots a real systemd (PID 1), journald and sshd,
inside its own network namespace. The deploy toolkit talks to it over ssh exactly as it would to a
cloud VM, so `invoke deploy --host sandbox-demo` exercises the real code paths. No hypervisor and no
Docker are needed, only root, debootstrap, systemd-nspawn, iproute2 and tinyproxy.
docs/sandbox.md tells the long version; toolkit/tasks_sandbox.py is the thin invoke layer on top.

The package, one module per concern:

    common.py     the state directory, SandboxError, locks, preflight, command and file helpers
    image.py      releases, mirrors, keyrings; the debootstrap image cache (built once per release)
    hostfiles.py  files inside a host: its copy of the image, identity, proxy and extra-CA settings
    network.py    address numbers, the network namespace and veth pair
    privnet.py    private networks shared by several hosts (`up(name, net="shop")`)
    processes.py  systemd-nspawn and tinyproxy, started and stopped; /proc and mount helpers
    record.py     SandboxRecord (hosts/NAME/state.json) and the Sandbox the callers see
    sshconfig.py  the checkout's key, the generated ssh config and its Include line; run_in
    lifecycle.py  up, reset, down: the operations, in terms of the modules above

This module is the public face: everything callers use is importable from `toolkit.sandbox`.
"""

from toolkit.sandbox.common import (
    NAME_RE, REPO, STATE_DIR, SandboxError, host_dir, missing_tools, preflight, require_root, validate_name,
)
from toolkit.sandbox.hostfiles import EXTRA_CA_DIR, SYSTEM_CA_BUNDLE, extra_ca_files, proxy_files, split_pem
from toolkit.sandbox.image import (
    DEFAULT_RELEASE, IMAGE_VERSION, PACKAGES, RELEASES, Release, check_mirror, ensure_image, image_dir,
    prepare_image, resolve_release,
)
from toolkit.sandbox.lifecycle import BOOT_TIMEOUT, down, down_all, down_net, proxy_settings, reset, up
from toolkit.sandbox.network import (
    CONTAINER_IFACE, MAX_SANDBOXES, SUBNET_PREFIX, addresses, allocate_index, netns_name, veth_name,
)
from toolkit.sandbox.privnet import (
    MAX_NETWORKS, PRIVATE_IFACE, PRIVATE_RANGE, NetRecord, allocate_net_index, net_records, private_address,
    switch_ns, validate_net,
)
from toolkit.sandbox.processes import PROXY_PORT, STOP_TIMEOUT, mounts_under, render_tinyproxy_config
from toolkit.sandbox.record import Sandbox, SandboxRecord, get, list_sandboxes, ssh_alias
from toolkit.sandbox.sshconfig import (
    ensure_include, ensure_key, key_path, render_ssh_config, run_in, ssh_command, ssh_config_path,
    write_ssh_config,
)

__all__ = [
    "BOOT_TIMEOUT", "CONTAINER_IFACE", "DEFAULT_RELEASE", "EXTRA_CA_DIR", "IMAGE_VERSION", "MAX_NETWORKS",
    "MAX_SANDBOXES", "NetRecord", "PRIVATE_IFACE", "PRIVATE_RANGE", "allocate_net_index", "down_net",
    "net_records", "private_address", "switch_ns", "validate_net",
    "NAME_RE", "PACKAGES", "PROXY_PORT", "RELEASES", "REPO", "STATE_DIR", "STOP_TIMEOUT", "SUBNET_PREFIX",
    "SYSTEM_CA_BUNDLE", "Release", "Sandbox", "SandboxError", "SandboxRecord", "addresses",
    "allocate_index", "check_mirror", "down", "down_all", "ensure_image", "ensure_include", "ensure_key",
    "extra_ca_files", "get", "host_dir", "image_dir", "key_path", "list_sandboxes", "missing_tools",
    "mounts_under", "netns_name", "prepare_image", "preflight", "proxy_files", "proxy_settings",
    "render_ssh_config", "render_tinyproxy_config", "require_root", "reset", "resolve_release", "run_in",
    "split_pem", "ssh_alias", "ssh_command", "ssh_config_path", "up", "validate_name", "veth_name",
    "write_ssh_config",
]
