"""What every deploy task shares: the help texts, reading deploy.toml before any host is touched,
and running the work on each host in turn with every error turned into a message and a `next:`
step that works when pasted (toolkit/errors.py fills in the host and --app).
"""

from __future__ import annotations

from invoke.exceptions import Exit
from invoke.tasks import Task

from toolkit import hosts as hosts_mod
from toolkit.errors import ConfigError, RemoteError, ToolkitError, fill_next, next_task
from toolkit.report import Reporter

# Help texts, written for someone deploying for the first time. --host says what each task does
# with the host (`invoke logs --help` must not say "where to deploy"); the rest is shared.
_HOST_FORMS = ("user@host[:port], a name from ~/.ssh/config, or sandbox-NAME (a test host made by "
               "`invoke sandbox.up`). Repeat --host, or separate hosts with commas, for several. "
               "Default: the hosts listed in deploy.toml ([app] hosts = [...])")
HOST_HELP = {task_name: f"{what}: {_HOST_FORMS}" for task_name, what in {
    "provision": "the host to prepare for the app (packages, user, folders, services)",
    "deploy": "the host to deploy the app to",
    "rollback": "the host whose app goes back to an earlier release",
    "releases": "the host whose releases to list",
    "status": "the host to check (services, live release, health check)",
    "logs": "the host to read the app's log from",
    "restart": "the host whose app server to restart",
    "history": "the host whose audit trail (deploys, rollbacks, restarts, locks) to show",
    "verify": "the host to check with testinfra",
    "lock.status": "the host whose deploy lock to show",
    "lock.release": "the host whose deploy lock to remove",
    "db.backup": "the host whose app database to back up",
    "db.backups": "the host whose database backups to list",
    "db.restore": "the host whose app database to restore (the app stops meanwhile)",
    "db.shell": "the host whose app database to open (psql or sqlite3, as the app user)",
    "run": "the host to run the command on (as the app user, in the live release)",
    "manage": "the host whose Django manage.py to run (as the app user, in the live release)",
    "shell": "the host to open the app's shell on (as the app user, in the live release)",
    "env.list": "the host whose app environment to list (values of secrets masked)",
    "env.set": "the host to set the variable on (the app restarts and is health-checked)",
    "env.unset": "the host to remove the variable from (the app restarts and is health-checked)",
}.items()}
APP_HELP = "the app's folder, the one with deploy.toml in it (default: the current folder)"
DRY_HELP = "only show what would change; change nothing on the host"


class HelpTask(Task):
    """A task none of whose flags is -h, so `invoke TASK -h` prints the task's help as invoke
    users expect (invoke would otherwise make -h the short form of --host). The other flags keep
    their short forms (-a, -d, -f, ...): with none, invoke would read e.g. `deploy -d` as its own
    --debug and deploy for real instead of a dry run."""

    def arg_opts(self, name, default, taken_names):
        opts = super().arg_opts(name, default, taken_names)
        opts["names"] = [n for i, n in enumerate(opts["names"]) if i == 0 or n != "h"]
        return opts




# ----------------------------------------------------------------------------------------------
# Shared plumbing: config, hosts, errors
# ----------------------------------------------------------------------------------------------

def load_config(app: str, check_secrets: bool = True):
    """deploy.toml of `app`, validated; any mistake stops here, before a host is contacted."""
    from roles import tls as tls_role
    from toolkit.config import load_app_config
    from toolkit.render import render_all

    try:
        cfg = load_app_config(app)
        if check_secrets:
            # Renders every template locally once: a template problem shows now. Secrets are
            # checked once the host's shared/.env is read (a value may already be there), still
            # before anything on the host changes.
            render_all(cfg, mask_secrets=True)
            tls_role.uploaded_files(cfg)  # [tls] mode = "files": the certificate and its key, a pair
    except ConfigError as exc:
        next_step = exc.next_step or "correct deploy.toml as the error says, then run the same command again"
        raise Exit(f"error: {exc}\n  next: {next_step}", code=2)
    return cfg


