"""The app's scheduled jobs ([schedule] in deploy.toml): per job a oneshot APP-NAME.service and
the APP-NAME.timer that starts it on its OnCalendar= expression (Persistent=true: a run missed
while the host was down happens when it is back). Rendered from templates/etc/systemd/system/
APP-SCHEDULE.{service,timer}.j2; each run uses the release live at that moment.

    plan(facts, wanted)
      write the unit files that differ; a timer of ours whose job left deploy.toml is stopped,
      disabled and removed with its service; daemon-reload only when something changed; each
      timer enabled and, once a release is live, started (restarted when its file changed, so
      a new `on` counts). A first deploy starts them after its health check (toolkit/stages.py).
"""

from __future__ import annotations

from roles.files import basename, differing, file_changes
from roles.processes import removal_script
from toolkit.executor import Change
from toolkit.process_units import UNIT_DIR, schedule_unit, timer_unit
from toolkit.remote import q

STEP = "scheduled jobs"


def timers(wanted) -> tuple[str, ...]:
    return tuple(timer_unit(wanted.app, name) for name in wanted.schedules)


def services(wanted) -> tuple[str, ...]:
    return tuple(schedule_unit(wanted.app, name) for name in wanted.schedules)


def units(wanted) -> tuple[str, ...]:
    return timers(wanted) + services(wanted)


def unit_files(wanted) -> list:
    paths = {f"{UNIT_DIR}/{u}" for u in units(wanted)}
    return [f for f in wanted.extra_unit_files if f.path in paths]


def stale(facts, wanted) -> list[str]:
    """Our timers on the host that deploy.toml no longer names, each with its service."""
    on_host = getattr(facts, "extra_units", frozenset())
    gone = sorted(u for u in on_host if u.endswith(".timer") and u not in timers(wanted))
    return [unit for t in gone for unit in (t, t[:-len(".timer")] + ".service") if unit in on_host]


def plan(facts, wanted) -> list:
    files = unit_files(wanted)
    changes = file_changes(facts, files)
    changed = {basename(f.path) for f, _ in differing(facts, files)}
    gone = stale(facts, wanted)
    script, notes = removal_script(gone), [f"removed {u}" for u in gone if u.endswith(".timer")]
    if changed or gone:
        script.append("systemctl daemon-reload")
    live = facts.fact(wanted.layout.current_dir).exists
    for timer in timers(wanted):
        state = facts.unit(timer)
        if state.enabled != "enabled":
            script.append(f"systemctl enable --quiet {q(timer)}")
            notes.append(f"enabled {timer}")
        if not live:
            continue  # a job has nothing to run yet: the first release starts its timer
        if state.active != "active":
            script.append(f"systemctl start {q(timer)}")
            notes.append(f"started {timer}")
        elif timer in changed:
            script.append(f"systemctl restart {q(timer)}")
            notes.append(f"restarted {timer}")
    if script:
        changes.append(Change(", ".join(notes) or "daemon-reload", script="\n".join(script),
                              label="activating the scheduled jobs"))
    return changes
