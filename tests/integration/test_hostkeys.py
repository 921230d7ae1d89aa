"""ssh host keys are verified on a real sandbox host, through the `invoke` command line: a host whose
key changed is refused before anything runs on it (Fabric, `verify` and plain `ssh` alike), an
unknown host is refused with its fingerprint until `invoke hosts.trust` records it, both as a
sandbox host and as a rented server reached by address (own HOME, own ~/.ssh/known_hosts).

The host is `fresh_sandbox` (reset before the test): changing its key never disturbs `sandbox`.
"""

import os
import shutil
import subprocess
import sys

import pytest

from tests.integration.helpers import REPO, invoke, on_host
from toolkit import hostkeys
from toolkit import sandbox as sandboxes
from toolkit.sandbox import sshconfig

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path):
    copy = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "flask", copy)
    return copy


def _fingerprints(box) -> list[str]:
    """The fingerprints of the host keys in the host's own files (what it really presents)."""
    import base64

    return [hostkeys.fingerprint_of(base64.b64decode(key.split()[1]))
            for key in sshconfig.host_keys_from_rootfs(box.name)]


def _logins(box, tmp_path) -> int:
    """How many ssh logins sshd accepted so far, read over an ssh trusting the host's current keys.
    (This login counts itself.)"""
    known = tmp_path / "current_keys"
    known.write_text("".join(f"{box.address} {key}\n" for key in sshconfig.host_keys_from_rootfs(box.name)))
    run = subprocess.run(["ssh", "-F", str(sandboxes.ssh_config_path()), "-o", f"UserKnownHostsFile={known}",
                          box.ssh_alias, "journalctl -u ssh --no-pager -o cat | grep -c 'Accepted publickey'"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return int(run.stdout.strip())


def _works(host, app, env=None):
    """`provision --dry` reads the host's state over ssh: it succeeds only over a verified connection."""
    run = subprocess.run([sys.executable, "-m", "invoke", "provision", "--dry", "--host", host, "--app", str(app)],
                         cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert run.returncode == 0, run.stdout + run.stderr
    return run


def test_a_changed_host_key_is_refused_before_anything_runs(fresh_sandbox, app, tmp_path):
    box = fresh_sandbox
    _works(box.ssh_alias, app)
    old = _fingerprints(box)[0]
    # A reinstalled host, or someone in the middle: new keys, sshd restarted (the session survives).
    changed = on_host(box, "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A >/dev/null && systemctl restart ssh")
    assert changed.returncode == 0, changed.stderr
    new = _fingerprints(box)[0]
    assert new != old
    before = _logins(box, tmp_path)

    run = invoke("status", "--host", box.ssh_alias, "--app", str(app))
    assert run.returncode != 0
    assert "CHANGED" in run.stdout and "MAY BE AN ATTACK" in run.stdout
    assert old in run.stdout and new in run.stdout
    assert f"next: invoke sandbox.up --name {box.name}" in run.stdout
    verify = invoke("verify", "--host", box.ssh_alias, "--app", str(app))
    assert verify.returncode != 0 and "CHANGED" in verify.stdout + verify.stderr
    assert "testinfra checks" not in verify.stdout  # refused before the checks started
    assert on_host(box, "true").returncode == 255  # plain ssh (and testinfra's ssh backend) refuse too
    assert _logins(box, tmp_path) == before + 1  # only _logins' own: nothing logged in meanwhile

    # The toolkit made this host: sandbox.up records its keys again from its own files.
    sandboxes.up(box.name)
    _works(box.ssh_alias, app)


def test_an_unknown_sandbox_is_refused_until_trusted(fresh_sandbox, app):
    box = fresh_sandbox
    sshconfig.record_host_keys(box.name, [])  # as if its entry had been removed
    sshconfig.write_ssh_config()
    run = invoke("status", "--host", box.ssh_alias, "--app", str(app))
    assert run.returncode != 0 and "is not a known host" in run.stdout
    assert _fingerprints(box)[0] in run.stdout

    trust = invoke("hosts.trust", "--host", box.ssh_alias, "--yes")
    assert trust.returncode == 0, trust.stdout + trust.stderr
    assert _fingerprints(box)[0] in trust.stdout and "recorded in" in trust.stdout
    _works(box.ssh_alias, app)
    assert on_host(box, "true").returncode == 0


def test_a_rented_server_is_trusted_with_hosts_trust(fresh_sandbox, app, tmp_path):
    # The README's first deploy to a server by address: nothing about it in ~/.ssh yet.
    box = fresh_sandbox
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True, mode=0o700)
    shutil.copy(sandboxes.key_path(), home / ".ssh" / "id_ed25519")
    env = dict(os.environ, HOME=str(home))
    host = f"root@{box.address}"

    first = subprocess.run([sys.executable, "-m", "invoke", "provision", "--dry", "--host", host, "--app", str(app)],
                           cwd=REPO, capture_output=True, text=True, timeout=300, env=env)
    assert first.returncode != 0
    assert f"{host} is not a known host, so nothing was sent" in first.stdout
    assert f"ssh-ed25519 key with fingerprint {_fingerprints(box)[0]}" in first.stdout
    hint = next(line for line in first.stdout.splitlines() if line.strip().startswith("next:"))
    assert hint.split("next:", 1)[1].split() == ["invoke", "hosts.trust", "--host", host, "--app", str(app)]

    refused = subprocess.run([sys.executable, "-m", "invoke", "hosts.trust", "--host", host], cwd=REPO,
                             capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL)
    assert refused.returncode != 0 and "--yes" in refused.stdout + refused.stderr
    assert not (home / ".ssh" / "known_hosts").exists()

    trust = subprocess.run([sys.executable, "-m", "invoke", "hosts.trust", "--host", host, "--yes"], cwd=REPO,
                           capture_output=True, text=True, timeout=120, env=env)
    assert trust.returncode == 0, trust.stdout + trust.stderr
    assert f"{box.address} ssh-ed25519 " in (home / ".ssh" / "known_hosts").read_text()
    _works(host, app, env)
