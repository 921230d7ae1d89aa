"""The app's extra systemd units, as data: one APP-NAME.service per [processes] entry, and an
APP-NAME.service (oneshot) + APP-NAME.timer per [schedule] entry.

The renderer (toolkit/render.py) renders templates/etc/systemd/system/APP-PROCESS.service.j2 once
per process and APP-SCHEDULE.{service,timer}.j2 once per schedule, with `unit` (a `UnitInfo`) in
the context; the roles (roles/processes.py, roles/schedule.py) and the release flow use the names.

Every such unit file carries a marker line naming its app (`MARKER`), so that a process or
schedule removed from deploy.toml is found on the host and removed, and the units of another
app whose name happens to start the same way (app "shop" vs app "shop-api") are never touched.
"""

from __future__ import annotations

from dataclasses import dataclass

UNIT_DIR = "/etc/systemd/system"
MARKER = "# pronghorn-extra-unit-of: {app}"


def marker(app: str) -> str:
    return MARKER.format(app=app)


def process_unit(app: str, name: str) -> str:
    return f"{app}-{name}.service"


def schedule_unit(app: str, name: str) -> str:
    return f"{app}-{name}.service"


def timer_unit(app: str, name: str) -> str:
    return f"{app}-{name}.timer"


def process_units(cfg) -> tuple[str, ...]:
    return tuple(process_unit(cfg.name, n) for n in sorted(getattr(cfg, "processes", {}) or {}))


def timer_units(cfg) -> tuple[str, ...]:
    return tuple(timer_unit(cfg.name, n) for n in sorted(getattr(cfg, "schedules", {}) or {}))


def unit_paths(cfg) -> list[str]:
    """Every extra unit file of the app, as rendered (processes' services, schedules' services
    and timers)."""
    schedules = sorted(getattr(cfg, "schedules", {}) or {})
    names = list(process_units(cfg)) + [schedule_unit(cfg.name, n) for n in schedules] + list(timer_units(cfg))
    return [f"{UNIT_DIR}/{u}" for u in names]


def exec_start(command: str) -> str:
    """ExecStart= running the shell command line `command` with /bin/sh, as a Procfile does.

    systemd would expand `$VAR` and `%x` itself and splits on its own quoting rules, so the line
    is one double-quoted argument to sh with `\\`, `"`, `$` and `%` escaped for systemd: the shell
    then sees exactly `exec COMMAND` and expands variables from the environment (shared/.env)."""
    escaped = (command.replace("\\", "\\\\").replace('"', '\\"').replace("$", "$$").replace("%", "%%"))
    return f'/bin/sh -c "exec {escaped}"'


@dataclass(frozen=True)
class UnitInfo:
    """What one rendered extra unit knows: `key` is the deploy.toml name, `name` the service."""

    key: str
    name: str
    exec_start: str
    marker: str
    on: str = ""      # schedules: the OnCalendar= expression
    timer: str = ""   # schedules: the timer's unit name


# Template path part -> which entries it is rendered for.
PER_PROCESS, PER_SCHEDULE = "APP-PROCESS.", "APP-SCHEDULE."


def instances(template: str, cfg) -> list[tuple[str, UnitInfo]] | None:
    """[(target path, unit info)] for a per-entry template, or None for an ordinary template."""
    base = template.rsplit("/", 1)[-1]
    if not base.startswith((PER_PROCESS, PER_SCHEDULE)):
        return None
    suffix = base[len("APP-PROCESS" if base.startswith(PER_PROCESS) else "APP-SCHEDULE"):-len(".j2")]
    out = []
    if base.startswith(PER_PROCESS):
        for key, command in sorted((getattr(cfg, "processes", {}) or {}).items()):
            unit = process_unit(cfg.name, key)
            out.append((f"{UNIT_DIR}/{cfg.name}-{key}{suffix}",
                        UnitInfo(key, unit, exec_start(command), marker(cfg.name))))
        return out
    for key, entry in sorted((getattr(cfg, "schedules", {}) or {}).items()):
        out.append((f"{UNIT_DIR}/{cfg.name}-{key}{suffix}",
                    UnitInfo(key, schedule_unit(cfg.name, key), exec_start(entry["command"]),
                             marker(cfg.name), on=entry["on"], timer=timer_unit(cfg.name, key))))
    return out
