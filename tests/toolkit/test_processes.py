"""[processes] and [schedule]: the config checks, the rendered units (valid for systemd, hardened
as the web unit), the role plans with plain facts, the restart command of a release, and the
status lines. The sandbox scenario is tests/integration/test_processes.py."""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from roles import processes, schedule
from roles.wanted import Wanted
from toolkit import process_status, process_units
from toolkit.config import ConfigError, load_app_config
from toolkit.facts.extra_units import AppUnitsFacts, ExtraUnits
from toolkit.facts.files import FileFact, sha256_text
from toolkit.facts.host import UnitState
from toolkit.release_commands import processes_restart_script
from toolkit.render import render_all

from tests.toolkit.test_render import security_exposure, systemd_verify

REPO = Path(__file__).resolve().parents[2]
needs_systemd_analyze = pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze missing")

PROCESSES = '''
[processes]
worker = "celery -A mysite worker --hostname \\"$APP_NAME\\"@%h"
rq = "rq worker"

[schedule]
clearsessions = { command = "python manage.py clearsessions", on = "daily" }
'''


def app(tmp_path, extra=PROCESSES):
    folder = tmp_path / "app"
    shutil.copytree(REPO / "examples" / "flask", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "deploy.toml").write_text((folder / "deploy.toml").read_text() + extra)
    return folder


def config(tmp_path, extra=PROCESSES):
    return load_app_config(app(tmp_path, extra))


def units_of(cfg):
    return {f.path.rsplit("/", 1)[-1]: f for f in render_all(cfg) if f.path.startswith("/etc/systemd/system/")}


# --------------------------------------------------------------------------- config

def test_processes_and_schedules_are_read(tmp_path):
    cfg = config(tmp_path)
    assert cfg.processes == {"worker": 'celery -A mysite worker --hostname "$APP_NAME"@%h', "rq": "rq worker"}
    assert cfg.schedules == {"clearsessions": {"command": "python manage.py clearsessions", "on": "daily"}}


@pytest.mark.parametrize("extra, says", [
    ('[processes]\n"my worker" = "x"\n', "'my worker' is not a valid name"),
    ('[processes]\nworker = ""\n', "worker: expected a command line"),
    ('[processes]\nworker = 3\n', "worker: expected a command line"),
    ('[schedule]\njob = "python x.py"\n', "job: expected { command"),
    ('[schedule]\njob = { command = "x", on = "daily", every = 1 }\n', "exactly those two keys"),
    ('[schedule]\njob = { command = "x", on = "daily; rm -rf /" }\n', "OnCalendar= expression"),
    ('[processes]\njob = "x"\n[schedule]\njob = { command = "x", on = "daily" }\n', "both in [processes] and [schedule]"),
])
def test_bad_entries_name_the_entry_and_what_is_allowed(tmp_path, extra, says):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, "\n" + extra)
    assert says in str(err.value)
    assert "deploy.toml" in str(err.value)


@needs_systemd_analyze
def test_a_calendar_expression_systemd_refuses_is_refused_before_any_host(tmp_path):
    with pytest.raises(ConfigError) as err:
        config(tmp_path, '\n[schedule]\njob = { command = "x", on = "*-*-* 25:00:00" }\n')
    assert "job.on" in str(err.value) and "systemd-analyze calendar" in str(err.value)
    assert config(tmp_path / "ok", '\n[schedule]\njob = { command = "x", on = "Mon..Fri *-*-* 04:00" }\n')


def test_an_app_without_processes_gets_no_extra_units():
    cfg = load_app_config(REPO / "examples" / "flask")
    assert set(units_of(cfg)) == {"flaskapp.service", "flaskapp.socket"}
    assert processes_restart_script(cfg) == "" and process_status.show_command(cfg) == ""


# --------------------------------------------------------------------------- rendered units

def test_each_process_is_a_unit_in_the_live_release_with_its_venv_and_env(tmp_path):
    cfg = config(tmp_path)
    unit = units_of(cfg)["flaskapp-worker.service"].content
    for line in ("User=flaskapp", "WorkingDirectory=/srv/flaskapp/current", "EnvironmentFile=/srv/flaskapp/shared/.env",
                 "Environment=PATH=/srv/flaskapp/current/.venv/bin:/usr/local/bin:/usr/bin:/bin",
                 "Restart=always", process_units.marker("flaskapp")):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line


def test_the_command_reaches_sh_exactly_as_written(tmp_path):
    """systemd's own expansions ($VAR, %h) are escaped: sh gets the Procfile line, and expands
    $APP_NAME from the environment itself."""
    cfg = config(tmp_path)
    line = re.search(r"^ExecStart=(.*)$", units_of(cfg)["flaskapp-worker.service"].content, re.M).group(1)
    assert line == '/bin/sh -c "exec celery -A mysite worker --hostname \\"$$APP_NAME\\"@%%h"'


