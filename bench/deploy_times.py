"""Deploy timings for `make bench`: how long the toolkit's deploys take, and whether the site fails
a request meanwhile.

Starts a sandbox host (a local container, `invoke sandbox.up`), then times, with the
example Flask app copied to a scratch folder so the repository is never changed:

1. first deploy       provision a fresh host and release the app
2. no-change redeploy the same code again (the toolkit should notice and do little)
3. code-only redeploy one source file changed, requirements not (the venv is reused)
4. rollback           back to the release before

and removes the sandbox at the end (unless --keep). From the second step on, a bounded request
loop (tests/requestloop.py: 4 keep-alive clients through nginx) runs during each step and the
table shows how many of its requests failed (the target is zero). Every command is bounded in time;
the only host contacted is the sandbox (10.77.N.x in a network namespace the toolkit makes).

    .venv/bin/python bench/deploy_times.py [--name bench] [--app examples/flask] [--keep] [--json FILE]
"""

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.requestloop import RequestLoop  # noqa: E402
INVOKE = Path(sys.executable).parent / "invoke"

# The product owner's targets (seconds) for each step; the table shows each against its own.
TARGETS = {"first deploy": 13.0, "no-change redeploy": 3.0, "code-only redeploy": 5.0, "rollback": 3.0}

SANDBOX_TIMEOUT = 15 * 60
FIRST_DEPLOY_TIMEOUT = 20 * 60
STEP_TIMEOUT = 10 * 60


