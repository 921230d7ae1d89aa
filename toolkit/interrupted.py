"""What an interrupted deploy leaves behind, and putting it right.

A deploy killed outright (SIGKILL, a crashed laptop, a dropped link) between switching
`current` and its health check leaves `current` on a release that was never verified (no
`.good` marker) and its lock behind, with the release that was live before noted in the lock
(lock.record_previous_script). The next deploy, rollback or status takes such a lock over when
its process is gone (lock.acquire) and calls `restore_unverified`: the noted release, or the
newest good one, goes back in place with a health check; with no good release at all the
app's socket is stopped so that nginx answers its 503 page at once. Each says what it did on
the screen and in the audit trail.

A deploy interrupted with Ctrl-C recovers itself (stages.recover), under `no_interrupts`.
"""

from __future__ import annotations

import signal
import threading

from toolkit import audit, lock
from toolkit import release_commands as cmds
from toolkit.errors import DeployError, next_task
from toolkit.releases import HostReleases, read_releases
from toolkit.remote import q, sh

RESTART_TIMEOUT = 180  # systemd gives a Type=notify start 90 s; a stop as long again


def report_take_over(c, cfg, st, taken: lock.Taken) -> None:
    if not taken.replaced:
        st.info("taken")
        return
    st.changed(f"taken over from a deploy that no longer runs: {taken.replaced}")
    audit.record(c, cfg, "lock", "-", f"taken over from {taken.replaced}")


def stop_script(cfg) -> str:
    """Stop the service and its socket: with no release worth running, nginx is refused at
    once (and answers its 503 page) instead of waiting on a socket nothing will serve."""
    return f"systemctl stop {q(cfg.layout.socket_unit_name)} {q(cfg.layout.unit_name)}"


def stop_the_app(c, cfg, rep) -> None:
    with rep.step(f"stop {cfg.layout.socket_unit_name}") as st:
        sh(c, stop_script(cfg), what=f"stopping {cfg.layout.socket_unit_name}", check=False,
           timeout=RESTART_TIMEOUT)
        st.changed("no good release to run: nginx answers 503 at once")


class no_interrupts:
    """Ignore SIGINT inside the block (only the main thread may change signal handlers)."""

    def __enter__(self):
        self.saved = None
        if threading.current_thread() is threading.main_thread():
            self.saved = signal.signal(signal.SIGINT, signal.SIG_IGN)

    def __exit__(self, *exc):
        if self.saved is not None:
            signal.signal(signal.SIGINT, self.saved)


def unverified_current(state: HostReleases) -> bool:
    """Whether `current` points at a release that was never marked good."""
    live = state.get(state.current)
    return bool(state.current) and not (live and live.good)


def restore_target(state: HostReleases, recorded: str = ""):
    """The release to put back for an unverified current: the one the interrupted deploy noted
    as live before its switch when it is good, else the newest good one (None: there is none)."""
    noted = state.get(recorded) if recorded else None
    if noted is not None and noted.good:
        return noted
    goods = [r for r in state.releases if r.good]
    return goods[-1] if goods else None


def restore_unverified(c, cfg, rep, state: HostReleases, recorded: str = "") -> str:
    """When `current` was never verified (no `.good`: a deploy was killed between its switch
    and its health check), put back the release `recorded` in the dead deploy's lock if it is
    good, else the newest good release, health-check it and mark the unverified one failed.
    With no good release at all, stop the app's socket. Call with the lock held. Returns the
    release now live ("" when nothing needed doing or nothing is live)."""
    if not unverified_current(state):
        return ""
    unverified = state.current
    target = restore_target(state, recorded)
    if target is None:
        stop_the_app(c, cfg, rep)
        _mark_failed(c, cfg, unverified, "never verified; no good release: stopped")
        state.current = ""
    else:
        with rep.step(f"put back {target.name}") as st:
            sh(c, cmds.switch_script(cfg, target.name) + " && " + cmds.restart_script(cfg),
               what=f"putting back {target.name}", timeout=RESTART_TIMEOUT)
            health = cmds.health_check(c, cfg)
            _mark_failed(c, cfg, unverified, f"never verified; put back {target.name}: "
                         + ("ok" if health.ok else f"answers {health.status}"))
            if not health.ok:
                raise DeployError(f"{target.name} was put back in place of {unverified} (never verified: "
                                  f"an interrupted deploy), but it answers {health.status or 'nothing'}",
                                  next_task("logs"), health.body)
            st.changed(f"{unverified} was never verified (an interrupted deploy): "
                       f"current -> releases/{target.name}, answers {health.status}")
        # The workers and timers follow the web process back ([processes], [schedule]).
        processes = cmds.processes_restart_script(cfg)
        if processes:
            sh(c, processes, what="restarting the app's processes", timeout=RESTART_TIMEOUT)
        state.current = target.name
    if state.get(unverified):
        state.get(unverified).state = "failed"
    return state.current


def _mark_failed(c, cfg, release: str, result: str) -> None:
    """Mark the unverified release failed (never a rollback target) and say so in the audit trail."""
    rdir = q(cfg.layout.release_dir(release))
    sh(c, f"[ -d {rdir} ] && touch {rdir}/.failed; "
       + audit.append_script(cfg.layout, "recover", release, result), what="recording the recovery", timeout=60)


def recover_interrupted(c, cfg, rep, state: HostReleases) -> str:
    """For `status`: when `current` was never verified and no live deploy holds the lock, take
    the lock (over a dead one), put the newest good release back, unlock. Returns what was
    done, or why not ("" when `current` is verified)."""
    if not unverified_current(state):
        return ""
    holder = state.holder
    if holder and not holder.dead():
        return f"{state.current} is not verified yet: a deploy holds the lock ({holder.text})"
    with rep.step("deploy lock") as st:
        taken = lock.acquire(c, cfg)
        report_take_over(c, cfg, st, taken)
    try:
        state = read_releases(c, cfg)  # again, under the lock: a deploy may have finished meanwhile
        was = state.current
        if not unverified_current(state):
            return ""
        now = restore_unverified(c, cfg, rep, state, taken.previous)
    finally:
        lock.release_if_ours(c, cfg, taken.text)
    return f"{was} was never verified: " + (f"put back {now}" if now else "nothing good to put back")
