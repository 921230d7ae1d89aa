"""What a release runs on the host, one function per command: unpack the upload, build the
venv, run something as the app user in its environment (import check, Django's manage.py),
switch `current`, restart, health check, read the journal, write the deploy log, and the
finishing / failure bookkeeping. Every path comes from `cfg.layout`; the Python programs run
there are the files of toolkit/onhost (see its docstring for how they get there).
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from toolkit import audit, lock, onhost, privilege, process_units
from toolkit.errors import DeployError
from toolkit.remote import q, sh

HEALTH_GIVE_UP_AFTER_SAME = 5  # identical non-gateway answers in a row: the app really says so


def rel(path: str, start: str) -> str:
    """`path` relative to `start` (symlinks on the host are relative, so the tree can move)."""
    return os.path.relpath(path, start)


# -- updating -----------------------------------------------------------------------------------

def upload_script(cfg, release: str, source_sha: str, vhash: str) -> str:
    """Unpack the tar on stdin into the app's folder (its files root's, in the app's group: see
    packaging.package_dir), record the source hash, link the venv, open the static folders."""
    layout = cfg.layout
    rdir = layout.release_dir(release)
    return "\n".join([
        "set -e",
        "umask 027",
        f"tar -xzf - -C {q(layout.base_dir)} --same-owner --same-permissions --no-overwrite-dir",
        f"install -d -m 750 -o root -g {q(cfg.name)} {q(rdir)}",
        f"echo {q(source_sha)} > {q(rdir)}/.source-sha256 && chgrp {q(cfg.name)} {q(rdir)}/.source-sha256",
        f"ln -sfn {q(rel(layout.venv_dir(vhash), rdir))} {q(rdir)}/.venv",
        # A venv reused from an older toolkit (built by root, 0644): closed like a new one.
        f"if [ -f {q(layout.venv_dir(vhash))}/.complete ]; then {privilege.seal_tree(layout.venv_dir(vhash), cfg.name)}; fi",
        static_modes_script(cfg, release),
    ])


def static_modes_script(cfg, release: str) -> str:
    """Let nginx read the release's [static] folders (onhost/open_static.py, as root)."""
    folders = sorted({d.strip("/") for d in cfg.static.values()})
    if not folders:
        return "true"
    argv = ["python3", "-c", onhost.program("open_static"), cfg.layout.release_dir(release), *folders]
    return " ".join(shlex.quote(a) for a in argv)


BUILD_COPY = "/tmp/release"  # in the build service's PrivateTmp
APP_PATH_PTH = "_pronghorn_app_path.pth"  # in a venv of a src/ layout app: current/src


