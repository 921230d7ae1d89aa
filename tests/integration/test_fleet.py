"""Several hosts: nginx on the `lb` host in front of two app hosts on one private network
(deploy.toml [hosts], [network]). With a bounded request loop through the load balancer:
a rolling deploy of a code change fails no request; a release that fails its health check on
the second app host stops the roll and leaves both hosts on the previous release, failing no
request; an app host whose nginx is stopped is routed around; POSTs during a roll each reach
one app host once and none fails; an app host that crashes (gone from the network, every
process killed) fails no request once the load balancer noticed, and is back in rotation when
it boots again. A dry deploy and provision change nothing on any host and show each host's
plan; a worker host that is no app host (the db host, here) runs the release with its site on
loopback only; maintenance.on is the load balancer's. The rolling deploy's time per batch, and
the crash's numbers, are printed (run with -s to see them).

The fleet (4 hosts) comes from tests/integration/fleet.py, once for this module; the `db` host
serves here as the single-host deploy the timings compare against."""

import os
import re
import shutil
import signal
import subprocess
import time

import pytest
import requests

from tests.integration.fleet import fleet  # noqa: F401  (the fixture)
from tests.integration.helpers import REPO, invoke, on_host
from toolkit import sandbox as sandboxes
from toolkit.sandbox import network, privnet, processes
from toolkit.sandbox.record import SandboxRecord

pytestmark = pytest.mark.integration

FLASK = REPO / "examples" / "flask"
APP = "/srv/flaskapp"
PORT_80 = ("python3 -c \"import socket, sys\n"
           "try:\n socket.create_connection((sys.argv[1], 80), timeout=3); print('connected')\n"
           "except OSError as e:\n print('refused:', e)\" {address}")


def fleet_toml(fleet):
    return (f'[app]\nname = "flaskapp"\n\n[health]\npath = "/healthz"\n\n'
            f'[hosts]\nlb = ["{fleet.lb.ssh_alias}"]\n'
            f'app = ["{fleet.app1.ssh_alias}", "{fleet.app2.ssh_alias}"]\n\n'
            f'[network]\nprivate = "10.78.0.0/16"\n')


def live(box):
    return on_host(box, f"readlink {APP}/current").stdout.strip().rsplit("/", 1)[-1]


def variant(app_dir, tmp_path, name, code):
    """A copy of the app with `code` appended to app.py."""
    new = tmp_path / name
    shutil.copytree(app_dir, new)
    (new / "app.py").write_text((new / "app.py").read_text() + "\n" + code)
    return new