def test_schedules_get_a_oneshot_service_and_a_persistent_timer(tmp_path):
    units = units_of(config(tmp_path))
    service, timer = units["flaskapp-clearsessions.service"].content, units["flaskapp-clearsessions.timer"].content
    assert "Type=oneshot" in service and "[Install]" not in service
    for line in ("OnCalendar=daily", "Persistent=true", "Unit=flaskapp-clearsessions.service"):
        assert re.search(rf"^{re.escape(line)}$", timer, re.M), line


@needs_systemd_analyze
def test_extra_units_pass_systemd_analyze_verify(tmp_path):
    units = [u for name, u in units_of(config(tmp_path)).items() if name.startswith("flaskapp-")]
    assert len(units) == 4
    out = tmp_path / "units"
    out.mkdir()
    assert systemd_verify(out, units, "/bin/sh") == []


@needs_systemd_analyze
@pytest.mark.parametrize("unit", ["flaskapp-worker.service", "flaskapp-clearsessions.service"])
def test_extra_units_are_hardened_as_the_web_unit(tmp_path, unit):
    units = units_of(config(tmp_path))
    assert security_exposure(tmp_path, units[unit]) <= 1.0
    web = units["flaskapp.service"].content
    hardening = web[web.index("NoNewPrivileges=yes"):web.index("[Install]")]
    settings = [line for line in hardening.splitlines() if line and not line.startswith("#")]
    assert all(line in units[unit].content.splitlines() for line in settings)


# --------------------------------------------------------------------------- role plans

def wanted_for(cfg):
    return Wanted.of(cfg, render_all(cfg))


def written(files):
    return {f.path: FileFact(f.path, True, "file", f.mode, f.owner, f.group, sha256_text(f.content))
            for f in files}


def facts(wanted, live=True, units=None, on_host=frozenset(), files_as_wanted=True):
    files = written(wanted.extra_unit_files) if files_as_wanted else {}
    if live:
        files[wanted.layout.current_dir] = FileFact(wanted.layout.current_dir, True, "link")
    return AppUnitsFacts(files=files, units=units or {}, extra_units=frozenset(on_host))


def scripts(changes):
    return "\n".join(ch.script for ch in changes)


def test_a_new_process_is_written_enabled_and_started_once_a_release_is_live(tmp_path):
    w = wanted_for(config(tmp_path))
    changes = processes.plan(facts(w, files_as_wanted=False), w)
    assert {f.path for ch in changes for f in ch.files} == {"/etc/systemd/system/flaskapp-rq.service",
                                                           "/etc/systemd/system/flaskapp-worker.service"}
    script = scripts(changes)
    assert "daemon-reload" in script and "enable --quiet flaskapp-worker.service" in script
    assert "systemctl start flaskapp-worker.service" in script


def test_before_the_first_release_processes_are_enabled_not_started(tmp_path):
    w = wanted_for(config(tmp_path))
    script = scripts(processes.plan(facts(w, live=False, files_as_wanted=False), w))
    assert "enable" in script and "start" not in script


def test_running_processes_as_wanted_need_nothing(tmp_path):
    w = wanted_for(config(tmp_path))
    running = {u: UnitState("enabled", "active") for u in processes.units(w) + schedule.units(w)}
    assert processes.plan(facts(w, units=running), w) == []
    assert schedule.plan(facts(w, units=running), w) == []


def test_a_changed_command_restarts_its_running_process(tmp_path):
    w = wanted_for(config(tmp_path))
    running = {u: UnitState("enabled", "active") for u in processes.units(w)}
    host = facts(w, units=running)
    path = "/etc/systemd/system/flaskapp-rq.service"
    host.files[path] = FileFact(path, True, "file", 0o644, "root", "root", "old")
    script = scripts(processes.plan(host, w))
    assert "daemon-reload" in script and "restart flaskapp-rq.service" in script
    assert "flaskapp-worker" not in script


def test_a_process_removed_from_deploy_toml_is_stopped_and_removed(tmp_path):
    w = wanted_for(config(tmp_path))
    running = {u: UnitState("enabled", "active") for u in processes.units(w) + schedule.units(w)}
    on_host = set(processes.units(w) + schedule.units(w)) | {"flaskapp-beat.service"}
    changes = processes.plan(facts(w, units=running, on_host=on_host), w)
    script = scripts(changes)
    assert "disable --now --quiet flaskapp-beat.service" in script
    assert "rm -f /etc/systemd/system/flaskapp-beat.service" in script and "daemon-reload" in script
    # the schedule's own service is left to the schedule role
    assert "clearsessions" not in script


