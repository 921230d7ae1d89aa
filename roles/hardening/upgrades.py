"""unattended-upgrades: security updates installed every day, unattended.

Two files in /etc/apt/apt.conf.d/: 20auto-upgrades (the daily apt timers update the lists and
run unattended-upgrade; the package writes the same file) and 52pronghorn-unattended-upgrades,
read after the package's own 50unattended-upgrades (left untouched, so package upgrades never
ask about a changed conffile): it clears the origins that file allows and allows the
distribution's security archive only (Ubuntu's ESM security archives too), and never reboots
the host by itself. The apt timers (apt-daily, apt-daily-upgrade) are enabled when they are not,
unless someone masked them (then the step's note says so).
"""

from __future__ import annotations

from roles.files import file_changes
from roles.hardening.render import render
from toolkit.executor import Change
from toolkit.remote import q

STEP = "security updates"
SWITCH = "unattended_upgrades"
AUTO = "/etc/apt/apt.conf.d/20auto-upgrades"
ORIGINS = "/etc/apt/apt.conf.d/52pronghorn-unattended-upgrades"
PATHS = (AUTO, ORIGINS)
TIMERS = ("apt-daily.timer", "apt-daily-upgrade.timer")
UNITS = TIMERS


def packages(hardening) -> tuple[str, ...]:
    return ("unattended-upgrades",)


def files(facts) -> list:
    return [render(AUTO), render(ORIGINS, ubuntu=facts.os_id == "ubuntu")]


def plan(facts, wanted) -> list:
    changes = file_changes(facts, files(facts))
    off = [timer for timer in TIMERS if facts.unit(timer).enabled not in ("enabled", "static", "masked")]
    if off:
        changes.append(Change("enabled " + ", ".join(off), script="systemctl enable --now --quiet "
                              + " ".join(q(t) for t in off), label="enabling the apt timers"))
    return changes


def masked(facts) -> list[str]:
    return [timer for timer in TIMERS if facts.unit(timer).enabled == "masked"]


def notes(facts, wanted) -> list[str]:
    """A masked timer was masked on purpose (sandbox hosts mask them so no apt run holds the lock
    during a test): left alone, but said."""
    if not masked(facts):
        return []
    return [f"{' and '.join(masked(facts))} masked here: no updates run until `systemctl unmask "
            f"{' '.join(masked(facts))}`"]