def invoke(*args: str, timeout: float) -> tuple[float, int, str]:
    """Run one invoke task from the repository; (seconds, exit status, last lines of output)."""
    start = time.monotonic()
    try:
        proc = subprocess.run([str(INVOKE), *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)
        status, output = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired as e:
        status, output = -1, f"timed out after {timeout:.0f} s: {(e.stdout or b'')[-500:]!r}"
    seconds = time.monotonic() - start
    return seconds, status, "\n".join(output.strip().splitlines()[-5:])


def scratch_copy(app: Path) -> Path:
    """The app in a temporary folder, so the code-only change never touches the repository."""
    dest = Path(tempfile.mkdtemp(prefix="pronghorn-deploy-bench-")) / app.name
    shutil.copytree(app, dest, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def change_code(app: Path) -> Path:
    """Touch the app's code, not its requirements: append a comment to its first .py file."""
    source = sorted(app.glob("*.py"))[0]
    with source.open("a") as f:
        f.write(f"\n# deploy benchmark: code-only change at {time.time():.0f}\n")
    return source


def releases_listing(app: Path, host: str) -> str:
    """`invoke releases` output, untimed: shows whether a step made or switched a release."""
    _, status, listing = invoke("releases", "--app", str(app), "--host", host, timeout=STEP_TIMEOUT)
    return listing if status == 0 else ""


def sandbox_address(name: str) -> str | None:
    _, _, listing = invoke("sandbox.list", timeout=60)
    for line in listing.splitlines():
        fields = line.split()
        if fields[:1] == [name] and len(fields) > 2:
            return fields[2]
    return None


def run_steps(name: str, app: Path) -> list[dict]:
    host = f"sandbox-{name}"
    steps = []
    before = [""]
    site = [None]  # the site's URL once the first deploy made it

    def step(label, *args, timeout=STEP_TIMEOUT, deploys=True):
        loop = None
        if site[0]:
            loop = RequestLoop(site[0], clients=4, max_requests=100_000, max_seconds=timeout)
            loop.__enter__()
        try:
            seconds, status, tail = invoke(*args, timeout=timeout)
        finally:
            if loop is not None:
                loop.__exit__(None, None, None)
        record = {"step": label, "seconds": round(seconds, 1), "status": status, "output_tail": tail,
                  "steps_changed": steps_changed(tail)}
        if loop is not None:
            record["requests"] = loop.done
            record["failed_requests"] = len(loop.failures)
            record["failures"] = [str(f) for f in loop.failures[:10]]
        if deploys and status == 0:
            # A no-change redeploy should leave the releases as they were; the others change them.
            after = releases_listing(app, host)
            record["releases_changed"] = after != before[0]
            record["releases"] = after
            before[0] = after
        steps.append(record)
        print(f"  {label:<26} {seconds:7.1f} s  {'ok' if status == 0 else f'FAILED (exit {status})'}",
              file=sys.stderr, flush=True)
        if status:
            print("    " + tail.replace("\n", "\n    "), file=sys.stderr)
        return status == 0

    if not step("sandbox up (not a deploy)", "sandbox.up", "--name", name, timeout=SANDBOX_TIMEOUT,
                deploys=False):
        return steps
    if not step("first deploy", "deploy", "--app", str(app), "--host", host, timeout=FIRST_DEPLOY_TIMEOUT):
        return steps
    address = sandbox_address(name)
    site[0] = f"http://{address}/" if address else None
    step("no-change redeploy", "deploy", "--app", str(app), "--host", host)
    change_code(app)
    if step("code-only redeploy", "deploy", "--app", str(app), "--host", host):
        step("rollback", "rollback", "--app", str(app), "--host", host)
    return steps


def steps_changed(tail: str) -> int | None:
    """N from the summary line "... N changed, M failed in ..." (None when there is none)."""
    import re

    found = re.search(r"(\d+) changed, \d+ failed", tail)
    return int(found.group(1)) if found else None


def format_table(steps: list[dict]) -> str:
    lines = ["\ndeploy timings (sandbox host, example app)",
             f"  {'step':<26} {'seconds':>8} {'target':>7}  result  releases changed  steps changed"
             f"  failed requests under load"]
    for s in steps:
        changed = {True: "yes", False: "no"}.get(s.get("releases_changed"), "")
        target = TARGETS.get(s["step"])
        verdict = "" if target is None else (" (met)" if s["seconds"] <= target else " (MISSED)")
        target_text = f"{target:>7.1f}" if target else " " * 7
        counted = "" if s.get("steps_changed") is None else str(s["steps_changed"])
        load = f"{s['failed_requests']} of {s['requests']}" if "requests" in s else "-"
        lines.append(f"  {s['step']:<26} {s['seconds']:>8.1f} {target_text}  "
                     f"{'ok' if s['status'] == 0 else 'FAILED':<6}  {changed:<16} {counted:<13}  {load:<26}{verdict}")
    return "\n".join(lines) + "\n"


def parse_args(argv):
    p = argparse.ArgumentParser(description="Time the deploy toolkit on a sandbox host.")
    p.add_argument("--name", default="bench", help="sandbox name (default: bench; removed at the end)")
    p.add_argument("--app", default="examples/flask", help="app folder with deploy.toml (default: examples/flask)")
    p.add_argument("--keep", action="store_true", help="leave the sandbox running at the end")
    p.add_argument("--json", metavar="FILE", help="also write the timings as JSON")
    args = p.parse_args(argv)
    app = (REPO / args.app).resolve()
    if not (app / "deploy.toml").is_file():
        p.error(f"--app {args.app}: no deploy.toml in {app}; pass an app folder such as examples/flask")
    if not INVOKE.exists():
        p.error(f"{INVOKE} not found: run scripts/bootstrap first")
    args.app_path = app
    return args


def sandbox_exists(name: str) -> bool:
    _, _, listing = invoke("sandbox.list", timeout=60)
    return any(line.split()[:1] == [name] for line in listing.splitlines())


def main(argv=None) -> int:
    args = parse_args(argv)
    if sandbox_exists(args.name):
        # Not ours to time or to remove: someone (maybe an earlier --keep run) is using it.
        sys.exit(f"error: a sandbox named {args.name} already exists; remove it with "
                 f"`invoke sandbox.down --name {args.name}` or pick another --name")
    app = scratch_copy(args.app_path)
    print(f"deploy timings: sandbox {args.name}, app {args.app} (copied to {app})", file=sys.stderr)
    steps = []
    try:
        steps = run_steps(args.name, app)
    finally:
        if not args.keep:
            invoke("sandbox.down", "--name", args.name, timeout=SANDBOX_TIMEOUT)
        shutil.rmtree(app.parent, ignore_errors=True)
    print(format_table(steps))
    if args.json:
        Path(args.json).write_text(json.dumps({"app": args.app, "steps": steps}, indent=2))
    ok = steps and all(s["status"] == 0 and not s.get("failed_requests") for s in steps)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
