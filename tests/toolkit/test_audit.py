"""The audit trail's line format: written and read back, one line per action whatever the
text, the older four-field deploy log still read, and the append run with sh on a temp folder."""

import os
import stat
import subprocess

import pytest

from toolkit import audit
from toolkit.layout import HostLayout


def test_a_line_reads_back_as_written():
    text = audit.line("deploy", "20260102095940", "ok", who="alice@laptop", when=0)
    assert text == "1970-01-01T00:00:00Z\talice@laptop\tdeploy\t20260102095940\tok"
    entry = audit.parse(text)
    assert entry == audit.Entry("1970-01-01T00:00:00Z", "alice@laptop", "deploy", "20260102095940", "ok")
    assert "alice@laptop" in entry.describe() and entry.describe().endswith("ok")


def test_tabs_and_line_breaks_in_a_result_never_split_the_line():
    text = audit.line("rollback", "", "failed:\nboom\there", who="a@b")
    assert "\n" not in text
    entry = audit.parse(text)
    assert entry.target == "-" and entry.result == "failed: boom here"


def test_the_older_deploy_log_is_read_too():
    deploy = audit.parse("2025-01-01T10:00:00Z\tbob@desk\t20250101095900\tok")
    assert (deploy.action, deploy.target, deploy.result) == ("deploy", "20250101095900", "ok")
    back = audit.parse("2025-01-01T11:00:00Z\tbob@desk\t20250101095900\trollback from 20250101105900")
    assert back.action == "rollback"
    assert audit.parse("not a line of ours") is None


def test_an_unknown_action_is_refused():
    with pytest.raises(ValueError, match="unknown audit action 'deploi'"):
        audit.line("deploi", "-", "ok")


class TmpLayout(HostLayout):
    root: str = ""

    @property
    def base_dir(self):
        return f"{self.root}/srv/{self.app}"


@pytest.mark.skipif(os.geteuid() != 0, reason="the log is chowned to root, as on a host")
def test_append_keeps_the_log_private_and_replaces_a_planted_symlink(tmp_path):
    layout = TmpLayout("shop")
    object.__setattr__(layout, "root", str(tmp_path))
    os.makedirs(layout.base_dir)
    target = tmp_path / "elsewhere"
    target.write_text("")
    os.symlink(target, layout.deploy_log)
    for result in ("ok", "failed"):
        subprocess.run(["sh", "-c", audit.append_script(layout, "deploy", "20250101100000", result)], check=True)
    assert target.read_text() == ""  # the link was not followed
    info = os.lstat(layout.deploy_log)
    assert stat.S_ISREG(info.st_mode) and stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == 0
    lines = open(layout.deploy_log).read().splitlines()
    assert [audit.parse(line).result for line in lines] == ["ok", "failed"]
