"""The release bookkeeping, without a host: reading the host's releases, which release a rollback
picks, what pruning keeps, packaging the app and the server, the scripts the flow runs, the
stages and their hooks."""

import dataclasses
import io
import os
import subprocess
import tarfile
from types import SimpleNamespace
from dataclasses import dataclass, field

import pytest

from toolkit import packaging, privilege, releases, stages
from toolkit import release_commands as cmds
from toolkit.errors import DeployError
from toolkit.layout import HostLayout


@dataclass(frozen=True)
class Cfg:
    """The parts of an app's config the release flow reads."""

    name: str = "shop"
    python: str = "python3"
    requirements: str = "requirements.txt"
    app_path: str = ""
    static: dict = field(default_factory=lambda: {"/static/": "static"})

    @property
    def layout(self):
        return HostLayout(self.name)


CFG = Cfg()


def state_of(*infos, current="", venvs=()):
    st = releases.HostReleases(provisioned=True, current=current, venvs=set(venvs))
    st.releases = [releases.ReleaseInfo(n, s, venv=v) for n, s, v in infos]
    return st


def test_parse_state():
    out = "\n".join(["@@current", "releases/20250102000000", "@@releases",
                     "20250101000000 good abc v1", "20250102000000 good def v2", "20250103000000 failed - v2",
                     "@@venvs", "v1", "v2", "@@wheels", "0123abcd/pronghorn-0.1.0-py3-none-any.whl",
                     "@@python", "3.11.2", "@@active", "active"])
    st = releases.parse_state(out)
    assert st.current == "20250102000000"
    assert [r.state for r in st.releases] == ["good", "good", "failed"]
    assert st.releases[0].source_sha == "abc" and st.releases[2].source_sha == ""
    assert st.previous_good().name == "20250101000000"
    assert st.python_version == "3.11.2"
    assert not st.locked_by


def test_rollback_target_skips_failed_releases():
    st = state_of(("1", "good", "a"), ("2", "failed", "a"), ("3", "good", "a"), current="3")
    assert st.previous_good().name == "1"


def test_prune_keeps_n_good_plus_current_previous_and_newest_failed():
    st = state_of(("1", "good", "v1"), ("2", "good", "v1"), ("3", "failed", "v2"), ("4", "good", "v2"),
                  ("5", "failed", "v3"), ("6", "good", "v4"), current="6", venvs=("v1", "v2", "v3", "v4", "v5"))
    delete, venvs = releases.prune_plan(st, "7", keep=2)
    # good: 1 2 4 6 7 -> keep 6, 7 (keep=2); 6 is also the previous good; newest failed 5 kept
    assert delete == ["1", "2", "3", "4"]
    assert venvs == ["v1", "v2", "v5"]


def test_prune_never_counts_failed_releases():
    st = state_of(("1", "good", "v1"), ("2", "failed", "v1"), ("3", "failed", "v1"), current="1", venvs=("v1",))
    delete, venvs = releases.prune_plan(st, "4", keep=1)
    assert "1" not in delete  # the previous good one is the rollback target
    assert delete == ["2"]
    assert venvs == []


def test_release_names_sort_and_never_collide():
    name = releases.new_release_name(set())
    assert len(name) == 14 and name.isdigit()
    assert releases.new_release_name({name}) == name + "-2" or releases.new_release_name({name}) > name


def test_a_rolling_deploy_names_its_release_once_for_every_host():
    # hosts prepared seconds apart still get the stamp taken when the deploy started
    assert releases.new_release_name({"20261202120000"}, "20261202123000") == "20261202123000"
    assert releases.new_release_name({"20261202123000"}, "20261202123000") == "20261202123000-2"


def test_package_excludes_vcs_caches_and_local_secrets(tmp_path):
    (tmp_path / "app.py").write_text("app = 1\n")
    for junk in (".git/config", "__pycache__/app.cpython-311.pyc", ".venv/bin/python", "x.pyc", ".env"):
        path = tmp_path / junk
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("junk")
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "style.css").write_text("body{}")
    (tmp_path / "run.sh").write_text("#!/bin/sh\n")
    (tmp_path / "run.sh").chmod(0o755)
    pkg = packaging.package_dir(tmp_path, "releases/1", "shop")
    with tarfile.open(fileobj=io.BytesIO(pkg.tar)) as tar:
        names = {m.name: m for m in tar.getmembers()}
    assert set(names) == {"releases/1", "releases/1/static", "releases/1/app.py", "releases/1/run.sh",
                          "releases/1/static/style.css"}
    # root's, the app's group reads, others nothing; executables stay executable
    assert all((m.uname, m.gname) == ("root", "shop") for m in names.values())
    assert {n: m.mode for n, m in names.items()} == {
        "releases/1": 0o750, "releases/1/static": 0o750, "releases/1/app.py": 0o640,
        "releases/1/run.sh": 0o750, "releases/1/static/style.css": 0o640}
    assert pkg.files == 3
    assert pkg.left_out == [".env"]


