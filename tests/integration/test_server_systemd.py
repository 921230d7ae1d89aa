"""pronghorn under real systemd (PID 1 of a sandbox host): socket activation, Type=notify,
`systemctl reload` without a failed request, and a clean `systemctl stop`.

This is the setup the deploy toolkit renders for users (a `.socket` + `Type=notify` `.service`),
exercised with the server wheel built from this checkout. Everything runs inside the sandbox
host (curl to its own loopback), so nothing outside the sandbox is contacted.
"""

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

pytestmark = pytest.mark.integration

PORT = 8017
UNIT = "pronghorn-drill"

APP = textwrap.dedent('''
    import os

    def app(environ, start_response):
        body = ("ok %d" % os.getpid()).encode()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
''')

SOCKET_UNIT = textwrap.dedent(f'''
    [Unit]
    Description=pronghorn drill socket

    [Socket]
    ListenStream=127.0.0.1:{PORT}

    [Install]
    WantedBy=sockets.target
''')

SERVICE_UNIT = textwrap.dedent(f'''
    [Unit]
    Description=pronghorn drill
    Requires={UNIT}.socket
    After={UNIT}.socket

    [Service]
    Type=notify
    NotifyAccess=main
    ExecStart=/opt/pronghorn-drill/bin/pronghorn -w 2 --chdir /srv/drill drillapp:app
    ExecReload=/bin/kill -HUP $MAINPID
    KillMode=mixed
    TimeoutStopSec=30
''')

# A bounded request loop inside the host while `systemctl reload` runs.
RELOAD_UNDER_LOAD = textwrap.dedent(f'''
    set -u
    rm -f /tmp/drill.results
    ( for i in $(seq 300); do
        curl -s -o /dev/null -w '%{{http_code}}\\n' --max-time 10 http://127.0.0.1:{PORT}/ >> /tmp/drill.results
      done ) &
    loop=$!
    sleep 0.5
    systemctl reload {UNIT}.service
    wait $loop
    sort /tmp/drill.results | uniq -c
''')


def run(sandbox_module, sandbox, command, timeout=300):
    result = sandbox_module.run_in(sandbox, command, timeout=timeout)
    assert result.returncode == 0, f"{command!r} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "-q", "-w", str(out), str(REPO / "server")], check=True, timeout=300)
    [built] = out.glob("pronghorn-*.whl")
    return built


@pytest.fixture(scope="module")
def drill_host(sandbox, wheel, tmp_path_factory):
    """The sandbox with the wheel installed in a venv, the app and the two units in place."""
    from toolkit import sandbox as sb

    files = tmp_path_factory.mktemp("drill")
    (files / "drillapp.py").write_text(APP)
    (files / f"{UNIT}.socket").write_text(SOCKET_UNIT)
    (files / f"{UNIT}.service").write_text(SERVICE_UNIT)
    run(sb, sandbox, "mkdir -p /srv/drill /tmp/wheels")
    for local, remote in [(wheel, f"/tmp/wheels/{wheel.name}"), (files / "drillapp.py", "/srv/drill/"),
                          (files / f"{UNIT}.socket", "/etc/systemd/system/"),
                          (files / f"{UNIT}.service", "/etc/systemd/system/")]:
        subprocess.run(["scp", "-F", str(sb.ssh_config_path()), "-q", str(local),
                        f"{sandbox.ssh_alias}:{remote}"], check=True, timeout=120)
    run(sb, sandbox, "command -v curl >/dev/null || apt-get install -y -q curl >/dev/null")
    run(sb, sandbox, f"python3 -m venv /opt/pronghorn-drill && "
                     f"/opt/pronghorn-drill/bin/pip install -q /tmp/wheels/{wheel.name}")
    run(sb, sandbox, f"systemctl daemon-reload && systemctl start {UNIT}.socket")
    yield sb, sandbox
    sb.run_in(sandbox, f"systemctl stop {UNIT}.service {UNIT}.socket; "
                       f"rm -f /etc/systemd/system/{UNIT}.*; systemctl daemon-reload")


def journal(sb, sandbox):
    return sb.run_in(sandbox, f"systemctl status --no-pager {UNIT}.service; "
                              f"journalctl -u {UNIT}.service --no-pager -o cat | tail -40").stdout


def test_socket_activation_notify_reload_and_stop(drill_host):
    sb, sandbox = drill_host
    # the first connection starts the service through the socket
    body = run(sb, sandbox, f"curl -sf --max-time 30 http://127.0.0.1:{PORT}/")
    assert body.startswith("ok ")
    # READY=1 comes once both workers serve: a moment after the first answer
    show = run(sb, sandbox, f"for i in $(seq 50); do systemctl is-active -q {UNIT}.service && break; "
                            f"sleep 0.2; done; systemctl show -p ActiveState -p SubState -p MainPID "
                            f"{UNIT}.service")
    assert "ActiveState=active" in show and "SubState=running" in show, journal(sb, sandbox)
    main_pid = show.split("MainPID=")[1].split()[0]
    before = set(run(sb, sandbox, f"pgrep -P {main_pid}").split())
    assert len(before) == 2

    counts = run(sb, sandbox, RELOAD_UNDER_LOAD, timeout=300)
    assert counts.split() == ["300", "200"], counts + journal(sb, sandbox)  # all answered 200
    show = run(sb, sandbox, f"systemctl show -p ActiveState -p MainPID {UNIT}.service")
    assert "ActiveState=active" in show and f"MainPID={main_pid}" in show
    after = set(run(sb, sandbox, f"pgrep -P {main_pid}").split())
    assert len(after) == 2 and not after & before              # new workers after the reload

    run(sb, sandbox, f"systemctl stop {UNIT}.service")
    show = run(sb, sandbox, f"systemctl show -p ActiveState -p Result {UNIT}.service")
    assert "ActiveState=inactive" in show and "Result=success" in show
    journal = run(sb, sandbox, f"journalctl -u {UNIT}.service --no-pager -o cat")
    assert "Shutting down: Master" in journal
    assert "SIGKILL" not in journal