@pytest.fixture(scope="module")
def app_dir(fleet, tmp_path_factory):
    app = tmp_path_factory.mktemp("fleet") / "app"
    shutil.copytree(FLASK, app, ignore=shutil.ignore_patterns("__pycache__"))
    (app / "deploy.toml").write_text(fleet_toml(fleet))
    run = invoke("deploy", "--app", str(app), timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    return app


def url(fleet, path="/"):
    return f"http://{fleet.lb.address}{path}"


def test_the_site_answers_through_the_load_balancer_from_both_app_hosts(fleet, app_dir):
    pids = {requests.get(url(fleet), timeout=10).text.split("worker ")[1].split(".")[0] for _ in range(12)}
    # the app hosts' nginx listen on their private address (and loopback) only
    listens = on_host(fleet.app1, "ss -Hltn 'sport = :80'").stdout
    assert fleet.app1.private_address + ":80" in listens and "0.0.0.0:80" not in listens, listens
    # and their firewall lets port 80 in from the lb only: the db host is on the same private
    # network but is no lb, so its connection is dropped
    assert on_host(fleet.lb, PORT_80.format(address=fleet.app1.private_address)).stdout.strip() == "connected"
    assert on_host(fleet.db, PORT_80.format(address=fleet.app1.private_address)).stdout.startswith("refused")
    assert requests.get(url(fleet), timeout=10).status_code == 200 and pids
    # the client's address reaches the app host's log through X-Real-IP, believed from the lb only
    site = on_host(fleet.app1, "cat /etc/nginx/sites-available/flaskapp.conf").stdout
    assert f"set_real_ip_from {fleet.lb.private_address};" in site
    # static files are cached at the edge
    requests.get(url(fleet, "/static/style.css"), timeout=10)
    second = requests.get(url(fleet, "/static/style.css"), timeout=10)
    assert second.status_code == 200 and second.headers.get("X-Cache-Status") == "HIT"
    status = invoke("status", "--app", str(app_dir))
    assert status.returncode == 0, status.stdout + status.stderr
    for box in (fleet.lb, fleet.app1, fleet.app2):
        assert box.ssh_alias in status.stdout
    assert "roles: lb" in status.stdout and "roles: app, worker" in status.stdout
    # the summary names the site where visitors reach it: the lb, never an app host
    assert f"site: http://{fleet.lb.address}/" in status.stdout
    assert f"site: http://{fleet.app1.address}/" not in status.stdout
    # a command in the app's world runs once, on the first app host (the hosts share a database:
    # `manage createsuperuser` must not ask twice); --host app asks for every app host
    once = invoke("run", "--app", str(app_dir), "--", "hostname")
    every = invoke("run", "--app", str(app_dir), "--host", "app", "--", "hostname")
    names = (fleet.app1.name, fleet.app2.name)
    assert [line for line in once.stdout.split() if line in names] == [fleet.app1.name], once.stdout + once.stderr
    assert [line for line in every.stdout.split() if line in names] == list(names), every.stdout + every.stderr


def test_rolling_deploy_of_a_code_change_fails_no_request(fleet, app_dir, tmp_path, request_loop):
    before = (live(fleet.app1), live(fleet.app2))
    changed = variant(app_dir, tmp_path, "changed", "# a code change\n")
    with request_loop(url(fleet), clients=4, max_requests=20000, max_seconds=300) as loop:
        started = time.monotonic()
        run = invoke("deploy", "--app", str(changed), timeout=900)
        rolled = time.monotonic() - started
    assert run.returncode == 0, run.stdout + run.stderr
    assert loop.done > 0 and loop.failures == [], loop.summary()
    after = (live(fleet.app1), live(fleet.app2))
    assert after[0] != before[0] and after[1] != before[1]
    assert after[0] == after[1]  # one release name on every host: `rollback --to NAME` means one thing
    timing = re.search(r"rolling deploy: (.*)", run.stdout).group(1)
    # the app hosts were switched one at a time, each out of the load balancer meanwhile
    assert "out of rotation: " + fleet.app1.ssh_alias in run.stdout
    assert "out of rotation: " + fleet.app2.ssh_alias in run.stdout
    assert "drain " + fleet.app1.ssh_alias in run.stdout

    # the same code change deployed to one host alone, for the comparison
    single = variant(app_dir, tmp_path, "single", "")
    (single / "deploy.toml").write_text(f'[app]\nname = "flaskapp"\nhosts = ["{fleet.db.ssh_alias}"]\n\n'
                                        '[health]\npath = "/healthz"\n')
    assert invoke("deploy", "--app", str(single), timeout=1800).returncode == 0
    code_only = variant(single, tmp_path, "single-changed", "# a code change\n")
    first_release = live(fleet.db)
    started = time.monotonic()
    one = invoke("deploy", "--app", str(code_only), timeout=900)
    single_seconds = time.monotonic() - started
    assert one.returncode == 0, one.stdout + one.stderr
    assert live(fleet.db) != first_release  # a new release, not "unchanged"
    print(f"\n[timing] rolling deploy of 2 app hosts, batch 1: {rolled:.1f}s in all ({timing}); "
          f"single-host code-only deploy: {single_seconds:.1f}s; requests {loop.done}, failed {len(loop.failures)}")


def test_a_release_failing_its_health_check_on_the_second_host_puts_both_back(fleet, app_dir, tmp_path,
                                                                              request_loop):
    before = (live(fleet.app1), live(fleet.app2))
    # /healthz fails on the second app host only: the first one switches, the second fails
    bad = variant(app_dir, tmp_path, "bad", (
        "import socket as _socket\n"
        f"if _socket.gethostname().endswith('app2'):\n"
        "    app.view_functions['healthz'] = lambda: ('broken on this host', 500)\n"))
    with request_loop(url(fleet), clients=4, max_requests=20000, max_seconds=300) as loop:
        run = invoke("deploy", "--app", str(bad), timeout=900)
    assert run.returncode == 1, run.stdout + run.stderr
    assert loop.done > 0 and loop.failures == [], loop.summary()
    assert "health check of http://localhost/healthz failed: got 500" in run.stdout
    assert (live(fleet.app1), live(fleet.app2)) == before
    # both back in rotation, on the release that was good
    assert on_host(fleet.lb, "ls /run/pronghorn-lb/flaskapp/").stdout.strip() == ""
    for box in (fleet.app1, fleet.app2):
        assert on_host(box, f"test -e {APP}/.deploy-lock").returncode != 0


def run_loop(loop, requests_wanted=600, seconds=60):
    """Let the request loop run until it made `requests_wanted` requests (bounded in time)."""
    deadline = time.monotonic() + seconds
    while loop.done < requests_wanted and time.monotonic() < deadline:
        time.sleep(0.1)


def back_in_rotation(fleet, box):
    """Wait until the lb sends requests to `box` again: each lb worker left it alone for
    fail_timeout (5 s) after its failures and finds it back only by trying it, so requests go
    through the lb meanwhile (for the fail timeout and until `box` logged some; bounded)."""
    def served():
        return int(on_host(box, "wc -l < /var/log/nginx/flaskapp.access.log").stdout.strip() or 0)

    before, started = served(), time.monotonic()
    while time.monotonic() - started < 30:
        for _ in range(20):
            requests.get(url(fleet), timeout=10)
        if time.monotonic() - started > 7 and served() > before + 10:
            return
        time.sleep(0.5)


def test_a_stopped_app_host_is_routed_around(fleet, app_dir, request_loop):
    assert on_host(fleet.app1, "systemctl stop nginx").returncode == 0
    try:
        with request_loop(url(fleet), clients=4, max_requests=3000, max_seconds=120) as loop:
            run_loop(loop)
        assert loop.done >= 600 and loop.failures == [], loop.summary()
    finally:
        on_host(fleet.app1, "systemctl start nginx")
    back_in_rotation(fleet, fleet.app1)
    # the app itself stopped (socket and service): the app host's nginx answers 503 (it never
    # reached the app), the lb sends the request to the other host
    stop = on_host(fleet.app2, "systemctl stop flaskapp.socket flaskapp.service")
    assert stop.returncode == 0, stop.stderr
    try:
        with request_loop(url(fleet), clients=4, max_requests=3000, max_seconds=120) as loop:
            run_loop(loop)
        assert loop.done >= 600 and loop.failures == [], loop.summary()
    finally:
        on_host(fleet.app2, "systemctl start flaskapp.socket flaskapp.service")
    back_in_rotation(fleet, fleet.app2)


def test_rollback_rolls_through_the_app_hosts(fleet, app_dir, request_loop):
    before = (live(fleet.app1), live(fleet.app2))
    with request_loop(url(fleet), clients=4, max_requests=20000, max_seconds=300) as loop:
        run = invoke("rollback", "--app", str(app_dir), timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr
    assert loop.done > 0 and loop.failures == [], loop.summary()
    after = (live(fleet.app1), live(fleet.app2))
    assert after[0] < before[0] and after[1] < before[1]


def posts_logged(box):
    """How many POSTs to /messages `box`'s nginx logged (the lb's or an app host's)."""
    log = "/var/log/nginx/flaskapp.access.log"
    return int(on_host(box, f"grep -c '\"POST /messages ' {log} || true").stdout.strip() or 0)


def test_posts_during_a_rolling_deploy_reach_one_host_once_and_none_fails(fleet, app_dir, tmp_path,
                                                                         request_loop):
    """The lb never resends a POST to a second app host (proxy_next_upstream without
    non_idempotent), so a POST that an app host had when it went away would fail; none may:
    a host leaves the rotation first and is drained (its in-flight requests finish) before it
    switches."""
    hosts = (fleet.lb, fleet.app1, fleet.app2)
    before = {box.name: posts_logged(box) for box in hosts}
    changed = variant(app_dir, tmp_path, "posted", "# a code change, rolled under POSTs\n")
    with request_loop(url(fleet, "/messages"), clients=4, max_requests=20000, max_seconds=300,
                      expect=201, data={"text": "an order"}) as loop:
        run = invoke("deploy", "--app", str(changed), timeout=900)
    assert run.returncode == 0, run.stdout + run.stderr
    assert loop.done > 0 and loop.failures == [], loop.summary()
    sent = {box.name: posts_logged(box) - before[box.name] for box in hosts}
    # every POST the client sent reached the lb once, and exactly one app host once
    assert sent[fleet.lb.name] == loop.done, (sent, loop.done)
    assert sent[fleet.app1.name] + sent[fleet.app2.name] == loop.done, (sent, loop.done)
    assert sent[fleet.app1.name] > 0 and sent[fleet.app2.name] > 0, sent
    print(f"\n[posts] {loop.done} POSTs during the roll, failed {len(loop.failures)}; "
          f"app hosts got {sent[fleet.app1.name]} + {sent[fleet.app2.name]}; "
          f"slowest {max(seconds for _, seconds, _ in loop.requests):.2f}s")


def host_state(box):
    """What a deploy or provision would change on `box`: the live release and the releases, the
    lb's rotation, the nginx sites, the app's units, the firewall's rules, the deploy lock."""
    return on_host(box, f"readlink {APP}/current; ls {APP}/releases {APP}/.deploy-lock 2>&1; "
                        "ls -l /run/pronghorn-lb/flaskapp/ 2>&1; md5sum /etc/nginx/sites-enabled/* 2>&1; "
                        "ls /etc/systemd/system | grep flaskapp; ufw show added 2>&1; "
                        "ss -Hltn 'sport = :80'").stdout


def with_worker(app_dir, fleet, tmp_path, name):
    """The app with the db host as a worker host that is no app host (this toml has no db role)."""
    new = variant(app_dir, tmp_path, name, "# with a worker host\n")
    (new / "deploy.toml").write_text(fleet_toml(fleet).replace(
        "\n\n[network]", f'\nworker = ["{fleet.app1.ssh_alias}", "{fleet.app2.ssh_alias}", "{fleet.db.ssh_alias}"]'
                         "\n\n[network]"))
    return new


def test_a_dry_deploy_and_provision_change_no_host_and_show_each_hosts_plan(fleet, app_dir, tmp_path):
    app = with_worker(app_dir, fleet, tmp_path, "dry")
    boxes = (fleet.lb, fleet.app1, fleet.app2, fleet.db)
    before = {box.name: host_state(box) for box in boxes}
    deploy = invoke("deploy", "--dry", "--app", str(app), timeout=900)
    provision = invoke("provision", "--dry", "--app", str(app), timeout=900)
    assert {box.name: host_state(box) for box in boxes} == before
    assert deploy.returncode == 0, deploy.stdout + deploy.stderr
    assert provision.returncode == 0, provision.stdout + provision.stderr
    # the roll's plan, then each host's own, and a summary naming every host
    assert ("== rolling deploy (dry run: no host leaves the rotation of " + fleet.lb.ssh_alias
            + f"): would switch {fleet.app1.ssh_alias} then {fleet.app2.ssh_alias} then {fleet.db.ssh_alias}"
            in deploy.stdout), deploy.stdout
    for run in (deploy, provision):
        for box in boxes:
            assert f"== {box.ssh_alias} (dry run: nothing will be changed)" in run.stdout, run.stdout
        summary = run.stdout.split("Summary")[-1]
        assert all(box.ssh_alias in summary for box in boxes), summary
    # the new code would be uploaded to the app hosts (nothing is switched in a dry run)
    assert f"{fleet.app1.ssh_alias} |   (dry run: stops before running the new release)" in deploy.stdout
    # the worker host's plan lets no web port in (the app hosts' let the lb in)
    db_lines = [line for line in provision.stdout.splitlines()
                if line.startswith(fleet.db.ssh_alias) and "firewall" in line]
    assert db_lines and not any("allow" in line and "80/tcp" in line.split("closed")[0] for line in db_lines), db_lines


def test_a_worker_host_runs_the_release_and_serves_nothing_outside(fleet, app_dir, tmp_path):
    """The db host as a worker that is no app host, deployed alone (--limit): the lb is not in
    --limit and its rotation is left as it was (the worker is in none)."""
    app = with_worker(app_dir, fleet, tmp_path, "worker")
    run = invoke("deploy", "--limit", fleet.db.ssh_alias, "--app", str(app), timeout=1800)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "(not in --limit: only its rotation changes)" in run.stdout
    # nginx on loopback only (the deploy's health check passed there), no public site
    listens = on_host(fleet.db, "ss -Hltn 'sport = :80'").stdout
    assert "127.0.0.1:80" in listens and "0.0.0.0:80" not in listens and "*:80" not in listens, listens
    assert on_host(fleet.lb, PORT_80.format(address=fleet.db.private_address)).stdout.startswith("refused")
    rules = on_host(fleet.db, "ufw show added").stdout
    assert " 80" not in rules and " 443" not in rules, rules
    status = invoke("status", "--limit", fleet.db.ssh_alias, "--app", str(app))
    assert status.returncode == 0, status.stdout + status.stderr
    assert "roles: worker" in status.stdout and "health check" in status.stdout
    # the site through the lb is untouched: the app hosts only
    assert requests.get(url(fleet), timeout=10).status_code == 200


def test_maintenance_is_the_load_balancers_and_the_app_hosts_keep_serving_it(fleet, app_dir):
    flag = "/var/lib/pronghorn/maintenance/flaskapp"
    on = invoke("maintenance.on", "--app", str(app_dir))
    try:
        assert on.returncode == 0, on.stdout + on.stderr
        for path in ("/", "/static/style.css"):
            answer = requests.get(url(fleet, path), timeout=10)
            assert answer.status_code == 503 and answer.headers.get("Retry-After") == "300", (path, answer.headers)
            assert "maintenance" in answer.text.lower()
        # the app hosts were not touched: no flag there (it would answer the lb 503)
        for box in (fleet.app1, fleet.app2):
            assert on_host(box, f"test -e {flag}").returncode != 0
        status = invoke("status", "--app", str(app_dir))
        assert status.returncode == 0, status.stdout + status.stderr
        assert f"{fleet.lb.ssh_alias}" in status.stdout and "maintenance: on since" in status.stdout
    finally:
        off = invoke("maintenance.off", "--app", str(app_dir))
    assert off.returncode == 0, off.stdout + off.stderr
    assert requests.get(url(fleet), timeout=10).status_code == 200


# How long after an app host crashes the lb counts as having noticed. Each lb worker takes a host
# out after max_fails=2 failed tries within fail_timeout; a try at a host that vanished fails at
# proxy_connect_timeout (3 s), so two tries one after the other take 6 s. A request the lb sent to
# the host before that, on a connection it kept open to it, gets no answer at all (nothing comes
# back from a crashed machine, not even a reset) and fails when the client gives up (30 s): those
# are the requests lost in the crash. 10 s = those 6 s and room for a loaded machine.
NOTICED_AFTER = 10
WATCH_AFTER_CRASH = 60  # the lb's ARP entry for the host expires within it (15-45 s + 5 s probing)


def crash(fleet, box):
    """`box` as a machine losing power: its port on the private network's switch goes down first
    (nothing it sends or answers gets through: no reset, no ARP reply), then its container's PID 1
    is killed, and every process of the host with it. (Killing the processes alone would leave the
    host's network namespace answering: connections refused at once, as with a stopped nginx.)"""
    record = SandboxRecord.load(box.name)
    assert record.init_pid and processes.same_process_alive(record.init_pid, record.init_start), record
    subprocess.run(["ip", "-n", privnet.switch_ns(fleet.net), "link", "set",
                    privnet.port_name(box.index), "down"], check=True)
    os.kill(record.init_pid, signal.SIGKILL)
    assert processes.wait_gone(record.init_pid, 30)


def test_an_app_host_crashing_mid_load_fails_no_request_once_the_lb_noticed(fleet, app_dir, request_loop):
    """Last in the module, so a host that fails to come back spoils no other test of it (the
    fixture removes the hosts either way); it boots again from its root filesystem as a crashed
    machine would, with whatever the crash left there."""
    with request_loop(url(fleet), clients=16, max_requests=60000, max_seconds=WATCH_AFTER_CRASH + 90) as loop:
        run_loop(loop, requests_wanted=300)
        crashed = time.monotonic()
        crash(fleet, fleet.app1)
        while time.monotonic() - crashed < WATCH_AFTER_CRASH and loop.done < loop.max_requests:
            time.sleep(0.5)
    in_flight = [r for r in loop.requests if r[0] < crashed and r[0] + r[1] > crashed]
    window = [r for r in loop.requests if crashed <= r[0] < crashed + NOTICED_AFTER]
    after = [r for r in loop.requests if r[0] >= crashed + NOTICED_AFTER]

    def failed(group):
        return [failure for _, _, failure in group if failure is not None]

    def slowest(group):
        return max((seconds for _, seconds, _ in group), default=0)

    print(f"\n[crash] in flight at the crash: {len(in_flight)}, failed {len(failed(in_flight))}; "
          f"first {NOTICED_AFTER}s after it: {len(window)} requests, failed {len(failed(window))}, "
          f"slowest {slowest(window):.2f}s; after that: {len(after)} requests, failed {len(failed(after))}, "
          f"slowest {slowest(after):.2f}s")
    # what the lb's kernel knows of the host's address by now (INCOMPLETE or FAILED: no ARP answer)
    neigh = subprocess.run(["ip", "-n", network.netns_name(fleet.lb.name), "neigh", "show",
                            fleet.app1.private_address], capture_output=True, text=True).stdout.strip()
    print(f"[crash] the lb's ARP entry for {fleet.app1.name}: {neigh or 'none'}")
    try:
        assert len(after) >= 300 and failed(after) == [], (failed(after)[:10], len(after))
    finally:
        # the machine boots again (same root filesystem: the release, its services enabled)
        sandboxes.up(fleet.app1.name, log=print)

    def served():
        return int(on_host(fleet.app1, "wc -l < /var/log/nginx/flaskapp.access.log").stdout.strip() or 0)

    booted = served()
    back_in_rotation(fleet, fleet.app1)
    assert served() > booted  # the lb found it again by itself