def venv_script(cfg, vhash: str, release: str, wheel_name: str, has_requirements: bool,
                hashed: bool = False, pip_file: str = "") -> str:
    """Make the venv in place (shebangs hold its path, so it cannot be built elsewhere and
    moved); `.complete` is written last, so an interrupted build is redone, never reused.
    pip's messages (stdout and stderr) come out on stdout, in order.

    pip runs as the app's build user (privilege.build_user), never root: an sdist's build
    backend runs code. It runs as a transient systemd service (systemd-run) so that it can
    write nothing but the venv (ProtectSystem=strict), and nothing it started outlives it; the
    venv is then sealed (root's, read-only for the app's group). Requirements with hashes are
    installed with --require-hashes (the server wheel then goes in by a second pip run: it has
    no hash line).

    `pip_file`: the list pip reads, relative to the release (default [app] requirements; a list
    made from pyproject.toml or a lock file is lockfiles.GENERATED). With a src/ layout
    (cfg.app_path) the venv gets a .pth naming `current/src`, so every Python of the app (the
    server, [processes], `invoke run`) imports the live release's code; the import check of a
    release not yet live puts its own src first (as_app).

    Debian and Ubuntu ship pip as a wheel for ensurepip (/usr/share/python-wheels); running
    pip straight from it into a venv made --without-pip skips ensurepip's pip install, which
    takes seconds. Hosts without it get a venv with its own pip.
    """
    layout, app = cfg.layout, q(cfg.name)
    venv, builder = layout.venv_dir(vhash), q(privilege.build_user(cfg.name))
    base = ["install", "-q", "--disable-pip-version-check", "--no-input"]
    wheel = q(layout.wheel_path(wheel_name))
    reqs = q(f"{BUILD_COPY}/{pip_file or cfg.requirements}")
    if has_requirements and hashed:
        installs = [base + ["--require-hashes", "-r", reqs], base + [wheel]]
    else:
        installs = [base + (["-r", reqs] if has_requirements else []) + [wheel]]
    pip_runs = " && ".join("$pip " + " ".join(args) for args in installs)
    if cfg.app_path:
        # Named through `current`, not this release: the venv is shared by later releases.
        pth = q(f"{layout.current_dir}/{cfg.app_path}")
        site = f"$({q(venv)}/bin/python -c 'import sys, sysconfig; print(sysconfig.get_path(sys.argv[1]))' purelib)"
        pip_runs += f' && echo {pth} > "{site}/{APP_PATH_PTH}"'
    python, v = shlex.quote(cfg.python), q(venv)
    # pip builds a local package (./pkg, -e .) in its own folder, so it builds in a private
    # copy of the release (in the service's own /tmp): the release itself stays read-only.
    build = (f'set -e; cp -R {q(layout.release_dir(release))} {BUILD_COPY}; cd {BUILD_COPY}; '
             f'if [ -n "$W" ]; then {python} -m venv --without-pip {v}; pip="{v}/bin/python $W/pip"; '
             f'else {python} -m venv {v}; pip="{v}/bin/pip"; fi; {pip_runs}')
    return "\n".join([
        "set -e",
        "exec 2>&1",
        f"getent passwd {builder} >/dev/null || useradd --system --gid {app} --no-create-home "
        f"--home-dir /nonexistent --shell /usr/sbin/nologin --comment {q('pronghorn venv builder')} {builder}",
        f"rm -rf {v}",
        f"install -d -m 750 -o {builder} -g {app} {v}",
        "w=$(ls /usr/share/python-wheels/pip-*.whl 2>/dev/null | tail -n 1)",
        # Our channel closing (a timeout, Ctrl-C, a killed deploy) hangs up this shell, but the
        # transient service is systemd's child, not ours: the trap stops it by name. `wait` lets
        # the trap run at once (a foreground command would hold it back).
        f"unit=pronghorn-venv-{vhash}-$$",
        "trap 'systemctl stop \"$unit\" 2>/dev/null; exit 129' HUP",
        'systemd-run --unit="$unit" --quiet --wait --pipe --collect --service-type=exec '
        f"-p User={builder} -p Group={app} -p UMask=0027 -p NoNewPrivileges=yes -p PrivateTmp=yes "
        f"-p ProtectSystem=strict -p ProtectHome=yes -p ReadWritePaths={v} "
        f"-p WorkingDirectory={q(layout.release_dir(release))} "
        "-E HOME=/tmp -E PIP_NO_CACHE_DIR=1 -E W=\"$w\" "
        f"-- sh -c {q(build)} & wait $! || failed=$?",
        # Root's again even when pip failed (a failed venv is removed, never left to its builder).
        privilege.seal_tree(venv, cfg.name),
        f'if [ -n "${{failed:-}}" ]; then rm -rf {v}; exit "$failed"; fi',
        f"install -m 640 -o root -g {app} /dev/null {v}/.complete",
    ])


def requirements_hashed(requirements: bytes) -> bool:
    """True when the requirements pin hashes (pip's --hash=): then every one must have one."""
    return b"--hash=" in requirements


def pip_errors(output: str, lines: int = 25) -> str:
    """What to show of pip's output when it failed: its ERROR lines and what leads to them,
    without the notices and "ignored location" warnings."""
    kept = [line for line in output.strip().splitlines()
            if line.strip() and not line.startswith("[notice]")
            and not (line.startswith("WARNING: Location ") and "is ignored" in line)]
    return "\n".join(kept[-lines:])


def as_app(cfg, release_dir: str, *argv: str) -> str:
    """A command line running `argv` in `release_dir` as the app user, with shared/.env loaded."""
    python = f"{release_dir}/.venv/bin/python"
    inner = [python, "-c", onhost.program("env_exec"), cfg.layout.env_file, *argv]
    if cfg.app_path:
        # This release's src/ before the venv's .pth (which names the live release's).
        inner = ["env", f"PYTHONPATH={release_dir}/{cfg.app_path}", *inner]
    return (f"cd {q(release_dir)} && runuser -u {q(cfg.name)} -- "
            + " ".join(shlex.quote(a) for a in inner) + " 2>&1")


