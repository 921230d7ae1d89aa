"""The host's releases: which exist, which is live, which are good, the venvs and server wheels
they use, the host's Python; read in one round trip, and the bookkeeping built on them (the
name of a new release, what pruning keeps).

`state_script(cfg)` and `parse_state(stdout)` are the command and its parser, side by side: the
release flow takes a `HostReleases` from its context, filled by whoever read it (`read_releases`
here, or a batched gather shared with provisioning).

Files of a release directory (cfg.layout.release_dir(NAME)):

    .good | .failed      the release's verdict (no marker: unfinished)
    .source-sha256       hash of the uploaded source, to skip unchanged redeploys
    .venv -> ../../venvs/HASH
and cfg.layout.venv_dir(HASH)/.complete: the venv finished installing.
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass, field

from toolkit import lock
from toolkit.errors import DeployError, RemoteError, next_task
from toolkit.facts import Fact
from toolkit.remote import q, sh, split_sections


@dataclass
class ReleaseInfo:
    name: str
    state: str  # "good", "failed" or "" (unfinished)
    source_sha: str = ""
    venv: str = ""  # the venv hash it links to

    @property
    def good(self) -> bool:
        return self.state == "good"


@dataclass
class HostReleases:
    """The release-related state of a host, read in one round trip."""

    provisioned: bool = False
    locked_by: str = ""
    current: str = ""  # release name `current` points to
    releases: list[ReleaseInfo] = field(default_factory=list)  # oldest first
    venvs: set[str] = field(default_factory=set)  # complete venvs
    wheels: set[str] = field(default_factory=set)
    python_version: str = ""
    service_active: str = ""

    def get(self, name: str) -> ReleaseInfo | None:
        return next((r for r in self.releases if r.name == name), None)

    def previous_good(self, before: str | None = None) -> ReleaseInfo | None:
        """The newest good release older than `before` (default: older than current)."""
        before = before or self.current
        older = [r for r in self.releases if r.good and (not before or r.name < before)]
        return older[-1] if older else None

    @property
    def holder(self) -> lock.Holder | None:
        return lock.Holder(self.locked_by) if self.locked_by else None


def state_script(cfg, take_lock_text: str = "", prefix: str = "") -> str:
    """Print the host's releases in sections headed @@PREFIXNAME. With `take_lock_text`, take
    the deploy lock first (lock.take_script: exits lock.HELD_EXIT when someone else holds it)."""
    layout = cfg.layout
    releases, venvs, wheels = q(layout.releases_dir), q(layout.venvs_dir), q(layout.wheels_dir)
    h = "@@" + prefix
    lines = [f"if [ ! -d {releases} ]; then echo {h}unprovisioned; exit 0; fi"]
    lines.append(lock.take_script(layout, take_lock_text, prefix + "locked") if take_lock_text
                 else lock.show_script(layout, prefix + "locked"))
    lines += [
        f"echo {h}current; readlink {q(layout.current_dir)} 2>/dev/null || true",
        f"echo {h}releases",
        f'for d in {releases}/*/; do [ -d "$d" ] || continue; n=$(basename "$d"); s=-; '
        '[ -e "$d.good" ] && s=good; [ -e "$d.failed" ] && s=failed; '
        'h=$(cat "$d.source-sha256" 2>/dev/null || echo -); v=$(readlink "$d.venv" 2>/dev/null || echo -); '
        'echo "$n $s $h $v"; done',
        f'echo {h}venvs; for v in {venvs}/*/; do [ -e "$v.complete" ] && basename "$v"; done; true',
        f"echo {h}wheels; (cd {wheels} 2>/dev/null && ls -d */*.whl 2>/dev/null); true",
        f"echo {h}python; {shlex.quote(cfg.python)} -c 'import sys; print(\"%d.%d.%d\" % sys.version_info[:3])' "
        "2>/dev/null || true",
        f"echo {h}active; systemctl is-active {q(layout.unit_name)} 2>/dev/null || true",
    ]
    return "\n".join(lines)


def parse_state(stdout: str) -> HostReleases:
    return parse_sections(split_sections(stdout, strip=True))


def parse_sections(sections: dict[str, list[str]]) -> HostReleases:
    """The sections of state_script's output (headings without their prefix, lines stripped)."""
    st = HostReleases(provisioned="unprovisioned" not in sections)
    st.locked_by = lock.holder_of(sections["locked"]).text if "locked" in sections else ""
    target = (sections.get("current") or [""])[0]
    st.current = target.rstrip("/").rsplit("/", 1)[-1] if target else ""
    for line in sections.get("releases", []):
        parts = line.split()
        if len(parts) != 4:
            continue
        name, state, sha, venv = parts
        st.releases.append(ReleaseInfo(name, "" if state == "-" else state,
                                       "" if sha == "-" else sha,
                                       "" if venv == "-" else venv.rstrip("/").rsplit("/", 1)[-1]))
    st.releases.sort(key=lambda r: r.name)
    st.venvs = set(sections.get("venvs", []))
    st.wheels = set(sections.get("wheels", []))
    st.python_version = (sections.get("python") or [""])[0]
    st.service_active = (sections.get("active") or [""])[0]
    return st


