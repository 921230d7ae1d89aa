"""The release flow as Capistrano's named stages over one `DeployContext`, printed as they run:

    starting    take the deploy lock (cfg.layout.lock_dir, toolkit/lock.py; one left by a dead
                process of this machine is taken over)
    updating    read the host's releases (unless the context has them already); put back the
                newest good release if `current` was never verified (an interrupted deploy:
                `restore_unverified`); package the app
                and upload it as a new release with the server wheel; make or reuse the venv for
                this requirements hash; check the app imports; Django: migrate, collectstatic
    publishing  note the live release in the lock, switch `current` atomically, restart the
                service, health-check through nginx
                from the host itself with the real Host header, then restart the [processes]
                units (a rollback restarts them too) and check they stay up: one that exits
                or crash-loops fails the release like a failed health check
    finishing   mark the release good, prune old releases and venvs, log (toolkit/audit.py), unlock

Hooks run before and after each stage (`ctx.hooks.after("starting", fn)`, `fn(ctx)`): the deploy
task provisions the host after starting (under the lock) and finishes nginx before publishing.
A hook or stage may end the flow early with `ctx.finished = True` (a dry run, an unchanged
release). "before publishing" hooks run whenever the flow gets there, even when nothing is
published: they finish what the release must not go live without.

If the new release fails before the switch, nothing live was touched. If it fails after (the
health check), `current` goes back to the previous good release and the service is restarted:
with socket activation, requests wait in the socket's backlog meanwhile instead of failing.
Either way the release is marked failed (never counted, never rolled back to), the reason is
shown with the service's journal, and the task exits non-zero. With no good release to go back
to (a first deploy), the app's socket is stopped, so nginx answers its 503 page at once, and
its [processes] with it.
Ctrl-C is a failure like any other: the same recovery runs (a second Ctrl-C meanwhile is
ignored) before the task exits. A deploy killed outright leaves `current` unverified (no
`.good`) and its lock behind: the next deploy, rollback or status takes the lock over and
puts the newest good release back. `rollback()` is the short flow that points `current` at an
earlier good release.

Every remote step has a timeout that names the step when it expires; the long ones (pip, the
import check, migrate, collectstatic) run `stoppable`, so they end on the host with us.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field

from toolkit import audit, lock, packaging, process_units, shared_paths
from toolkit import release_commands as cmds
from toolkit.errors import DeployError, LockHeld, next_task
from toolkit.interrupted import RESTART_TIMEOUT, no_interrupts, report_take_over, restore_unverified, stop_the_app
from toolkit.releases import HostReleases, new_release_name, prune_plan, read_releases
from toolkit.remote import q, sh, split_sections

STAGES = ("starting", "updating", "publishing", "finishing")


class Hooks:
    """Functions run before or after a named stage, in the order they were added."""

    def __init__(self):
        self._hooks = defaultdict(list)

    def before(self, stage: str, fn) -> None:
        self._add("before", stage, fn)

    def after(self, stage: str, fn) -> None:
        self._add("after", stage, fn)

    def _add(self, when: str, stage: str, fn) -> None:
        if stage not in STAGES:
            raise ValueError(f"no stage {stage!r}: the stages are {', '.join(STAGES)}")
        self._hooks[when, stage].append(fn)

    def run(self, when: str, stage: str, ctx) -> None:
        for fn in self._hooks[when, stage]:
            fn(ctx)
            if ctx.finished:
                return


@dataclass
class Outcome:
    release: str
    changed: bool  # False: the host already ran this exact release


@dataclass
class DeployContext:
    """Everything one deploy to one host knows, filled in as the stages run."""

    c: object  # the Fabric Connection
    cfg: object
    rep: object
    dry: bool = False
    force: bool = False
    wheel_future: object = None  # a Future of packaging.server_wheel(), built meanwhile
    hooks: Hooks = field(default_factory=Hooks)
    lock_text: str = ""  # the lock we hold ("" : none, e.g. a dry run)
    recorded_previous: str = ""  # the live release a dead deploy noted in the lock we took over
    releases: HostReleases | None = None  # the host's releases, read by whoever comes first
    release: str = ""  # the new release's name
    release_stamp: str = ""  # its name on every host of a rolling deploy ("": the time now)
    package: packaging.Package | None = None
    wheel: object = None  # Path of the server wheel
    vhash: str = ""
    switched: float = 0.0  # when `current` was switched to the new release (0: not yet)
    processes_restarted: bool = False  # the [processes] units run the new release
    unchanged: bool = False  # the host already runs this exact code
    # provisioning changed shared/.env or pronghorn.conf.py (roles/app_env.settings_changed):
    # an unchanged release is restarted onto them
    settings_changed: bool = False
    finished: bool = False  # stop after this stage or hook
    stage: str = ""  # the stage running
    outcome: Outcome | None = None
    # Django's migrate in updating: off on every app host of a rolling deploy but the first
    # (toolkit/rolling.py: migrations run once, before any host is switched)
    migrate: bool = True


def run(ctx: DeployContext, stages: tuple = STAGES) -> Outcome | None:
    """Run the stages with their hooks. A failure once the release is under way (updating and
    after) is recovered from (`recover`) before it goes on up. `stages`: some of them, in order,
    for a rolling deploy that runs each stage across the hosts before the next (toolkit/rolling.py);
    the context carries what the earlier ones found."""
    for stage in stages:
        ctx.stage = stage
        try:
            ctx.hooks.run("before", stage, ctx)
            STAGE_FUNCTIONS[stage](ctx)
            if not ctx.finished:
                ctx.hooks.run("after", stage, ctx)
        except BaseException as exc:
            if ctx.lock_text:
                recover(ctx, exc)
            raise
        if ctx.finished:
            break
    return ctx.outcome


def starting(ctx: DeployContext) -> None:
    rep = ctx.rep
    rep.stage("starting")
    with rep.step("deploy lock") as st:
        if ctx.dry:
            holder = lock.show(ctx.c, ctx.cfg)
            st.info("not taken in a dry run" + (f"; held by {holder.describe()}" if holder else ""))
        else:
            taken = lock.acquire(ctx.c, ctx.cfg)
            ctx.lock_text, ctx.recorded_previous = taken.text, taken.previous
            report_take_over(ctx.c, ctx.cfg, st, taken)


def updating(ctx: DeployContext) -> None:
    rep, cfg = ctx.rep, ctx.cfg
    rep.stage("updating")
    if ctx.releases is None:
        with rep.step("read the releases") as st:
            ctx.releases = read_releases(ctx.c, cfg)
            st.info(f"live: {ctx.releases.current or 'none yet'}")
    state = ctx.releases
    if not ctx.dry:
        restore_unverified(ctx.c, cfg, rep, state, ctx.recorded_previous)
    ctx.release = new_release_name({r.name for r in state.releases}, ctx.release_stamp)
    with rep.step("package the app") as st:
        ctx.package = packaging.package_source(cfg, cmds.rel(cfg.layout.release_dir(ctx.release),
                                                               cfg.layout.base_dir))
        st.info(f"{ctx.package.files} files, {len(ctx.package.tar) // 1024} KiB"
                + (f"; left out as secret-like ([source] include uploads one): {', '.join(ctx.package.left_out)}"
                   if ctx.package.left_out else ""))
    with rep.step("server wheel") as st:
        ctx.wheel = ctx.wheel_future.result() if ctx.wheel_future is not None else packaging.server_wheel()
        st.info(ctx.wheel.name)
    reqs = packaging.requirements(cfg)
    if not state.python_version:
        raise DeployError(f"{cfg.python} ([app] python in deploy.toml) is missing on the host",
                          f"install it there (apt-get install {cfg.python} {cfg.python}-venv) "
                          'or set [app] python = "python3"')
    ctx.vhash = packaging.venv_hash(reqs.text, ctx.wheel.read_bytes(), state.python_version, cfg.python,
                                    cfg.app_path)
    current = state.get(state.current)
    if (not ctx.force and current and current.good and current.source_sha == ctx.package.sha256
            and current.venv == ctx.vhash and ctx.vhash in state.venvs):
        ctx.unchanged = True
        ctx.release = state.current
        return
    _upload(ctx)
    _virtualenv(ctx, reqs)
    if not ctx.dry:
        _check_the_app(ctx)


def _upload(ctx: DeployContext) -> None:
    cfg, state = ctx.cfg, ctx.releases
    with ctx.rep.step(f"upload releases/{ctx.release}") as st:
        # Every build of the server has the same wheel file name; the folder is its source hash.
        key = packaging.wheel_key(ctx.wheel)
        st.changed(f"{ctx.package.files} files" + ("" if key in state.wheels else " + server wheel"))
        if not ctx.dry:
            tar = ctx.package.tar
            if key not in state.wheels:
                tar = packaging.with_wheel(tar, ctx.wheel, cmds.rel(cfg.layout.wheel_path(key),
                                                                    cfg.layout.base_dir))
            sh(ctx.c, cmds.upload_script(cfg, ctx.release, ctx.package.sha256, ctx.vhash), stdin=tar,
               what="uploading the release", timeout=600)


def _virtualenv(ctx: DeployContext, reqs) -> None:
    cfg = ctx.cfg
    with ctx.rep.step("virtualenv") as st:
        if ctx.vhash in ctx.releases.venvs:
            st.info(f"reused venvs/{ctx.vhash}")
            return
        st.changed(f"new venvs/{ctx.vhash} (requirements or server changed)")
        if ctx.dry:
            return
        script = cmds.venv_script(cfg, ctx.vhash, ctx.release, packaging.wheel_key(ctx.wheel), bool(reqs.text),
                                  hashed=reqs.hashed, pip_file=reqs.pip_file)
        result = sh(ctx.c, script, check=False, timeout=900, stoppable=True,
                    what="installing the requirements (pip)")
        if not result.ok:
            output = cmds.pip_errors(result.stdout + result.stderr)
            raise DeployError(f"installing the requirements failed (pip exited {result.exited}): "
                              "nothing was switched, the site still runs the previous release",
                              f"fix {cfg.requirements} as pip's error above says, then deploy again: "
                              + next_task("deploy"),
                              output or "(pip printed nothing)")


def _check_the_app(ctx: DeployContext) -> None:
    rep, cfg, c = ctx.rep, ctx.cfg, ctx.c
    release_dir = cfg.layout.release_dir(ctx.release)
    # Data the release must not keep inside itself (sqlite, uploads) is linked to shared/
    # first: the import check may already open it.
    static = shared_paths.link_release(ctx)
    with rep.step("app imports") as st:
        result = sh(c, cmds.import_check_cmd(cfg, release_dir), check=False, timeout=300, stoppable=True,
                    what="the import check")
        if not result.ok:
            raise DeployError(f"the new release cannot load {cfg.wsgi}: nothing was switched, "
                              "the site still runs the previous release",
                              "fix the error shown above, then deploy again",
                              _tail(result.stdout + result.stderr))
        st.info(cfg.wsgi)
    if cfg.framework == "django" and cfg.django:
        if cfg.django.migrate and ctx.migrate:
            with rep.step("django migrate") as st:
                out = sh(c, cmds.django_cmd(cfg, release_dir, "migrate", "--noinput"),
                         what="manage.py migrate", timeout=900, stoppable=True).stdout
                if "Applying" in out:
                    st.changed(f"{out.count('Applying')} migration(s) applied")
        if cfg.django.collectstatic:
            with rep.step("django collectstatic") as st:
                st.info(_collectstatic(ctx, static))


def _collectstatic(ctx: DeployContext, plan) -> str:
    """collectstatic as the app user into a folder of its own, then copied by root into the
    root-owned release at STATIC_ROOT (release_commands.collectstatic_script)."""
    cfg = ctx.cfg
    out = sh(ctx.c, cmds.collectstatic_script(cfg, ctx.release), what="manage.py collectstatic",
             timeout=600, stoppable=True).stdout
    relative = cmds.static_root_in_release(cfg, ctx.release, split_sections(out, strip=True),
                                           unset=plan.collect_into if plan else "")
    sh(ctx.c, cmds.publish_static_script(cfg, ctx.release, relative), what="copying the static files")
    return f"into {relative}/"


def publishing(ctx: DeployContext) -> None:
    rep, cfg, c = ctx.rep, ctx.cfg, ctx.c
    if ctx.unchanged:
        with rep.step("release") as st:
            st.info(f"unchanged: {ctx.release} already runs this code (--force deploys anyway)")
        if ctx.settings_changed and not ctx.dry:
            # The environment is read when a process starts: without this, a secret changed in
            # deploy.toml or the local environment is written to .env and the app keeps the old one.
            rep.stage("publishing")
            restart_checked(c, cfg, rep, "the app does not answer with its new settings (shared/.env or "
                            "pronghorn.conf.py, changed by this deploy)",
                            "fix the value in deploy.toml or the local environment, then deploy again: "
                            + next_task("deploy"))
        return
    if ctx.dry:
        rep.line("  (dry run: stops before running the new release)")
        ctx.outcome, ctx.finished = Outcome(ctx.release, changed=True), True
        return
    rep.stage("publishing")
    with rep.step("switch current") as st:
        ctx.switched = time.time()
        # Noted first: a deploy killed from here on leaves in its lock what to put back.
        sh(c, lock.record_previous_script(cfg.layout, ctx.releases.current) + " && "
           + cmds.switch_script(cfg, ctx.release), what="switching current", timeout=60)
        st.changed(f"current -> releases/{ctx.release}")
    with rep.step("restart the app") as st:
        st.changed(cfg.layout.unit_name)
        result = sh(c, cmds.restart_script(cfg), check=False, timeout=RESTART_TIMEOUT,
                    what=f"restarting {cfg.layout.unit_name}")
        if not result.ok:
            # Type=notify: systemctl returns an error when the server exits instead of
            # reporting READY (e.g. the app fails to import under the server).
            raise DeployError(f"the new release did not start ({cfg.layout.unit_name} failed)",
                              "see the journal shown above; fix it, then deploy again",
                              _tail(result.stdout + result.stderr, 5))
    with rep.step("health check") as st:
        health = cmds.health_check(c, cfg)
        if not health.ok:
            raise DeployError(f"health check of {'https' if cfg.tls.enabled else 'http'}://"
                              f"{cmds.health_host(cfg)}{cfg.health.path} failed: "
                              f"got {health.status or 'no answer'}, expected {cfg.health.expect}",
                              "see the reason shown above; fix it, then deploy again",
                              "response body (first lines):\n" + _tail(health.body, 10))
        st.info(f"{health.status} from {cfg.health.path}")
    # Set first: a process that fails to start or to stay up is put back with the web process.
    ctx.processes_restarted = True
    restart_processes(ctx.c, cfg, ctx.rep)


def restart_checked(c, cfg, rep, failure: str, next_step: str) -> cmds.Health:
    """Restart the web unit (requests wait in its socket), health-check it, then move the
    [processes] onto the same environment (`invoke restart`, `env.set`). A failed check raises
    DeployError(`failure` + what it answered, `next_step`) with the journal."""
    with rep.step(f"restart {cfg.layout.unit_name}") as st:
        sh(c, cmds.restart_script(cfg), what=f"systemctl restart {cfg.layout.unit_name}", check=False,
           timeout=RESTART_TIMEOUT)
        st.changed()
    with rep.step("health check") as st:
        health = cmds.health_check(c, cfg)
        if not health.ok:
            raise DeployError(f"{failure}: the app answers {health.status or 'nothing'}", next_step,
                              health.body + "\n" + cmds.journal(c, cfg))
        st.info(f"{health.status} from {cfg.health.path}")
    restart_processes(c, cfg, rep)
    return health


def restart_processes(c, cfg, rep) -> None:
    """The [processes] units onto the live release, once it answered its health check (a deploy,
    a rollback): a worker never runs code the web process refused."""
    script = cmds.processes_restart_script(cfg)
    if not script:
        return
    names = sorted(cfg.processes) + sorted(cfg.schedules)
    with rep.step("restart the processes") as st:
        result = sh(c, script, check=False, timeout=RESTART_TIMEOUT, what="restarting the app's processes")
        if not result.ok:
            raise DeployError("the app's processes or timers did not start on the new release",
                              "see why with " + next_task("logs", "--process", names[0])
                              + "; fix it, then deploy again", _tail(result.stdout + result.stderr, 10))
        st.changed(", ".join(sorted(cfg.processes)) + (f" (timers: {', '.join(sorted(cfg.schedules))})"
                                                        if cfg.schedules else ""))
    check_processes_stay_up(c, cfg, rep)


class ProcessDown(DeployError):
    """A [processes] unit did not stay up; the web server itself passed its health check (so its
    journal is left out of the report: the process's is the one that says why)."""


def check_processes_stay_up(c, cfg, rep) -> None:
    """A process that exits, or that systemd restarts (Restart=always), within SETTLE_SECONDS of
    its restart fails the deploy with its journal: `active` alone would hide a crash loop."""
    from toolkit import process_status

    command = process_status.settle_command(cfg)
    if not command:
        return
    with rep.step("processes stay up") as st:
        shown = process_status.parse(sh(c, command, check=False, timeout=60 + process_status.SETTLE_SECONDS,
                                        what="watching the app's processes").stdout)
        failing = process_status.not_staying_up(cfg, shown)
        if failing:
            name = failing[0][0]
            log = sh(c, process_status.journal_command(cfg, name), check=False, timeout=60,
                     what="reading the process's journal").stdout
            raise ProcessDown("the app's process " + ", ".join(f"{n} did not stay up ({what})" for n, what in failing)
                              + "; see why, fix it, then deploy again", next_task("logs", "--process", name),
                              f"journalctl -u {process_status.process_unit(cfg.name, name)}:\n" + _tail(log, 20))
        st.info(f"{', '.join(sorted(cfg.processes))}: up for {process_status.SETTLE_SECONDS} s")


def finishing(ctx: DeployContext) -> None:
    rep, cfg = ctx.rep, ctx.cfg
    if ctx.unchanged:
        if ctx.lock_text:  # none in a dry run, which writes nothing
            sh(ctx.c, audit.append_script(cfg.layout, "deploy", ctx.release, "unchanged") + "\n"
               + lock.release_if_ours_script(cfg.layout, ctx.lock_text), what="finishing", timeout=60)
            ctx.lock_text = ""
        ctx.outcome = Outcome(ctx.release, changed=False)
        return
    rep.stage("finishing")
    with rep.step("mark good, prune") as st:
        delete, venvs = _prune_plan(ctx)
        sh(ctx.c, cmds.finish_script(cfg, ctx.release, delete, venvs, "ok",
                                     keep_wheel=packaging.wheel_key(ctx.wheel), lock_text=ctx.lock_text),
           what="finishing the release", timeout=300)
        ctx.lock_text = ""
        if delete or venvs:
            st.info(f"removed {len(delete)} old release(s), {len(venvs)} venv(s)")
    ctx.outcome = Outcome(ctx.release, changed=True)


def _prune_plan(ctx: DeployContext):
    return prune_plan(ctx.releases, ctx.release, ctx.cfg.keep_releases, new_venv=ctx.vhash)


def recover(ctx: DeployContext, exc: BaseException) -> None:
    """After a failure or Ctrl-C: put the previous good release back if we switched (with no
    good release, stop the app's socket), mark ours failed, log, unlock. Adds the journal and
    what happened to the error. A second Ctrl-C meanwhile is ignored: stopping half way
    would leave the site on the release that failed."""
    with no_interrupts():
        notes = _recover(ctx, exc)
    if isinstance(exc, DeployError):
        exc.details = "\n".join(filter(None, [exc.details] + notes))
    elif isinstance(exc, KeyboardInterrupt):
        ctx.rep.line("  interrupted: " + ("; ".join(n for n in notes if "\n" not in n) or "lock released"))
    elif isinstance(exc, Exception):
        exc.args = (str(exc) + ("\n" + "\n".join(notes) if notes else ""),)


def _recover(ctx: DeployContext, exc: BaseException) -> list[str]:
    c, cfg, rep, state = ctx.c, ctx.cfg, ctx.rep, ctx.releases
    release = "" if ctx.unchanged else ctx.release
    notes = []
    try:
        if ctx.switched:
            # The journal first: after the rollback it fills with the old release's lines.
            log = "" if isinstance(exc, ProcessDown) else cmds.journal(c, cfg, 30, since=ctx.switched)
            previous = state.get(state.current)
            if previous and previous.good:
                with rep.step(f"roll back to {previous.name}") as st:
                    sh(c, cmds.switch_script(cfg, previous.name) + " && " + cmds.restart_script(cfg),
                       what="rolling back", timeout=RESTART_TIMEOUT)
                    st.changed(f"current -> releases/{previous.name}")
                    if ctx.processes_restarted:  # back onto the old release with the web process
                        sh(c, cmds.processes_restart_script(cfg), check=False, timeout=RESTART_TIMEOUT,
                           what="restarting the app's processes")
                    health = cmds.health_check(c, cfg, timeout=min(cfg.health.timeout, 30))
                    notes.append(f"rolled back to {previous.name}: "
                                 + ("it answers again" if health.ok else
                                    f"but it answers {health.status or 'nothing'} too"))
            else:
                stop_the_app(c, cfg, rep)
                notes.append("there is no previous good release to roll back to: "
                             f"{cfg.layout.socket_unit_name} is stopped, so the site answers 503 at once")
                names = " ".join(q(u) for u in process_units.process_units(cfg))
                if ctx.processes_restarted and names:  # nor may the processes run the failed release
                    sh(c, f"systemctl stop {names}", check=False, timeout=RESTART_TIMEOUT,
                       what="stopping the app's processes")
                    notes.append("its processes are stopped too")
            if log:
                notes.append("journalctl -u " + cfg.layout.unit_name + ":\n" + log)
        result = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed" if release else "aborted"
        sh(c, cmds.fail_script(cfg, release or "-", result, ctx.lock_text),
           what="recording the failure", timeout=60)
        ctx.lock_text = ""
    except Exception as cleanup_exc:  # the original error matters more; mention this one
        notes.append(f"(cleaning up also failed: {cleanup_exc}; "
                     f"the lock may remain: {next_task('lock.release')})")
    return notes


def rollback(c, cfg, rep, to: str | None = None) -> str:
    """Point `current` back at an earlier good release (default: the one before current; when
    current was never verified, the release an interrupted deploy replaced)."""
    rep.stage("starting")
    text = lock.lock_text()
    with rep.step("deploy lock") as st:
        state, taken = _lock_and_read(c, cfg, text)
        report_take_over(c, cfg, st, taken)
    try:
        live = state.get(state.current)
        if not to and state.current and not (live and live.good):
            rep.stage("publishing")
            restored = restore_unverified(c, cfg, rep, state, taken.previous)
            if restored:
                lock.release_if_ours(c, cfg, text)
                return restored
        target = _rollback_target(state, to)
        rep.stage("publishing")
        with rep.step(f"switch current to {target.name}") as st:
            sh(c, cmds.switch_script(cfg, target.name) + " && " + cmds.restart_script(cfg),
               what="rolling back", timeout=RESTART_TIMEOUT)
            st.changed(f"was {state.current or 'nothing'}")
        with rep.step("health check") as st:
            health = cmds.health_check(c, cfg)
            if not health.ok:
                raise DeployError(f"{target.name} answers {health.status or 'nothing'} after the rollback",
                                  next_task("logs"), health.body + "\n" + _tail(cmds.journal(c, cfg)))
            st.info(f"{health.status} from {cfg.health.path}")
        restart_processes(c, cfg, rep)
        rep.stage("finishing")
        with rep.step("log, unlock"):
            sh(c, audit.append_script(cfg.layout, "rollback", target.name, f"ok, from {state.current or '-'}")
               + "\n" + lock.release_if_ours_script(cfg.layout, text), what="finishing the rollback", timeout=60)
        return target.name
    except BaseException:
        with no_interrupts():
            try:
                sh(c, audit.append_script(cfg.layout, "rollback", to or "-", "failed") + "\n"
                   + lock.release_if_ours_script(cfg.layout, text), check=False, timeout=60)
            except Exception:
                pass
        raise


def _lock_and_read(c, cfg, text: str):
    """The host's releases with the lock taken in the same round trip; a lock left by a dead
    process of this machine is taken over. Returns (HostReleases, lock.Taken)."""
    try:
        return read_releases(c, cfg, take_lock_text=text), lock.Taken(text)
    except LockHeld as exc:
        holder = getattr(exc, "holder", None)
        if holder is None or not holder.dead():
            raise
    taken = lock.take_over(c, cfg, holder, text)
    return read_releases(c, cfg), taken


def _rollback_target(state: HostReleases, to: str | None):
    target = state.get(to) if to else state.previous_good()
    if to and target is None:
        names = ", ".join(r.name for r in state.releases if r.good) or "none"
        raise DeployError(f"no release named {to!r} on this host (good releases: {names})",
                          next_task("releases"))
    if target is None:
        raise DeployError("there is no earlier good release to roll back to", next_task("releases"))
    if not target.good:
        raise DeployError(f"release {target.name} is marked {target.state or 'unfinished'}; "
                          "only good releases can be rolled back to", next_task("releases"))
    if target.name == state.current:
        raise DeployError(f"{target.name} is already the current release", next_task("releases"))
    return target


STAGE_FUNCTIONS = {"starting": starting, "updating": updating, "publishing": publishing,
                   "finishing": finishing}


def _tail(text: str, lines: int = 25) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])