LIMIT_HELP = ("with deploy.toml [hosts]: only these roles or hosts, e.g. --limit app, --limit lb,sandbox-app1 "
              "(--host works the same way there); default: every host")
# Hosts worked on at once by the tasks that may (provisioning, the build before a rolling deploy):
# each is mostly waiting on its host, but the deploy machine runs an ssh session per host.
PARALLEL_HOSTS = 4


APP_ROLES = ("app", "worker")  # the hosts that run the app's code (releases, logs, run, env)


def host_specs(host, cfg, limit=None, roles=None) -> list:
    """The hosts a task works on: --host, else deploy.toml's hosts. With [hosts] (several hosts
    with roles) --host and --limit pick roles or hosts of the inventory, in its order; `roles`:
    only hosts holding one of them (a task about the app's release skips the load balancers)."""
    inventory = getattr(cfg, "inventory", None)
    picked = hosts_mod.split_hosts(host) + hosts_mod.split_hosts(limit)
    if inventory is not None and inventory.multi:
        from toolkit.inventory import InventoryError

        try:
            values = list(inventory.select(picked) if picked else inventory.all_hosts)
        except InventoryError as exc:
            raise Exit(f"error: {exc}\n  next: pick roles or hosts from deploy.toml, e.g. --limit app "
                       f"(or leave --limit out for every host)", code=2)
        if roles:
            values = [v for v in values if set(roles) & set(inventory.roles_of(v))]
            if not values:
                raise Exit(f"error: none of the hosts picked has the role {' or '.join(roles)} in deploy.toml "
                           f"[hosts]: this task works on those\n  next: pick them, e.g. --limit {roles[0]} "
                           f"(or leave --limit out)", code=2)
    else:
        values = hosts_mod.split_hosts(host) or list(cfg.hosts)
        if limit:
            from toolkit.inventory import Inventory, InventoryError

            try:
                values = list(Inventory.single(values).select(hosts_mod.split_hosts(limit)))
            except InventoryError as exc:
                raise Exit(f"error: {exc}\n  next: leave --limit out, or name one of the hosts", code=2)
    if not values:
        raise Exit("error: no host given. Say where to deploy with --host, e.g.\n"
                   "  invoke deploy --host root@203.0.113.10\n"
                   "  invoke deploy --host sandbox-demo      (after: invoke sandbox.up --name demo)\n"
                   "or list hosts in deploy.toml: [app] hosts = [\"root@203.0.113.10\"]", code=2)
    try:
        return [hosts_mod.parse_host(v) for v in values]
    except hosts_mod.HostError as exc:
        raise Exit(f"error: {exc}\n  next: {exc.next_step}", code=2)


def site_url(cfg, conn) -> str:
    scheme = "https" if cfg.tls.enabled and _serves_https(cfg, conn) else "http"
    domain = cfg.domains[0] if cfg.domains else "_"
    if domain == "_" or domain.startswith("*."):
        return f"{scheme}://{hosts_mod.display_address(conn)}/"
    return f"{scheme}://{domain}/"


def _serves_https(cfg, conn) -> bool:
    """[tls] letsencrypt: https only once certbot's certificate is there (a certificate that could
    not be issued leaves the site on http, and the summary says http)."""
    if cfg.tls.mode != "letsencrypt":
        return True
    from toolkit.remote import q, sh

    return sh(conn, f"test -s {q(cfg.layout.letsencrypt_cert)}", check=False, timeout=60).ok


def explain(exc: BaseException, spec, app: str = ".") -> tuple[str, str, str]:
    """(message, what to type next, details) for an error on one host; the next step is filled
    with this command's host and app folder, so it works when pasted."""
    host = str(spec)
    if isinstance(exc, RemoteError):
        first, _, rest = str(exc).partition("\n")
        return first, "the command's output is shown above", rest
    if isinstance(exc, ConfigError) and not exc.next_step:
        return str(exc), "do what the error says (deploy.toml, a secret), then run the same command again", ""
    if isinstance(exc, ToolkitError):
        return str(exc), fill_next(exc.next_step, host, app), exc.details
    return f"{type(exc).__name__}: {exc}", "", ""