class Releases(Fact[HostReleases]):
    """The host's releases as a fact, for a gather shared with provisioning (toolkit/facts).
    Read before provisioning, so a host that provisioning changes (a first deploy: no releases
    folder, no Python yet) is read again by the updating stage."""

    key = "releases"

    def __init__(self, cfg):
        self.cfg = cfg

    def command(self) -> str:
        return state_script(self.cfg, prefix=self.key + ".")

    def parse_sections(self, sections: dict[str, list[str]]) -> HostReleases:
        start = len(self.key) + 1
        return parse_sections({name[start:]: [line.strip() for line in lines if line.strip()]
                               for name, lines in sections.items() if name.startswith(self.key + ".")})

    @staticmethod
    def still_true(state: HostReleases) -> bool:
        """Whether a state read before provisioning still holds after it."""
        return state.provisioned and bool(state.python_version)


def read_releases(c, cfg, take_lock_text: str = "") -> HostReleases:
    """The host's releases; with `take_lock_text`, the deploy lock is taken in the same round
    trip (LockHeld when someone else holds it). DeployError when the host is not provisioned."""
    result = sh(c, state_script(cfg, take_lock_text), check=False)
    if result.exited not in (0, lock.HELD_EXIT):
        raise RemoteError("reading the host's releases", result.exited, result.stdout + result.stderr)
    state = parse_state(result.stdout)
    if not state.provisioned:
        raise DeployError(f"{cfg.layout.base_dir} does not exist on this host: it is not provisioned yet",
                          next_task("deploy") + "   (it provisions first)")
    if result.exited == lock.HELD_EXIT:
        raise lock.held_error(state.holder or lock.Holder(lock.NO_DETAILS))
    return state


def release_stamp() -> str:
    return time.strftime("%Y%m%d%H%M%S", time.gmtime())


def new_release_name(existing: set[str], stamp: str = "") -> str:
    """The UTC time as YYYYmmddHHMMSS (or `stamp`: a rolling deploy names its release once for
    every host), with -2, -3, ... when a release of that name exists."""
    name = stamp or release_stamp()
    candidate, n = name, 1
    while candidate in existing:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def prune_plan(state: HostReleases, new_good: str, keep: int,
               new_venv: str = "") -> tuple[list[str], list[str]]:
    """(releases to delete, venvs to delete) after `new_good` became current.

    Kept: the newest `keep` good releases, the current one, the previous good one (rollback
    target), and the newest failed one (for a look at what went wrong). Failed and unfinished
    releases never count towards `keep`. Venvs are kept while a kept release uses them.
    """
    goods = [r.name for r in state.releases if r.good] + ([new_good] if new_good else [])
    goods = sorted(set(goods))
    keep_names = set(goods[-keep:])
    keep_names.add(new_good)
    previous = [g for g in goods if g < new_good]
    if previous:
        keep_names.add(previous[-1])
    failed = [r.name for r in state.releases if r.state == "failed"]
    if failed:
        keep_names.add(failed[-1])
    unfinished = [r.name for r in state.releases if not r.state and r.name != new_good]
    delete = [r.name for r in state.releases if r.name not in keep_names]
    # an unfinished release newer than the new one would be another deploy's: never touch it
    delete = [n for n in delete if not (n in unfinished and n > new_good)]
    # The new release is not in `state` (read before it existed): its venv is named apart.
    kept_venvs = {r.venv for r in state.releases if r.name in keep_names and r.venv} | {new_venv}
    venvs = sorted(v for v in state.venvs if v not in kept_venvs)
    return delete, venvs
