"""The release flow: put a new version of the app live on a provisioned host, or put it back.

Capistrano's stages, printed as they run:

    starting    take the deploy lock (mkdir /srv/APP/.deploy-lock) and read the host's releases
    updating    upload the app to releases/TIMESTAMP and the server wheel; make or reuse the venv
                for this requirements hash; check the app imports; Django: migrate, collectstatic
    publishing  switch `current` atomically, restart the service, health-check through nginx
                from the host itself with the real Host header
    finishing   mark the release good, prune old releases and venvs, log, unlock

If the new release fails before the switch, nothing live was touched. If it fails after (the
health check), `current` goes back to the previous good release and the service is restarted:
with socket activation, requests wait in the socket's backlog meanwhile instead of failing.
Either way the release is marked failed (never counted, never rolled back to), the reason is
shown with the service's journal, and the task exits non-zero.

Host files this module owns (under /srv/APP):

    .deploy-lock/who               who holds the lock: user@machine, time, pid
    deploy.log                     one line per deploy/rollback: time, who, release, result
    releases/TS/.good | .failed    the release's verdict (no marker: unfinished)
    releases/TS/.source-sha256     hash of the uploaded source, to skip unchanged redeploys
    releases/TS/.venv -> ../../venvs/HASH
    venvs/HASH/.complete           the venv finished installing (a half-built venv is rebuilt)
"""

from __future__ import annotations

import fnmatch
import getpass
import hashlib
import io
import os
import shlex
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from toolkit.remote import RemoteError, q, sh, split_sections

REPO = Path(__file__).resolve().parent.parent
SERVER_DIR = REPO / "server"
CACHE_DIR = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pronghorn"

# Never uploaded: VCS data, caches, local virtualenvs, and the local .env (secrets go to the
# host's shared/.env only, through the renderer).
EXCLUDE = (".git", ".hg", ".svn", "__pycache__", ".venv", "venv", "*.pyc", "*.pyo", ".env",
           ".pytest_cache", ".mypy_cache", ".tox", "node_modules", ".DS_Store")

HEALTH_GIVE_UP_AFTER_SAME = 5  # identical non-gateway answers in a row: the app really says so


from toolkit.errors import DeployError, LockHeld, next_task  # noqa: F401


# ----------------------------------------------------------------------------------------------
# Reading the host's releases
# ----------------------------------------------------------------------------------------------

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


def who() -> str:
    return f"{getpass.getuser()}@{socket.gethostname()}"


def state_script(cfg, python: str, lock: bool, lock_text: str = "") -> str:
    """Print the host's releases; with `lock`, take the deploy lock first (exit 3 if held)."""
    base = q(cfg.layout.base_dir)
    lines = [
        f"b={base}",
        'if [ ! -d "$b/releases" ]; then echo @@unprovisioned; exit 0; fi',
    ]
    if lock:
        lines += [
            'if ! mkdir "$b/.deploy-lock" 2>/dev/null; then echo @@locked; '
            'cat "$b/.deploy-lock/who" 2>/dev/null; exit 3; fi',
            f'printf "%s\\n" {q(lock_text)} > "$b/.deploy-lock/who"',
        ]
    else:
        lines.append('if [ -d "$b/.deploy-lock" ]; then echo @@locked; '
                     'cat "$b/.deploy-lock/who" 2>/dev/null; fi')
    lines += [
        'echo @@current; readlink "$b/current" 2>/dev/null || true',
        'echo @@releases',
        'for d in "$b"/releases/*/; do [ -d "$d" ] || continue; n=$(basename "$d"); s=-; '
        '[ -e "$d.good" ] && s=good; [ -e "$d.failed" ] && s=failed; '
        'h=$(cat "$d.source-sha256" 2>/dev/null || echo -); v=$(readlink "$d.venv" 2>/dev/null || echo -); '
        'echo "$n $s $h $v"; done',
        'echo @@venvs; for v in "$b"/venvs/*/; do [ -e "$v.complete" ] && basename "$v"; done; true',
        'echo @@wheels; (cd "$b/wheels" 2>/dev/null && ls -d */*.whl 2>/dev/null); true',
        f'echo @@python; {shlex.quote(python)} -c \'import sys; print("%d.%d.%d" % sys.version_info[:3])\' '
        '2>/dev/null || true',
        f'echo @@active; systemctl is-active {q(cfg.layout.unit_name)} 2>/dev/null || true',
    ]
    return "\n".join(lines)