def import_check_cmd(cfg, release_dir: str) -> str:
    python = f"{release_dir}/.venv/bin/python"
    return as_app(cfg, release_dir, python, "-c", onhost.program("import_check"), cfg.wsgi)


def django_cmd(cfg, release_dir: str, *args: str) -> str:
    python = f"{release_dir}/.venv/bin/python"
    return as_app(cfg, release_dir, python, "manage.py", *args)


def static_build_dir(cfg, release: str) -> str:
    """Where collectstatic writes as the app user: a folder of its own in the root-owned app
    folder (not /tmp, where anyone could have made the name first)."""
    return f"{cfg.layout.base_dir}/.static-{release}"


def collectstatic_script(cfg, release: str) -> str:
    """Run collectstatic as the app user into static_build_dir (onhost/collectstatic.py); its
    output ends with `@@static_root` and `@@cwd` sections (read by static_root_in_release)."""
    rdir, tmp = cfg.layout.release_dir(release), static_build_dir(cfg, release)
    python = f"{rdir}/.venv/bin/python"
    return "\n".join([
        "set -e",
        f"rm -rf {q(cfg.layout.base_dir)}/.static-*",  # left by an interrupted deploy
        f"install -d -m 700 -o {q(cfg.name)} -g {q(cfg.name)} {q(tmp)}",
        as_app(cfg, rdir, python, "-c", onhost.program("collectstatic"), cfg.django.settings, tmp),
    ])


def static_root_in_release(cfg, release: str, sections: dict, unset: str = "") -> str:
    """The release's STATIC_ROOT folder, relative to it, from collectstatic_script's output
    (`unset`: the absolute folder to use when the settings leave STATIC_ROOT empty); DeployError
    when there is none or it is outside the release (root copies files there)."""
    static_root = "".join(sections.get("static_root", [])).strip() or unset
    cwd = "".join(sections.get("cwd", [])).strip()
    fix = ('set STATIC_ROOT = BASE_DIR / "staticfiles" in your settings (and [static] '
           '"/static/" = "staticfiles" in deploy.toml if you changed it), then deploy again')
    if not static_root:
        raise DeployError("Django's STATIC_ROOT is not set, so collectstatic has nowhere to write", fix)
    inside = None
    for base in filter(None, {cwd, cfg.layout.release_dir(release)}):
        relative = os.path.relpath(os.path.normpath(static_root), base)
        if os.path.isabs(static_root) and relative != "." and not relative.startswith(".."):
            inside = relative
    if inside is None:
        raise DeployError(f"Django's STATIC_ROOT is {static_root}, outside the release folder: the "
                          "toolkit collects static files into the release, where nginx serves them", fix)
    return inside


def publish_static_script(cfg, release: str, relative: str) -> str:
    """Copy what collectstatic wrote into the release at `relative` (STATIC_ROOT), root's.

    The copy is read by the app user (`tar -h` as the app: a link it made yields only what it
    could read anyway) and written by root into the root-owned release, so root opens nothing
    the app could have swapped; then the build folder goes."""
    rdir, tmp, app = cfg.layout.release_dir(release), static_build_dir(cfg, release), q(cfg.name)
    parts = relative.split("/")
    chain = [f"{rdir}/{'/'.join(parts[:i + 1])}" for i in range(len(parts))]
    dest = chain[-1]
    return "\n".join(
        ["set -e"]
        + [privilege.refuse_link_script(p, "STATIC_ROOT in the release") + "\n"
           f"[ -d {q(p)} ] || install -d -m 750 -o root -g {app} {q(p)}" for p in chain]
        + [f"runuser -u {app} -- tar -C {q(tmp)} -chf - . | tar -xf - -C {q(dest)} --no-same-owner",
           privilege.seal_tree(dest, cfg.name) + f" && chmod -R g+rX {q(dest)}",  # the app reads it too
           static_modes_script(cfg, release),
           f"rm -rf {q(tmp)}"])


