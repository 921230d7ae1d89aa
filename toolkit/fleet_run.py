"""`invoke deploy`, `provision` and `rollback` with deploy.toml [hosts]: each host worked on by its
roles, the app hosts rolled through the load balancers (toolkit/rolling.py).

    deploy     read every host's private address (toolkit/fleet.py); provision the other hosts
               picked (database, load balancers) at once; then the rolling deploy of the app
               hosts picked: `StageMember` runs a host's toolkit/stages.py stages phase by phase,
               `NginxBalancer` marks hosts down in the load balancers' upstream and waits for
               their old nginx workers to finish.
    rollback   the app hosts back to their earlier release, batch by batch out of rotation.
    provision  `vars_for(...)`: what each host gets to know of the others.

Every host gets its place in the summary; the first error ends the task (exit 1) once every
host is back in rotation on a release that was good.
"""

from __future__ import annotations

from invoke.exceptions import Exit

from toolkit import fleet, rolling
from toolkit import hosts as hosts_mod
from toolkit.tasking import PARALLEL_HOSTS, explain, run_on_hosts, site_url

# The load balancers' old nginx workers get this long past the app's timeout to finish the
# requests they were serving when their host went out of rotation.
DRAIN_GRACE = 5


def read_addresses(cfg, app: str) -> dict:
    """Every host's Address (the templates of one host name the others), or a clean exit."""
    def connect(host):
        return hosts_mod.connect(hosts_mod.parse_host(host))

    try:
        return fleet.read_addresses(cfg, cfg.inventory.all_hosts, connect, PARALLEL_HOSTS)
    except hosts_mod.HostError as exc:
        raise Exit(f"error: {exc}\n  next: {exc.next_step}", code=1)


def read_database(cfg, app: str, addresses: dict):
    """The database host's URL and clients for this task (toolkit/db_host.py), or None."""
    from toolkit import db_host

    def connect(host):
        return hosts_mod.connect(hosts_mod.parse_host(host))

    try:
        return db_host.read(cfg, addresses, connect)
    except hosts_mod.HostError as exc:
        raise Exit(f"error: {exc}\n  next: {exc.next_step}", code=1)


def vars_for(cfg, spec, addresses: dict, down=(), database=None) -> dict:
    """`database`: read_database's; app hosts get its DATABASE_URL, the db host what to apply."""
    from toolkit import db_host

    out = fleet.host_vars(cfg, str(spec), addresses, down)
    return {**out, **db_host.host_vars(database, str(spec), out["roles"])}


class StageMember:
    """One app host of a rolling deploy: its DeployContext (tasks_deploy.deploy_context) run
    stage by stage, its lines and summary in the host's place of the report."""

    def __init__(self, spec, cfg, rep, app, context):
        self.name, self.spec, self.cfg, self.rep, self.app = str(spec), spec, cfg, rep, app
        self.context = context  # (conn) -> (ctx, done)
        self.conn = self.ctx = self.done = self.result = None

    def _run(self, stage_names):
        from toolkit import stages

        self.rep.resume(self.result)
        try:
            stages.run(self.ctx, stage_names)
        except BaseException as exc:
            self._failed(exc)
            raise

    def _failed(self, exc):
        message, next_step, details = explain(exc, self.spec, self.app)
        if details:
            self.rep.line("    " + details.replace("\n", "\n    "))
        self.rep.fail_host(message, next_step)
        self._close()

    def prepare(self) -> bool:
        self.result = self.rep.begin_host(self.name, slot=self.slot)
        try:
            self.conn = hosts_mod.connect(self.spec)
            self.ctx, self.done = self.context(self.conn)
        except BaseException as exc:
            self._failed(exc)
            raise
        self._run(("starting", "updating"))
        # nginx and the hardening finished now, while the other hosts build, not one by one
        self.ctx.hooks.run("before", "publishing", self.ctx)
        return not (self.ctx.finished or self.ctx.unchanged)

    def publish(self) -> None:
        self._run(("publishing",))

    def finish(self) -> None:
        if not self.ctx.finished:
            self._run(("finishing",))
        self.rep.resume(self.result)
        if self.ctx.outcome is not None and not self.ctx.dry:
            self.rep.line(f"  live: releases/{self.ctx.outcome.release}")
        self.rep.end_host(site_url(self.cfg, self.conn))
        self._close()

    def abort(self, exc) -> None:
        """Another host failed: put ours back (stages.recover: the previous good release when we
        switched), let go of the lock."""
        from toolkit import stages

        if self.ctx is None:
            return
        self.rep.resume(self.result)
        try:
            if self.ctx.lock_text:
                self.rep.line("  the roll stopped on another host: putting this one back")
                stages.recover(self.ctx, exc)
        finally:
            self.rep.fail_host(f"not deployed: the roll stopped ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__})")
            self._close()

    def _close(self):
        if self.done is not None:
            done, self.done = self.done, None
            try:
                done()
            except Exception:  # the release's own error is the one shown
                pass
        if self.conn is not None:
            self.conn.close()
            self.conn = None


