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
