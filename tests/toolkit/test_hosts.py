"""--host parsing: what people type becomes the right user, host and port, and mistakes get a
message with a next step. Connection errors are explained with what to type next. Host keys are
verified before logging in: a paramiko ssh server on loopback plays the host."""

import socket

import paramiko
import pytest

from toolkit import hostkeys
from toolkit.errors import fill_next
from toolkit.hosts import (HostError, HostSpec, connect, explain_connect_error, make_connection, parse_host,
                           parse_hosts, split_hosts)


@pytest.mark.parametrize("text, user, host, port", [
    ("203.0.113.10", None, "203.0.113.10", None),
    ("deploy@203.0.113.10", "deploy", "203.0.113.10", None),
    ("deploy@example.com:2222", "deploy", "example.com", 2222),
    ("example.com:22", None, "example.com", 22),
    ("[2001:db8::1]:2222", None, "2001:db8::1", 2222),
    ("root@[2001:db8::1]", "root", "2001:db8::1", None),
    ("2001:db8::1", None, "2001:db8::1", None),
    ("web1", None, "web1", None),
    ("sandbox-demo", None, "sandbox-demo", None),
    ("  user@h  ", "user", "h", None),
])
def test_parse_host_forms(text, user, host, port):
    spec = parse_host(text)
    assert (spec.user, spec.host, spec.port) == (user, host, port)


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("@host", "nothing before '@'"),
    ("host:http", "port 'http'"),
    ("host:0", "port '0'"),
    ("host:70000", "port '70000'"),
    ("[2001:db8::1", "without ']'"),
    ("[::1]x", "unexpected"),
    ("user@", "not a host name"),
    ("ho st", "not a host name"),
    ("http://host/", "is a URL"),
])
def test_bad_hosts_are_refused_with_a_next_step(text, fragment):
    with pytest.raises(HostError) as err:
        parse_host(text)
    assert fragment in str(err.value)
    assert err.value.next_step


def test_several_hosts_by_comma_and_repetition():
    assert split_hosts(["a,b", " c ", "d,,"]) == ["a", "b", "c", "d"]
    assert split_hosts("x, y") == ["x", "y"]
    assert split_hosts(None) == []
    assert [s.host for s in parse_hosts(["root@a:22,b"])] == ["a", "b"]


def test_sandbox_name():
    assert parse_host("sandbox-dev1").sandbox_name == "dev1"
    assert parse_host("root@sandbox-dev1").sandbox_name == "dev1"
    assert parse_host("sandbox-").sandbox_name is None
    assert parse_host("web1").sandbox_name is None


def test_connection_takes_user_and_port_only_when_given(monkeypatch, tmp_path):
    # An empty ssh config so that the machine's own ~/.ssh/config cannot change the answer.
    monkeypatch.setenv("HOME", str(tmp_path))
    conn = make_connection(parse_host("deploy@example.com:2222"), connect_timeout=3)
    assert (conn.user, conn.host, conn.port) == ("deploy", "example.com", 2222)
    assert conn.connect_timeout == 3
    default = make_connection(parse_host("example.com"))
    assert default.port == 22
    # like ssh: no user given -> the local user name
    import getpass
    assert default.user == getpass.getuser()


def test_sandbox_hosts_use_the_sandbox_ssh_config(monkeypatch, tmp_path):
    config = tmp_path / "ssh_config"
    config.write_text("Host sandbox-t1\n    HostName 10.77.9.2\n    User root\n    Port 2200\n")
    monkeypatch.setattr("toolkit.hosts.sandbox_ssh_config", lambda: config)
    conn = make_connection(parse_host("sandbox-t1"))
    assert (conn.host, conn.user, conn.port) == ("10.77.9.2", "root", 2200)


class _Conn:
    user, host, port = "deploy", "203.0.113.10", 22


def test_refused_key_says_ssh_copy_id():
    err = explain_connect_error(HostSpec("x", "203.0.113.10"), _Conn(),
                                paramiko.AuthenticationException("Authentication failed."))
    assert "refused" in str(err)
    assert err.next_step == "copy your key there first: ssh-copy-id deploy@203.0.113.10"


def test_unreachable_sandbox_says_sandbox_up():
    err = explain_connect_error(parse_host("sandbox-dev7"), _Conn(), TimeoutError("timed out"))
    assert "sandbox-dev7" in str(err)
    assert err.next_step == "invoke sandbox.up --name dev7"