def parse_state(stdout: str) -> HostReleases:
    sections = split_sections(stdout, strip=True)
    st = HostReleases(provisioned="unprovisioned" not in sections)
    if "locked" in sections:
        st.locked_by = " ".join(sections["locked"]) or "(no details recorded)"
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


def read_state(c, cfg, lock: bool = False, lock_text: str = "") -> HostReleases:
    result = sh(c, state_script(cfg, cfg.python, lock, lock_text), check=False)
    if result.exited not in (0, 3):
        raise RemoteError("reading the host's releases", result.exited, result.stdout + result.stderr)
    state = parse_state(result.stdout)
    if not state.provisioned:
        raise DeployError(f"{cfg.layout.base_dir} does not exist on this host: it is not provisioned yet",
                          next_task("deploy") + "   (it provisions first)")
    if result.exited == 3:
        raise LockHeld(f"another deploy holds the lock: {state.locked_by}",
                       "wait for it to finish; if it crashed, remove the lock with: " + next_task("lock.release"))
    return state


def lock_script(cfg, text: str) -> str:
    """Take the deploy lock, creating /srv/APP when needed (a first deploy takes it too, before
    anything is provisioned); exit 3 with the holder's name when someone else holds it."""
    base = q(cfg.layout.base_dir)
    return "\n".join([
        f"b={base}",
        'mkdir -p "$b"',
        'if ! mkdir "$b/.deploy-lock" 2>/dev/null; then '
        'cat "$b/.deploy-lock/who" 2>/dev/null || echo "(no details recorded)"; exit 3; fi',
        f'printf "%s\\n" {q(text)} > "$b/.deploy-lock/who"',
    ])


def take_lock(c, cfg) -> str:
    """Take the deploy lock before anything on the host changes; LockHeld when it is taken.
    Returns the text recorded in the lock (for `unlock_if_ours`)."""
    text = lock_text()
    result = sh(c, lock_script(cfg, text), check=False)
    if result.exited == 3:
        holder = result.stdout.strip() or "(no details recorded)"
        raise LockHeld(f"another deploy holds the lock: {holder}",
                       "wait for it to finish; if it crashed, remove the lock with: " + next_task("lock.release"))
    if result.exited != 0:
        raise RemoteError("taking the deploy lock", result.exited, result.stdout + result.stderr)
    return text


def unlock_if_ours(c, cfg, text: str) -> None:
    """Remove the lock if it is still the one we took (a failed release has removed it already,
    and another deploy may hold a new one by now)."""
    lock = f"{q(cfg.layout.base_dir)}/.deploy-lock"
    sh(c, f'if [ "$(cat {lock}/who 2>/dev/null)" = {q(text)} ]; then rm -rf {lock}; fi', check=False)


def lock_text() -> str:
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return f"{who()} since {stamp} (pid {os.getpid()})"


def unlock(c, cfg) -> None:
    sh(c, f"rm -rf {q(cfg.layout.base_dir)}/.deploy-lock", what="releasing the deploy lock")


def log_line(cfg, release: str, result: str) -> str:
    """The shell snippet appending one line to deploy.log."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    line = f"{stamp}\t{who()}\t{release}\t{result}"
    return f"printf '%s\\n' {q(line)} >> {q(cfg.layout.base_dir)}/deploy.log"


# ----------------------------------------------------------------------------------------------
# Packaging the app and the server locally
# ----------------------------------------------------------------------------------------------

def excluded(rel_path: str, patterns=EXCLUDE) -> bool:
    return any(fnmatch.fnmatch(part, pat) for part in Path(rel_path).parts for pat in patterns)


def source_files(root: Path) -> list[Path]:
    """Files of the app to upload, relative to `root`, sorted (so the hash is stable)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if not excluded(str(rel_dir / d)))
        for name in sorted(filenames):
            rel = rel_dir / name
            if not excluded(str(rel)):
                found.append(rel)
    return found


@dataclass
class Package:
    """The app's files as a tar.gz ready to unpack into a release directory."""

    tar: bytes
    sha256: str  # of the file list, modes and contents: the same tree gives the same hash
    files: int


