"""The file fact: kind, mode, owner, group and sha256 of many paths, read in one command, and the
comparison of what a path is with what is wanted (`file_differs`)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from toolkit.facts import Fact
from toolkit.remote import q


@dataclass(frozen=True)
class FileFact:
    """What a path looks like on the host. `sha256` is empty for directories and missing paths."""

    path: str
    exists: bool
    kind: str = ""  # "file", "dir", "link", "other"
    mode: int = 0
    owner: str = ""
    group: str = ""
    sha256: str = ""


_KINDS = {"directory": "dir", "symbolic link": "link"}


class Files(Fact[dict]):
    """{path: FileFact} for the given paths (a path missing on the host: exists=False)."""

    key = "files"

    def __init__(self, paths):
        self.paths = list(dict.fromkeys(str(p) for p in paths))

    def command(self) -> str:
        if not self.paths:
            return "true"
        args = " ".join(q(p) for p in self.paths)
        return (f"stat --printf='%n\\t%F\\t%a\\t%U\\t%G\\n' -- {args} 2>/dev/null\n"
                f"echo @@files.sha256; sha256sum -- {args} 2>/dev/null; true")

    def parse_sections(self, sections):
        return parse(self.paths, sections.get("files", []), sections.get("files.sha256", []))

    def parse(self, lines):
        return parse(self.paths, lines, [])


def parse(paths, stat_lines, sha_lines) -> dict[str, FileFact]:
    digests = {}
    for line in sha_lines:
        digest, _, path = line.partition("  ")
        if path:
            digests[path] = digest
    found = {}
    for line in stat_lines:
        parts = line.split("\t")
        if len(parts) != 5:
            continue
        path, kind, mode, owner, group = parts
        kind = "file" if kind.startswith("regular") else _KINDS.get(kind, "other")
        found[path] = FileFact(path, True, kind, int(mode, 8), owner, group,
                               digests.get(path, "") if kind == "file" else "")
    return {p: found.get(p) or FileFact(p, exists=False) for p in paths}


def sha256_text(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


def file_differs(fact: FileFact | None, content, mode: int, owner: str, group: str) -> str:
    """Why a file must be (re)written, or "" when it is already as wanted."""
    if fact is None or not fact.exists:
        return "missing"
    if fact.kind != "file":
        return f"is a {fact.kind}"
    if fact.sha256 != sha256_text(content):
        return "content"
    if fact.mode != mode:
        return f"mode {fact.mode:o} -> {mode:o}"
    if (fact.owner, fact.group) != (owner, group):
        return f"owner {fact.owner}:{fact.group} -> {owner}:{group}"
    return ""