class RollbackMember:
    """One app host of `invoke rollback` across [hosts]."""

    def __init__(self, spec, cfg, rep, app, to):
        self.name, self.spec, self.cfg, self.rep, self.app, self.to = str(spec), spec, cfg, rep, app, to

    def rollback(self) -> None:
        from toolkit.stages import rollback as rollback_host

        self.rep.begin_host(self.name)
        try:
            conn = hosts_mod.connect(self.spec)
            try:
                name = rollback_host(conn, self.cfg, self.rep, to=self.to)
                self.rep.line(f"  live: releases/{name}")
                self.rep.end_host(site_url(self.cfg, conn))
            finally:
                conn.close()
        except BaseException as exc:
            message, next_step, details = explain(exc, self.spec, self.app)
            if details:
                self.rep.line("    " + details.replace("\n", "\n    "))
            self.rep.fail_host(message, next_step)
            raise


class NginxBalancer:
    """The load balancer hosts: their upstream re-rendered with some app hosts `down` and nginx
    reloaded gracefully (`nginx -t` first, the old file back when it fails: roles/nginx_site.sh),
    and `drain`: wait until nginx's old workers (which may still be sending requests to those
    hosts) have finished."""

    def __init__(self, cfg, rep, addresses: dict):
        self.cfg, self.rep, self.addresses = cfg, rep, addresses
        self.hosts = list(cfg.inventory.hosts("lb"))
        self.results = {h: rep.begin_host(f"{h} (load balancer)") for h in self.hosts}
        self.conns = {h: hosts_mod.connect(hosts_mod.parse_host(h)) for h in self.hosts}
        self.down: tuple = ()  # as provisioning left it: every app host in rotation

    def set_down(self, hosts) -> None:
        from roles import nginx
        from toolkit import executor
        from toolkit.executor import Change
        from toolkit.render import render_all

        hosts = tuple(hosts)
        if hosts == self.down:
            return
        for lb in self.hosts:
            self.rep.resume(self.results[lb])
            files = [f for f in render_all(self.cfg, vars_for(self.cfg, lb, self.addresses, hosts), mask_secrets=True)
                     if f.path == self.cfg.layout.lb_site]
            what = f"out of rotation: {', '.join(hosts)}" if hosts else "every app host in rotation"
            executor.apply(self.conns[lb], self.rep, "load balancer upstream", [Change(
                what, files=tuple(files), tar_on_stdin=True, script=nginx.apply_script(files, [], [], True),
                label="reloading the load balancer")])
        self.down = hosts

    def drain(self) -> None:
        from toolkit.remote import sh

        tries = int((self.cfg.timeout + DRAIN_GRACE) * 10)
        # "dow[n]": pgrep -f would otherwise find this very shell, whose command line holds the pattern
        script = (f"for i in $(seq 1 {tries}); do pgrep -f 'nginx: worker process is shutting dow[n]' >/dev/null "
                  f"|| exit 0; sleep 0.1; done; echo 'still serving'")
        for lb in self.hosts:
            self.rep.resume(self.results[lb])
            with self.rep.step("drain") as st:
                out = sh(self.conns[lb], script, what="waiting for nginx's old workers", check=False,
                         timeout=tries / 10 + 30).stdout
                st.info("old workers still serving; going on" if "still" in out else "old workers done")

    def close(self) -> None:
        for lb, conn in self.conns.items():
            self.rep.resume(self.results[lb])
            self.rep.end_host()
            conn.close()


