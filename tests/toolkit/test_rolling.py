"""The rolling deploy's ordering and failure handling (toolkit/rolling.py) with plain fakes:
nothing switched before every host is prepared, one batch out of the load balancer at a time,
a failure puts every switched host back on its previous release and every host back in."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit import rolling


class Log(list):
    pass


class FakeMember:
    def __init__(self, name, log, fail=None, changed=True):
        self.name, self.log, self.fail, self.changed = name, log, fail or set(), changed

    def _do(self, what):
        self.log.append((what, self.name))
        if what in self.fail:
            raise RuntimeError(f"{what} failed on {self.name}")

    def prepare(self):
        self._do("prepare")
        return self.changed

    def publish(self):
        self._do("publish")

    def finish(self):
        self._do("finish")

    def abort(self, exc):
        self._do("abort")

    def rollback(self):
        self._do("rollback")


class FakeBalancer:
    def __init__(self, log):
        self.log = log
        self.down = []

    def set_down(self, hosts):
        self.down = list(hosts)
        self.log.append(("down", tuple(hosts)))

    def drain(self):
        self.log.append(("drain", tuple(self.down)))


def setup(n=3, **fails):
    log = Log()
    members = [FakeMember(f"app{i}", log, fails.get(f"app{i}")) for i in range(1, n + 1)]
    return log, members, FakeBalancer(log)


def after_prepare(log):
    return [e for e in log if e[0] != "prepare"]


def test_every_host_prepared_before_any_switch_then_one_batch_at_a_time():
    log, members, lb = setup()
    result = rolling.roll(members, lb, batch=1, parallel=3)
    assert sorted(e for e in log[:3]) == [("prepare", "app1"), ("prepare", "app2"), ("prepare", "app3")]
    # one reload per batch: the batch before goes back in as this one goes out
    assert after_prepare(log) == [
        ("down", ("app1",)), ("drain", ("app1",)), ("publish", "app1"),
        ("down", ("app2",)), ("drain", ("app2",)), ("publish", "app2"),
        ("down", ("app3",)), ("drain", ("app3",)), ("publish", "app3"), ("down", ()),
        ("finish", "app1"), ("finish", "app2"), ("finish", "app3")]
    assert result.switched == ["app1", "app2", "app3"] and len(result.batch_seconds) == 3


def test_batches_of_two():
    log, members, lb = setup(3)
    rolling.roll(members, lb, batch=2, parallel=1)
    downs = [e[1] for e in log if e[0] == "down" and e[1]]
    assert downs == [("app1", "app2"), ("app3",)]


def test_a_failed_health_check_on_the_second_host_puts_the_first_back_and_all_in_rotation():
    log, members, lb = setup(3, app2={"publish"})
    with pytest.raises(RuntimeError, match="publish failed on app2"):
        rolling.roll(members, lb, batch=1, parallel=1)
    rest = after_prepare(log)
    i = rest.index(("publish", "app2"))
    # the third host is never switched; the first one goes back to its release, then all are in
    assert ("publish", "app3") not in rest
    assert rest[i + 1:] == [("abort", "app1"), ("abort", "app3"), ("down", ())]
    assert ("abort", "app2") not in rest  # it put itself back (stages.recover)
    assert not any(e[0] == "finish" for e in rest)
    assert lb.down == []


def test_a_failed_prepare_switches_nothing_and_lets_every_other_host_go():
    log, members, lb = setup(3, app3={"prepare"})
    with pytest.raises(RuntimeError, match="prepare failed on app3"):
        rolling.roll(members, lb, parallel=3)
    rest = after_prepare(log)
    assert not any(e[0] == "publish" for e in rest)
    assert sorted(e for e in rest if e[0] == "abort") == [("abort", "app1"), ("abort", "app2")]
    assert lb.down == []


def test_unchanged_hosts_are_not_switched():
    log = Log()
    members = [FakeMember("app1", log, changed=False), FakeMember("app2", log)]
    result = rolling.roll(members, FakeBalancer(log), parallel=1)
    assert result.unchanged == ["app1"] and result.switched == ["app2"]
    assert ("publish", "app1") not in log and ("finish", "app1") in log


def test_rollback_rolls_batch_by_batch_and_stops_at_a_failure():
    log, members, lb = setup(3, app2={"rollback"})
    with pytest.raises(RuntimeError):
        rolling.roll_back(members, lb, batch=1)
    assert [e for e in log if e[0] == "rollback"] == [("rollback", "app1"), ("rollback", "app2")]
    assert lb.down == []


# -- the real balancer (toolkit/fleet_run.py NginxBalancer) over faked hosts -----------------------
# --limit picks the hosts a deploy works on; the load balancers' rotation is the inventory's:
# every lb of deploy.toml [hosts] takes each app host out before it switches, picked or not.

from types import SimpleNamespace

from invoke.exceptions import Exit

from toolkit import fleet_run
from toolkit.inventory import Inventory
from toolkit.report import Reporter


class FakeConn:
    def __init__(self, host):
        self.host, self.closed = host, False

    def close(self):
        self.closed = True


def fake_fleet(monkeypatch, roles, fail_connect=()):
    """A config with deploy.toml [hosts] `roles`; connections and root shells faked: returns
    (cfg, ran: [(host, script)], conns: {host: FakeConn})."""
    from toolkit import hosts as hosts_mod
    from toolkit import remote
    from toolkit.layout import HostLayout

    ran, conns = [], {}

    def connect(spec):
        if str(spec) in fail_connect:
            raise hosts_mod.HostError(f"could not connect to {spec}", f"invoke hosts.trust --host {spec}")
        conns[str(spec)] = FakeConn(str(spec))
        return conns[str(spec)]

    def sh(conn, script, **kw):
        ran.append((conn.host, script))
        return SimpleNamespace(ok=True, exited=0, stdout="drained\n", stderr="")

    monkeypatch.setattr(hosts_mod, "connect", connect)
    monkeypatch.setattr(remote, "sh", sh)
    cfg = SimpleNamespace(name="shop", inventory=Inventory.of(roles), layout=HostLayout("shop"), timeout=30)
    return cfg, ran, conns


def test_a_roll_limited_to_app_hosts_still_takes_them_out_of_every_load_balancer(monkeypatch):
    roles = {"lb": ("lb1", "lb2"), "app": ("a1", "a2"), "worker": ("a1", "a2", "w1")}
    cfg, ran, conns = fake_fleet(monkeypatch, roles)
    addresses = {h: None for h in ("lb1", "lb2", "a1", "a2", "w1")}
    specs = cfg.inventory.select(["a2", "w1"])  # --limit a2,w1: no lb picked
    log = Log()
    members = [FakeMember(h, log) for h in specs]
    plan = fleet_run.rotation_plan(cfg, specs, [m.name for m in members], 2, dry=False)
    assert plan == ("== rolling deploy, out of the rotation of lb1, lb2 (not in --limit: only its rotation "
                    "changes) batch by batch: a2+w1")
    fleet_run._through_balancer(cfg, Reporter(), lambda b: rolling.roll(members, b, batch=2, parallel=1),
                                addresses)
    rotations = [(host, script) for host, script in ran if "ln -sfn" in script]
    # each lb: everyone in (a roll killed earlier may have left hosts out), a2 out, everyone in
    assert [h for h, _ in rotations] == ["lb1", "lb2"] * 3
    assert "/run/pronghorn-lb/shop.states/out_2 " in rotations[2][1]
    # a2 is drained before it switches; w1, in the same batch, is in no rotation: not drained
    drained = [host for host, script in ran if "nginx_drain" in script or "nginx-status" in script]
    assert drained == ["a2"]
    assert log.index(("publish", "a2")) > 0 and all(c.closed for c in conns.values())


def test_a_roll_of_worker_hosts_only_leaves_the_rotation_alone(monkeypatch):
    cfg, ran, conns = fake_fleet(monkeypatch, {"lb": ("lb1",), "app": ("a1", "a2"), "worker": ("w1",)})
    log = Log()
    fleet_run._through_balancer(cfg, Reporter(), lambda b: rolling.roll([FakeMember("w1", log)], b),
                                {h: None for h in ("lb1", "a1", "a2", "w1")})
    # one write at the start (every app host in: what an interrupted roll may have left), then none
    assert len([s for _, s in ran if "ln -sfn" in s]) == 1 and not any("nginx-status" in s for _, s in ran)
    assert ("publish", "w1") in log


def test_a_load_balancer_that_cannot_be_reached_stops_the_roll_before_any_switch(monkeypatch, capsys):
    cfg, ran, conns = fake_fleet(monkeypatch, {"lb": ("lb1",), "app": ("a1", "a2")}, fail_connect=("lb1",))
    log = Log()
    members = [FakeMember("a1", log)]
    with pytest.raises(Exit) as info:
        fleet_run._through_balancer(cfg, Reporter(), lambda b: rolling.roll(members, b), {"lb1": None})
    assert info.value.code == 1 and log == []  # nothing prepared, nothing switched
    out = capsys.readouterr().out
    assert "the load balancers' rotation cannot be changed: could not connect to lb1" in out
    assert "next: invoke hosts.trust --host lb1" in out


def test_a_dry_roll_says_what_it_would_do_and_changes_no_rotation(monkeypatch):
    cfg, ran, _ = fake_fleet(monkeypatch, {"lb": ("lb1",), "app": ("a1", "a2")})
    line = fleet_run.rotation_plan(cfg, cfg.inventory.all_hosts, ["a1", "a2"], 1, dry=True)
    assert line == "== rolling deploy (dry run: no host leaves the rotation of lb1): would switch a1 then a2"
    log = Log()
    fleet_run._through_balancer(cfg, Reporter(), lambda b: rolling.roll([FakeMember("a1", log)], b), None)
    assert ran == [] and ("publish", "a1") in log


def test_a_failed_roll_exits_1_after_the_summary(monkeypatch, capsys):
    cfg, ran, conns = fake_fleet(monkeypatch, {"lb": ("lb1",), "app": ("a1", "a2")})
    log = Log()
    members = [FakeMember("a1", log), FakeMember("a2", log, fail={"publish"})]
    with pytest.raises(Exit) as info:
        fleet_run._through_balancer(cfg, Reporter(), lambda b: rolling.roll(members, b, parallel=1),
                                    {"lb1": None})
    assert info.value.code == 1 and "Summary" in capsys.readouterr().out
    assert all(c.closed for c in conns.values())
    assert "/run/pronghorn-lb/shop.states/all " in [s for h, s in ran if "ln -sfn" in s][-1]  # all back in
