"""Several hosts from the task's side: what --host/--limit pick with deploy.toml [hosts], and
hosts worked on at once (bounded) with a summary that stays readable."""

import io
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from invoke.exceptions import Exit

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit import tasking
from toolkit.inventory import Inventory
from toolkit.report import Reporter


def fleet_cfg():
    inv = Inventory.of({"lb": ("lb1",), "app": ("a1", "a2"), "db": ("d1",)})
    return SimpleNamespace(inventory=inv, hosts=())


def names(specs):
    return [s.raw for s in specs]


def test_limit_and_host_pick_roles_or_hosts_of_the_inventory():
    cfg = fleet_cfg()
    assert names(tasking.host_specs(None, cfg)) == ["d1", "a1", "a2", "lb1"]
    assert names(tasking.host_specs(None, cfg, ["app"])) == ["a1", "a2"]
    assert names(tasking.host_specs(["lb1"], cfg, ["a2"])) == ["a2", "lb1"]
    with pytest.raises(Exit) as info:
        tasking.host_specs(None, cfg, ["web"])
    assert "'web' is neither a role" in str(info.value.message) and "next: " in str(info.value.message)


def test_single_host_case_keeps_host_as_given():
    cfg = SimpleNamespace(inventory=Inventory.single(("h1",)), hosts=("h1",))
    assert names(tasking.host_specs(None, cfg)) == ["h1"]
    assert names(tasking.host_specs(["other"], cfg)) == ["other"]  # --host still goes anywhere


class FakeConn:
    def __init__(self, spec):
        self.spec = spec

    def close(self):
        pass


def test_parallel_hosts_are_bounded_all_run_and_summarised_in_order(monkeypatch):
    monkeypatch.setattr(tasking.hosts_mod, "connect", FakeConn)
    out = io.StringIO()
    rep = Reporter(out=out)
    running, peak, lock = [0], [0], threading.Lock()

    def work(conn, spec):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            with rep.step("provision"):
                time.sleep(0.05)
                if spec.raw == "h2":
                    raise RuntimeError("apt broke")
        finally:
            with lock:
                running[0] -= 1
        return f"http://{spec.raw}/"

    specs = [tasking.hosts_mod.parse_host(f"h{i}") for i in range(1, 7)]
    with pytest.raises(Exit):
        tasking.run_on_hosts(specs, rep, work, parallel=3)
    text = out.getvalue()
    assert 1 < peak[0] <= 3
    # every host ran (h2's failure stops no other), each line says whose it is
    assert [h.host for h in rep.hosts] == [f"h{i}" for i in range(1, 7)]
    assert [h.failed for h in rep.hosts] == [False, True, False, False, False, False]
    assert "h2 |   error: RuntimeError: apt broke" in text
    for i in (1, 3, 6):
        assert f"h{i} |     ok       provision" in text
    summary = text.split("Summary")[1]
    assert summary.index("h1:") < summary.index("h2: failed") < summary.index("h6:")


def test_tasks_about_the_release_skip_hosts_that_do_not_run_the_app():
    cfg = fleet_cfg()
    assert names(tasking.host_specs(None, cfg, roles=tasking.APP_ROLES)) == ["a1", "a2"]
    assert names(tasking.host_specs(None, cfg, ["a2", "lb1"], tasking.APP_ROLES)) == ["a2"]
    with pytest.raises(Exit) as info:
        tasking.host_specs(None, cfg, ["lb"], tasking.APP_ROLES)
    assert "none of the hosts picked has the role app or worker" in str(info.value.message)
