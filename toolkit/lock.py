"""The deploy lock: one per app on each host, so that two deploys (or a deploy and a provision,
or a rollback) never change the same host at once. Deploy, rollback, provision and the lock.*
tasks all use this module; nothing else touches the lock.

The lock is a directory, `cfg.layout.lock_dir` (mkdir is atomic: of two racing deploys exactly
one creates it), holding one line in `cfg.layout.lock_who`:

    user@machine since 2025-01-01 10:00:00 UTC (pid 4242)

    acquire(c, cfg) -> Taken      take it; LockHeld (saying who holds it) when it is taken
    take(c, cfg) -> text          the same, returning only our text
    release_if_ours(c, cfg, text) remove it only if it is still the one we took
    release(c, cfg, holder)       remove the lock `holder` holds (`invoke lock.release`)
    show(c, cfg) -> Holder|None   who holds it
    record_previous_script(...)   note in the lock the release that was live before the switch

A lock left by a process of this machine that no longer runs (a deploy killed with SIGKILL, a
laptop that crashed mid-deploy) is taken over by the next deploy, rollback or status, which
say so; `Taken.previous` is then the release that was live before that deploy switched, so
what it left half done can be put back (toolkit/stages.restore_unverified). Every unlock
compares the recorded text first: nobody removes a lock someone else took meanwhile.

The shell pieces (`take_script`, `show_script`, `release_if_ours_script`) are exposed so the
release flow can put them in the round trips it makes anyway (taking the lock and reading the
releases in one). A lock another machine holds is reported with who, since when, and the command that
releases it.
"""

from __future__ import annotations

import getpass
import os
import re
import socket
import time
from dataclasses import dataclass

from toolkit.errors import LockHeld, RemoteError, next_task
from toolkit.remote import q, sh, split_sections

NO_DETAILS = "(no details recorded)"
HELD_EXIT = 3  # take_script's exit code when someone else holds the lock

_TEXT = re.compile(r"^(?P<user>[^@\s]*)@(?P<machine>\S+) since (?P<since>.+?) \(pid (?P<pid>\d+)\)$")


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def lock_text() -> str:
    """What we write into the lock: who, since when, which process."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"{who()} since {stamp} (pid {os.getpid()})"


@dataclass(frozen=True)
class Holder:
    """Who holds the lock, as recorded in it."""

    text: str  # the line as written (NO_DETAILS when the lock has none)

    @property
    def _fields(self):
        return _TEXT.match(self.text.strip())

    @property
    def machine(self) -> str:
        m = self._fields
        return m["machine"] if m else ""

    @property
    def pid(self) -> int:
        m = self._fields
        return int(m["pid"]) if m else 0

    def dead(self, this_machine: str | None = None) -> bool:
        """True when the lock was taken on this machine by a process that no longer runs."""
        this_machine = socket.gethostname() if this_machine is None else this_machine
        if not self.pid or self.machine != this_machine:
            return False  # another machine's process: we cannot tell
        return not _running(self.pid)

    def describe(self) -> str:
        """The holder, with "its process is gone" when it is a dead process of this machine."""
        if self.dead():
            return f"{self.text} (that process no longer runs on this machine: it was killed or crashed)"
        return self.text


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def held_error(holder: Holder) -> LockHeld:
    """The error for a lock someone else holds, with the step that fits (`.holder` is kept)."""
    error = _held_error(holder)
    error.holder = holder
    return error


def _held_error(holder: Holder) -> LockHeld:
    if holder.dead():
        return LockHeld(f"the deploy lock was left by a deploy that no longer runs: {holder.text}; "
                        f"pid {holder.pid} is not running on this machine (it was killed or crashed)",
                        "release the lock, then run the same command again: " + next_task("lock.release"))
    return LockHeld(f"another deploy holds the lock: {holder.text}",
                    "wait for it to finish; if it crashed, remove the lock with: " + next_task("lock.release"))


# -- the shell pieces ---------------------------------------------------------------------------

def take_script(layout, text: str, heading: str = "locked") -> str:
    """Take the lock, creating the app's folder when needed (a first deploy takes the lock
    before anything is provisioned); when held: `@@HEADING`, the holder, exit HELD_EXIT."""
    lock, who_file = q(layout.lock_dir), q(layout.lock_who)
    return "\n".join([
        f"mkdir -p {q(layout.base_dir)}",
        f"if ! mkdir {lock} 2>/dev/null; then echo @@{heading}; "
        f"cat {who_file} 2>/dev/null || echo {q(NO_DETAILS)}; exit {HELD_EXIT}; fi",
        f"printf '%s\\n' {q(text)} > {who_file}",
    ])


def show_script(layout, heading: str = "locked") -> str:
    """`@@HEADING` and the holder when the lock is held; nothing otherwise."""
    lock, who_file = q(layout.lock_dir), q(layout.lock_who)
    return (f"if [ -d {lock} ]; then echo @@{heading}; "
            f"cat {who_file} 2>/dev/null || echo {q(NO_DETAILS)}; fi")


def previous_file(layout) -> str:
    return f"{layout.lock_dir}/previous"


def record_previous_script(layout, release: str) -> str:
    """Note in the lock which release was live before the switch (a deploy killed between the
    switch and its health check leaves that behind for whoever takes the lock over)."""
    return f"printf '%s\\n' {q(release or '-')} > {q(previous_file(layout))}"


def take_over_script(layout, dead_text: str, text: str) -> str:
    """Take the lock from a holder that is gone: only if it still holds `dead_text`, by an
    atomic rename (of two processes taking over at once, one wins); prints `@@previous` and
    the release it recorded, then takes the lock as take_script does."""
    lock, who_file, stale = q(layout.lock_dir), q(layout.lock_who), q(layout.lock_dir + ".stale")
    return "\n".join([
        f'if [ "$(cat {who_file} 2>/dev/null)" = {q(dead_text)} ] && mv -T {lock} {stale} 2>/dev/null; '
        f"then echo @@previous; cat {stale}/previous 2>/dev/null; rm -rf {stale}; fi",
        take_script(layout, text),
    ])


def release_if_ours_script(layout, text: str) -> str:
    """Remove the lock if it still holds `text` (a failed release may have removed it already,
    and another deploy may hold a new one by now)."""
    lock, who_file = q(layout.lock_dir), q(layout.lock_who)
    return f'if [ "$(cat {who_file} 2>/dev/null)" = {q(text)} ]; then rm -rf {lock}; fi'


def holder_from(stdout: str) -> Holder | None:
    """The holder from the output of take_script or show_script (None: not held)."""
    sections = split_sections(stdout, strip=True)
    return holder_of(sections["locked"]) if "locked" in sections else None


def holder_of(lines: list[str]) -> Holder:
    """The holder from the lines under the lock's heading."""
    return Holder(" ".join(line.strip() for line in lines if line.strip()) or NO_DETAILS)


