"""The host's own settings (`invoke env.list/set/unset`), run as root on the host:

    env_edit.py list  ENV_FILE SHOWN        names of ENV_FILE and ENV_FILE.local, one a line:
                                            `NAME<TAB>deploy|host<TAB>VALUE` where VALUE is the
                                            value only for a name of ENV_FILE listed in SHOWN (a
                                            comma-separated list: deploy.toml's non-secret [env])
                                            and ******** for every other
    env_edit.py set   ENV_FILE OWNER NAME   NAME = stdin's value (one line) in ENV_FILE.local
    env_edit.py unset ENV_FILE OWNER NAME   NAME out of ENV_FILE.local; exits 3 if it was not there

ENV_FILE (shared/.env) is the deploy's, rewritten from deploy.toml by every deploy; ENV_FILE.local
holds what is set on the host and no deploy touches it, so a value set here survives deploys.
Values are masked here, on the host: a secret never travels to the deploy machine to be hidden
there. The value to set comes on stdin, never in argv (argv shows in `ps` to every user).
ENV_FILE.local is written whole to a new file (0600, OWNER's, like .env) renamed over the old.
"""

import os
import pwd
import sys

import envfile

LOCAL_SUFFIX = ".local"
MASK = "********"
HEADER = ("# Set on this host with `invoke env.set` (values here win over .env); kept across deploys.\n"
          "# Read by systemd (EnvironmentFile=-) and by `invoke run`. Change it with env.set/env.unset.\n")


def listing(env_file, shown):
    """(name, source, shown value) for every name, the host's values last (they win)."""
    deployed, local = envfile.read(env_file), envfile.read(env_file + LOCAL_SUFFIX)
    rows = [(n, "deploy", v if n in shown else MASK) for n, v in deployed.items() if n not in local]
    return rows + [(n, "host", MASK) for n in local]


def render(values):
    return HEADER + "".join(envfile.line(n, v) + "\n" for n, v in values.items())


def write(path, values, owner):
    """Replace `path` with `values`, 0600 and `owner`'s, in one rename."""
    user = pwd.getpwnam(owner)
    tmp = f"{path}.new"
    try:
        os.unlink(tmp)  # left by an interrupted run
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchown(fd, user.pw_uid, user.pw_gid)
        os.write(fd, render(values).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def main(argv):
    if len(argv) == 4 and argv[1] == "list":
        for name, source, value in listing(argv[2], set(filter(None, argv[3].split(",")))):
            print(f"{name}\t{source}\t{value}")
        return 0
    if len(argv) != 5 or argv[1] not in ("set", "unset"):
        sys.exit("usage: env_edit.py list ENV_FILE SHOWN | set|unset ENV_FILE OWNER NAME")
    action, env_file, owner, name = argv[1:]
    path = env_file + LOCAL_SUFFIX
    values = envfile.read(path)
    if action == "set":
        value = sys.stdin.read()
        value = value[:-1] if value.endswith("\n") else value
        if "\n" in value or "\0" in value:
            sys.exit("the value must be one line")
        values[name] = value
    elif values.pop(name, None) is None:
        return 3
    write(path, values, owner)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
