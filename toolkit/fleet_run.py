"""`invoke deploy`, `provision` and `rollback` with deploy.toml [hosts]: each host worked on by its
roles, the app hosts rolled through the load balancers (toolkit/rolling.py).

    deploy     read every host's private address (toolkit/fleet.py); provision the other hosts
               picked (database, load balancers) at once; then the rolling deploy of the app
               hosts picked: `StageMember` runs a host's toolkit/stages.py stages phase by phase,
               `NginxBalancer` takes hosts out of every load balancer's rotation (those of
               deploy.toml [hosts], whatever --limit picks) and drains them.
    rollback   the app hosts back to their earlier release, batch by batch out of rotation.
    provision  `vars_for(...)`: what each host gets to know of the others.

Every host gets its place in the summary; the first error ends the task (exit 1) once every
host is back in rotation on a release that was good.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from invoke.exceptions import Exit

from toolkit import fleet, rolling
from toolkit import hosts as hosts_mod
from toolkit.releases import release_stamp
from toolkit.tasking import PARALLEL_HOSTS, explain, run_on_hosts, site_url

# A host taken out of rotation gets this long past the app's timeout to finish the requests it
# was answering.
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


def vars_for(cfg, spec, addresses: dict, database=None) -> dict:
    """`database`: read_database's; app hosts get its DATABASE_URL, the db host what to apply."""
    from toolkit import db_host

    out = fleet.host_vars(cfg, str(spec), addresses)
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
        # behind a load balancer the site is the balancer's address, not this host's; a worker
        # host serves none
        self.rep.end_host(site_url(self.cfg, self.conn) if self.cfg.inventory.serves_site(self.name) else "")
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
                self.rep.end_host(site_url(self.cfg, conn) if self.cfg.inventory.serves_site(self.name) else "")
            finally:
                conn.close()
        except BaseException as exc:
            message, next_step, details = explain(exc, self.spec, self.app)
            if details:
                self.rep.line("    " + details.replace("\n", "\n    "))
            self.rep.fail_host(message, next_step)
            raise