def deploy(cfg, rep, specs, app: str, dry: bool, force: bool, wheel, batch: int) -> None:
    """The deploy task with [hosts]: the other hosts provisioned, then the app hosts rolled."""
    from toolkit.tasks_deploy import deploy_context, provision_work

    inventory = cfg.inventory
    addresses = read_addresses(cfg, app)
    database = read_database(cfg, app, addresses)
    apps = [s for s in specs if "app" in inventory.roles_of(str(s))]
    others = [s for s in specs if s not in apps]
    if others:
        rep.line(f"== provisioning {', '.join(map(str, others))} (roles: "
                 + "; ".join(f"{s}: {', '.join(inventory.roles_of(str(s)))}" for s in others) + ")")
        run_on_hosts(others, rep, provision_work(cfg, rep, dry, lambda spec: vars_for(cfg, spec, addresses, database=database)),
                     app, parallel=PARALLEL_HOSTS, summary=False)
    if not apps:
        rep.summary()
        return
    first = apps[0]

    def member(spec):
        def context(conn):
            ctx, done = deploy_context(conn, cfg, rep, dry=dry, force=force, wheel=wheel,
                                       fleet_vars=vars_for(cfg, spec, addresses, database=database))
            ctx.migrate = spec == first  # migrations once, before any host switches
            return ctx, done
        return StageMember(spec, cfg, rep, app, context)

    members = [member(s) for s in apps]
    first_slot = rep.reserve([m.name for m in members])
    for i, m in enumerate(members):
        m.slot = first_slot + i
    rep.parallel = True
    balancer = None
    failed = False
    try:
        balancer = NginxBalancer(cfg, rep, addresses) if inventory.balanced and not dry else None
        result = rolling.roll(members, balancer, batch=batch, parallel=PARALLEL_HOSTS)
        _timings(rep, result)
    except KeyboardInterrupt:
        failed = True
    except Exception:  # each host said why in its own place
        failed = True
    finally:
        if balancer is not None:
            balancer.close()
        rep.parallel = False
    rep.summary()
    if failed:
        raise Exit(code=1)


def _timings(rep, result) -> None:
    rep.current = None
    parts = [f"prepare {result.prepare_seconds:.1f}s"]
    parts += [f"{'+'.join(names)} {seconds:.1f}s" for names, seconds in result.batch_seconds]
    rep.parallel = False
    rep.line("rolling deploy: " + ", ".join(parts)
             + (f"; unchanged: {', '.join(result.unchanged)}" if result.unchanged else ""))


def rollback(cfg, rep, specs, app: str, to, batch: int) -> None:
    """The rollback task with [hosts]: the app hosts picked, batch by batch out of rotation."""
    inventory = cfg.inventory
    apps = [s for s in specs if "app" in inventory.roles_of(str(s))]
    if not apps:
        raise Exit("error: no app host picked; rollback works on the app hosts\n"
                   "  next: leave --limit out, or pick app hosts (--limit app)", code=2)
    addresses = read_addresses(cfg, app) if inventory.balanced else {}
    balancer = NginxBalancer(cfg, rep, addresses) if inventory.balanced else None
    rep.parallel = True
    failed = False
    try:
        rolling.roll_back([RollbackMember(s, cfg, rep, app, to) for s in apps], balancer, batch)
    except Exception:
        failed = True
    finally:
        if balancer is not None:
            balancer.close()
        rep.parallel = False
    rep.summary()
    if failed:
        raise Exit(code=1)
