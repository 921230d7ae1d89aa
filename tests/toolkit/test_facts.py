"""Facts: each command runs here in a real sh (on this Debian machine) and its parser reads the
output back; the batched script keeps each fact to its own section."""

import subprocess
from types import SimpleNamespace

import pytest

from toolkit import facts as facts_api
from toolkit.facts import Fact, Facts
from toolkit.facts.files import FileFact, Files, file_differs, sha256_text
from toolkit.facts.host import (AptLists, DeployLock, EnvFile, Groups, HostFacts, OsRelease, Packages,
                                PythonVersion, Units, UnitState, Users)


def run_here(facts):
    out = subprocess.run(["sh", "-c", facts_api.script(facts)], capture_output=True, text=True).stdout
    return facts_api.parse(facts, out)


class Answer(Fact[str]):
    key = "answer"

    def command(self):
        return "echo 42; exit 3"

    def parse(self, lines):
        return lines[0]


def test_each_fact_runs_in_its_own_subshell_so_an_exit_stops_only_that_fact():
    got = run_here([Answer(), OsRelease()])
    assert got[Answer] == "42"
    assert got[OsRelease][0]  # read although the fact before it exited


def test_files_fact_reads_kind_mode_owner_and_hash(tmp_path):
    f = tmp_path / "conf"
    f.write_text("hello\n")
    f.chmod(0o640)
    (tmp_path / "link").symlink_to(f)
    got = run_here([Files([f, tmp_path, tmp_path / "link", tmp_path / "nope"])])[Files]
    assert got[str(f)] == FileFact(str(f), True, "file", 0o640, "root", "root", sha256_text("hello\n"))
    assert got[str(tmp_path)].kind == "dir" and got[str(tmp_path)].sha256 == ""
    assert got[str(tmp_path / "link")].kind == "link"
    assert not got[str(tmp_path / "nope")].exists


def test_env_file_is_read_with_the_one_env_reader(tmp_path):
    env = tmp_path / ".env"
    env.write_text("SECRET_KEY='abc'\nQUOTED=\"a\\\"b\"\n# comment\n")
    assert run_here([EnvFile(env)])[EnvFile] == {"SECRET_KEY": "abc", "QUOTED": 'a"b'}


def test_env_file_names_what_env_set_put_in_env_local_without_its_values(tmp_path):
    env = tmp_path / ".env"
    env.write_text("SECRET_KEY=abc\n")
    assert run_here([EnvFile(env)])[EnvFile].local_names == frozenset()  # no .env.local
    (tmp_path / ".env.local").write_text("# set on the host\nAPI_TOKEN='t0p s3cret'\nexport OTHER=1\n")
    got = run_here([EnvFile(env)])[EnvFile]
    assert got == {"SECRET_KEY": "abc"} and got.local_names == {"API_TOKEN", "OTHER"}


def test_lock_fact_names_the_holder(tmp_path):
    lock = tmp_path / ".deploy-lock"
    layout = SimpleNamespace(lock_dir=str(lock), lock_who=str(lock / "who"))
    assert run_here([DeployLock(layout)])[DeployLock] == ""
    lock.mkdir()
    assert run_here([DeployLock(layout)])[DeployLock] == "(no details recorded)"
    (lock / "who").write_text("bob@laptop since today (pid 1)\n")
    assert run_here([DeployLock(layout)])[DeployLock] == "bob@laptop since today (pid 1)"


def test_parsers_on_plain_output():
    assert OsRelease().parse(["debian 12"]) == ("debian", "12")
    assert AptLists().parse(["1700000000", "1699990000.5"]).mtime == 1699990000
    assert AptLists().parse(["1700000000"]).mtime == 0  # never fetched
    assert Packages(["python3", "nginx"]).parse(["python3 installed", "nginx not-installed"]) == {"python3"}
    assert Users(["shop"]).parse(["shop:x:998:998:app:/srv/shop:/usr/sbin/nologin"])["shop"][6] == \
        "/usr/sbin/nologin"
    assert Groups(["shop"]).parse(["shop", ""]) == {"shop"}
    assert Units(["a.socket", "a.service"]).parse(["a.socket enabled active", "a.service - inactive"]) == {
        "a.socket": UnitState("enabled", "active"), "a.service": UnitState("", "inactive")}
    assert PythonVersion().parse(["3.11.2"]) == "3.11.2"


def test_host_facts_from_one_gather():
    f = facts_api.parse([OsRelease(), Packages(["tar"]), Units(["x.socket"])],
                        "@@os\ndebian 12\n@@pkgs\ntar installed\n@@units\nx.socket enabled active\n@@end\n")
    host = HostFacts.of(f)
    assert (host.os_id, host.installed, host.unit("x.socket").active) == ("debian", {"tar"}, "active")
    assert host.files == {} and not host.fact("/srv").exists and host.unit("nope") == UnitState()


def test_one_key_per_gather():
    with pytest.raises(ValueError, match="files"):
        facts_api.check_keys([Files(["/a"]), Files(["/b"])])


def test_facts_lookup_by_class_or_key():
    f = Facts({"os": ("debian", "12")})
    assert f[OsRelease] == f["os"] and OsRelease in f and Packages not in f


def test_file_differs_names_the_reason():
    def fact(kind="file", mode=0o600, owner="shop", group="shop", content="hello\n"):
        return FileFact("/f", True, kind, mode, owner, group, sha256_text(content))

    want = dict(content="hello\n", mode=0o600, owner="shop", group="shop")
    assert file_differs(None, **want) == "missing"
    assert file_differs(fact(kind="dir"), **want) == "is a dir"
    assert file_differs(fact(content="old\n"), **want) == "content"
    assert file_differs(fact(mode=0o644), **want) == "mode 644 -> 600"
    assert file_differs(fact(owner="root", group="root"), **want) == "owner root:root -> shop:shop"
    assert file_differs(fact(), **want) == ""