class NginxBalancer:
    """The load balancer hosts: `set_down(hosts)` takes those app hosts out of rotation (and puts
    the others back) by switching the out-of-rotation files nginx checks per request (one symlink
    swapped atomically: every request sees a whole state; no reload, so no client's keep-alive
    connection is closed: toolkit/fleet.py `pools`); `drain()` waits on each host taken out until
    its nginx answers no request (toolkit/onhost/nginx_drain.py)."""

    def __init__(self, cfg, rep, addresses: dict):
        self.cfg, self.rep, self.addresses = cfg, rep, addresses
        self.hosts = list(cfg.inventory.hosts("lb"))
        self.results = {h: rep.begin_host(f"{h} (rotation)") for h in self.hosts}
        # every connection opened now, at once: none is opened while a host is out of rotation
        apps = list(cfg.inventory.hosts("app"))
        with ThreadPoolExecutor(max_workers=PARALLEL_HOSTS) as pool:
            opened = list(pool.map(lambda h: hosts_mod.connect(hosts_mod.parse_host(h)), self.hosts + apps))
        self.conns = dict(zip(self.hosts, opened[:len(self.hosts)]))
        self.app_conns = dict(zip(apps, opened[len(self.hosts):]))
        self.down: tuple = ()  # every app host in rotation: what provisioning leaves
        self.suffix = None  # the rotation the lbs are in (fleet.out_suffix); None: not known yet
        self.urls: dict = {}  # lb -> the site's address, once checked through it (check_site)
        self._set(())  # a deploy killed mid-roll may have left hosts out

    def _set(self, hosts) -> None:
        from toolkit.remote import q, sh

        suffix = fleet.out_suffix(self.cfg, hosts)
        flags = [n for n in suffix.split("_") if n]
        link = self.cfg.layout.lb_out_dir
        state = f"{link}.states/{'out' + suffix if suffix else 'all'}"
        script = (f"mkdir -p {q(state)} && chmod 755 {q(link + '.states')} {q(state)} && "
                  + "".join(f"touch {q(state + '/' + n)} && " for n in flags)
                  + f"ln -sfn {q(state)} {q(link + '.new')} && mv -T {q(link + '.new')} {q(link)}")
        what = f"out of rotation: {', '.join(h for h in hosts if h in self.app_conns)}" if flags \
            else "every app host in rotation"
        for lb in self.hosts:
            self.rep.resume(self.results[lb])
            with self.rep.step("rotation") as st:
                sh(self.conns[lb], script, what="changing the load balancer's rotation", timeout=60)
                st.changed(what)
        self.suffix = suffix
        # only app hosts are drained: a worker host in the batch is in no rotation
        self.down = tuple(h for h in hosts if h in self.app_conns) if flags else ()

    def set_down(self, hosts) -> None:
        # a batch of worker hosts only changes no rotation: nothing written, nothing drained
        if fleet.out_suffix(self.cfg, hosts) != self.suffix:
            self._set(hosts)
        else:
            self.down = tuple(h for h in hosts if h in self.app_conns) if self.suffix else ()

    def drain(self) -> None:
        from toolkit import onhost
        from toolkit.remote import q, sh

        timeout = self.cfg.timeout + DRAIN_GRACE
        command = (f"python3 -c {q(onhost.program('nginx_drain'))} "
                   f"http://127.0.0.1/.pronghorn/nginx-status {timeout}")
        self.rep.resume(self.results[self.hosts[0]])
        for host in self.down:
            with self.rep.step(f"drain {host}") as st:
                out = sh(self.app_conns[host], command, what="waiting for in-flight requests",
                         check=False, timeout=timeout + 30).stdout.strip()
                st.info(out.splitlines()[-1] if out else "no answer")

    def check_site(self, app: str = ".") -> None:
        """After the roll: the site's health check on each load balancer, through its nginx (https
        with the site's name when [tls] is on) to the app hosts, as visitors reach it; the site's
        address goes into the summary."""
        from toolkit.errors import DeployError, fill_next, next_task
        from toolkit.release_commands import health_check

        for lb in self.hosts:
            self.rep.resume(self.results[lb])
            with self.rep.step("health check (site)") as st:
                health = health_check(self.conns[lb], self.cfg)
                st.info(f"{health.status or 'no answer'} from {self.cfg.health.path} through the load balancer")
            if not health.ok:
                self.rep.line("    " + health.body[:600].replace("\n", "\n    "))
                self.rep.fail_host(f"the site does not answer through the load balancer: {health.status or 'no answer'} "
                                   f"(expected {self.cfg.health.expect}); the app hosts answered their own checks",
                                   fill_next(next_task("status"), lb, app))
                raise DeployError(f"the site does not answer through {lb}")
            self.urls[lb] = site_url(self.cfg, self.conns[lb])

    def close(self) -> None:
        for lb, conn in self.conns.items():
            self.rep.resume(self.results[lb])
            self.rep.end_host(self.urls.get(lb, ""))
            conn.close()
        for conn in self.app_conns.values():
            conn.close()


