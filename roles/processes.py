"""The app's processes besides the web server ([processes] in deploy.toml, Procfile-like): one
hardened unit APP-NAME.service each (rendered from templates/etc/systemd/system/
APP-PROCESS.service.j2), running as the app user in the live release.

    plan(facts, wanted)
      write the unit files that differ; a unit of ours whose process left deploy.toml (found
      by its marker line, facts.extra_units) is stopped, disabled and removed; daemon-reload
      only when something changed; enable each unit; once a release is live, start the ones
      not running and restart the ones whose file changed.

A deploy restarts them all again after the new release's health check (toolkit/stages.py), and
a rollback restarts them with the web process.
"""

from __future__ import annotations

from roles.files import basename, differing, file_changes
from toolkit.executor import Change
from toolkit.process_units import UNIT_DIR, process_unit, schedule_unit
from toolkit.remote import q

STEP = "app processes"


def units(wanted) -> tuple[str, ...]:
    return tuple(process_unit(wanted.app, name) for name in wanted.processes)


def fact_paths(wanted) -> list[str]:
    """The live release's link: processes start only once there is one."""
    return [wanted.layout.current_dir]


def unit_files(wanted) -> list:
    paths = {f"{UNIT_DIR}/{u}" for u in units(wanted)}
    return [f for f in wanted.extra_unit_files if f.path in paths]


def stale(facts, wanted) -> list[str]:
    """Our process units on the host that deploy.toml no longer names (a schedule's service, which
    has a timer next to it, is roles/schedule.py's)."""
    on_host = getattr(facts, "extra_units", frozenset())
    keep = set(units(wanted)) | {u[:-len(".timer")] + ".service" for u in on_host if u.endswith(".timer")}
    keep |= {schedule_unit(wanted.app, name) for name in wanted.schedules}
    return sorted(u for u in on_host if u.endswith(".service") and u not in keep)


def removal_script(unit_names) -> list[str]:
    """Stop, disable and delete units (daemon-reload follows)."""
    return [f"systemctl disable --now --quiet {q(u)} 2>/dev/null; rm -f {q(UNIT_DIR + '/' + u)}"
            for u in unit_names]


def plan(facts, wanted) -> list:
    files = unit_files(wanted)
    changes = file_changes(facts, files)
    changed = {basename(f.path) for f, _ in differing(facts, files)}
    gone = stale(facts, wanted)
    script, notes = removal_script(gone), [f"removed {u}" for u in gone]
    if changed or gone:
        script.append("systemctl daemon-reload")
    live = facts.fact(wanted.layout.current_dir).exists
    for unit in units(wanted):
        state = facts.unit(unit)
        if state.enabled != "enabled":
            script.append(f"systemctl enable --quiet {q(unit)}")
            notes.append(f"enabled {unit}")
        if not live:
            continue  # nothing to run yet: the first release starts it after its health check
        if unit in changed and state.active == "active":
            script.append(f"systemctl restart {q(unit)}")
            notes.append(f"restarted {unit}")
        elif state.active != "active":
            script.append(f"systemctl reset-failed {q(unit)} 2>/dev/null; systemctl start {q(unit)}")
            notes.append(f"started {unit}")
    if script:
        changes.append(Change(", ".join(notes) or "daemon-reload", script="\n".join(script),
                              label="activating the app's processes"))
    return changes