def package_dir(root: Path, prefix: str, owner: str) -> Package:
    """Tar `root` under `prefix/`, files owned by `owner` (the app user: Django writes static)."""
    digest = hashlib.sha256()
    buf = io.BytesIO()
    files = source_files(root)
    with tarfile.open(fileobj=buf, mode="w:gz", compresslevel=6) as tar:
        # Directories first, owned by the app user like the files (tar would make them root's).
        for rel_dir in sorted({p for rel in files for p in rel.parents if str(p) != "."}):
            info = tarfile.TarInfo(f"{prefix}/{rel_dir.as_posix()}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, int(time.time())
            info.uname = info.gname = owner
            tar.addfile(info)
        for rel in files:
            path = root / rel
            st = path.lstat()
            info = tarfile.TarInfo(f"{prefix}/{rel.as_posix()}")
            info.uname = info.gname = owner
            info.mtime = int(st.st_mtime)
            if path.is_symlink():
                info.type = tarfile.SYMTYPE
                info.linkname = os.readlink(path)
                info.mode = 0o777
                data = None
                digest.update(f"L {rel.as_posix()} {info.linkname}\n".encode())
            else:
                # group/other may read; nobody but the owner writes
                info.mode = (st.st_mode & 0o755) | 0o644
                content = path.read_bytes()
                info.size = len(content)
                data = io.BytesIO(content)
                digest.update(f"F {rel.as_posix()} {info.mode:o} {len(content)}\n".encode())
                digest.update(content)
            tar.addfile(info, data)
    return Package(buf.getvalue(), digest.hexdigest(), len(files))


def checkout_git(url: str, ref: str, into: Path) -> Path:
    """A clean tree of `url` at `ref` (branch, tag or commit) in `into`."""
    def git(*args, cwd=None):
        result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)
        if result.returncode != 0:
            raise DeployError(f"git {' '.join(args[:2])} failed: {result.stderr.strip()[:500]}",
                              f"check [source] git = \"{url}\" and ref = \"{ref}\" in deploy.toml")
        return result.stdout

    target = into / "src"
    clone = subprocess.run(["git", "clone", "--quiet", "--depth", "1", "--branch", ref, url, str(target)],
                           capture_output=True, text=True)
    if clone.returncode != 0:  # a commit hash cannot be cloned with --branch: full clone + checkout
        git("clone", "--quiet", url, str(target))
        git("checkout", "--quiet", ref, cwd=target)
    return target


def package_source(cfg, prefix: str) -> Package:
    """The app from its directory, or from git when deploy.toml has [source] git."""
    git_url = getattr(cfg.source, "git", "")
    if git_url:
        with tempfile.TemporaryDirectory(prefix="pronghorn-src-") as tmp:
            tree = checkout_git(git_url, cfg.source.ref, Path(tmp))
            return package_dir(tree, prefix, cfg.name)
    return package_dir(Path(cfg.app_dir), prefix, cfg.name)


def server_sources_hash(server_dir: Path = SERVER_DIR) -> str:
    digest = hashlib.sha256()
    for rel in source_files(server_dir):
        if rel.parts[0] in ("build", "dist") or rel.parts[0].endswith(".egg-info"):
            continue
        digest.update(rel.as_posix().encode() + b"\0" + (server_dir / rel).read_bytes())
    return digest.hexdigest()


def server_wheel(server_dir: Path = SERVER_DIR, cache: Path = CACHE_DIR / "wheels") -> Path:
    """The pronghorn wheel built from ./server, cached by the hash of its sources."""
    out = cache / server_sources_hash(server_dir)[:16]
    wheels = sorted(out.glob("*.whl"))
    if wheels:
        return wheels[0]
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        # A copy, so the build's own build/ and egg-info never land in the repository.
        src = Path(tmp) / "server"
        subprocess.run(["cp", "-a", str(server_dir), str(src)], check=True)
        result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                                 "-q", "-w", str(out), str(src)], capture_output=True, text=True)
        if result.returncode != 0:
            raise DeployError("building the pronghorn wheel from ./server failed:\n"
                              + result.stderr.strip()[-1500:],
                              "run scripts/bootstrap (it installs the build tools), then try again")
    wheels = sorted(out.glob("*.whl"))
    if not wheels:
        raise DeployError(f"pip wheel made no wheel in {out}", "run scripts/bootstrap, then try again")
    return wheels[0]


