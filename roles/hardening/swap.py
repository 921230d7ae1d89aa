"""A swap file on small hosts: /swapfile (0600, in /etc/fstab) when the host has less than
SMALL_HOST_KB of memory and no swap at all, so a pip build or a migrate does not meet the OOM
killer. 1 GiB below 1 GiB of memory, else 2 GiB; only with that much free disk and 1 GiB more.

A container cannot turn swap on (swapon needs CAP_SYS_ADMIN on the machine, and the memory is
the machine's): the step says so and changes nothing.
"""

from __future__ import annotations

from pathlib import Path

from toolkit.executor import Change
from toolkit.facts.hardening import CAP_SYS_ADMIN
from toolkit.remote import q

STEP = "swap file"
SWITCH = "swap"
PATHS = ()
UNITS = ()
SMALL_HOST_KB = 2 * 1024 * 1024
SCRIPT = Path(__file__).with_name("swapfile.sh")


def packages(hardening) -> tuple[str, ...]:
    return ()


def size_mb(facts) -> int:
    return 1024 if facts.hardening.mem_kb < 1024 * 1024 else 2048


def needed(facts) -> bool:
    """A small host with no swap, or our /swapfile not yet 0600 and in fstab."""
    hard = facts.hardening
    if hard.swapfile_mode is not None and (hard.swapfile_mode != 0o600 or not hard.swapfile_in_fstab):
        return True
    return 0 < hard.mem_kb < SMALL_HOST_KB and hard.swap_kb == 0


def blocked(facts) -> str:
    """Why no swap file can be made here ("" when it can)."""
    hard = facts.hardening
    if hard.container or not hard.can(CAP_SYS_ADMIN):
        return f"a container ({hard.container or 'no CAP_SYS_ADMIN'}) cannot turn swap on"
    if hard.swapfile_mode is None and hard.root_free_kb < (size_mb(facts) + 1024) * 1024:
        return f"only {hard.root_free_kb // 1024} MiB free on /, {size_mb(facts) + 1024} MiB needed"
    return ""


def plan(facts, wanted) -> list:
    if not needed(facts) or blocked(facts):
        return []
    why = f"{facts.hardening.mem_kb // 1024} MiB of memory, no swap"
    return [Change(f"/swapfile ({size_mb(facts) // 1024} GiB)", why, label="making /swapfile",
                   script=f"sh -c {q(SCRIPT.read_text())} swapfile.sh {size_mb(facts)}")]


def notes(facts, wanted) -> list[str]:
    if needed(facts) and blocked(facts):
        return [f"no swap file: {blocked(facts)}"]
    return []
