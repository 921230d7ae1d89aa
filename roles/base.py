"""The packages every app host needs (python3, python3-venv, nginx, ca-certificates, ...).

`apt-get update` runs first only when a package is missing AND the package lists are older than
APT_MAX_AGE_HOURS (or were never fetched): a host that already has everything is not touched.
When lists that looked fresh still fail the install, they are fetched and the install retried.
"""

from __future__ import annotations

from roles import hardening
from toolkit.executor import Change
from toolkit.remote import q

STEP = "apt packages"
APT_MAX_AGE_HOURS = 6

# Only nginx and the hardening packages can wait: nothing before the nginx site and the
# hardening steps (run just before it) needs them (www-data, the group the socket and media use,
# comes with Debian's and Ubuntu's base system).
LATER = ("nginx",)


def deferrable(wanted) -> tuple[str, ...]:
    return LATER + (hardening.packages(wanted.hardening) if wanted.hardening else ())


def missing_packages(facts, wanted) -> list[str]:
    return [p for p in wanted.all_packages if p not in facts.installed]


def apt_lists_stale(facts, max_age_hours: float = APT_MAX_AGE_HOURS) -> bool:
    if not facts.apt.mtime:
        return True
    return facts.apt.now - facts.apt.mtime > max_age_hours * 3600


def install_script(packages, update: bool) -> str:
    """apt-get without prompts; with `update` fetch the lists first, else retry once after a fetch."""
    install = "apt-get install -y -qq --no-install-recommends " + " ".join(q(p) for p in packages) + " 2>&1"
    if update:
        return f"export DEBIAN_FRONTEND=noninteractive && apt-get update -qq && {install}"
    retry = f"{{ apt-get update -qq && {install}; }}"
    return f"export DEBIAN_FRONTEND=noninteractive && {{ {install} || {retry}; }}"


def plan(facts, wanted, defer: bool = False) -> list:
    """Install what is missing. With `defer`, the deferrable packages (nginx, the hardening's)
    install in the background (a first deploy builds the app's venv meanwhile)."""
    missing = missing_packages(facts, wanted)
    later = [p for p in missing if p in deferrable(wanted)] if defer else []
    now = [p for p in missing if p not in later]
    stale = apt_lists_stale(facts)
    changes = []
    if now:
        changes.append(_install(now, stale, "install " + ", ".join(now)))
    if later:
        changes.append(_install(later, stale and not now, ", ".join(later) + " in the background",
                                background=True))
    return changes


def _install(packages, update: bool, what: str, background: bool = False) -> Change:
    return Change(what, "after apt-get update" if update else "", script=install_script(packages, update),
                  label="apt-get install " + " ".join(packages), background=background)
