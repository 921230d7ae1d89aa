"""Step output: named, timed, ok/changed/failed; colours only on a terminal; a summary per
host with the URL, and on failure the error and what to type next."""

import io
import re

import pytest

from toolkit.report import Reporter


class Tty(io.StringIO):
    def isatty(self):
        return True


def run_host(rep, changed=True, fail=False):
    rep.begin_host("sandbox-t1")
    with rep.step("apt packages"):
        pass
    with rep.step("user shop") as st:
        if changed:
            st.changed("created group and user")
    if fail:
        with pytest.raises(RuntimeError):
            with rep.step("health check"):
                raise RuntimeError("boom")
        rep.fail_host("health check failed", "invoke logs --host sandbox-t1")
    else:
        rep.end_host(url="http://10.77.9.2/")


def test_steps_are_named_timed_and_marked():
    out = io.StringIO()
    rep = Reporter(out=out)
    run_host(rep)
    lines = out.getvalue().splitlines()
    assert lines[0] == "== sandbox-t1"
    assert re.match(r"^\s+ok\s+apt packages\s+\d+\.\d\ds$", lines[1])
    assert re.match(r"^\s+changed\s+user shop\s+\d+\.\d\ds  created group and user$", lines[2])


def test_no_colour_codes_when_not_a_terminal():
    out = io.StringIO()
    run_host(Reporter(out=out))
    assert "\033[" not in out.getvalue()


def test_colours_on_a_terminal():
    out = Tty()
    run_host(Reporter(out=out))
    assert "\033[33mchanged" in out.getvalue()


def test_summary_of_a_good_host_shows_counts_and_url():
    out = io.StringIO()
    rep = Reporter(out=out)
    run_host(rep)
    rep.summary()
    text = out.getvalue()
    assert "sandbox-t1: ok  1 ok, 1 changed, 0 failed" in text
    assert "site: http://10.77.9.2/" in text
    assert not rep.failed


def test_failed_step_is_marked_and_summary_says_what_to_type_next():
    out = io.StringIO()
    rep = Reporter(out=out)
    run_host(rep, fail=True)
    rep.skip_host("web2")
    rep.summary()
    text = out.getvalue()
    assert re.search(r"failed\s+health check", text)
    assert "sandbox-t1: failed: health check failed\n    1 ok, 1 changed, 1 failed  in " in text
    assert "next: invoke logs --host sandbox-t1" in text
    assert "web2: not attempted (an earlier host failed)" in text
    assert "site:" not in text
    assert rep.failed


def test_dry_run_says_would_change():
    out = io.StringIO()
    rep = Reporter(out=out, dry=True)
    run_host(rep)
    rep.summary()
    text = out.getvalue()
    assert "dry run" in text.splitlines()[0]
    assert re.search(r"would change\s+user shop", text)
    assert "1 would change" in text


def test_unchanged_run_reports_zero_changed():
    out = io.StringIO()
    rep = Reporter(out=out)
    run_host(rep, changed=False)
    rep.summary()
    assert "2 ok, 0 changed, 0 failed" in out.getvalue()


def test_a_host_failing_between_steps_says_why_and_counts_the_failure():
    # A rollback with nothing to roll back to: the lock step is ok, then a check between steps
    # fails. The summary once read "failed  1 ok, 0 changed, 0 failed".
    out = io.StringIO()
    rep = Reporter(out=out)
    rep.begin_host("sandbox-t1")
    with rep.step("deploy lock"):
        pass
    rep.fail_host("there is no earlier good release to roll back to",
                  "invoke releases --host sandbox-t1 --app .")
    rep.summary()
    summary = out.getvalue().split("Summary\n", 1)[1].splitlines()
    assert summary[0] == "  sandbox-t1: failed: there is no earlier good release to roll back to"
    assert re.fullmatch(r"    1 ok, 0 changed, 1 failed  in \d+\.\ds", summary[1])
    assert summary[2] == "    next: invoke releases --host sandbox-t1 --app ."
    assert "0 failed" not in out.getvalue()
    assert rep.failed


def test_a_failed_host_summary_keeps_every_line_of_the_error():
    out = io.StringIO()
    rep = Reporter(out=out)
    rep.begin_host("web1")
    rep.fail_host("the release failed\n(cleaning up also failed: timeout)", "invoke lock.release --host web1")
    rep.summary()
    summary = out.getvalue().split("Summary\n", 1)[1].splitlines()
    assert summary[:3] == ["  web1: failed: the release failed", "    (cleaning up also failed: timeout)",
                           summary[2]]
    assert summary[2].startswith("    0 ok, 0 changed, 1 failed  in ")


def test_a_failed_step_without_an_error_message_is_named_in_the_summary():
    out = io.StringIO()
    rep = Reporter(out=out)
    rep.begin_host("web1")
    with pytest.raises(RuntimeError):
        with rep.step("health check"):
            raise RuntimeError("boom")
    rep.summary()
    assert "  web1: failed: failed step: health check\n    0 ok, 0 changed, 1 failed" in out.getvalue()
