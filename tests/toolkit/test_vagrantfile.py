"""The Vagrantfile (a local VM for people with VirtualBox or libvirt) is valid and says what the README relies on.

`vagrant validate --ignore-provider` checks the Ruby and every setting outside the provider blocks without
creating a VM, and needs no provider installed (so it runs on a machine set up by scripts/bootstrap alone).
It runs on a copy in a temp directory so the checkout gets no `.vagrant/` folder.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

VAGRANTFILE = Path(__file__).resolve().parents[2] / "Vagrantfile"

pytestmark = pytest.mark.skipif(shutil.which("vagrant") is None,
                                reason="vagrant is not installed (apt-get install vagrant)")


def validate(tmp_path: Path, text: str) -> subprocess.CompletedProcess:
    workdir = tmp_path / "vm"
    workdir.mkdir()
    (workdir / "Vagrantfile").write_text(text)
    env = dict(os.environ, VAGRANT_HOME=str(tmp_path / "vagrant-home"), VAGRANT_CHECKPOINT_DISABLE="1")
    # --ignore-provider: without it, validate first looks for a usable provider and, on a machine
    # with neither VirtualBox nor libvirt (scripts/bootstrap installs neither), stops at "No usable
    # default provider could be found" before reading the file. With it, everything but the
    # provider blocks is checked (a misspelt setting is still refused, see the test below).
    return subprocess.run(["vagrant", "validate", "--ignore-provider"], cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=120)


def test_vagrantfile_validates(tmp_path):
    result = validate(tmp_path, VAGRANTFILE.read_text())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "validated successfully" in result.stdout


def test_validate_catches_a_misspelled_setting(tmp_path):
    # Proves the check above reads our file and can fail: the same file with one setting misspelled.
    broken = VAGRANTFILE.read_text().replace("config.vm.box =", "config.vm.boxx =", 1)
    result = validate(tmp_path, broken)
    assert result.returncode != 0
    assert "boxx" in result.stdout + result.stderr


def test_vagrantfile_matches_the_documented_setup():
    text = VAGRANTFILE.read_text()
    assert 'config.vm.box = "bento/ubuntu-24.04"' in text
    assert 'ip: "192.168.56.10"' in text
    assert 'provider "virtualbox"' in text and 'provider "libvirt"' in text
    # The comment people copy from: how Fabric finds the VM.
    assert "vagrant ssh-config --host pronghorn-vm >> ~/.ssh/config" in text
    assert "invoke deploy --host pronghorn-vm" in text
