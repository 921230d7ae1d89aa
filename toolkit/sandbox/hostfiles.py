"""Files written inside a host's root filesystem: its own copy of the image, its identity (name,
machine id, ssh host keys, root's key), and the proxy and extra-CA settings.

proxy_files() and extra_ca_files() serve real hosts too: roles/proxy.py writes the same settings on
hosts behind a corporate proxy.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from toolkit.sandbox.common import SandboxError, remove_tree, rootfs, run

EXTRA_CA_DIR = "/usr/local/share/ca-certificates"
SYSTEM_CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
_PEM_RE = re.compile(r"-----BEGIN CERTIFICATE-----.+?-----END CERTIFICATE-----", re.S)
_PATH = 'PATH="/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"\n'


def proxy_files(proxy_url: str, no_proxy: str = "localhost,127.0.0.1,::1") -> dict[str, str]:
    """Files (path inside the host -> content) that send apt, pip and login shells through a proxy.

    apt's and pip's files come from the deploy toolkit's own templates (render.proxy_files), the
    ones it writes on hosts behind a corporate proxy: one source for both. Sandboxes use them to
    reach the package mirrors through their tinyproxy.
    """
    from toolkit.render import proxy_files as rendered_proxy_files

    if not re.match(r"^https?://[^\s/]+(:\d+)?/?$", proxy_url):
        raise SandboxError(f"invalid proxy URL {proxy_url!r}: expected http://HOST:PORT")
    variables = [
        ("http_proxy", proxy_url), ("https_proxy", proxy_url),
        ("HTTP_PROXY", proxy_url), ("HTTPS_PROXY", proxy_url),
        ("no_proxy", no_proxy), ("NO_PROXY", no_proxy),
    ]
    environment = "".join(f'{var}="{value}"\n' for var, value in variables)
    # pip.conf also points pip at the system CA bundle, which holds the extra CAs.
    # /etc/environment replaces PATH for login sessions, so it starts with the usual one.
    return {**rendered_proxy_files(proxy_url), "/etc/environment": _PATH + environment}


def split_pem(text: str) -> list[str]:
    """The certificates in a PEM bundle, each normalised to its BEGIN...END block."""
    return _PEM_RE.findall(text)


def extra_ca_files(local_bundle: str, host_bundle: str) -> dict[str, str]:
    """Certificates in `local_bundle` that `host_bundle` lacks, as files for update-ca-certificates.

    Returns {"/usr/local/share/ca-certificates/pronghorn-extra-01.crt": PEM, ...}; after writing them
    on the host, run `update-ca-certificates` there.
    """
    known = set(split_pem(host_bundle))
    extra = [cert for cert in split_pem(local_bundle) if cert not in known]
    return {
        f"{EXTRA_CA_DIR}/pronghorn-extra-{number:02d}.crt": cert + "\n"
        for number, cert in enumerate(extra, start=1)
    }


def write_files(root: Path, files: dict[str, str]) -> None:
    """Write {absolute path inside the host: content} under the root filesystem `root`."""
    for path, content in files.items():
        target = root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content)


def copy_image(image: Path, name: str) -> None:
    """Give the host a fresh copy of the image (a reflink where the filesystem can)."""
    target = rootfs(name)
    partial = target.with_name("rootfs.partial")
    remove_tree(partial)
    run(["cp", "-a", "--reflink=auto", str(image), str(partial)])
    remove_tree(target)
    partial.rename(target)


def prepare_host(name: str, public_key: str, proxy_url: str) -> None:
    """Per-host files: name, identity, root's key, the proxy settings."""
    root = rootfs(name)
    (root / "etc/hostname").write_text(f"{name}\n")
    (root / "etc/hosts").write_text(
        f"127.0.0.1\tlocalhost\n127.0.1.1\t{name}\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    )
    machine_id = root / "etc/machine-id"
    if not machine_id.read_text().strip():  # kept across reboots, as on a real machine
        machine_id.write_text(uuid.uuid4().hex + "\n")
    if not list((root / "etc/ssh").glob("ssh_host_*_key")):
        run(["ssh-keygen", "-A", "-f", str(root)])
    authorized = root / "root/.ssh/authorized_keys"
    authorized.write_text(public_key)
    authorized.chmod(0o600)
    write_files(root, proxy_files(proxy_url))