def run_on_hosts(specs, rep: Reporter, work, app: str = ".", parallel: int = 1, summary: bool = True) -> None:
    """Run `work(conn, spec)` on each host; summarise; exit non-zero when a host failed.

    One host after another, stopping at the first failure; or with `parallel` > 1 that many
    hosts at once (each in its own thread, its lines marked with its name: toolkit/report.py),
    every host run to its end whatever the others do (provisioning: one host's failure says
    nothing about the next one). `work` returns the site URL to show (or ""). `app` (the --app
    given) goes into the `next:` hints. `summary` False: no summary unless a host failed (the
    caller goes on with more hosts and prints it).
    """
    if parallel > 1 and len(specs) > 1:
        failed = _run_parallel(specs, rep, work, app, parallel)
    else:
        failed = False
        for i, spec in enumerate(specs):
            rep.begin_host(str(spec))
            failed = not _run_one(spec, rep, work, app)
            if failed:
                for rest in specs[i + 1:]:
                    rep.skip_host(str(rest))
                break
    if summary and (len(specs) > 1 or rep.hosts and rep.hosts[0].steps):
        rep.summary()
    if failed:
        if not summary:
            rep.summary()
        raise Exit(code=1)


def _run_one(spec, rep: Reporter, work, app: str) -> bool:
    """`work` on one host begun in `rep`; False when it failed (the reason reported)."""
    try:
        conn = hosts_mod.connect(spec)
        try:
            url = work(conn, spec)
        finally:
            conn.close()
        rep.end_host(url or "")
        return True
    except KeyboardInterrupt:
        # A deploy or rollback has put the site back and released its lock by now
        # (toolkit/stages.recover); status shows what is live.
        rep.fail_host("interrupted (Ctrl-C)", "see what is live: "
                      + fill_next(next_task("status"), str(spec), app))
    except Exception as exc:  # every error becomes a message with a next step
        message, next_step, details = explain(exc, spec, app)
        if details:
            rep.line("    " + details.replace("\n", "\n    "))
        rep.fail_host(message, next_step)
    return False


def _run_parallel(specs, rep: Reporter, work, app: str, parallel: int) -> bool:
    """Up to `parallel` hosts at once; True when any failed. Ctrl-C reaches the main thread
    only: the hosts under way finish their step and their own recovery."""
    from concurrent.futures import ThreadPoolExecutor

    first = rep.reserve([str(s) for s in specs])
    rep.parallel = True

    def one(i, spec):
        rep.begin_host(str(spec), slot=first + i)
        return _run_one(spec, rep, work, app)

    try:
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="host") as pool:
            results = list(pool.map(one, range(len(specs)), specs))
    finally:
        rep.parallel = False
    return not all(results)


def stop(exc: Exception, spec, app: str):
    """End a task that talks to one host directly (not through run_on_hosts) with the error's
    message, details and `next:` step; exit 2 for a config mistake, else 1."""
    message, next_step, details = explain(exc, spec, app)
    text = f"error: {message}" + (f"\n{details}" if details else "")
    code = 2 if isinstance(exc, ConfigError) else 1
    raise Exit(text + (f"\n  next: {next_step}" if next_step else ""), code=code)


def connect_or_stop(spec, app: str):
    try:
        return hosts_mod.connect(spec)
    except hosts_mod.HostError as exc:
        stop(exc, spec, app)


def run_attached(specs, app: str, line_for, tty: bool) -> None:
    """Run `line_for(conn)` as root on each host in turn, attached to this terminal (a pty on the
    host when `tty`); the first non-zero exit code becomes the task's (`invoke run`, `db.shell`)."""
    from toolkit.remote import as_root

    for spec in specs:
        if len(specs) > 1:
            print(f"== {spec}", flush=True)
        conn = connect_or_stop(spec, app)
        try:
            result = conn.run(as_root(conn, line_for(conn)), pty=tty, warn=True, hide=False)
        except ToolkitError as exc:
            stop(exc, spec, app)
        finally:
            conn.close()
        if result.exited != 0:
            raise Exit(code=result.exited if 0 < result.exited < 256 else 1)
