"""Run a command in the app's environment: `python3 env_exec.py ENV_FILE PROGRAM [ARGS...]`.

Reads ENV_FILE (shared/.env, as systemd's EnvironmentFile= does, with envfile.py) into the
environment, then execs PROGRAM (an absolute path) with ARGS. The shell's `.` cannot be used:
systemd's quoting rules differ from the shell's. Run as the app user (runuser), in the release.
"""

import os
import sys

import envfile


def main(argv):
    if len(argv) < 3:
        sys.exit("usage: env_exec.py ENV_FILE PROGRAM [ARGS...]")
    os.environ.update(envfile.read(argv[1]))
    os.execv(argv[2], argv[2:])


if __name__ == "__main__":
    main(sys.argv)