def test_package_hash_follows_content_not_time(tmp_path):
    (tmp_path / "app.py").write_text("a = 1\n")
    first = packaging.package_dir(tmp_path, "releases/1", "shop").sha256
    assert packaging.package_dir(tmp_path, "releases/2", "shop").sha256 == first
    (tmp_path / "app.py").write_text("a = 2\n")
    assert packaging.package_dir(tmp_path, "releases/3", "shop").sha256 != first


def test_venv_hash_changes_with_each_input():
    h = packaging.venv_hash(b"flask\n", b"wheel", "3.11.2", "python3")
    assert packaging.venv_hash(b"flask\n", b"wheel", "3.11.2", "python3") == h
    assert packaging.venv_hash(b"flask\ndjango\n", b"wheel", "3.11.2", "python3") != h
    assert packaging.venv_hash(b"flask\n", b"wheel2", "3.11.2", "python3") != h
    assert packaging.venv_hash(b"flask\n", b"wheel", "3.12.1", "python3") != h


def test_switch_is_atomic_rename():
    script = cmds.switch_script(CFG, "20250101000000")
    assert script == ("ln -sfn releases/20250101000000 /srv/shop/current.new && "
                      "mv -T /srv/shop/current.new /srv/shop/current")


@pytest.mark.parametrize("domains, host", [(("_",), "localhost"), (("example.com", "www.example.com"), "example.com"),
                                           (("*.example.com",), "www.example.com")])
def test_health_check_host_header(domains, host):
    @dataclass
    class C:
        domains: tuple
    assert cmds.health_host(C(domains)) == host


def _git(*args, cwd):
    import subprocess
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args], cwd=cwd,
                   check=True, capture_output=True)


def test_git_source_at_a_branch_or_a_commit(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "app.py").write_text("v = 1\n")
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "one", cwd=repo)
    import subprocess
    first = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    (repo / "app.py").write_text("v = 2\n")
    _git("commit", "-q", "-am", "two", cwd=repo)

    at_main = packaging.checkout_git(str(repo), "main", tmp_path / "a")
    assert (at_main / "app.py").read_text() == "v = 2\n"
    at_commit = packaging.checkout_git(str(repo), first, tmp_path / "b")
    assert (at_commit / "app.py").read_text() == "v = 1\n"
    # .git never reaches the host
    pkg = packaging.package_dir(at_commit, "releases/1", "shop")
    with tarfile.open(fileobj=io.BytesIO(pkg.tar)) as tar:
        assert [m.name for m in tar.getmembers()] == ["releases/1", "releases/1/app.py"]