# -- publishing ---------------------------------------------------------------------------------

def switch_script(cfg, release: str) -> str:
    """Point `current` at the release atomically: a new link renamed over the old one."""
    layout = cfg.layout
    current, new = q(layout.current_dir), q(layout.current_dir + ".new")
    target = rel(layout.release_dir(release), layout.base_dir)
    return f"ln -sfn {q(target)} {new} && mv -T {new} {current}"


def restart_script(cfg) -> str:
    """Restart the service; the socket stays, so new connections wait in its backlog.

    reset-failed first: a crashing release may have hit systemd's start limit, which would
    refuse the good release too.
    """
    svc, sock = q(cfg.layout.unit_name), q(cfg.layout.socket_unit_name)
    return (f"systemctl reset-failed {svc} {sock} 2>/dev/null; systemctl start {sock} && "
            f"systemctl restart {svc}")


def processes_restart_script(cfg) -> str:
    """Restart the app's [processes] units onto the release `current` points to now (a worker
    gets TERM and finishes its task within TimeoutStopSec) and start the [schedule] timers (a
    no-op once they run; a first release has them enabled only); "" when the app has neither.
    reset-failed first, as for the web unit: a crash-looping old release must not block it."""
    units = " ".join(q(u) for u in process_units.process_units(cfg))
    timers = " ".join(q(u) for u in process_units.timer_units(cfg))
    script = [f"systemctl reset-failed {units} 2>/dev/null; systemctl restart {units}"] if units else []
    return " && ".join(script + ([f"systemctl start {timers}"] if timers else []))


def health_host(cfg) -> str:
    """The Host header for the health check: the first domain (any name for "_")."""
    domain = cfg.domains[0] if cfg.domains else "_"
    if domain == "_":
        return "localhost"
    return "www." + domain[2:] if domain.startswith("*.") else domain


def health_check_cmd(cfg, timeout: float | None = None, same_limit: int = HEALTH_GIVE_UP_AFTER_SAME) -> str:
    timeout = cfg.health.timeout if timeout is None else timeout
    return " ".join(shlex.quote(a) for a in [
        "python3", "-c", onhost.program("health_check"), health_host(cfg), cfg.health.path,
        str(cfg.health.expect), str(timeout), str(same_limit)] + health_tls_args(cfg))


def health_tls_args(cfg) -> list[str]:
    """With [tls] on, the check goes through nginx's https listener (SNI and Host: the site's
    name); a Let's Encrypt (ACME) certificate is verified, a self-signed one is not, nor the
    user's own (mode = "files": often from a private CA the host itself does not trust; its key
    was matched to it before the upload). letsencrypt: https once certbot's certificate exists
    (until then the site serves http). An app host behind load balancers that end TLS
    (`tls.behind_lb`): http on loopback, saying https in X-Forwarded-Proto as they do, so an app
    that redirects http to https (Django's SECURE_SSL_REDIRECT) answers as it does for visitors."""
    tls = getattr(cfg, "tls", None)
    if tls is not None and getattr(tls, "behind_lb", False):
        return ["127.0.0.1", "80", "forwarded-https", "0"]
    if tls is None or not tls.enabled:
        return []
    scheme = f"https-if:{cfg.layout.letsencrypt_cert}" if tls.mode == "letsencrypt" else "https"
    return ["127.0.0.1", "443", scheme, "1" if tls.mode == "letsencrypt" else "0"]


@dataclass
class Health:
    ok: bool
    status: int
    body: str


def health_check(c, cfg, timeout: float | None = None) -> Health:
    limit = (cfg.health.timeout if timeout is None else timeout) + 30  # the check stops itself first
    result = sh(c, health_check_cmd(cfg, timeout), check=False, timeout=limit, what="the health check")
    lines = result.stdout.splitlines()
    head = (lines[0] if lines else "FAIL 0").split()
    status = int(head[1]) if len(head) > 1 and head[1].isdigit() else 0
    return Health(result.exited == 0, status, "\n".join(lines[1:]).strip())


