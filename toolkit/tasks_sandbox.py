"""invoke tasks for sandbox hosts: `invoke sandbox.up`, `sandbox.down`, `sandbox.list`, `sandbox.ssh`.

Thin on purpose: the work is done by the toolkit/sandbox/ package, which the tests call directly.
"""

import os
import sys

from invoke import Exit, task

from toolkit import sandbox

# Help texts: --name says what each task does with the sandbox (a test host on this machine).
NAME_HELP = {
    "up": "a name for the test host to create or start (default: demo); "
          "deploy to it with --host sandbox-NAME",
    "down": "the name of the test host to remove (default: demo)",
    "ssh": "the name of the test host to log in to (default: demo)",
}


def _fail(error: sandbox.SandboxError) -> Exit:
    return Exit(f"error: {error}", code=1)


@task(help={"name": NAME_HELP["up"],
            "release": "bookworm (Debian 12, default), trixie (Debian 13), noble (Ubuntu 24.04) "
                       "or jammy (Ubuntu 22.04)",
            "net": "a private network to put a new host on (e.g. shop): hosts made with the same --net "
                   "reach each other there; this machine is not on it"})
def up(c, name="demo", release=sandbox.DEFAULT_RELEASE, net=None):
    """Start a local test host (a container with systemd and ssh) you can deploy to."""
    try:
        box = sandbox.up(name, release=release, net=net)
    except sandbox.SandboxError as error:
        raise _fail(error)
    print(f"sandbox {box.name} is up at {box.address}")
    if box.net:
        print(f"  private: {box.private_address} on network {box.net} (the other hosts on it reach it there)")
    print(f"  log in:  ssh {box.ssh_alias}   (or: invoke sandbox.ssh --name {box.name})")
    print(f"  deploy:  invoke deploy --host {box.ssh_alias}")
    print(f"  remove:  invoke sandbox.down --name {box.name}")


@task(help={"name": NAME_HELP["down"],
            "all": "remove every test host and private network on this machine instead of one",
            "net": "remove every test host on this private network, and the network"})
def down(c, name="demo", all=False, net=None):
    """Stop a test host and delete it (its files, network and processes)."""
    try:
        if all:
            removed = sandbox.down_all()
        elif net is not None:
            removed = sandbox.down_net(net)
        else:
            removed = [name] if sandbox.down(name) else []
    except sandbox.SandboxError as error:
        raise _fail(error)
    if removed:
        print("removed: " + ", ".join(removed) + (f" (and network {net})" if net else ""))
    elif net is not None:
        print(f"removed network {net} (no host was on it)")
    else:
        print("no sandbox to remove" if all else f"no sandbox named {name}; nothing to do")


@task(name="list")
def list_(c):
    """Show the test hosts on this machine, their networks and whether they are running."""
    boxes = sandbox.list_sandboxes()
    if not boxes:
        print("no sandboxes; make one with `invoke sandbox.up`")
        return
    print(f"{'NAME':<16} {'SSH':<22} {'ADDRESS':<12} {'NET':<10} {'PRIVATE':<13} {'RELEASE':<10} STATE")
    for box in boxes:
        state = "running" if box.running else "stopped (invoke sandbox.up --name " + box.name + ")"
        print(f"{box.name:<16} {box.ssh_alias:<22} {box.address:<12} {box.net or '-':<10} "
              f"{box.private_address or '-':<13} {box.release:<10} {state}")


def _remainder(argv: list[str]) -> str:
    """What follows `--` on the command line (invoke keeps it away from the task's arguments)."""
    return " ".join(argv[argv.index("--") + 1:]) if "--" in argv else ""


@task(help={"name": NAME_HELP["ssh"]})
def ssh(c, name="demo"):
    """Open a root shell on a test host; add `-- COMMAND` to run one command instead."""
    try:
        box = sandbox.get(name)
    except sandbox.SandboxError as error:
        raise _fail(error)
    if box is None or not box.running:
        raise Exit(f"error: sandbox {name} is not running: start it with `invoke sandbox.up --name {name}`",
                   code=1)
    command = _remainder(sys.argv)
    argv = sandbox.ssh_command(box, *([command] if command else []))
    sys.stdout.flush()
    os.execvp(argv[0], argv)
