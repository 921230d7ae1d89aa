"""known_hosts read and matched as OpenSSH does (toolkit/hostkeys.py): which files, which entries
match a host, and whether a presented key is trusted, unknown, changed or revoked. Pure logic on
files in a temporary folder; tests/toolkit/test_hosts.py runs the same through a real ssh handshake."""

import subprocess

import paramiko
import pytest

from toolkit import hostkeys


def _key(tmp_path, name="k"):
    """A real ed25519 key pair made by ssh-keygen; returns the paramiko public key."""
    path = tmp_path / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def _line(names, key, marker=""):
    return f"{marker + ' ' if marker else ''}{names} {key.get_name()} {key.get_base64()}\n"


def test_fingerprint_is_what_ssh_keygen_prints(tmp_path):
    key = _key(tmp_path)
    shown = subprocess.run(["ssh-keygen", "-lf", str(tmp_path / "k.pub")], capture_output=True, text=True,
                           check=True).stdout.split()[1]
    assert hostkeys.fingerprint_of(key.asbytes()) == shown


@pytest.mark.parametrize("host, port, name", [
    ("203.0.113.10", 22, "203.0.113.10"), ("example.com", None, "example.com"),
    ("example.com", 2222, "[example.com]:2222"), ("2001:db8::1", 2200, "[2001:db8::1]:2200"),
])
def test_lookup_name_brackets_other_ports(host, port, name):
    assert hostkeys.lookup_name(host, port) == name


@pytest.mark.parametrize("name, patterns, expected", [
    ("web1.example.com", ("web1.example.com",), True),
    ("WEB1.example.com", ("web1.example.com",), True),
    ("web1.example.com", ("*.example.com",), True),
    ("web1.example.com", ("web?.example.com",), True),
    ("web10.example.com", ("web?.example.com",), False),
    ("web1.example.com", ("*.example.com", "!web1.example.com"), False),
    ("[example.com]:2222", ("[example.com]:2222",), True),
    ("example.com", ("[example.com]:2222",), False),
    ("[example.com]:2222", ("example.com",), False),
    ("10.0.0.1", ("10.0.0.10",), False),
])
def test_host_patterns_match_as_in_ssh(name, patterns, expected):
    assert hostkeys.host_matches(name, patterns) is expected


def test_hashed_names_match_only_their_host():
    hashed = paramiko.HostKeys.hash_host("[example.com]:2222")
    assert hostkeys.host_matches("[example.com]:2222", (hashed,))
    assert not hostkeys.host_matches("example.com", (hashed,))


def test_verdict_ok_unknown_changed_revoked(tmp_path):
    good, other = _key(tmp_path, "good"), _key(tmp_path, "other")
    known = tmp_path / "known_hosts"
    known.write_text("# a comment\n\n" + _line("web1", good) + _line("web2", other)
                     + _line("web3", other, "@revoked") + _line("web3", other) + "garbage line\n")
    files = [known]
    assert hostkeys.verdict(good.asbytes(), hostkeys.entries_for("web1", files)) == hostkeys.OK
    assert hostkeys.verdict(good.asbytes(), hostkeys.entries_for("web9", files)) == hostkeys.UNKNOWN
    assert hostkeys.verdict(good.asbytes(), hostkeys.entries_for("web2", files)) == hostkeys.CHANGED
    # listed as good AND revoked: revoked wins, as in ssh
    assert hostkeys.verdict(other.asbytes(), hostkeys.entries_for("web3", files)) == hostkeys.REVOKED
    entry = hostkeys.entries_for("web1", files)[0]
    assert entry.where == f"{known}:3" and entry.fingerprint == hostkeys.fingerprint_of(good.asbytes())


def test_a_host_listed_only_as_a_cert_authority_is_unknown(tmp_path):
    key = _key(tmp_path)
    known = tmp_path / "known_hosts"
    known.write_text(_line("*.example.com", key, "@cert-authority"))
    assert hostkeys.verdict(key.asbytes(), hostkeys.entries_for("web.example.com", [known])) == hostkeys.UNKNOWN


def test_any_matching_entry_in_any_file_is_enough(tmp_path):
    # A stale entry in one file does not hide the right one in another (ssh accepts that too).
    good, stale = _key(tmp_path, "good"), _key(tmp_path, "stale")
    first, second = tmp_path / "first", tmp_path / "second"
    first.write_text(_line("web1", stale))
    second.write_text(_line("web1", good))
    assert hostkeys.verdict(good.asbytes(), hostkeys.entries_for("web1", [first, second, tmp_path / "nope"])) == "ok"


def test_files_are_those_ssh_reads(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    user, system = hostkeys.known_hosts_files({}, "web1")
    assert user == [tmp_path / ".ssh/known_hosts", tmp_path / ".ssh/known_hosts2"]
    assert [str(p) for p in system] == ["/etc/ssh/ssh_known_hosts", "/etc/ssh/ssh_known_hosts2"]
    config = {"userknownhostsfile": "~/.ssh/work_hosts %d/hosts-%h none",
              "globalknownhostsfile": "/etc/ssh/site_hosts"}
    user, system = hostkeys.known_hosts_files(config, "web1")
    assert user == [tmp_path / ".ssh/work_hosts", tmp_path / "hosts-web1"]
    assert [str(p) for p in system] == ["/etc/ssh/site_hosts"]
    # vagrant ssh-config's way of switching checking off is not followed: the defaults are read
    user, _ = hostkeys.known_hosts_files({"userknownhostsfile": "/dev/null"}, "web1")
    assert user[0] == tmp_path / ".ssh/known_hosts"


def test_only_known_key_types_are_offered(tmp_path):
    key = _key(tmp_path)
    known = tmp_path / "known_hosts"
    known.write_text(_line("web1", key) + "web2 ssh-rsa AAAAB3NzaC1yc2E=\n")
    disabled = hostkeys.disabled_host_key_algorithms(hostkeys.entries_for("web1", [known]))
    assert "ssh-ed25519" not in disabled and "rsa-sha2-512" in disabled and "ecdsa-sha2-nistp256" in disabled
    rsa_only = hostkeys.disabled_host_key_algorithms(hostkeys.entries_for("web2", [known]))
    assert "rsa-sha2-256" not in rsa_only and "rsa-sha2-512" not in rsa_only and "ssh-ed25519" in rsa_only
    assert hostkeys.disabled_host_key_algorithms([]) == []  # unknown host: the usual order


def test_recorded_key_is_private_and_found_by_ssh_keygen(tmp_path):
    key = _key(tmp_path)
    known = tmp_path / "new" / ".ssh" / "known_hosts"
    hostkeys.append_known_host(known, "[203.0.113.10]:2222", key)
    hostkeys.append_known_host(known, "web1", key)
    assert known.stat().st_mode & 0o777 == 0o600 and known.parent.stat().st_mode & 0o777 == 0o700
    found = subprocess.run(["ssh-keygen", "-F", "[203.0.113.10]:2222", "-f", str(known)],
                           capture_output=True, text=True)
    assert found.returncode == 0 and key.get_base64() in found.stdout
    assert hostkeys.verdict(key.asbytes(), hostkeys.entries_for("web1", [known])) == hostkeys.OK
