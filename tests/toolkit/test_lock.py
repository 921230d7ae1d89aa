"""The deploy lock without a host: its scripts run with sh on a temp folder standing in for the
app's tree, and who holds it, including a lock left by a killed deploy of this machine."""

import os
import socket
import subprocess
from dataclasses import dataclass

import pytest

from toolkit import lock
from toolkit.errors import LockHeld
from toolkit.layout import HostLayout


class TmpLayout(HostLayout):
    root: str = ""

    @property
    def base_dir(self):
        return f"{self.root}/srv/{self.app}"


@pytest.fixture
def layout(tmp_path):
    lay = TmpLayout("shop")
    object.__setattr__(lay, "root", str(tmp_path))
    return lay


def run(script):
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


def test_take_then_held_then_released_only_if_ours(layout):
    first = run(lock.take_script(layout, "alice@laptop since X (pid 1)"))
    assert first.returncode == 0 and os.path.isdir(layout.lock_dir)
    second = run(lock.take_script(layout, "bob@desk since Y (pid 2)"))
    assert second.returncode == lock.HELD_EXIT
    assert lock.holder_from(second.stdout).text == "alice@laptop since X (pid 1)"
    run(lock.release_if_ours_script(layout, "bob@desk since Y (pid 2)"))
    assert os.path.isdir(layout.lock_dir)  # not bob's: kept
    assert lock.holder_from(run(lock.show_script(layout)).stdout).text.startswith("alice@")
    run(lock.release_if_ours_script(layout, "alice@laptop since X (pid 1)"))
    assert not os.path.exists(layout.lock_dir)
    assert lock.holder_from(run(lock.show_script(layout)).stdout) is None


def test_a_lock_without_details_says_so(layout):
    os.makedirs(layout.lock_dir)
    assert lock.holder_from(run(lock.show_script(layout)).stdout).text == lock.NO_DETAILS


def test_lock_text_names_user_machine_and_pid():
    holder = lock.Holder(lock.lock_text())
    assert holder.machine == socket.gethostname() and holder.pid == os.getpid()
    assert not holder.dead()  # this very process


def dead_pid():
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_a_lock_of_a_dead_process_on_this_machine_is_reported_with_its_release():
    holder = lock.Holder(f"me@{socket.gethostname()} since 2025-01-01 10:00:00 UTC (pid {dead_pid()})")
    assert holder.dead()
    err = lock.held_error(holder)
    assert isinstance(err, LockHeld)
    assert "no longer runs" in str(err)
    assert err.next_step.endswith("invoke lock.release --host <host> --app <app>")
    assert "no longer runs on this machine" in holder.describe()


def test_a_lock_of_another_machine_is_never_called_dead():
    holder = lock.Holder(f"alice@laptop-not-{socket.gethostname()} since X (pid {dead_pid()})")
    assert not holder.dead()
    err = lock.held_error(holder)
    assert "another deploy holds the lock" in str(err) and "lock.release" in err.next_step
    assert not lock.Holder(lock.NO_DETAILS).dead()


@dataclass
class Cfg:
    layout: HostLayout


def test_take_raises_lock_held_over_a_connection(layout, monkeypatch):
    def fake_sh(c, script, what=None, check=True, stdin=None, timeout=None):
        result = run(script)
        from toolkit.remote import Result
        return Result(result.stdout, result.stderr, result.returncode)

    monkeypatch.setattr(lock, "sh", fake_sh)
    cfg = Cfg(layout)
    text = lock.take(None, cfg)
    assert lock.show(None, cfg).text == text
    with pytest.raises(LockHeld) as err:
        lock.take(None, cfg)
    assert text in str(err.value)
    lock.release_if_ours(None, cfg, text)
    assert lock.show(None, cfg) is None


def sh_here(monkeypatch):
    """lock's sh() replaced by sh on this machine, over the temp layout."""
    from toolkit.remote import Result

    def fake_sh(c, script, what=None, check=True, stdin=None, timeout=None):
        result = run(script)
        return Result(result.stdout, result.stderr, result.returncode)

    monkeypatch.setattr(lock, "sh", fake_sh)


def dead_text():
    return f"me@{socket.gethostname()} since 2025-01-01 10:00:00 UTC (pid {dead_pid()})"


def test_a_dead_deploys_lock_is_taken_over_with_the_release_it_noted(layout, monkeypatch):
    sh_here(monkeypatch)
    cfg = Cfg(layout)
    gone = dead_text()
    assert run(lock.take_script(layout, gone)).returncode == 0
    assert run(lock.record_previous_script(layout, "20250101100000")).returncode == 0
    taken = lock.acquire(None, cfg)
    assert taken.replaced == gone and taken.previous == "20250101100000"
    assert lock.show(None, cfg).text == taken.text  # ours now, without the old record
    assert not os.path.exists(lock.previous_file(layout))
    assert not os.path.exists(layout.lock_dir + ".stale")


def test_a_dead_deploy_that_had_not_switched_leaves_no_release_to_put_back(layout, monkeypatch):
    sh_here(monkeypatch)
    run(lock.take_script(layout, dead_text()))
    taken = lock.acquire(None, Cfg(layout))
    assert taken.replaced and taken.previous == ""


def test_a_lock_that_changed_hands_is_never_taken_over(layout):
    run(lock.take_script(layout, "bob@desk since Y (pid 2)"))
    result = run(lock.take_over_script(layout, dead_text(), "carol@box since Z (pid 3)"))
    assert result.returncode == lock.HELD_EXIT
    assert lock.holder_from(result.stdout).text == "bob@desk since Y (pid 2)"


def test_lock_release_removes_only_the_holder_it_was_shown(layout, monkeypatch):
    sh_here(monkeypatch)
    cfg = Cfg(layout)
    run(lock.take_script(layout, "bob@desk since Y (pid 2)"))
    assert not lock.release(None, cfg, lock.Holder("alice@laptop since X (pid 1)"))
    assert lock.show(None, cfg).text.startswith("bob@")  # someone else's new lock: kept
    assert lock.release(None, cfg, lock.show(None, cfg))
    assert lock.show(None, cfg) is None


def test_a_lock_without_details_can_be_released(layout, monkeypatch):
    sh_here(monkeypatch)
    os.makedirs(layout.lock_dir)
    assert lock.release(None, Cfg(layout), lock.show(None, Cfg(layout)))
    assert not os.path.exists(layout.lock_dir)