def deploy(cfg, rep, specs, app: str, dry: bool, force: bool, wheel, batch: int) -> None:
    """The deploy task with [hosts]: the other hosts provisioned, then the app hosts rolled."""
    from toolkit.tasks_deploy import deploy_context, provision_work

    inventory = cfg.inventory
    addresses = read_addresses(cfg, app)
    database = read_database(cfg, app, addresses)
    # every host that runs the app's code gets the release: app hosts (in the load balancer's
    # rotation) and worker hosts ([processes] and [schedule]; fleet.host_config)
    apps = [s for s in specs if {"app", "worker"} & set(inventory.roles_of(str(s)))]
    others = [s for s in specs if s not in apps]
    if others:
        rep.line(f"== provisioning {', '.join(map(str, others))} (roles: "
                 + "; ".join(f"{s}: {', '.join(inventory.roles_of(str(s)))}" for s in others) + ")")
        work = provision_work(cfg, rep, dry, lambda spec: vars_for(cfg, spec, addresses, database=database))
        if apps and inventory.balanced and not dry:
            provision = work

            def work(conn, spec):  # the lb's site is shown once: on its rotation line, checked through it
                provision(conn, spec)
                return ""
        run_on_hosts(others, rep, work, app, parallel=PARALLEL_HOSTS, summary=False)
    if not apps:
        rep.summary()
        return
    first = apps[0]
    stamp = release_stamp()

    def member(spec):
        def context(conn):
            ctx, done = deploy_context(conn, fleet.host_config(cfg, str(spec)), rep, dry=dry, force=force,
                                       wheel=wheel, fleet_vars=vars_for(cfg, spec, addresses, database=database))
            ctx.migrate = spec == first  # migrations once, before any host switches
            ctx.release_stamp = stamp  # one release name on every host: rollback --to NAME means one thing
            return ctx, done
        return StageMember(spec, cfg, rep, app, context)

    members = [member(s) for s in apps]
    first_slot = rep.reserve([m.name for m in members])
    for i, m in enumerate(members):
        m.slot = first_slot + i
    rep.line(rotation_plan(cfg, specs, [m.name for m in members], batch, dry))

    def roll(balancer):
        result = rolling.roll(members, balancer, batch=batch, parallel=PARALLEL_HOSTS)
        if not dry:  # a dry run's are only the time to read the hosts
            _timings(rep, result)
        if balancer is not None:  # the site as visitors reach it: through each load balancer
            balancer.check_site(app)

    # a dry run changes no rotation: no balancer (rolling.NoBalancer)
    _through_balancer(cfg, rep, roll, addresses if inventory.balanced and not dry else None)


def _through_balancer(cfg, rep, work, addresses) -> None:
    """`work(balancer)` with the hosts' lines side by side: the NginxBalancer of every load
    balancer of the inventory (None when `addresses` is None: no rotation to change), closed
    whatever happens; then the summary, and exit 1 when anything failed. Each host said why
    in its own place; a load balancer that cannot be reached says so here."""
    balancer = None
    failed = False
    rep.parallel = True
    try:
        if addresses is not None:
            try:
                balancer = NginxBalancer(cfg, rep, addresses)
            except hosts_mod.HostError as exc:
                rep.parallel = False
                rep.line(f"error: the load balancers' rotation cannot be changed: {exc}\n"
                         f"  next: {exc.next_step or 'check that every lb host of deploy.toml [hosts] answers'}")
                raise
        work(balancer)
    except (Exception, KeyboardInterrupt):  # each host said why in its own place
        failed = True
    finally:
        if balancer is not None:
            balancer.close()
        rep.parallel = False
    rep.summary()
    if failed:
        raise Exit(code=1)


def rotation_plan(cfg, specs, names, batch: int, dry: bool) -> str:
    """The line a rolling deploy starts with: the batches, and which load balancers take them out
    of rotation. Those are every lb of deploy.toml [hosts], picked or not: --limit app still
    takes each app host out before it switches (only the rotation changes there, nothing is
    provisioned on a load balancer left out of --limit)."""
    inventory = cfg.inventory
    rolled = " then ".join("+".join(group) for group in rolling.batches(list(names), batch))
    if not inventory.balanced:
        return f"== rolling deploy ({'dry run: ' if dry else ''}no load balancer): {rolled}"
    lbs = inventory.hosts("lb")
    left_out = [h for h in lbs if h not in {str(s) for s in specs}]
    where = ", ".join(lbs) + (" (not in --limit: only its rotation changes)" if left_out else "")
    if dry:
        return f"== rolling deploy (dry run: no host leaves the rotation of {where}): would switch {rolled}"
    return f"== rolling deploy, out of the rotation of {where} batch by batch: {rolled}"


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
    apps = [s for s in specs if {"app", "worker"} & set(inventory.roles_of(str(s)))]
    if not apps:
        raise Exit("error: no app or worker host picked; rollback works on the hosts that run the app\n"
                   "  next: leave --limit out, or pick app hosts (--limit app)", code=2)
    addresses = read_addresses(cfg, app) if inventory.balanced else None
    members = [RollbackMember(s, fleet.host_config(cfg, str(s)), rep, app, to) for s in apps]
    _through_balancer(cfg, rep, lambda balancer: rolling.roll_back(members, balancer, batch), addresses)