def wheel_key(wheel: Path) -> str:
    """HASH/NAME: where a wheel lives under /srv/APP/wheels (HASH = its cache folder's name)."""
    return f"{wheel.parent.name}/{wheel.name}"


def venv_hash(requirements: bytes, wheel: bytes, python_version: str, python: str) -> str:
    digest = hashlib.sha256()
    for part in (requirements, wheel, python_version.encode(), python.encode()):
        digest.update(hashlib.sha256(part).digest())
    return digest.hexdigest()[:16]


def read_requirements(cfg) -> bytes:
    path = Path(cfg.app_dir) / cfg.requirements
    return path.read_bytes() if path.is_file() else b""


# ----------------------------------------------------------------------------------------------
# Remote steps
# ----------------------------------------------------------------------------------------------

def new_release_name(existing: set[str]) -> str:
    name = time.strftime("%Y%m%d%H%M%S", time.gmtime())
    candidate, n = name, 1
    while candidate in existing:
        n += 1
        candidate = f"{name}-{n}"
    return candidate


def upload_script(cfg, release: str, source_sha: str, vhash: str) -> str:
    """Unpack the tar on stdin into /srv/APP, record the source hash, link the venv."""
    base = q(cfg.layout.base_dir)
    rel = f"{cfg.layout.base_dir}/releases/{release}"
    return "\n".join([
        "set -e",
        f"tar -xzf - -C {base} --same-owner --no-overwrite-dir",
        f"mkdir -p {q(rel)}",
        f"echo {q(source_sha)} > {q(rel)}/.source-sha256",
        f"ln -sfn ../../venvs/{vhash} {q(rel)}/.venv",
        f"chown -h {q(cfg.name)}:{q(cfg.name)} {q(rel)} {q(rel)}/.source-sha256 {q(rel)}/.venv",
    ])


def venv_script(cfg, vhash: str, release: str, wheel_name: str, has_requirements: bool) -> str:
    """Make venvs/HASH in place (shebangs hold its path, so it cannot be built elsewhere and
    moved); `.complete` is written last, so an interrupted build is redone, never reused.

    Debian and Ubuntu ship pip as a wheel for ensurepip (/usr/share/python-wheels); running
    pip straight from it into a venv made --without-pip skips ensurepip's pip install, which
    takes seconds. Hosts without it get a venv with its own pip.
    """
    venv = q(f"{cfg.layout.base_dir}/venvs/{vhash}")
    args = ["install", "-q", "--disable-pip-version-check", "--root-user-action=ignore", "--no-input"]
    if has_requirements:
        args += ["-r", q(f"{cfg.layout.base_dir}/releases/{release}/{cfg.requirements}")]
    args.append(q(f"{cfg.layout.base_dir}/wheels/{wheel_name}"))
    python = shlex.quote(cfg.python)
    return "\n".join([
        "set -e",
        f"rm -rf {venv}",
        "w=$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | tail -n 1)",
        f'if [ -n "$w" ]; then {python} -m venv --without-pip {venv}; pip="{venv}/bin/python $w/pip"; '
        f'else {python} -m venv {venv}; pip="{venv}/bin/pip"; fi',
        "$pip " + " ".join(args) + " 2>&1",
        f"touch {venv}/.complete",
    ])


