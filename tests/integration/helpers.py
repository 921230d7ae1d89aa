"""What the integration tests do as a person would: run `invoke` from the checkout, and run a
command on a sandbox host over the generated ssh config."""

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def invoke(*args, timeout=600):
    """Run `invoke ARGS` from the repository root; returns the finished process."""
    return subprocess.run([sys.executable, "-m", "invoke", *args], cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)


def on_host(sandbox, command):
    return subprocess.run(["ssh", "-F", str(REPO / ".sandbox" / "ssh_config"), sandbox.ssh_alias, command],
                          capture_output=True, text=True, timeout=60)
