"""Smoke tests of the benchmark harness (bench/run.py): it runs, prints its table with
numbers, and carries on when a server cannot start. Not a speed test: no number is judged."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
RUN = REPO / "bench" / "run.py"
VENV_BIN = Path(sys.executable).parent

pytestmark = pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed (scripts/bootstrap)")


def run_bench(args, python=sys.executable, timeout=120):
    return subprocess.run([str(python), str(RUN), *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def table_line(stdout, server):
    # Table rows are indented by two spaces and start with the server's name.
    lines = [line for line in stdout.splitlines() if line.startswith(f"  {server} ")]
    assert lines, f"no table row for {server} in:\n{stdout}"
    return lines[0]


def test_quick_run_prints_a_table_with_numbers(tmp_path):
    out = tmp_path / "out.json"
    proc = run_bench(["--quick", "--only", "hello", "--servers", "waitress", "--duration", "1",
                      "--json", str(out)])
    assert proc.returncode == 0, proc.stderr
    fields = table_line(proc.stdout, "waitress").split()
    rps = float(fields[1].replace(",", ""))
    assert rps > 0
    float(fields[2])  # p99 latency in ms
    assert int(fields[3]) == 0  # errors: the hello app never fails
    assert float(fields[4]) > 0  # peak RSS per worker, MiB
    rows = json.loads(out.read_text())["rows"]
    assert [(r["scenario"], r["server"], r["rounds"]) for r in rows] == [("hello", "waitress", 1)]
    assert rows[0]["rps"] == pytest.approx(rps, abs=1)


def test_a_server_that_cannot_start_is_a_row_and_the_run_goes_on(tmp_path):
    # run.py looks for the servers next to its interpreter: a directory with the real python,
    # the real waitress and a `pronghorn` that fails as a broken install would.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    os.symlink(VENV_BIN / "python", bin_dir / "python")
    os.symlink(VENV_BIN / "waitress-serve", bin_dir / "waitress-serve")
    fake = bin_dir / "pronghorn"
    fake.write_text("#!/bin/sh\necho 'pronghorn: cannot import the app (test)' >&2\nexit 1\n")
    fake.chmod(0o755)
    proc = run_bench(["--quick", "--only", "hello", "--servers", "pronghorn,waitress", "--duration", "1"],
                     python=bin_dir / "python")
    assert proc.returncode == 0, proc.stderr
    failed = table_line(proc.stdout, "pronghorn")
    assert "FAILED" in failed and "cannot import the app (test)" in failed
    assert float(table_line(proc.stdout, "waitress").split()[1].replace(",", "")) > 0


def test_an_unknown_scenario_is_refused_with_the_valid_names():
    proc = run_bench(["--only", "helo"])
    assert proc.returncode == 2
    assert "unknown name 'helo'" in proc.stderr
    assert "hello, echo, sleep10, file, slow" in proc.stderr


def test_deploy_times_refuses_a_folder_without_deploy_toml(tmp_path):
    # Checked before any sandbox is started: a typo costs a second, not a container.
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "deploy_times.py"), "--app", str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "no deploy.toml" in proc.stderr and "examples/flask" in proc.stderr


def test_slowclients_refuses_a_non_loopback_address():
    # The slowloris generator must never be pointed at a real host: refused before any connect.
    proc = subprocess.run([sys.executable, str(REPO / "bench" / "slowclients.py"), "--host", "192.0.2.1",
                           "--port", "80", "--seconds", "1"], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert "not a loopback address" in proc.stderr


def test_the_10ms_scenario_reports_the_ceiling_its_rounds_had(tmp_path):
    # The limit of 800 assumes a 10 ms sleep takes 10 ms; the probe measures what it took during
    # the round, and "of ceiling" compares the server with what that allowed.
    out = tmp_path / "out.json"
    proc = run_bench(["--quick", "--only", "sleep10", "--servers", "pronghorn", "--duration", "2",
                      "--json", str(out)])
    assert proc.returncode == 0, proc.stderr
    [row] = json.loads(out.read_text())["rows"]
    assert row["sleep_ms"] >= 10.0             # a sleep never ends early
    assert row["ceiling_rps"] == pytest.approx(8 * 1000 / row["sleep_ms"])
    assert 0 < row["of_ceiling"] == pytest.approx(row["rps"] / row["ceiling_rps"])
    fields = table_line(proc.stdout, "pronghorn").split()
    assert float(fields[-2]) == pytest.approx(row["sleep_ms"], abs=0.01)
    assert fields[-1].endswith("%")
