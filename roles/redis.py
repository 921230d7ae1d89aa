"""[services] redis = true: redis-server (installed with the base packages) started with
/etc/redis/pronghorn.conf, which adds the password and the localhost binding to the package's
redis.conf (toolkit/redis_service.py says why the files look so).

    plan(facts, wanted)
      write the two files that differ; daemon-reload when the drop-in changed; restart redis
      when either changed (the password or binding only counts after a restart), else start it
      when it does not run. Turning redis off later leaves it installed (its data stays).
"""

from __future__ import annotations

from roles.files import differing, file_changes
from toolkit import redis_service
from toolkit.executor import Change
from toolkit.remote import q

STEP = "redis"


def units(wanted) -> tuple[str, ...]:
    return (redis_service.UNIT,) if wanted.redis else ()


def files(wanted) -> list:
    paths = (redis_service.CONF, redis_service.DROPIN)
    return [f for f in wanted.files + wanted.extra_unit_files if f.path in paths]


def plan(facts, wanted) -> list:
    if not wanted.redis:
        return []
    wanted_files = files(wanted)
    changes = file_changes(facts, wanted_files)
    changed = [f.path for f, _ in differing(facts, wanted_files)]
    unit, state = q(redis_service.UNIT), facts.unit(redis_service.UNIT)
    script = ["systemctl daemon-reload"] if redis_service.DROPIN in changed else []
    if state.enabled != "enabled":
        script.append(f"systemctl enable --quiet {unit}")
    if changed:
        script.append(f"systemctl restart {unit}")
        note = "restarted redis-server"
    elif state.active != "active":
        script.append(f"systemctl start {unit}")
        note = "started redis-server"
    else:
        note = "enabled redis-server"
    if script:
        changes.append(Change(note, script=" && ".join(script), label="starting redis-server"))
    return changes
