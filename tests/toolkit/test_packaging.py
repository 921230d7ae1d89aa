"""Which of the app's files are uploaded (toolkit/ignore.py through packaging.package_dir): the
app's .gitignore honoured (by git in a work tree, by our matcher elsewhere), secret-like files
left out unless [source] include names them, and what a deploy reports about them."""

import io
import subprocess
import tarfile
from pathlib import Path

import pytest

from toolkit import ignore, packaging


def tree(root: Path, files: dict) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def names(root: Path, include=()) -> list[str]:
    return [p.as_posix() for p in ignore.select_files(root, include).files]


APP = {"app.py": "app = 1\n", "static/site.css": "body{}", "db.sqlite3": "local data", "secrets.json": "{}",
       "local.db": "x", ".env.production": "KEY=1", ".envrc": "export K=1", "certs/site.key": "k",
       "certs/site.pem": "p", "instance/config.cfg": "SECRET=1", "id_rsa": "key", "notes.txt": "n",
       "build/out.txt": "built", "logs/app.log": "log", "sub/keep.log": "kept by !"}
GITIGNORE = "build/\n*.log\n!sub/keep.log\n/notes.txt\n"


def test_secret_like_files_are_left_out_and_named(tmp_path):
    root = tree(tmp_path, APP)
    sel = ignore.select_files(root)
    kept = [p.as_posix() for p in sel.files]
    for secret in ("db.sqlite3", "secrets.json", "local.db", ".env.production", ".envrc", "certs/site.key",
                   "certs/site.pem", "instance/config.cfg", "id_rsa"):
        assert secret not in kept
    assert "app.py" in kept and "static/site.css" in kept
    # what --dry and the deploy's step name: each left-out file (a folder once)
    assert sel.secret_like == [".env.production", ".envrc", "certs/site.key", "certs/site.pem", "db.sqlite3",
                               "id_rsa", "instance/", "local.db", "secrets.json"]


def test_include_uploads_a_secret_like_file_on_purpose(tmp_path):
    root = tree(tmp_path, APP)
    kept = names(root, include=["certs/site.pem", "instance/"])
    assert "certs/site.pem" in kept and "instance/config.cfg" in kept
    assert "certs/site.key" not in kept


def test_gitignore_without_git(tmp_path):
    root = tree(tmp_path, {**APP, ".gitignore": GITIGNORE, "deep/notes.txt": "not anchored away"})
    kept = names(root)
    assert "build/out.txt" not in kept and "logs/app.log" not in kept
    assert "notes.txt" not in kept and "deep/notes.txt" in kept  # /notes.txt is anchored
    assert "sub/keep.log" in kept  # re-included by !
    assert ".gitignore" in kept


def test_gitignore_through_git_in_a_work_tree(tmp_path):
    root = tree(tmp_path, {**APP, ".gitignore": GITIGNORE + "untracked-ignored.txt\n",
                           "untracked-ignored.txt": "x", "untracked.txt": "y", "tracked.log": "t"})
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], cwd=root, check=True)
    subprocess.run(git + ["add", "app.py", ".gitignore"], cwd=root, check=True)
    subprocess.run(git + ["add", "-f", "tracked.log"], cwd=root, check=True)
    subprocess.run(git + ["commit", "-q", "-m", "x"], cwd=root, check=True)
    (root / ".git" / "info").mkdir(exist_ok=True)
    (root / ".git" / "info" / "exclude").write_text("static/\n")
    kept = names(root)
    assert "untracked.txt" in kept  # untracked but not ignored: part of the app
    assert "untracked-ignored.txt" not in kept and "build/out.txt" not in kept
    assert "tracked.log" in kept  # tracked: git uploads what it tracks, patterns or not
    assert "static/site.css" not in kept  # .git/info/exclude counts too
    assert not any(n.startswith(".git/") for n in kept)
    assert "db.sqlite3" not in kept  # the secret-like defaults apply on top of git's rules


def test_an_app_in_a_subfolder_of_a_repository(tmp_path):
    tree(tmp_path, {".gitignore": "*.tmp\n", "apps/shop/app.py": "a", "apps/shop/x.tmp": "t", "other.py": "o"})
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    assert names(tmp_path / "apps" / "shop") == ["app.py"]


@pytest.mark.parametrize("pattern, path, is_dir, ignored", [
    ("*.log", "a/b/x.log", False, True),
    ("/x.log", "a/x.log", False, False),
    ("a/*.log", "a/b/x.log", False, False),
    ("a/**/x.log", "a/b/c/x.log", False, True),
    ("**/cache", "deep/er/cache", True, True),
    ("out/", "out", False, False),  # a trailing / matches folders only
    ("out/", "out", True, True),
    ("x?.py", "xy.py", False, True),
    ("[ab].py", "c.py", False, False),
    ("[!ab].py", "c.py", False, True),
    ("\\#lit", "#lit", False, True),
])
def test_gitignore_pattern_rules(pattern, path, is_dir, ignored):
    assert ignore.GitIgnore(ignore.GitIgnore.parse(pattern)).ignored(path, is_dir) is ignored


def test_nothing_inside_an_ignored_folder_comes_back():
    rules = ignore.GitIgnore(ignore.GitIgnore.parse("logs/\n!logs/keep.txt\n"))
    assert rules.ignored("logs/keep.txt", False)  # as git: an excluded folder is not looked into


def test_the_deploy_uploads_what_the_selection_keeps(tmp_path):
    root = tree(tmp_path, {**APP, ".gitignore": GITIGNORE})
    pkg = packaging.package_dir(root, "releases/1", "shop")
    with tarfile.open(fileobj=io.BytesIO(pkg.tar)) as tar:
        files = sorted(m.name[len("releases/1/"):] for m in tar.getmembers() if m.isfile())
    assert files == names(root)
    assert "db.sqlite3" in pkg.left_out


def test_include_comes_from_deploy_toml(tmp_path):
    from toolkit.config import load_app_config

    tree(tmp_path, {"app.py": "app = 1\n", "certs/site.pem": "p",
                    "deploy.toml": '[app]\nname = "shop"\nwsgi = "app:app"\n[source]\ninclude = ["certs/site.pem"]\n'})
    cfg = load_app_config(tmp_path)
    assert packaging.source_include(cfg) == ("certs/site.pem",)