# -- over a connection --------------------------------------------------------------------------

@dataclass(frozen=True)
class Taken:
    """The lock we took: our text, and when we took it over from a dead process, its text and
    the release it recorded as live before its switch ("" when it had not switched)."""

    text: str
    replaced: str = ""
    previous: str = ""


def acquire(c, cfg) -> Taken:
    """Take the deploy lock before anything on the host changes; LockHeld when someone else
    holds it. A lock left by a dead process of this machine is taken over."""
    text = lock_text()
    result = sh(c, take_script(cfg.layout, text), check=False, timeout=60, what="taking the deploy lock")
    if result.exited == HELD_EXIT:
        holder = holder_from(result.stdout) or Holder(NO_DETAILS)
        if not holder.dead():
            raise held_error(holder)
        return take_over(c, cfg, holder, text)
    if result.exited != 0:
        raise RemoteError("taking the deploy lock", result.exited, result.stdout + result.stderr)
    return Taken(text)


def take_over(c, cfg, holder: Holder, text: str) -> Taken:
    """Replace the lock of a dead `holder` with ours (LockHeld if it changed hands meanwhile)."""
    result = sh(c, take_over_script(cfg.layout, holder.text, text), check=False, timeout=60,
                what="taking over the deploy lock")
    if result.exited == HELD_EXIT:
        raise held_error(holder_from(result.stdout) or Holder(NO_DETAILS))
    if result.exited != 0:
        raise RemoteError("taking over the deploy lock", result.exited, result.stdout + result.stderr)
    previous = split_sections(result.stdout, strip=True).get("previous", [])
    name = previous[0] if previous else ""
    return Taken(text, replaced=holder.text, previous="" if name == "-" else name)


def take(c, cfg) -> str:
    """acquire(), returning the text recorded in the lock (for `release_if_ours`)."""
    return acquire(c, cfg).text


def release_if_ours(c, cfg, text: str) -> None:
    sh(c, release_if_ours_script(cfg.layout, text), check=False, timeout=60, what="releasing the deploy lock")


def release(c, cfg, holder: Holder) -> bool:
    """Remove the lock `holder` holds (as read just before); False when it changed hands
    meanwhile (someone else's new lock is left alone)."""
    text = holder.text if holder.text != NO_DETAILS else ""
    lock, who_file = q(cfg.layout.lock_dir), q(cfg.layout.lock_who)
    script = (release_if_ours_script(cfg.layout, text) if text else
              f"[ -e {who_file} ] || rm -rf {lock}") + f"; [ ! -d {lock} ]"
    return sh(c, script, check=False, timeout=60, what="releasing the deploy lock").ok


def show(c, cfg) -> Holder | None:
    return holder_from(sh(c, show_script(cfg.layout), what="reading the deploy lock", timeout=60).stdout)