# What starts each journal line (time, host, name[pid]) and the server's own log prefix
# ([time] [pid] [LEVEL]): left out when comparing lines, so repeats are seen as repeats.
_LINE_PREFIX = re.compile(r"^\S+ \S+ [^:\s]+\[\d+\]: (\[[^\]]*\] \[\d+\] \[[A-Z]+\] )?")


def _message(line: str) -> str:
    return _LINE_PREFIX.sub("", line, count=1)


def _undated(message: str) -> str:
    return re.sub(r"\[\d{4}-\d\d-\d\d [^\]]*\]", "", message)


def without_repeats(lines: list[str]) -> list[str]:
    """Journal lines with each traceback shown once: a later traceback identical to an earlier
    one (the same error for each health-check request) is left out and counted."""
    out, first_end, leads, repeats, i = [], {}, {}, {}, 0
    while i < len(lines):
        if not _message(lines[i]).startswith("Traceback (most recent call last)"):
            out.append(lines[i])
            i += 1
            continue
        end = i + 1
        while end < len(lines) and _message(lines[end])[:1].isspace():
            end += 1
        end = min(end + 1, len(lines))  # the exception's own line ends the traceback
        block = tuple(_message(line) for line in lines[i:end])
        lead = _undated(_message(out[-1])) if out else ""  # e.g. Flask's "Exception on /healthz [GET]"
        if block in first_end:
            repeats[block] = repeats.get(block, 0) + 1
            if lead and lead == leads[block]:
                out.pop()
        else:
            out.extend(lines[i:end])
            first_end[block], leads[block] = len(out), lead
        i = end
    for block, count in sorted(repeats.items(), key=lambda item: -first_end[item[0]]):
        out.insert(first_end[block], f"(the same traceback {count} more time{'s' if count > 1 else ''})")
    return out


def journal(c, cfg, lines: int = 30, since: float | None = None) -> str:
    """The service's last log lines, access-log lines left out (they drown the error), each
    traceback once."""
    window = f"--since @{int(since) - 1}" if since else "-n 400"
    out = sh(c, f"journalctl -u {q(cfg.layout.unit_name)} {window} --no-pager -o short-iso 2>&1 || true",
             check=False, timeout=60, what="reading the journal").stdout
    kept = [line for line in out.splitlines() if '"method":' not in line]
    if since and len(kept) <= 1:  # "-- No entries --": the host's clock may differ from ours
        return journal(c, cfg, lines)
    return "\n".join(without_repeats(kept)[-lines:])


# -- finishing ----------------------------------------------------------------------------------

def log_line(cfg, release: str, result: str, action: str = "deploy") -> str:
    """The shell snippet appending one line to the audit trail (toolkit/audit.py)."""
    return audit.append_script(cfg.layout, action, release, result)


def finish_script(cfg, release: str, delete: list[str], venvs: list[str], result: str,
                  keep_wheel: str = "", lock_text: str = "") -> str:
    """Mark the release good, prune, log, and release the lock if it is ours."""
    layout = cfg.layout
    # umask: a release's files are not for others to read, its markers neither
    lines = [f"(umask 027 && touch {q(layout.release_dir(release))}/.good)"]
    if keep_wheel:
        # Older server wheels are only needed to build venvs, and the kept venvs are built.
        keep = q(keep_wheel.split("/")[0])
        wheels = q(layout.wheels_dir)
        lines.append(f'rm -f {wheels}/*.whl; for d in {wheels}/*/; do [ "$(basename "$d")" = {keep} ] || rm -rf "$d"; done')
    lines += [f"rm -rf {q(layout.release_dir(name))}" for name in delete]
    lines += [f"rm -rf {q(layout.venv_dir(v))}" for v in venvs]
    lines.append(log_line(cfg, release, result))
    if lock_text:
        lines.append(lock.release_if_ours_script(layout, lock_text))
    return "\n".join(lines)


def fail_script(cfg, release: str, result: str, lock_text: str = "") -> str:
    """Mark the release failed (when it got that far), log, release the lock if it is ours."""
    rdir = q(cfg.layout.release_dir(release))
    lines = [f"[ -d {rdir} ] && (umask 027 && touch {rdir}/.failed)", log_line(cfg, release, result)]
    if lock_text:
        lines.append(lock.release_if_ours_script(cfg.layout, lock_text))
    return "\n".join(lines)
