"""Shared by the roles that install rendered config files (proxy, app_env, systemd, nginx): one
Change per file that differs from what is wanted (the executor sends them up in one tar)."""

from __future__ import annotations

from toolkit.executor import Change
from toolkit.facts.files import file_differs


def basename(path: str) -> str:
    return path.rsplit("/", 1)[-1] or path


def differing(facts, files) -> list[tuple[object, str]]:
    """[(file, why)] for the files whose content, mode or owner differ on the host."""
    todo = []
    for f in files:
        why = file_differs(facts.files.get(f.path), f.content, f.mode, f.owner, f.group)
        if why:
            todo.append((f, why))
    return todo


def file_changes(facts, files) -> list[Change]:
    """Write each file that differs: `NAME (why)`."""
    return [Change(basename(f.path), why, files=(f,)) for f, why in differing(facts, files)]