def test_unknown_git_ref_says_what_to_check(tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    _git("init", "-q", "-b", "main", cwd=repo)
    (repo / "app.py").write_text("v = 1\n")
    _git("add", ".", cwd=repo)
    _git("commit", "-q", "-m", "one", cwd=repo)
    with pytest.raises(DeployError) as err:
        packaging.checkout_git(str(repo), "no-such-branch", tmp_path / "a")
    assert 'ref = "no-such-branch"' in err.value.next_step


def test_every_server_build_gets_its_own_wheel_folder(tmp_path):
    # All builds are named pronghorn-0.1.0-py3-none-any.whl: the folder (source hash) tells them apart.
    wheel = tmp_path / "0123abcd" / "pronghorn-0.1.0-py3-none-any.whl"
    assert packaging.wheel_key(wheel) == "0123abcd/pronghorn-0.1.0-py3-none-any.whl"
    script = cmds.finish_script(CFG, "2", [], [], "ok", keep_wheel=packaging.wheel_key(wheel))
    assert '[ "$(basename "$d")" = 0123abcd ] || rm -rf "$d"' in script


def test_prune_keeps_the_venv_of_the_new_release():
    # keep=1: the new release reuses v1 of a release that is pruned; v1 must stay.
    st = state_of(("1", "good", "v1"), ("2", "good", "v2"), current="2", venvs=("v1", "v2"))
    delete, venvs = releases.prune_plan(st, "3", keep=1, new_venv="v1")
    assert delete == ["1"]
    assert venvs == []


def test_every_host_path_comes_from_the_layout():
    # A layout with another base folder moves every path of the scripts with it.
    from types import SimpleNamespace

    class Elsewhere(HostLayout):
        @property
        def base_dir(self):
            return "/opt/apps/shop"

    cfg = SimpleNamespace(name="shop", python="python3", requirements="requirements.txt", app_path="",
                          layout=Elsewhere("shop"), static={"/static/": "static"},
                          django=SimpleNamespace(settings="shop.settings"))
    scripts = [cmds.switch_script(cfg, "1"), cmds.upload_script(cfg, "1", "abc", "v1"),
               cmds.venv_script(cfg, "v1", "1", "h/w.whl", True),
               cmds.finish_script(cfg, "1", ["0"], ["v0"], "ok", keep_wheel="h/w.whl", lock_text="me"),
               cmds.fail_script(cfg, "1", "failed", lock_text="me"), releases.state_script(cfg),
               cmds.collectstatic_script(cfg, "1"), cmds.publish_static_script(cfg, "1", "staticfiles")]
    for script in scripts:
        assert "/srv/" not in script
    assert "/opt/apps/shop/.deploy-lock" in scripts[3]
    assert "ln -sfn ../../venvs/v1 /opt/apps/shop/releases/1/.venv" in scripts[1]


def test_a_failed_pip_shows_its_errors_not_its_notices():
    out = ("WARNING: Location 'file:///opt/pypi/simple/nope/' is ignored: it is neither a file nor a directory.\n"
           "ERROR: Could not find a version that satisfies the requirement nope==1.0 (from versions: none)\n"
           "ERROR: No matching distribution found for nope==1.0\n"
           "[notice] A new release of pip is available\n")
    shown = cmds.pip_errors(out)
    assert shown.splitlines() == out.splitlines()[1:3]


def test_a_repeated_traceback_in_the_journal_is_shown_once():
    prefix = "2026-01-01T00:00:0{}+0000 host pronghorn[12]: [2026-01-01 00:00:0{} +0000] [12] [ERROR] "
    block = ["Traceback (most recent call last):", '  File "app.py", line 3, in health',
             "    raise RuntimeError('db')", "RuntimeError: db"]
    lead = "[2026-01-01 00:00:0{},275] ERROR in app: Exception on /healthz [GET]"
    lines = ["start"] + [prefix.format(i, i) + line for i in range(3)
                         for line in [lead.format(i)] + block] + ["end"]
    kept = cmds.without_repeats(lines)
    assert kept[0] == "start" and kept[-1] == "end"
    assert sum("Exception on /healthz" in line for line in kept) == 1
    assert sum("Traceback" in line for line in kept) == 1
    assert "(the same traceback 2 more times)" in kept


class FakeRep:
    def __init__(self):
        self.lines = []

    def stage(self, name):
        self.lines.append(name)


def test_hooks_run_around_their_stage_and_can_end_the_flow(monkeypatch):
    seen = []
    for name in stages.STAGES:
        monkeypatch.setitem(stages.STAGE_FUNCTIONS, name, lambda ctx, name=name: seen.append(name))
    ctx = stages.DeployContext(c=None, cfg=CFG, rep=FakeRep())
    ctx.hooks.after("starting", lambda ctx: seen.append("provision"))
    ctx.hooks.before("publishing", lambda ctx: seen.append("nginx"))
    stages.run(ctx)
    assert seen == ["starting", "provision", "updating", "nginx", "publishing", "finishing"]

    seen.clear()
    ctx = stages.DeployContext(c=None, cfg=CFG, rep=FakeRep())
    ctx.hooks.after("starting", lambda ctx: setattr(ctx, "finished", True))
    stages.run(ctx)
    assert seen == ["starting"]
    with pytest.raises(ValueError):
        ctx.hooks.before("deploying", print)


def test_releases_read_in_a_gather_shared_with_provisioning(tmp_path):
    # The Releases fact's script, run by sh on a folder standing in for the app's tree.
    import subprocess
    from pathlib import Path
    from types import SimpleNamespace
    from toolkit import facts as facts_api

    class Here(HostLayout):
        @property
        def base_dir(self):
            return str(tmp_path / "shop")

    cfg = SimpleNamespace(name="shop", python="python3", app_path="", layout=Here("shop"))
    for name, marker in (("20250101000000", ".good"), ("20250102000000", ".failed")):
        (tmp_path / "shop" / "releases" / name).mkdir(parents=True)
        (tmp_path / "shop" / "releases" / name / marker).touch()
    (tmp_path / "shop" / "venvs" / "v1").mkdir(parents=True)
    (tmp_path / "shop" / "venvs" / "v1" / ".complete").touch()
    (tmp_path / "shop" / "current").symlink_to("releases/20250101000000")
    Path(cfg.layout.lock_dir).mkdir()
    Path(cfg.layout.lock_who).write_text("alice@laptop since X (pid 1)\n")
    wanted = [releases.Releases(cfg)]
    out = subprocess.run(["sh", "-c", facts_api.script(wanted)], capture_output=True, text=True).stdout
    st = facts_api.parse(wanted, out)[releases.Releases]
    assert st.provisioned and st.current == "20250101000000"
    assert [(r.name, r.state) for r in st.releases] == [("20250101000000", "good"), ("20250102000000", "failed")]
    assert st.venvs == {"v1"} and st.locked_by == "alice@laptop since X (pid 1)"
    assert releases.Releases.still_true(st) == bool(st.python_version)
    (tmp_path / "shop" / "releases" / "20250101000000" / ".good").unlink()
    import shutil
    shutil.rmtree(tmp_path / "shop" / "releases")
    out = subprocess.run(["sh", "-c", facts_api.script(wanted)], capture_output=True, text=True).stdout
    assert not releases.Releases.still_true(facts_api.parse(wanted, out)[releases.Releases])


# -- least privilege: the root scripts run here for real, on a scratch tree ---------------------

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")


def _sh(script):
    return subprocess.run(["sh", "-c", script], capture_output=True, text=True)


@needs_root
def test_sealing_a_venv_never_follows_a_link_its_builder_planted(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the venv's")
    os.chown(outside, 65534, 65534)
    outside.chmod(0o666)
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!")
    (venv / "bin" / "python").chmod(0o4777)
    (venv / "lib.py").write_text("x")
    (venv / "evil").symlink_to(outside)
    for p in (venv, venv / "bin", venv / "bin" / "python", venv / "lib.py"):
        os.chown(p, 65534, 65534)
    assert _sh(privilege.seal_tree(str(venv), "root")).returncode == 0
    st = outside.stat()
    assert (st.st_uid, st.st_mode & 0o7777) == (65534, 0o666)  # untouched
    for p in (venv, venv / "bin", venv / "bin" / "python", venv / "lib.py"):
        st = p.lstat()
        assert st.st_uid == 0 and st.st_mode & 0o7027 == 0, f"{p}: {st.st_mode:o}"  # no w for group, nothing for others, no set-id


@needs_root
def test_static_folders_open_to_nginx_but_a_link_leading_out_is_refused(tmp_path):
    release = tmp_path / "releases" / "1"
    (release / "static" / "css").mkdir(parents=True)
    (release / "static" / "css" / "a.css").write_text("a{}")
    (release / "app.py").write_text("x")
    for d in (release, release / "static", release / "static" / "css"):
        d.chmod(0o750)
    for f in (release / "app.py", release / "static" / "css" / "a.css"):
        f.chmod(0o640)
    secret = tmp_path / "secret"
    secret.mkdir(mode=0o700)

    class Here(HostLayout):
        @property
        def base_dir(self):
            return str(tmp_path)

    cfg = SimpleNamespace(name="root", layout=Here("shop"), static={"/static/": "static", "/x/": "gone"})
    assert _sh(cmds.static_modes_script(cfg, "1")).returncode == 0
    assert release.stat().st_mode & 0o777 == 0o751  # pass through, no listing
    assert (release / "app.py").stat().st_mode & 0o777 == 0o640  # the code stays closed
    assert (release / "static" / "css").stat().st_mode & 0o777 == 0o755
    assert (release / "static" / "css" / "a.css").stat().st_mode & 0o777 == 0o644

    (release / "out").symlink_to(secret)
    cfg.static["/out/"] = "out"
    result = _sh(cmds.static_modes_script(cfg, "1"))
    assert result.returncode != 0 and "outside the release" in result.stderr
    assert secret.stat().st_mode & 0o777 == 0o700


def test_static_root_must_lie_inside_the_release():
    rdir = CFG.layout.release_dir("1")
    ok = {"static_root": [rdir + "/assets/collected"], "cwd": [rdir]}
    assert cmds.static_root_in_release(CFG, "1", ok) == "assets/collected"
    # /srv a symlink on the host: Django's BASE_DIR is resolved, the kernel's cwd too
    moved = {"static_root": ["/data/srv/shop/releases/1/staticfiles"], "cwd": ["/data/srv/shop/releases/1"]}
    assert cmds.static_root_in_release(CFG, "1", moved) == "staticfiles"
    assert cmds.static_root_in_release(CFG, "1", {"static_root": [""], "cwd": [rdir]},
                                       unset=rdir + "/staticfiles") == "staticfiles"
    for bad in ("/var/www/static", rdir, rdir + "/../2/static", "relative/static"):
        with pytest.raises(DeployError) as err:
            cmds.static_root_in_release(CFG, "1", {"static_root": [bad], "cwd": [rdir]})
        assert "STATIC_ROOT" in str(err.value) and "BASE_DIR" in err.value.next_step
    with pytest.raises(DeployError, match="not set"):
        cmds.static_root_in_release(CFG, "1", {"static_root": [""], "cwd": [rdir]})


def test_pip_runs_as_the_build_user_confined_to_the_venv():
    script = cmds.venv_script(CFG, "v1", "1", "h/w.whl", True)
    run = next(line for line in script.splitlines() if line.startswith("systemd-run"))
    assert "-p User=shop-build -p Group=shop" in run
    assert "-p ProtectSystem=strict" in run and "-p ReadWritePaths=/srv/shop/venvs/v1" in run
    assert "--require-hashes" not in script
    # sealed after pip, before it is marked complete
    assert script.index("chown -R -h root:shop /srv/shop/venvs/v1") < script.index("/dev/null /srv/shop/venvs/v1/.complete")
    hashed = cmds.venv_script(CFG, "v1", "1", "h/w.whl", True, hashed=True)
    assert "--require-hashes -r /tmp/release/requirements.txt" in hashed  # the private copy
    assert cmds.requirements_hashed(b"flask==3.0.0 \\\n    --hash=sha256:abc\n")
    assert not cmds.requirements_hashed(b"flask==3.0.0\n")
    # a list made from pyproject.toml or a lock file is read from the release, not [app] requirements
    generated = cmds.venv_script(CFG, "v1", "1", "h/w.whl", True, hashed=True, pip_file=".pronghorn-requirements.txt")
    assert "--require-hashes -r /tmp/release/.pronghorn-requirements.txt" in generated


def test_a_src_layout_is_on_the_venvs_path_through_current_and_first_for_a_new_release():
    cfg = dataclasses.replace(CFG, app_path="src")
    wsgi = SimpleNamespace(**vars(cfg), wsgi="shop:create_app()", layout=cfg.layout)
    script = cmds.venv_script(cfg, "v1", "1", "h/w.whl", True)
    # the venv is shared by later releases: it names the live one's src, never this release's
    assert "echo /srv/shop/current/src > " in script and "/_pronghorn_app_path.pth" in script
    assert "releases/1/src" not in script
    assert packaging.venv_hash(b"", b"w", "3.11", "python3", "src") != packaging.venv_hash(b"", b"w", "3.11", "python3")
    # the import check of a release not yet live imports its own src first
    check = cmds.import_check_cmd(wsgi, "/srv/shop/releases/2")
    assert "env PYTHONPATH=/srv/shop/releases/2/src " in check
    plain = SimpleNamespace(**vars(CFG), wsgi="app:app", layout=CFG.layout)
    assert "PYTHONPATH" not in cmds.import_check_cmd(plain, "/srv/shop/releases/2")


def test_build_user_names_fit_useradd():
    assert privilege.build_user("shop") == "shop-build"
    long_a, long_b = "a" * 30 + "x", "a" * 30 + "y"
    assert len(privilege.build_user(long_a)) <= 32
    assert privilege.build_user(long_a) != privilege.build_user(long_b)


def test_a_reused_venv_is_closed_like_a_new_one():
    # venvs built by an older toolkit were root's 0644: each release that uses one seals it
    script = cmds.upload_script(CFG, "1", "abc", "v1")
    assert "if [ -f /srv/shop/venvs/v1/.complete ]; then chown -R -h root:shop /srv/shop/venvs/v1" in script