def test_a_schedule_removed_from_deploy_toml_goes_with_its_service(tmp_path):
    w = wanted_for(config(tmp_path))
    on_host = set(schedule.units(w)) | {"flaskapp-old.timer", "flaskapp-old.service"}
    running = {u: UnitState("enabled", "active") for u in schedule.units(w)}
    script = scripts(schedule.plan(facts(w, units=running, on_host=on_host), w))
    assert "disable --now --quiet flaskapp-old.timer" in script
    assert "rm -f /etc/systemd/system/flaskapp-old.service" in script
    assert "clearsessions" not in script
    # and the process role keeps its hands off a service that has a timer
    assert "flaskapp-old" not in scripts(processes.plan(facts(w, units=running, on_host=on_host), w))


def test_a_new_timer_is_enabled_and_started_once_a_release_is_live(tmp_path):
    """Before the first release a job has nothing to run: that release starts the timer."""
    w = wanted_for(config(tmp_path))
    script = scripts(schedule.plan(facts(w, live=False, files_as_wanted=False), w))
    assert "enable --quiet flaskapp-clearsessions.timer" in script and "start" not in script
    script = scripts(schedule.plan(facts(w, files_as_wanted=False), w))
    assert "systemctl start flaskapp-clearsessions.timer" in script


def test_the_fact_finds_only_units_marked_as_this_apps():
    fact = ExtraUnits("shop")
    assert "grep -lxF '# pronghorn-extra-unit-of: shop'" in fact.command()
    assert fact.parse(["/etc/systemd/system/shop-worker.service", "/etc/systemd/system/shop-x.timer", ""]) == \
        {"shop-worker.service", "shop-x.timer"}


# --------------------------------------------------------------------------- release and status

def test_a_release_restarts_every_process_and_starts_the_timers(tmp_path):
    script = processes_restart_script(config(tmp_path))
    assert "systemctl restart flaskapp-rq.service flaskapp-worker.service && " in script
    assert script.endswith("systemctl start flaskapp-clearsessions.timer")


SHOWN = """Id=flaskapp-rq.service
LoadState=loaded
UnitFileState=enabled
ActiveState=active
SubState=running

Id=flaskapp-worker.service
LoadState=loaded
UnitFileState=enabled
ActiveState=failed
SubState=failed
Result=exit-code

Id=flaskapp-clearsessions.timer
LoadState=loaded
UnitFileState=enabled
ActiveState=active
SubState=waiting
LastTriggerUSec=Wed 2026-12-02 00:00:00 UTC
NextElapseUSecRealtime=Thu 2026-12-03 00:00:00 UTC

Id=flaskapp-clearsessions.service
LoadState=loaded
ActiveState=inactive
Result=exit-code
ExecMainStatus=2
"""


def test_status_lines_say_which_process_or_job_needs_looking_at(tmp_path):
    lines = process_status.describe(config(tmp_path), process_status.parse(SHOWN))
    text = "\n".join(line.text for line in lines)
    assert re.search(r"flaskapp-rq.service\s+enabled / active$", text, re.M)
    assert "flaskapp-worker.service      enabled / failed (failed)" in text
    assert "last run: Wed 2026-12-02 00:00:00 UTC (failed: exit-code, exit 2); next: Thu 2026-12-03" in text
    assert [line.problem for line in lines if line.problem] == ["worker", "clearsessions"]


# --------------------------------------------------------------------------- staying up after a restart

STAYING = """Id=flaskapp-rq.service
ActiveState=active
SubState=running
NRestarts=0

Id=flaskapp-worker.service
ActiveState=active
SubState=running
ExecMainStatus=0
NRestarts=2
"""


def test_a_process_systemd_restarted_is_not_up_although_it_is_active(tmp_path):
    """Restart=always brings a crashing process back: `active` with NRestarts > 0 is a crash loop."""
    cfg = config(tmp_path)
    assert process_status.not_staying_up(cfg, process_status.parse(STAYING)) == [
        ("worker", "active (running); restarted 2 time(s) by systemd")]
    exited = STAYING.replace("ActiveState=active\nSubState=running\nExecMainStatus=0",
                             "ActiveState=activating\nSubState=auto-restart\nExecMainStatus=3")
    assert process_status.not_staying_up(cfg, process_status.parse(exited)) == [
        ("worker", "it exited with status 3, systemd is restarting it; restarted 2 time(s) by systemd")]
    up = STAYING.replace("NRestarts=2", "NRestarts=0")
    assert process_status.not_staying_up(cfg, process_status.parse(up)) == []
    # and `invoke status` says so too, although the unit is active at this moment
    lines = process_status.describe(cfg, process_status.parse(STAYING))
    assert [line.problem for line in lines if line.problem in cfg.processes] == ["worker"]  # rq is fine
    assert "systemd restarted it 2 time(s) since its last start" in "\n".join(line.text for line in lines)
    assert process_status.settle_command(load_app_config(REPO / "examples" / "flask")) == ""


