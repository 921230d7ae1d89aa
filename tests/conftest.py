"""Fixtures for tests on sandbox hosts (toolkit/sandbox/; docs/sandbox.md).

- `sandbox`: one sandbox host for the whole session (named `test1`), made on first use and removed at
  the end unless PRONGHORN_KEEP_SANDBOX=1 (keeping it makes the next run start in seconds).
- `fresh_sandbox`: a host with a fresh root filesystem for tests that need a clean machine. It is a
  second sandbox (`test-fresh`), reset before every test that asks for it, so resetting never disturbs
  what other tests did to `sandbox`.
- `trixie_sandbox`: a Debian 13 host for the session (named `test-trixie`), for the tests that run
  the deploy on the second distribution (tests/integration/test_distros.py). Its image is built once
  per machine and cached, like Debian 12's; the host itself is made on first use.
- `host`: a testinfra host on `sandbox`, over ssh with the generated ssh config.

Sandbox state is machine-wide, so two test sessions at once (two checkouts, or a second run) would
share `test1`. Each session therefore claims its names with a lock held until it ends; a session that
finds `test1` claimed uses `test1-2`, and so on.

Integration tests (`@pytest.mark.integration`) need root and the sandbox tools. Without them they
FAIL with a message naming the fix: CI runs as root and must run them. PRONGHORN_SKIP_INTEGRATION=1
skips them instead (e.g. a quick run on a laptop).
"""

import fcntl
import os
import sys
from pathlib import Path

import pytest

# The toolkit is not an installed package: make the repository importable (tests/toolkit/ would
# otherwise be found as a namespace package called `toolkit`).
REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from tests.requestloop import RequestLoop  # shared with bench/deploy_times.py
from toolkit import sandbox as sandboxes

SESSION_SANDBOX = "test1"
FRESH_SANDBOX = "test-fresh"
TRIXIE_SANDBOX = "test-trixie"


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0")


def pytest_runtest_setup(item):
    if item.get_closest_marker("integration") and _env_flag("PRONGHORN_SKIP_INTEGRATION"):
        pytest.skip("PRONGHORN_SKIP_INTEGRATION is set: tests on sandbox hosts skipped")


def _require_sandbox_support():
    try:
        sandboxes.preflight()
        return
    except sandboxes.SandboxError as error:
        problem = str(error)
    # Outside the except block, so the report shows only this message, not a chained traceback.
    pytest.fail(f"integration tests need sandbox hosts: {problem}. "
                "(PRONGHORN_SKIP_INTEGRATION=1 skips these tests.)", pytrace=False)


_claims = []  # open lock files: held for the whole session


def _claim(base: str) -> str:
    """`base`, or `base-2`, `base-3`... whichever no other running test session holds."""
    locks = sandboxes.STATE_DIR / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    for number in range(1, 21):
        name = base if number == 1 else f"{base}-{number}"
        lock = open(locks / f"test-session-{name}.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            continue
        _claims.append(lock)
        return name
    pytest.fail(f"20 test sessions already hold sandboxes named {base}*; wait for them to finish",
                pytrace=False)


def _up(name: str, release: str = sandboxes.DEFAULT_RELEASE) -> sandboxes.Sandbox:
    try:
        return sandboxes.up(name, release=release, log=lambda message: print(f"[sandbox] {message}"))
    except sandboxes.SandboxError as error:
        problem = str(error)
    pytest.fail(f"could not start sandbox {name}: {problem}", pytrace=False)


def _down_unless_kept(name: str) -> None:
    if not _env_flag("PRONGHORN_KEEP_SANDBOX"):
        sandboxes.down(name)


@pytest.fixture(scope="session")
def sandbox():
    """A running sandbox host shared by the session (a `toolkit.sandbox.Sandbox`)."""
    _require_sandbox_support()
    name = _claim(SESSION_SANDBOX)
    box = _up(name)
    yield box
    _down_unless_kept(name)


@pytest.fixture(scope="session")
def trixie_sandbox():
    """A running Debian 13 (trixie) sandbox host shared by the session."""
    _require_sandbox_support()
    name = _claim(TRIXIE_SANDBOX)
    box = _up(name, release="trixie")
    yield box
    _down_unless_kept(name)


@pytest.fixture(scope="session")
def _fresh_sandbox_name():
    """The fresh sandbox's name for this session; the sandbox is removed at the end if it was made."""
    _require_sandbox_support()
    name = _claim(FRESH_SANDBOX)
    yield name
    if sandboxes.get(name) is not None:
        _down_unless_kept(name)


@pytest.fixture
def fresh_sandbox(_fresh_sandbox_name):
    """A sandbox host whose root filesystem is a fresh copy of the image (same address every time)."""
    return _fresh(_fresh_sandbox_name)


@pytest.fixture(scope="module")
def module_fresh_sandbox(_fresh_sandbox_name):
    """fresh_sandbox for a module whose tests follow one another on one host (a deploy chain).
    Its tests must not use fresh_sandbox too: that would reset the host under the chain."""
    return _fresh(_fresh_sandbox_name)


def _fresh(name: str) -> sandboxes.Sandbox:
    if sandboxes.get(name) is None:
        return _up(name)
    try:
        return sandboxes.reset(name, log=lambda message: print(f"[sandbox] {message}"))
    except sandboxes.SandboxError as error:
        problem = str(error)
    pytest.fail(f"could not reset sandbox {name}: {problem}", pytrace=False)


@pytest.fixture(scope="session")
def host(sandbox):
    """A testinfra host for `sandbox`: host.run(...), host.service(...), host.file(...)."""
    import testinfra

    # The ssh backend reads the generated config (the checkout's key, and the host key recorded at
    # sandbox.up, checked strictly; said again here so no config edit can turn it off) and keeps one
    # master connection open, so each command costs a few milliseconds.
    return testinfra.get_host(f"ssh://{sandbox.ssh_alias}", ssh_config=str(sandboxes.ssh_config_path()),
                              ssh_extra_args="-o StrictHostKeyChecking=yes")


@pytest.fixture
def request_loop():
    """The RequestLoop class: `with request_loop(url) as loop: ...; assert loop.failures == []`."""
    return RequestLoop