# Runs as the app user with the app's environment: reads shared/.env (KEY=value lines, as
# systemd's EnvironmentFile=), then execs the command. The shell's `.` cannot be used: systemd's
# quoting rules differ from the shell's.
ENV_EXEC = (
    "import os,re,sys\n"
    "for line in open(sys.argv[1]):\n"
    "    line=line.strip()\n"
    "    if not line or line[0] in '#;' or '=' not in line: continue\n"
    "    k,v=line.split('=',1); k=k.strip(); v=v.strip()\n"
    "    if k.startswith('export '): k=k[7:].strip()\n"
    "    if len(v)>1 and v[0]==v[-1]==\"'\": v=v[1:-1]\n"
    "    elif len(v)>1 and v[0]==v[-1]=='\"': v=re.sub(r'\\\\(.)', r'\\1', v[1:-1])\n"
    "    os.environ[k]=v\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)

IMPORT_CHECK = (
    "import importlib,sys\n"
    "spec=sys.argv[1]; mod,_,attr=spec.partition(':'); factory=attr.endswith('()')\n"
    "sys.path.insert(0,'.')\n"
    "m=importlib.import_module(mod)\n"
    "obj=getattr(m, attr[:-2] if factory else attr)\n"
    "assert callable(obj), spec+' is not callable'\n"
    "print('ok', spec)\n"
)


def as_app(cfg, release_dir: str, *argv: str) -> str:
    """A command line running `argv` in `release_dir` as the app user, with shared/.env loaded."""
    python = f"{release_dir}/.venv/bin/python"
    inner = [python, "-c", ENV_EXEC, cfg.layout.env_file, *argv]
    return (f"cd {q(release_dir)} && runuser -u {q(cfg.name)} -- "
            + " ".join(shlex.quote(a) for a in inner) + " 2>&1")


def import_check_cmd(cfg, release_dir: str) -> str:
    python = f"{release_dir}/.venv/bin/python"
    return as_app(cfg, release_dir, python, "-c", IMPORT_CHECK, cfg.wsgi)


def django_cmd(cfg, release_dir: str, *args: str) -> str:
    python = f"{release_dir}/.venv/bin/python"
    return as_app(cfg, release_dir, python, "manage.py", *args)


def switch_script(cfg, release: str) -> str:
    """Point `current` at the release atomically: a new link renamed over the old one."""
    base = q(cfg.layout.base_dir)
    return (f"ln -sfn releases/{q(release)} {base}/current.new && "
            f"mv -T {base}/current.new {base}/current")


def restart_script(cfg) -> str:
    """Restart the service; the socket stays, so new connections wait in its backlog.

    reset-failed first: a crashing release may have hit systemd's start limit, which would
    refuse the good release too.
    """
    svc, sock = q(cfg.layout.unit_name), q(cfg.layout.socket_unit_name)
    return (f"systemctl reset-failed {svc} {sock} 2>/dev/null; systemctl start {sock} && "
            f"systemctl restart {svc}")


def health_host(cfg) -> str:
    """The Host header for the health check: the first domain (any name for "_")."""
    domain = cfg.domains[0] if cfg.domains else "_"
    if domain == "_":
        return "localhost"
    return "www." + domain[2:] if domain.startswith("*.") else domain


HEALTH_CHECK = r"""
import http.client, sys, time
host, path, expect, timeout, same_limit = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
deadline = time.monotonic() + timeout
last, same = None, 0
while True:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", 80, timeout=max(1.0, min(10.0, timeout)))
        conn.request("GET", path, headers={"Host": host, "User-Agent": "pronghorn-deploy-healthcheck"})
        resp = conn.getresponse()
        body = resp.read(4096).decode("utf-8", "replace")
        conn.close()
        if resp.status == expect:
            print("OK", resp.status)
            sys.exit(0)
        answer = (resp.status, body[:600])
        # 502/503/504 are nginx waiting for the app; anything else is the app's own answer.
        same = same + 1 if answer == last and resp.status not in (502, 503, 504) else 1
        last = answer
        if same >= same_limit:
            break
    except Exception as exc:
        last = (0, f"{type(exc).__name__}: {exc}")
    if time.monotonic() >= deadline:
        break
    time.sleep(0.1)  # the restart returned at READY=1: the answer is usually there at once
status, body = last
print("FAIL", status)
print(body)
sys.exit(1)
"""


def health_check_cmd(cfg, timeout: float | None = None, same_limit: int = HEALTH_GIVE_UP_AFTER_SAME) -> str:
    timeout = cfg.health.timeout if timeout is None else timeout
    return " ".join(shlex.quote(a) for a in [
        "python3", "-c", HEALTH_CHECK, health_host(cfg), cfg.health.path, str(cfg.health.expect),
        str(timeout), str(same_limit)])


@dataclass
class Health:
    ok: bool
    status: int
    body: str


def health_check(c, cfg, timeout: float | None = None) -> Health:
    result = sh(c, health_check_cmd(cfg, timeout), check=False)
    lines = result.stdout.splitlines()
    head = (lines[0] if lines else "FAIL 0").split()
    status = int(head[1]) if len(head) > 1 and head[1].isdigit() else 0
    return Health(result.exited == 0, status, "\n".join(lines[1:]).strip())


def journal(c, cfg, lines: int = 30, since: float | None = None) -> str:
    """The service's last log lines, access-log lines left out (they drown the error)."""
    window = f"--since @{int(since) - 1}" if since else "-n 400"
    out = sh(c, f"journalctl -u {q(cfg.layout.unit_name)} {window} --no-pager -o short-iso 2>&1 || true",
             check=False).stdout
    kept = [line for line in out.splitlines() if '"method":' not in line]
    if since and len(kept) <= 1:  # "-- No entries --": the host's clock may differ from ours
        return journal(c, cfg, lines)
    return "\n".join(kept[-lines:])


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


def finish_script(cfg, release: str, delete: list[str], venvs: list[str], result: str,
                  keep_wheel: str = "") -> str:
    base = cfg.layout.base_dir
    lines = [f"touch {q(base)}/releases/{q(release)}/.good"]
    if keep_wheel:
        # Older server wheels are only needed to build venvs, and the kept venvs are built.
        keep = q(keep_wheel.split("/")[0])
        lines.append(f'rm -f {q(base)}/wheels/*.whl; for d in {q(base)}/wheels/*/; do [ "$(basename "$d")" = {keep} ] || rm -rf "$d"; done')
    lines += [f"rm -rf {q(base)}/releases/{q(name)}" for name in delete]
    lines += [f"rm -rf {q(base)}/venvs/{q(v)}" for v in venvs]
    lines.append(log_line(cfg, release, result))
    lines.append(f"rm -rf {q(base)}/.deploy-lock")
    return "\n".join(lines)


def fail_script(cfg, release: str, result: str) -> str:
    base = cfg.layout.base_dir
    return "\n".join([
        f"[ -d {q(base)}/releases/{q(release)} ] && touch {q(base)}/releases/{q(release)}/.failed",
        log_line(cfg, release, result),
        f"rm -rf {q(base)}/.deploy-lock",
    ])


# ----------------------------------------------------------------------------------------------
# The flows
# ----------------------------------------------------------------------------------------------

@dataclass
class Outcome:
    release: str
    changed: bool  # False: the host already ran this exact release


def deploy_release(c, cfg, rep, dry: bool = False, force: bool = False, wheel_future=None,
                   lock_taken: bool = False, before_publish=None) -> Outcome:
    """Run the release stages on one host. Raises DeployError on failure (after rolling back).

    `wheel_future` (a concurrent.futures.Future of server_wheel()) lets the caller build the
    server wheel while the host is being provisioned. `lock_taken`: the caller took the deploy
    lock already (`take_lock`, before provisioning); this function releases it either way.
    `before_publish()` runs before anything goes live (the deploy finishes nginx there).
    """
    before_publish = before_publish or (lambda: None)
    if lock_taken:
        rep.stage("updating")
        with rep.step("read the releases") as st:
            state = read_state(c, cfg)
            st.info(f"live: {state.current or 'none yet'}")
    else:
        rep.stage("starting")
        with rep.step("deploy lock") as st:
            state = read_state(c, cfg, lock=not dry, lock_text=lock_text())
            if dry:
                st.info("not taken in a dry run" + (f"; held by {state.locked_by}" if state.locked_by else ""))
            else:
                st.info("taken")
    locked = not dry
    release = ""
    switched = 0.0
    try:
        if not lock_taken:
            rep.stage("updating")
        release = new_release_name({r.name for r in state.releases})
        with rep.step("package the app") as st:
            pkg = package_source(cfg, f"releases/{release}")
            st.info(f"{pkg.files} files, {len(pkg.tar) // 1024} KiB")
        with rep.step("server wheel") as st:
            wheel = wheel_future.result() if wheel_future is not None else server_wheel()
            st.info(wheel.name)
        requirements = read_requirements(cfg)
        if not state.python_version:
            raise DeployError(f"{cfg.python} ([app] python in deploy.toml) is missing on the host",
                              f"install it there (apt-get install {cfg.python} {cfg.python}-venv) "
                              'or set [app] python = "python3"')
        vhash = venv_hash(requirements, wheel.read_bytes(), state.python_version, cfg.python)

        current = state.get(state.current)
        if (not force and current and current.good and current.source_sha == pkg.sha256
                and current.venv == vhash and vhash in state.venvs):
            before_publish()
            with rep.step("release") as st:
                st.info(f"unchanged: {state.current} already runs this code (--force deploys anyway)")
            if locked:
                unlock(c, cfg)
                locked = False
            return Outcome(state.current, changed=False)

        with rep.step(f"upload releases/{release}") as st:
            # Every build of the server has the same wheel file name; the folder is its source hash.
            wheel_path = wheel_key(wheel)
            st.changed(f"{pkg.files} files" + ("" if wheel_path in state.wheels else " + server wheel"))
            if not dry:
                tar = pkg.tar
                if wheel_path not in state.wheels:
                    tar = _with_wheel(tar, wheel)
                sh(c, upload_script(cfg, release, pkg.sha256, vhash), stdin=tar,
                   what="uploading the release")
        with rep.step("virtualenv") as st:
            if vhash in state.venvs:
                st.info(f"reused venvs/{vhash}")
            else:
                st.changed(f"new venvs/{vhash} (requirements or server changed)")
                if not dry:
                    sh(c, venv_script(cfg, vhash, release, wheel_key(wheel), bool(requirements)),
                       what="installing the requirements", timeout=900)
        release_dir = f"{cfg.layout.base_dir}/releases/{release}"
        if dry:
            before_publish()
            rep.line("  (dry run: stops before running the new release)")
            return Outcome(release, changed=True)
        with rep.step("app imports") as st:
            result = sh(c, import_check_cmd(cfg, release_dir), check=False)
            if not result.ok:
                raise DeployError(f"the new release cannot load {cfg.wsgi}: nothing was switched, "
                                  "the site still runs the previous release",
                                  "fix the error shown above, then deploy again",
                                  _tail(result.stdout + result.stderr))
            st.info(cfg.wsgi)
        if cfg.framework == "django" and cfg.django:
            if cfg.django.migrate:
                with rep.step("django migrate") as st:
                    out = sh(c, django_cmd(cfg, release_dir, "migrate", "--noinput"),
                             what="manage.py migrate").stdout
                    if "Applying" in out:
                        st.changed(f"{out.count('Applying')} migration(s) applied")
            if cfg.django.collectstatic:
                with rep.step("django collectstatic") as st:
                    sh(c, django_cmd(cfg, release_dir, "collectstatic", "--noinput"),
                       what="manage.py collectstatic")

        before_publish()
        rep.stage("publishing")
        with rep.step("switch current") as st:
            switched = time.time()
            sh(c, switch_script(cfg, release), what="switching current")
            st.changed(f"current -> releases/{release}")
        with rep.step("restart the app") as st:
            st.changed(cfg.layout.unit_name)
            result = sh(c, restart_script(cfg), check=False)
            if not result.ok:
                # Type=notify: systemctl returns an error when the server exits instead of
                # reporting READY (e.g. the app fails to import under the server).
                raise DeployError(f"the new release did not start ({cfg.layout.unit_name} failed)",
                                  "see the journal shown above; fix it, then deploy again",
                                  _tail(result.stdout + result.stderr, 5))
        with rep.step("health check") as st:
            health = health_check(c, cfg)
            if not health.ok:
                raise DeployError(f"health check of http://{health_host(cfg)}{cfg.health.path} failed: "
                                  f"got {health.status or 'no answer'}, expected {cfg.health.expect}",
                                  "see the reason shown above; fix it, then deploy again",
                                  "response body (first lines):\n" + _tail(health.body, 10))
            st.info(f"{health.status} from {cfg.health.path}")

        rep.stage("finishing")
        with rep.step("mark good, prune") as st:
            delete, venvs = prune_plan(state, release, cfg.keep_releases, new_venv=vhash)
            sh(c, finish_script(cfg, release, delete, venvs, "ok", keep_wheel=wheel_key(wheel)),
               what="finishing the release")
            locked = False
            if delete or venvs:
                st.info(f"removed {len(delete)} old release(s), {len(venvs)} venv(s)")
        return Outcome(release, changed=True)
    except BaseException as exc:
        if locked:
            _recover(c, cfg, rep, state, release, switched, exc)
        raise


def _with_wheel(tar_bytes: bytes, wheel: Path) -> bytes:
    """Add the server wheel (as wheels/HASH/NAME, owned by root) to the release tar."""
    src = tarfile.open(fileobj=io.BytesIO(tar_bytes), mode="r:gz")
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz", compresslevel=6) as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member) if member.isfile() else None)
        data = wheel.read_bytes()
        info = tarfile.TarInfo(f"wheels/{wheel_key(wheel)}")
        info.size, info.mode, info.uname, info.gname = len(data), 0o644, "root", "root"
        info.mtime = int(time.time())
        dst.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _recover(c, cfg, rep, state: HostReleases, release: str, switched: float,
             exc: BaseException) -> None:
    """After a failure: put the previous good release back if we switched, mark ours failed,
    log, unlock. Adds the journal and what happened to the error. `switched` is when
    `current` was switched (0: it was not)."""
    switched_at = switched
    notes = []
    try:
        if switched:
            # The journal first: after the rollback it fills with the old release's lines.
            log = journal(c, cfg, 30, since=switched_at)
            previous = state.get(state.current)
            if previous and previous.good:
                with rep.step(f"roll back to {previous.name}") as st:
                    sh(c, switch_script(cfg, previous.name) + " && " + restart_script(cfg),
                       what="rolling back")
                    st.changed(f"current -> releases/{previous.name}")
                    health = health_check(c, cfg, timeout=min(cfg.health.timeout, 30))
                    notes.append(f"rolled back to {previous.name}: "
                                 + ("it answers again" if health.ok else
                                    f"but it answers {health.status or 'nothing'} too"))
            else:
                notes.append("there is no previous good release to roll back to")
            notes.append("journalctl -u " + cfg.layout.unit_name + ":\n" + log)
        sh(c, fail_script(cfg, release or "-", "failed" if release else "aborted"),
           what="recording the failure")
    except Exception as cleanup_exc:  # the original error matters more; mention this one
        notes.append(f"(cleaning up also failed: {cleanup_exc}; "
                     f"the lock may remain: {next_task('lock.release')})")
    if isinstance(exc, DeployError):
        exc.details = "\n".join(filter(None, [exc.details] + notes))
    elif isinstance(exc, Exception):
        exc.args = (str(exc) + ("\n" + "\n".join(notes) if notes else ""),)


def rollback(c, cfg, rep, to: str | None = None) -> str:
    """Point `current` back at an earlier good release (default: the one before current)."""
    rep.stage("starting")
    with rep.step("deploy lock"):
        state = read_state(c, cfg, lock=True, lock_text=lock_text())
    try:
        target = state.get(to) if to else state.previous_good()
        if to and target is None:
            names = ", ".join(r.name for r in state.releases if r.good) or "none"
            raise DeployError(f"no release named {to!r} on this host (good releases: {names})",
                              next_task("releases"))
        if target is None:
            raise DeployError("there is no earlier good release to roll back to",
                              next_task("releases"))
        if not target.good:
            raise DeployError(f"release {target.name} is marked {target.state or 'unfinished'}; "
                              "only good releases can be rolled back to", next_task("releases"))
        if target.name == state.current:
            raise DeployError(f"{target.name} is already the current release", next_task("releases"))
        rep.stage("publishing")
        with rep.step(f"switch current to {target.name}") as st:
            sh(c, switch_script(cfg, target.name) + " && " + restart_script(cfg), what="rolling back")
            st.changed(f"was {state.current or 'nothing'}")
        with rep.step("health check") as st:
            health = health_check(c, cfg)
            if not health.ok:
                raise DeployError(f"{target.name} answers {health.status or 'nothing'} after the rollback",
                                  next_task("logs"), health.body + "\n" + _tail(journal(c, cfg)))
            st.info(f"{health.status} from {cfg.health.path}")
        rep.stage("finishing")
        with rep.step("log, unlock"):
            sh(c, log_line(cfg, target.name, f"rollback from {state.current}") + "\n"
               + f"rm -rf {q(cfg.layout.base_dir)}/.deploy-lock", what="finishing the rollback")
        return target.name
    except BaseException:
        try:
            sh(c, log_line(cfg, to or "-", "rollback failed") + "\n"
               + f"rm -rf {q(cfg.layout.base_dir)}/.deploy-lock", check=False)
        except Exception:
            pass
        raise
