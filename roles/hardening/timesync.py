"""Time sync: systemd-timesyncd, or the time daemon the host already runs (chrony, ntp, ...).

systemd-timesyncd conflicts with the other daemons (installing it would remove chrony), so
`drop_packages` takes it off the package list when another one is installed. Inside a
container the clock is the machine's own: systemd skips timesyncd there
(ConditionVirtualization=!container), so it is enabled but not started, and the step says so.
"""

from __future__ import annotations

from toolkit.executor import Change
from toolkit.facts.hardening import TIME_DAEMONS
from toolkit.remote import q

STEP = "time sync"
SWITCH = "time_sync"
PATHS = ()
TIMESYNCD = "systemd-timesyncd"
UNIT_OF = {"chrony": "chrony.service", "ntp": "ntp.service", "ntpsec": "ntpsec.service",
           "openntpd": "openntpd.service", TIMESYNCD: "systemd-timesyncd.service"}
UNITS = tuple(UNIT_OF[d] for d in TIME_DAEMONS)


def packages(hardening) -> tuple[str, ...]:
    return (TIMESYNCD,)


def other_daemon(facts) -> str:
    """The time daemon installed other than timesyncd ("" when there is none)."""
    return next((d for d in facts.hardening.time_daemons if d != TIMESYNCD), "")


def drop_packages(facts) -> tuple[str, ...]:
    """Packages not to install on this host: timesyncd when another daemon keeps time."""
    return (TIMESYNCD,) if other_daemon(facts) else ()


def unit(facts) -> str:
    return UNIT_OF[other_daemon(facts) or TIMESYNCD]


def plan(facts, wanted) -> list:
    """Enable the daemon's unit, and start it (not in a container: systemd would skip it)."""
    name, state = unit(facts), facts.unit(unit(facts))
    script, what = [], []
    if state.enabled != "enabled":
        script.append(f"systemctl enable --quiet {q(name)}")
        what.append(f"enabled {name}")
    if state.active != "active" and not facts.hardening.container:
        script.append(f"systemctl start {q(name)}")
        what.append(f"started {name}")
    return [Change(", ".join(what), script=" && ".join(script), label=f"starting {name}")] if script else []


def notes(facts, wanted) -> list[str]:
    if facts.hardening.container:
        return [f"{unit(facts)} enabled, not started: the clock of a container ({facts.hardening.container}) "
                "is the machine's"]
    return []
