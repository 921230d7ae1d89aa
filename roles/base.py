"""The packages every app host needs (python3, python3-venv, nginx, ca-certificates, ...).

`apt-get update` runs only when a package is missing AND the package lists are older than
APT_MAX_AGE_HOURS (or were never fetched): a host that already has everything is not touched.
"""

from __future__ import annotations

from roles import facts as facts_mod
from toolkit.remote import RemoteError, q, sh

APT_MAX_AGE_HOURS = 6


def missing_packages(facts, wanted=facts_mod.BASE_PACKAGES) -> list[str]:
    return [p for p in wanted if p not in facts.installed]


def apt_lists_stale(facts, max_age_hours: float = APT_MAX_AGE_HOURS) -> bool:
    if not facts.apt_lists_mtime:
        return True
    return facts.now - facts.apt_lists_mtime > max_age_hours * 3600


def install_script(packages, update: bool) -> str:
    """apt-get without prompts; with `update`, fetch the package lists first."""
    pkgs = " ".join(q(p) for p in packages)
    steps = ["export DEBIAN_FRONTEND=noninteractive"]
    if update:
        steps.append("apt-get update -qq")
    steps.append(f"apt-get install -y -qq --no-install-recommends {pkgs} 2>&1")
    return " && ".join(steps)


def install(c, missing, stale: bool) -> None:
    """apt-get install `missing` (after apt-get update when the lists are `stale`)."""
    result = sh(c, install_script(missing, update=stale), check=False)
    if result.ok:
        return
    if stale:
        raise RemoteError("apt-get install " + " ".join(missing), result.exited,
                          result.stdout + result.stderr)
    # The lists looked fresh enough by age but still failed: fetch them and retry once.
    sh(c, install_script(missing, update=True), what="apt-get install " + " ".join(missing))


def ensure_packages(c, cfg, rep, dry=False, facts=None, packages=facts_mod.BASE_PACKAGES) -> bool:
    """Install the base packages that are missing."""
    with rep.step("apt packages") as st:
        if facts is None:
            facts = facts_mod.gather(c, cfg, packages=packages)
        missing = missing_packages(facts, packages)
        if not missing:
            return False
        stale = apt_lists_stale(facts)
        st.changed("install " + ", ".join(missing) + (" (after apt-get update)" if stale else ""))
        if not dry:
            install(c, missing, stale)
        return True


# Only nginx itself can wait: nothing before the nginx site needs it (www-data, the group the
# socket and media use, comes with Debian's and Ubuntu's base system).
LATER = ("nginx",)


def start_packages(c, cfg, rep, facts, packages=facts_mod.BASE_PACKAGES):
    """Like ensure_packages, but nginx installs in the background (a thread running apt-get on
    its own ssh channel) while the caller goes on: a first deploy builds the app's venv
    meanwhile. Returns (changed, future or None); `future.result()` waits and raises its error.
    """
    from concurrent.futures import ThreadPoolExecutor

    missing = missing_packages(facts, packages)
    now = [p for p in missing if p not in LATER]
    later = [p for p in missing if p in LATER]
    if not later:
        return ensure_packages(c, cfg, rep, False, facts, packages), None
    stale = apt_lists_stale(facts)
    with rep.step("apt packages") as st:
        note = ("install " + ", ".join(now) + "; " if now else "") + ", ".join(later) + " in the background"
        st.changed(note + (" (after apt-get update)" if stale else ""))
        if now:
            install(c, now, stale)
            stale = False
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apt")
    future = pool.submit(install, c, later, stale)
    pool.shutdown(wait=False)
    return True, future