def _settle_with_fake_systemctl(tmp_path, cfg, shown):
    """Run settle_command with a `systemctl` that prints `shown` and counts its calls."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(parents=True)
    (tmp_path / "shown").write_text(shown)
    fake = bin_dir / "systemctl"
    fake.write_text(f"#!/bin/sh\necho x >> {tmp_path}/calls\ncat {tmp_path}/shown\n")
    fake.chmod(0o755)
    done = subprocess.run(["sh", "-c", process_status.settle_command(cfg, seconds=1)], capture_output=True,
                          text=True, timeout=60, env={"PATH": f"{bin_dir}:/usr/bin:/bin"})
    return done.stdout, len((tmp_path / "calls").read_text().split())


def test_the_watch_stops_at_the_first_look_that_finds_a_process_down(tmp_path):
    cfg = config(tmp_path)
    out, calls = _settle_with_fake_systemctl(tmp_path / "down", cfg, STAYING)
    assert calls == 2 and "NRestarts=2" in out  # one look found it, then the state is printed
    out, calls = _settle_with_fake_systemctl(tmp_path / "up", cfg, STAYING.replace("NRestarts=2", "NRestarts=0"))
    assert calls == 3 and process_status.not_staying_up(cfg, process_status.parse(out)) == []  # 2 looks in 1 s


# --------------------------------------------------------------------------- redis

def test_redis_gets_a_password_kept_across_deploys_and_only_in_a_root_redis_file(tmp_path):
    cfg = config(tmp_path, "\n[services]\nredis = true\n")
    first = {f.path: f for f in render_all(cfg)}
    env = first["/srv/flaskapp/shared/.env"].content
    url = re.search(r"^REDIS_URL='?(redis://[^'\n]*)'?$", env, re.M).group(1)
    password = url.split(":")[2].split("@")[0]
    assert len(password) >= 32 and url == f"redis://default:{password}@127.0.0.1:6379/0"
    conf = first["/etc/redis/pronghorn.conf"]
    assert (conf.mode, conf.owner, conf.group) == (0o640, "root", "redis")
    assert f"requirepass {password}\n" in conf.content and "bind 127.0.0.1 -::1" in conf.content
    dropin = first["/etc/systemd/system/redis-server.service.d/pronghorn.conf"].content
    assert "ExecStart=/usr/bin/redis-server /etc/redis/pronghorn.conf " in dropin and password not in dropin
    again = {f.path: f for f in render_all(cfg, {"env": {"REDIS_URL": url}})}
    assert again["/etc/redis/pronghorn.conf"].content == conf.content
    masked = {f.path: f for f in render_all(cfg, mask_secrets=True)}
    assert password not in masked["/etc/redis/pronghorn.conf"].content
    w = wanted_for(cfg)
    assert "redis-server" in w.all_packages and w.redis


def test_redis_role_restarts_redis_when_its_files_change_and_starts_it_otherwise(tmp_path):
    from roles import redis

    w = wanted_for(config(tmp_path, "\n[services]\nredis = true\n"))
    fresh = facts(w, units={"redis-server.service": UnitState("enabled", "active")}, files_as_wanted=False)
    script = scripts(redis.plan(fresh, w))
    assert "daemon-reload" in script and "systemctl restart redis-server.service" in script
    as_wanted = AppUnitsFacts(files=written(redis.files(w)),
                              units={"redis-server.service": UnitState("enabled", "active")})
    assert redis.plan(as_wanted, w) == []
    stopped = AppUnitsFacts(files=written(redis.files(w)), units={"redis-server.service": UnitState("enabled", "failed")})
    assert "systemctl start redis-server.service" in scripts(redis.plan(stopped, w))
    assert redis.plan(fresh, wanted_for(config(tmp_path / "off"))) == []


def test_logs_of_an_unknown_process_names_the_known_ones_and_what_to_type(tmp_path):
    from invoke.exceptions import Exit

    from toolkit.tasks_deploy import _log_unit

    cfg = config(tmp_path)
    assert _log_unit(cfg, "worker", ".", "h") == "flaskapp-worker.service"
    assert _log_unit(cfg, "clearsessions", ".", "h") == "flaskapp-clearsessions.service"
    assert _log_unit(cfg, None, ".", "h") == "flaskapp.service"
    with pytest.raises(Exit) as err:
        _log_unit(cfg, "wrker", ".", "deploy@host")
    message = str(err.value.message)
    assert "no process or scheduled job named 'wrker'" in message and "rq, worker, clearsessions" in message
    assert "--host deploy@host --process rq" in message
