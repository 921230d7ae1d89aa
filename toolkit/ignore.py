"""Which of the app's files are uploaded: what the app's .gitignore leaves out is never sent, nor
are files that look like secrets or local state unless deploy.toml asks for them by name.

    select_files(root, include=()) -> Selection   the files to upload (relative, sorted) and the
                                                   secret-like files left out by default

The .gitignore rules come from git itself (`git ls-files --cached --others --exclude-standard`)
when the folder is in a git work tree, so every ignore file git reads counts (nested
.gitignore, .git/info/exclude, the global excludes file); otherwise from the folder's own
.gitignore files through `GitIgnore`, a small matcher of git's pattern rules. Tracked files are
uploaded even if a pattern matches them, as git itself does.
"""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

# Never uploaded: VCS data, caches, local virtualenvs (a build product of the developer's machine).
ALWAYS = (".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "*.pyc", "*.pyo",
          ".pytest_cache", ".mypy_cache", ".tox", "node_modules", ".DS_Store")

# Left out unless named in [source] include: secrets (the host's secrets live in shared/.env,
# written by the toolkit) and local state (a developer's database must not overwrite, or leak
# into, the host's).
SECRET_LIKE = (".env", ".env.*", ".envrc", "*.pem", "*.key", "*.p12", "*.pfx", "id_rsa*", "id_dsa*",
               "id_ecdsa*", "id_ed25519*", "*.sqlite", "*.sqlite3", "*.db", "instance",
               "secrets.json", "credentials.json", ".netrc", ".pgpass", "*.kdbx")


def _matches(rel: str, patterns) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in Path(rel).parts for pat in patterns)


def always_excluded(rel: str) -> bool:
    return _matches(rel, ALWAYS)


def secret_like(rel: str) -> bool:
    return _matches(rel, SECRET_LIKE)


def _included(rel: str, include) -> bool:
    """True when `rel` is, or lies under, a path [source] include names."""
    return any(rel == inc or rel.startswith(inc.rstrip("/") + "/") for inc in include)


@dataclass
class Selection:
    files: list[Path]  # relative to the app folder, sorted
    secret_like: list[str] = field(default_factory=list)  # left out by default and present


def select_files(root: Path, include=()) -> Selection:
    """The files of `root` to upload, and the secret-like ones left out (see module doc)."""
    root = Path(root)
    candidates = _git_files(root)
    if candidates is None:
        candidates = _walk(root, GitIgnore.of_tree(root))
    include = [str(i).strip("/") for i in include]
    files, left_out = [], set()
    for rel in candidates:
        text = rel.as_posix()
        if always_excluded(text):
            continue
        if secret_like(text) and not _included(text, include):
            left_out.add(_secret_part(text))
            continue
        files.append(rel)
    return Selection(sorted(set(files)), sorted(left_out))


def _secret_part(rel: str) -> str:
    """The shortest leading part of `rel` that is secret-like (`instance/` for instance/x.cfg)."""
    parts = Path(rel).parts
    for i in range(1, len(parts) + 1):
        if secret_like("/".join(parts[:i])):
            return "/".join(parts[:i]) + ("/" if i < len(parts) else "")
    return rel


def _git_files(root: Path) -> list[Path] | None:
    """Tracked and untracked-but-not-ignored files under `root`, or None outside a work tree."""
    try:
        inside = subprocess.run(["git", "rev-parse", "--is-inside-work-tree"], cwd=root,
                                capture_output=True, text=True)
    except FileNotFoundError:  # no git on this machine: the matcher does it
        return None
    if inside.returncode != 0 or inside.stdout.strip() != "true":
        return None
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", "."],
                         cwd=root, capture_output=True, check=True).stdout
    found = []
    for name in sorted({n for n in out.decode("utf-8", "surrogateescape").split("\0") if n}):
        path = root / name
        if path.is_dir() and not path.is_symlink():  # a submodule: its files, by the matcher
            found += [Path(name) / rel for rel in _walk(path, GitIgnore.of_tree(path))]
        elif path.is_symlink() or path.exists():  # tracked files deleted locally are not sent
            found.append(Path(name))
    return found


def _walk(root: Path, ignore: GitIgnore) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not always_excluded(d)
                             and not ignore.ignored((rel_dir / d).as_posix(), is_dir=True))
        for name in sorted(filenames):
            rel = rel_dir / name
            if not ignore.ignored(rel.as_posix(), is_dir=False):
                found.append(rel)
    return found


class GitIgnore:
    """git's ignore rules for a folder without git: each .gitignore applies below its own folder;
    the last matching pattern wins; `!` re-includes; `/` anchors; a trailing `/` matches folders
    only; `*` and `?` stay within a path part, `**` spans parts. A file inside an ignored folder is
    ignored whatever a later `!` says (git does not look inside it)."""

    def __init__(self, rules=()):
        self.rules = list(rules)  # (base folder "" or "a/b", regex, negated, dir_only)

    @classmethod
    def of_tree(cls, root: Path) -> GitIgnore:
        rules = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not always_excluded(d))
            if ".gitignore" in filenames:
                base = Path(dirpath).relative_to(root).as_posix()
                text = (Path(dirpath) / ".gitignore").read_text(errors="replace")
                rules += cls.parse(text, "" if base == "." else base)
        return cls(rules)

    @staticmethod
    def parse(text: str, base: str = "") -> list:
        rules = []
        for line in text.splitlines():
            line = line.rstrip() if not line.endswith("\\ ") else line
            if not line or line.startswith("#"):
                continue
            negated = line.startswith("!")
            if negated or line.startswith("\\"):
                line = line[1:]
            dir_only = line.endswith("/")
            line = line.rstrip("/")
            if not line:
                continue
            anchored = "/" in line
            rules.append((base, _regex(line.lstrip("/"), anchored), negated, dir_only))
        return rules

    def ignored(self, rel: str, is_dir: bool) -> bool:
        parts = rel.split("/")
        for i in range(1, len(parts)):  # an ignored parent folder hides everything in it
            if self._decide("/".join(parts[:i]), True):
                return True
        return self._decide(rel, is_dir)

    def _decide(self, rel: str, is_dir: bool) -> bool:
        result = False
        for base, regex, negated, dir_only in self.rules:
            if base and not rel.startswith(base + "/"):
                continue
            sub = rel[len(base) + 1:] if base else rel
            if (not dir_only or is_dir) and regex.match(sub):
                result = not negated
        return result


def _regex(pattern: str, anchored: bool) -> re.Pattern:
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("/**", i) and i + 3 == len(pattern):
            out.append("/.*")
            i += 3
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        elif pattern[i] == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                out.append(re.escape("["))
                i += 1
            else:
                body = pattern[i + 1:end].replace("\\", "\\\\")
                out.append("[" + ("^" + body[1:] if body.startswith("!") else body) + "]")
                i = end + 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    prefix = "" if anchored else "(?:.*/)?"  # no slash: the name matches at any depth
    return re.compile(prefix + "".join(out) + r"\Z")
