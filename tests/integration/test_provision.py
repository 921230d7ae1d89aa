"""Provisioning a sandbox host through the real `invoke` command line: idempotent (a second run
changes nothing), `--dry` changes nothing, a bad deploy.toml stops before any host is touched,
and the shipped testinfra checks (`invoke verify`) pass on a deployed host."""

import shutil

import pytest

from tests.integration.helpers import REPO, invoke, on_host

pytestmark = pytest.mark.integration

FLASK = REPO / "examples" / "flask"


def test_dry_run_on_a_fresh_host_changes_nothing(fresh_sandbox):
    run = invoke("provision", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK), "--dry")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "would change" in run.stdout
    assert "apt packages" in run.stdout
    assert on_host(fresh_sandbox, "test -e /srv/flaskapp || id flaskapp").returncode != 0


def test_second_provision_changes_nothing(fresh_sandbox):
    first = invoke("provision", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK))
    assert first.returncode == 0, first.stdout + first.stderr
    assert " changed, 0 failed" in first.stdout and " 0 changed" not in first.stdout
    second = invoke("provision", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK))
    assert second.returncode == 0, second.stdout + second.stderr
    assert "0 changed, 0 failed" in second.stdout
    assert "changed  " not in second.stdout
    dry = invoke("provision", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK), "--dry")
    assert "0 would change" in dry.stdout


def test_bad_deploy_toml_is_refused_before_any_host_is_touched(fresh_sandbox, tmp_path):
    app = tmp_path / "app"
    shutil.copytree(FLASK, app)
    toml = app / "deploy.toml"
    toml.write_text(toml.read_text().replace('name = "flaskapp"', 'name = "flaskapp"\nworkers = "four"'))
    run = invoke("deploy", "--host", fresh_sandbox.ssh_alias, "--app", str(app))
    assert run.returncode == 2
    assert "workers" in run.stderr and "expected a whole number" in run.stderr
    assert fresh_sandbox.ssh_alias not in run.stdout  # no host section was even started
    assert on_host(fresh_sandbox, "test -e /srv/flaskapp").returncode != 0


def test_unreachable_sandbox_says_how_to_start_it():
    run = invoke("provision", "--host", "sandbox-nosuchbox", "--app", str(FLASK), timeout=120)
    assert run.returncode == 1
    assert "invoke sandbox.up --name nosuchbox" in run.stdout


def test_verify_passes_on_a_deployed_host(fresh_sandbox):
    run = invoke("deploy", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK))
    assert run.returncode == 0, run.stdout + run.stderr
    verify = invoke("verify", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK))
    assert verify.returncode == 0, verify.stdout + verify.stderr
    checks = (REPO / "toolkit" / "checks" / "test_site.py").read_text().count("\ndef test_")
    assert f"{checks} passed" in verify.stdout  # every shipped check ran, none skipped
    # and the checks do catch a broken host: a world-readable secrets file fails them
    on_host(fresh_sandbox, "chmod 0644 /srv/flaskapp/shared/.env")
    broken = invoke("verify", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK))
    assert broken.returncode == 1
    assert "test_env_file_is_private_to_the_app" in broken.stdout
    # provision puts it right again
    fix = invoke("provision", "--host", fresh_sandbox.ssh_alias, "--app", str(FLASK))
    assert ".env (mode 644 -> 600)" in fix.stdout