def test_unknown_name_and_unreachable_host():
    err = explain_connect_error(parse_host("nosuchhost"), _Conn(), socket.gaierror(-2, "Name or service not known"))
    assert "cannot find a host named" in str(err)
    err = explain_connect_error(parse_host("203.0.113.10"), _Conn(), ConnectionRefusedError(111, "refused"))
    assert "cannot reach deploy@203.0.113.10" in str(err)
    assert "ssh deploy@203.0.113.10" in err.next_step


def test_several_hosts_run_in_turn_and_stop_at_the_first_failure(monkeypatch):
    import io

    from invoke.exceptions import Exit

    from toolkit import tasking as tasks_deploy
    from toolkit.report import Reporter

    class Conn:
        def __init__(self, spec):
            self.spec = spec

        def close(self):
            pass

    def connect(spec):
        if spec.host == "web2":
            raise HostError("cannot reach root@web2 (timed out)", "check the address: ssh root@web2")
        return Conn(spec)

    monkeypatch.setattr(tasks_deploy.hosts_mod, "connect", connect)
    done = []

    def work(conn, spec):
        done.append(spec.host)
        with rep.step("something"):
            pass
        return f"http://{spec.host}/"

    rep = Reporter(out=io.StringIO())
    with pytest.raises(Exit) as stopped:
        tasks_deploy.run_on_hosts(parse_hosts("web1,web2,web3"), rep, work)
    assert stopped.value.code == 1
    assert done == ["web1"]  # web3 is never started once web2 failed
    text = rep.out.getvalue()
    assert "web1: ok" in text and "site: http://web1/" in text
    assert "web2: failed" in text and "next: check the address: ssh root@web2" in text
    assert "web3: not attempted (an earlier host failed)" in text


# -- host keys, through a real ssh handshake with a paramiko server on loopback ---------------------

class _Sshd(paramiko.ServerInterface):
    """Accepts any public key, and remembers each login attempt (none may come before the key check)."""

    def __init__(self):
        self.logins = []

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        self.logins.append(username)
        return paramiko.AUTH_SUCCESSFUL


@pytest.fixture
def sshd(tmp_path, monkeypatch):
    """A one-connection-at-a-time ssh server on 127.0.0.1 with its own host key; HOME is a temporary
    folder holding the client's key, so nothing of this machine's ssh setup takes part."""
    import subprocess
    import threading

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir(mode=0o700)
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / ".ssh/id_ed25519")],
                   check=True)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(10)
    server = _Sshd()
    server.host_key = paramiko.Ed25519Key.from_private_key_file(str(tmp_path / ".ssh/id_ed25519"))
    server.port = listener.getsockname()[1]
    server.known_hosts = tmp_path / ".ssh/known_hosts"
    stop = threading.Event()
    transports = []

    def serve():
        for _ in range(10):  # bounded: a test opens a few connections at most
            try:
                sock, _ = listener.accept()
            except OSError:
                return
            transport = paramiko.Transport(sock)
            transports.append(transport)
            transport.add_server_key(server.host_key)
            try:
                transport.start_server(server=server)
                transport.join(10)  # until the client hangs up
            except Exception:
                pass
            finally:
                transport.close()
            if stop.is_set():
                return

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server
    stop.set()
    for transport in transports:
        transport.close()
    listener.shutdown(socket.SHUT_RDWR)  # wakes accept()
    listener.close()
    thread.join(15)


def _spec(server):
    return parse_host(f"tester@127.0.0.1:{server.port}")


def _other_key(tmp_path):
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp_path / "other")], check=True)
    return paramiko.Ed25519Key.from_private_key_file(str(tmp_path / "other"))


def test_a_known_host_is_logged_in_to(sshd):
    hostkeys.append_known_host(sshd.known_hosts, f"[127.0.0.1]:{sshd.port}", sshd.host_key)
    conn = connect(_spec(sshd))
    try:
        assert conn.is_connected and sshd.logins == ["tester"]
    finally:
        conn.close()


