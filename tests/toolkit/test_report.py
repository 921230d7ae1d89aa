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
    assert "sandbox-t1: failed  1 ok, 1 changed, 1 failed" in text
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
