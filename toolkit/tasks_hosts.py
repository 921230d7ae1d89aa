"""invoke tasks about the hosts themselves: `invoke hosts.trust`, which records a new host's ssh key.

Every connection the toolkit opens verifies the host's key (toolkit/hostkeys.py), so the first
deploy to a new server stops with the key's fingerprint and this command. `hosts.trust` connects,
takes the key before logging in (no password, key or command reaches an unverified host), shows it,
and records it only with `--yes` or a "y" typed at the prompt. A known host is left as it is; a
changed key is refused here too: removing the old entry must be a deliberate step.
"""

from __future__ import annotations

import sys

from invoke import task
from invoke.exceptions import Exit

from toolkit import hostkeys
from toolkit import hosts as hosts_mod
from toolkit.errors import fill_next, next_task
from toolkit.tasking import APP_HELP, HelpTask, load_config

HOST_HELP = ("the host whose ssh key to trust: user@host[:port], a name from ~/.ssh/config, or "
             "sandbox-NAME. Repeat --host, or separate hosts with commas, for several. Default: the "
             "hosts listed in deploy.toml")
YES_HELP = ("record the key without asking (only after checking the fingerprint shown against the one "
            "your provider or the host's console shows)")


@task(klass=HelpTask, iterable=["host"], help={"host": HOST_HELP, "app": APP_HELP, "yes": YES_HELP})
def trust(c, host=None, app=".", yes=False):
    """Show a new host's ssh key fingerprint and record it in ~/.ssh/known_hosts, so deploys can connect."""
    values = hosts_mod.split_hosts(host)
    if not values:  # deploy.toml is read only when it is where the hosts come from
        values = list(load_config(app, check_secrets=False).hosts)
    if not values:
        raise Exit("error: no host given: say which with --host, e.g. invoke hosts.trust --host root@203.0.113.10",
                   code=2)
    for value in values:
        try:
            spec = hosts_mod.parse_host(value)
        except hosts_mod.HostError as exc:
            raise Exit(f"error: {exc}\n  next: {exc.next_step}", code=2)
        trust_host(spec, app, yes)


def trust_host(spec, app: str, yes: bool, ask=input) -> None:
    """Fetch `spec`'s key, compare it with known_hosts, and record it if the person agrees."""
    conn = hosts_mod.make_connection(spec)
    key = fetch_key(conn, spec, app)
    name = hostkeys.name_for(conn)
    entries = hostkeys.entries_for(name, conn.known_hosts_files)
    outcome = hostkeys.verdict(key.asbytes(), entries)
    label = f"{key.get_name()} key {hostkeys.fingerprint_of(key.asbytes())}"
    if outcome == hostkeys.OK:
        where = next(e.where for e in entries if not e.marker and e.blob == key.asbytes())
        print(f"{spec}: already trusted ({label}, {where}); nothing to do")
        return
    if outcome != hostkeys.UNKNOWN:
        problem = {hostkeys.CHANGED: hostkeys.ChangedHostKey, hostkeys.REVOKED: hostkeys.RevokedHostKey}[outcome]
        exc = problem(name, key, [e for e in entries if not e.marker], conn.known_hosts_files)
        _fail(hosts_mod.explain_connect_error(spec, conn, exc), spec, app)
    print(f"{spec} ({name}) presents an {label}")
    print("  Check that this fingerprint is the host's: your provider's console shows it, or on the host "
          "itself: ssh-keygen -lf /etc/ssh/ssh_host_*_key.pub")
    if not yes:
        if not sys.stdin.isatty():
            raise Exit(f"error: {spec}'s key was not recorded: nobody confirmed the fingerprint\n  next: "
                       + fill_next(next_task("hosts.trust", "--yes"), str(spec), app), code=1)
        if ask("Trust this key? [y/N] ").strip().lower() not in ("y", "yes"):
            raise Exit(f"{spec}'s key was not recorded", code=1)
    print(f"  recorded in {record(conn, spec, name, key)}")


def fetch_key(conn, spec, app: str):
    """The host's key, taken during the key exchange; the connection stops before logging in."""
    hostkeys.secure(conn, capture=True)
    try:
        conn.open()
    except hostkeys.KeyCaptured as captured:
        return captured.key
    except Exception as exc:  # unreachable, refused: explained as for any task
        _fail(hosts_mod.explain_connect_error(spec, conn, exc), spec, app)
    finally:
        conn.client.close()
    raise Exit(f"error: {spec}: the connection ended without the host presenting a key", code=1)


def record(conn, spec, name: str, key) -> str:
    """Add the key where ssh and the toolkit will find it; returns where."""
    if spec.sandbox_name:
        from toolkit.sandbox import sshconfig

        sshconfig.add_host_key(spec.sandbox_name, f"{key.get_name()} {key.get_base64()}")
        sshconfig.write_ssh_config()
        return str(sshconfig.known_hosts_path())
    path = hostkeys.record_file(conn)
    hostkeys.append_known_host(path, name, key)
    return str(path)


def _fail(error, spec, app: str):
    raise Exit(f"error: {error}\n  next: {fill_next(error.next_step, str(spec), app)}", code=1)
