"""--reload's file watcher, driven poll by poll with check() (no sleeping on timing)."""

import os
import sys
import threading

from pronghorn.reloader import Reloader, module_files


def touch_later(path, seconds=10):
    """Give a file a different mtime without waiting for the clock."""
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + seconds * 1_000_000_000))


def watcher(paths):
    changes = []
    reloader = Reloader(lambda: paths, changes.append, interval=0.05)
    return reloader, changes


def test_first_poll_only_records(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    reloader, changes = watcher([str(f)])
    assert reloader.check() == [] and changes == []


def test_edit_is_reported_once(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    reloader, changes = watcher([str(f)])
    reloader.check()
    f.write_text("x = 22\n")
    touch_later(f)
    assert reloader.check() == [str(f)]
    assert reloader.check() == []
    assert changes == [str(f)]


def test_same_size_edit_with_new_mtime_is_seen(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    reloader, _ = watcher([str(f)])
    reloader.check()
    touch_later(f)
    assert reloader.check() == [str(f)]


def test_deleted_file_counts_as_changed(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    reloader, _ = watcher([str(f)])
    reloader.check()
    f.unlink()
    assert reloader.check() == [str(f)]
    assert reloader.check() == []


def test_file_that_never_existed_is_ignored(tmp_path):
    reloader, changes = watcher([str(tmp_path / "nope.py")])
    reloader.check()
    reloader.check()
    assert changes == []


def test_current_symlink_switch_is_a_change_even_with_an_older_mtime(tmp_path):
    """The deploy layout: current -> releases/1, then current -> releases/2 (atomic rename)."""
    r1, r2 = tmp_path / "releases" / "1", tmp_path / "releases" / "2"
    r1.mkdir(parents=True)
    r2.mkdir(parents=True)
    (r1 / "app.py").write_text("VERSION = 1\n")
    (r2 / "app.py").write_text("VERSION = 2\n")
    # The new release's file is older than the running one (rsync -t, git checkout times).
    old = os.stat(r1 / "app.py")
    os.utime(r2 / "app.py", ns=(old.st_atime_ns, old.st_mtime_ns - 10**9))
    current = tmp_path / "current"
    current.symlink_to(r1)
    watched = str(current / "app.py")
    reloader, changes = watcher([watched])
    reloader.check()

    (tmp_path / "current.new").symlink_to(r2)
    os.replace(tmp_path / "current.new", current)
    assert reloader.check() == [watched]
    assert changes == [watched]


def test_extra_files_from_the_callback_are_picked_up_as_they_appear(tmp_path):
    a, b = tmp_path / "a.py", tmp_path / "b.html"
    a.write_text("")
    b.write_text("")
    paths = [str(a)]
    reloader, _ = watcher(paths)
    reloader.check()
    paths.append(str(b))
    assert reloader.check() == []  # b is new: recorded, not a change
    touch_later(b)
    assert reloader.check() == [str(b)]


def test_module_files_lists_loaded_sources():
    files = module_files()
    assert os.__file__ in files
    assert all(not path.endswith(".pyc") for path in files)
    assert sys.modules[__name__].__file__ in files


def test_thread_reports_a_change_and_stops(tmp_path):
    f = tmp_path / "a.py"
    f.write_text("x = 1\n")
    seen = threading.Event()
    reloader = Reloader(lambda: [str(f)], lambda path: seen.set(), interval=0.01).start()
    try:
        touch_later(f)
        assert seen.wait(timeout=10)
    finally:
        reloader.stop()
    assert not reloader._thread.is_alive()


def test_start_for_is_off_without_reload():
    from pronghorn.config import Config
    from pronghorn.reloader import start_for

    assert start_for(Config(), log=None, on_change=print) is None


def test_start_for_watches_extra_files_and_logs_the_change(tmp_path):
    from pronghorn.config import Config
    from pronghorn.reloader import start_for

    template = tmp_path / "base.html"
    template.write_text("<p>")
    messages, seen = [], threading.Event()

    class Log:
        def info(self, msg, *args):
            messages.append(msg % args)

    reloader = start_for(Config(reload=True, reload_extra_files=[str(template)]), Log(),
                         lambda path: seen.set(), interval=0.01)
    try:
        touch_later(template)
        assert seen.wait(timeout=10)
    finally:
        reloader.stop()
    assert messages == [f"Worker reloading: {template} modified"]