def test_an_unknown_host_is_refused_with_its_fingerprint_before_logging_in(sshd):
    with pytest.raises(HostError) as err:
        connect(_spec(sshd))
    message = str(err.value)
    assert f"tester@127.0.0.1:{sshd.port} is not a known host" in message
    assert f"ssh-ed25519 key with fingerprint {hostkeys.fingerprint_of(sshd.host_key.asbytes())}" in message
    assert fill_next(err.value.next_step, _spec(sshd).raw) == f"invoke hosts.trust --host tester@127.0.0.1:{sshd.port}"
    assert sshd.logins == []


def test_a_changed_key_is_refused_as_a_possible_attack_before_logging_in(sshd, tmp_path):
    old = _other_key(tmp_path)
    name = f"[127.0.0.1]:{sshd.port}"
    hostkeys.append_known_host(sshd.known_hosts, name, old)
    with pytest.raises(HostError) as err:
        connect(_spec(sshd))
    message = str(err.value)
    assert "CHANGED" in message and "MAY BE AN ATTACK" in message
    assert f"ssh-ed25519 {hostkeys.fingerprint_of(old.asbytes())} ({sshd.known_hosts}:1)" in message
    assert f"now it presents ssh-ed25519 {hostkeys.fingerprint_of(sshd.host_key.asbytes())}" in message
    assert err.value.next_step.startswith(f"ssh-keygen -R '{name}' -f {sshd.known_hosts} && invoke hosts.trust")
    assert sshd.logins == []


def test_no_lax_setting_in_the_users_ssh_config_turns_checking_off(sshd):
    (sshd.known_hosts.parent / "config").write_text(
        "Host *\n    StrictHostKeyChecking no\n    UserKnownHostsFile /dev/null\n")
    with pytest.raises(HostError, match="is not a known host"):
        connect(_spec(sshd))
    assert sshd.logins == []
    _trust(_spec(sshd), yes=True)  # recorded where the toolkit reads it despite /dev/null
    connect(_spec(sshd)).close()
    assert sshd.logins == ["tester"]


def test_a_host_that_lost_the_known_key_type_is_refused_as_changed(sshd):
    # known_hosts has only an RSA key for it: the host is asked for RSA and has none to show.
    hostkeys.append_known_host(sshd.known_hosts, f"[127.0.0.1]:{sshd.port}",
                               paramiko.RSAKey.generate(1024))
    with pytest.raises(HostError, match="CHANGED.*none of the key types"):
        connect(_spec(sshd))
    assert sshd.logins == []


def test_testinfra_checks_run_only_over_a_verified_connection(sshd):
    from toolkit.testinfra_backend import VerifiedParamikoBackend

    backend = VerifiedParamikoBackend(_spec(sshd).raw)
    with pytest.raises(HostError, match="is not a known host"):
        backend.client
    assert sshd.logins == []


def _trust(spec, yes, answer="n"):
    from toolkit.tasks_hosts import trust_host

    trust_host(spec, ".", yes, ask=lambda prompt: answer)


def test_hosts_trust_records_the_key_then_connections_work(sshd, capsys):
    spec = _spec(sshd)
    _trust(spec, yes=True)
    out = capsys.readouterr().out
    assert hostkeys.fingerprint_of(sshd.host_key.asbytes()) in out and f"recorded in {sshd.known_hosts}" in out
    assert sshd.logins == []  # the key was taken without logging in
    connect(spec).close()
    assert sshd.logins == ["tester"]
    _trust(spec, yes=True)
    assert "already trusted" in capsys.readouterr().out
    assert sshd.known_hosts.read_text().count("\n") == 1


def test_hosts_trust_without_yes_records_nothing_unless_confirmed(sshd, monkeypatch):
    from invoke.exceptions import Exit

    monkeypatch.setattr("sys.stdin.isatty", lambda: False, raising=False)
    with pytest.raises(Exit) as stopped:
        _trust(_spec(sshd), yes=False)
    assert "hosts.trust --host" in str(stopped.value) and "--yes" in str(stopped.value)
    assert not sshd.known_hosts.exists()


def test_hosts_trust_refuses_a_changed_key(sshd, tmp_path):
    from invoke.exceptions import Exit

    hostkeys.append_known_host(sshd.known_hosts, f"[127.0.0.1]:{sshd.port}", _other_key(tmp_path))
    before = sshd.known_hosts.read_text()
    with pytest.raises(Exit, match="CHANGED"):
        _trust(_spec(sshd), yes=True)
    assert sshd.known_hosts.read_text() == before
