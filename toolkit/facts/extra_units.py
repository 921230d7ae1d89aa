"""The extra units of an app already on the host (its [processes] and [schedule] units), found by
the marker line every such unit file carries (toolkit/process_units.py), so that one removed
from deploy.toml can be stopped and removed, and another app's units are never mistaken for ours."""

from __future__ import annotations

from dataclasses import dataclass, fields

from toolkit.facts import Fact
from toolkit.facts.hardening import HardenedHostFacts
from toolkit.process_units import UNIT_DIR, marker
from toolkit.remote import q


class ExtraUnits(Fact[frozenset]):
    """The unit names (APP-x.service, APP-x.timer) of the app's marked unit files on the host."""

    key = "extra_units"

    def __init__(self, app: str):
        self.app = app

    def command(self):
        pattern = f"{UNIT_DIR}/{self.app}-*"
        return f"grep -lxF {q(marker(self.app))} {pattern}.service {pattern}.timer 2>/dev/null; true"

    def parse(self, lines):
        return frozenset(line.strip().rsplit("/", 1)[-1] for line in lines if line.strip().startswith(UNIT_DIR))


@dataclass
class AppUnitsFacts(HardenedHostFacts):
    """HardenedHostFacts and the app's extra units on the host (`.extra_units`), what provisioning
    hands the roles (roles/processes.py and roles/schedule.py read `extra_units`)."""

    extra_units: frozenset = frozenset()

    @classmethod
    def of(cls, facts) -> "AppUnitsFacts":
        base = HardenedHostFacts.of(facts)
        values = {f.name: getattr(base, f.name) for f in fields(HardenedHostFacts)}
        return cls(**values, extra_units=facts.get(ExtraUnits, frozenset()))
