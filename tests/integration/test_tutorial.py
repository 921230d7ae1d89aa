"""The README's tutorial, run as a beginner would: every `sh` block of its sandbox walk-through
(from "## Tutorial" to "### On the Vagrant VM"), in order, exactly as written, from the top of the
checkout. Then a few checks that each step did what the text around it promises.

The Vagrant and rented-server parts use `text` blocks: they need a VM or a server this machine
does not have, so they are not run.
"""

import re
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
SANDBOX = "tutorial"  # the name the tutorial uses
BLOCK_TIMEOUT = 600   # seconds per block; the slowest is the first deploy (~15 s)


def tutorial_blocks(text: str) -> list[str]:
    """The `sh` blocks of the README's sandbox walk-through, in order."""
    start = text.index("\n## Tutorial\n")
    end = text.index("\n### On the Vagrant VM\n", start)
    return re.findall(r"^```sh\n(.*?)^```$", text[start:end], re.S | re.M)


def run_block(block: str) -> subprocess.CompletedProcess:
    # bash -e: a reader would stop at the first command that fails, so the test does too.
    return subprocess.run(["bash", "-e", "-c", block], cwd=REPO, capture_output=True, text=True,
                          timeout=BLOCK_TIMEOUT)


def test_readme_quick_start_is_the_two_make_commands():
    text = README.read_text()
    quick = text[text.index("## Quick start"):text.index("\n## ", text.index("## Quick start") + 5)]
    commands = [line.split("#")[0].strip() for line in re.findall(r"^```sh\n(.*?)^```$", quick, re.S | re.M)[0]
                .splitlines()]
    assert [c for c in commands if c] == ["make demo", "make test"]


def test_tutorial_sandbox_blocks_run_as_written():
    blocks = tutorial_blocks(README.read_text())
    assert len(blocks) >= 10, "the README's tutorial lost its sh blocks"
    assert f"sandbox.down --name {SANDBOX}" in blocks[-1]
    outputs = []
    try:
        for block in blocks:
            result = run_block(block)
            outputs.append((block, result.stdout + result.stderr))
            assert result.returncode == 0, f"README block failed:\n{block}\n--- output:\n{outputs[-1][1]}"
    finally:
        if len(outputs) < len(blocks):  # stopped early: do not leave the host running
            subprocess.run([str(REPO / ".venv/bin/invoke"), "sandbox.down", "--name", SANDBOX],
                           cwd=REPO, capture_output=True, timeout=120)

    def output_of(needle: str, nth: int = 0) -> str:
        found = [out for block, out in outputs if needle in block]
        return found[nth]

    first = output_of("deploy --host sandbox-tutorial --app examples/flask", 0)
    assert "site: http://10.77." in first
    again = output_of("deploy --host sandbox-tutorial --app examples/flask", 1)
    assert "0 changed, 0 failed" in again                       # section 4: nothing changes
    assert "reused venvs/" in output_of("Hello from my first deploy")  # section 5: code only
    assert "* " in output_of("releases --host")                 # section 6: the live one marked
    broken = output_of("raise RuntimeError('oops')")
    assert "RuntimeError: oops" in broken and "the deploy stopped, as it should" in broken
    assert "passed" in output_of("verify --host")               # section 8: the checks pass
