"""Run a command in the app's environment: `python3 env_exec.py ENV_FILE PROGRAM [ARGS...]`.

Reads ENV_FILE (shared/.env, as systemd's EnvironmentFile= does, with envfile.py) into the
environment, then ENV_FILE.local when it exists (the values set on the host with `invoke
env.set`; the unit reads it as a second, optional EnvironmentFile=, so its values win there
too), then execs PROGRAM with ARGS. The shell's `.` cannot be used: systemd's quoting rules
differ from the shell's. Run as the app user (runuser), in the release.

When the Python running this is a virtualenv's (the release's .venv), its bin/ goes first on
PATH and VIRTUAL_ENV is set, as `activate` would: `invoke run -- flask ...` finds the venv's
programs. PROGRAM without a slash is looked up on that PATH; not found, it exits 127 as a
shell does.
"""

import os
import sys

import envfile

LOCAL_SUFFIX = ".local"


def app_environment(env_file, environ, executable):
    """`environ` updated with the env files and, under a venv's Python, its bin/ on PATH."""
    env = dict(environ)
    env.update(envfile.read(env_file))
    env.update(envfile.read(env_file + LOCAL_SUFFIX))
    bin_dir = os.path.dirname(executable)
    venv = os.path.dirname(bin_dir)
    if os.path.isfile(os.path.join(venv, "pyvenv.cfg")):
        env["VIRTUAL_ENV"] = venv
        env["PATH"] = os.pathsep.join(filter(None, [bin_dir, env.get("PATH", os.defpath)]))
    return env


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: env_exec.py ENV_FILE PROGRAM [ARGS...]")
    env = app_environment(argv[1], os.environ, sys.executable)
    os.environ.clear()
    os.environ.update(env)  # execvp looks PROGRAM up on os.environ's PATH
    try:
        os.execvp(argv[2], argv[2:])
    except FileNotFoundError:
        sys.stderr.write(f"{argv[2]}: command not found\n")
        sys.exit(127)
    except PermissionError:
        sys.stderr.write(f"{argv[2]}: permission denied\n")
        sys.exit(126)


if __name__ == "__main__":
    main(sys.argv)
