"""--host parsing: what people type becomes the right user, host and port, and mistakes get a
message with a next step. Connection errors are explained with what to type next."""

import socket

import paramiko
import pytest

from toolkit.hosts import (HostError, HostSpec, explain_connect_error, make_connection, parse_host,
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
