"""Rolling deploys and rollbacks across the app hosts of deploy.toml [hosts], a batch at a time,
behind the load balancers, so the site never stops answering.

    prepare    every app host at once (bounded): lock, provision, upload, venv, import check
               (toolkit/stages.py starting + updating). Nothing is switched. Django's migrations
               run here on the first app host only: once, before any host runs the new code.
    per batch  (--batch N, default 1) take the batch out of the load balancers (its upstream
               entries re-rendered `down`, nginx reloaded gracefully; the same reload puts the
               batch before back), wait until the balancers' old workers have finished their
               requests (the batch's in-flight requests are done), switch and restart and
               health-check each host of the batch (stages publishing); the next batch starts
               only once this one serves; after the last, every host is back in rotation.
    finishing  every host: mark the release good, prune, unlock (stages finishing).

A failure stops the roll: the host that failed put itself back (stages.recover), every other
host is `abort`ed (a switched one goes back to its previous good release, a restart behind its
socket, a prepared one just lets go of its lock), and every host goes back into the load
balancers. The error goes on up.

The orchestration (`roll`, `roll_back`) works on two small interfaces so its ordering and its
failure handling are tested with plain fakes (tests/toolkit/test_rolling.py):

    Member     name; prepare() -> bool (False: nothing new to switch to); publish(); finish();
               abort(exc) (put back what it changed, unlock); rollback() (an earlier release)
    Balancer   set_down(hosts) (the upstream with these hosts down, nginx reloaded); drain()

`StageMember` and `NginxBalancer` are the real ones: a host's DeployContext run stage by stage,
and the load balancer hosts' nginx.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

PARALLEL = 4  # app hosts prepared at once


@dataclass
class RollResult:
    """What a roll did: the hosts switched, batch by batch, and how long each part took."""
    prepared: list = field(default_factory=list)
    switched: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    prepare_seconds: float = 0.0
    batch_seconds: list = field(default_factory=list)  # (hosts, seconds) per batch


class NoBalancer:
    """App hosts without a load balancer in front ([hosts] without lb): nothing to take out."""

    def set_down(self, hosts) -> None:
        pass

    def drain(self) -> None:
        pass


def batches(items: list, size: int) -> list[list]:
    size = max(1, int(size))
    return [items[i:i + size] for i in range(0, len(items), size)]


def _each(members, fn, parallel: int) -> list:
    """fn(member) for every member, `parallel` at once, every one to its end: [(member, exc or None)]."""
    def one(member):
        try:
            fn(member)
            return member, None
        except BaseException as exc:  # noqa: BLE001 - collected, the caller decides
            return member, exc

    if parallel <= 1 or len(members) <= 1:
        return [one(m) for m in members]
    with ThreadPoolExecutor(max_workers=min(parallel, len(members)), thread_name_prefix="roll") as pool:
        return list(pool.map(one, members))


def roll(members: list, balancer=None, batch: int = 1, parallel: int = PARALLEL) -> RollResult:
    """The rolling deploy of `members` (app hosts, in inventory order). Raises the first error
    after putting every host back (see the module docstring)."""
    balancer = balancer or NoBalancer()
    result = RollResult()
    started = time.monotonic()
    changed = {}

    def prepare(member):
        changed[member.name] = member.prepare()

    outcomes = _each(members, prepare, parallel)
    result.prepare_seconds = time.monotonic() - started
    failed = [(m, exc) for m, exc in outcomes if exc is not None]
    if failed:
        _abort(members, [m for m, _ in failed], failed[0][1], balancer)
        raise failed[0][1]
    result.prepared = [m.name for m in members]
    to_switch = [m for m in members if changed.get(m.name)]
    result.unchanged = [m.name for m in members if not changed.get(m.name)]
    switched: list = []
    for group in batches(to_switch, batch):
        began = time.monotonic()
        names = [m.name for m in group]
        try:
            # One reload puts the previous batch back and takes this one out: every reload may
            # close a client's idle keep-alive connection to the load balancer just as it is
            # reused, so a roll reloads as few times as it can.
            balancer.set_down(names)
            balancer.drain()
            outcomes = _each(group, lambda m: m.publish(), parallel)
        except BaseException as exc:  # the balancer failed, or Ctrl-C while publishing
            _abort(members, [], exc, balancer)
            raise
        failed = [m for m, exc in outcomes if exc is not None]
        switched += [m for m in group if m not in failed]
        if failed:
            # the failed hosts put themselves back in publish (stages.recover)
            error = next(exc for _, exc in outcomes if exc is not None)
            _abort(members, failed, error, balancer)
            raise error
        result.batch_seconds.append((names, time.monotonic() - began))
    try:
        balancer.set_down([])
    except BaseException as exc:
        _abort(members, [], exc, balancer)
        raise
    result.switched = [m.name for m in switched]
    finished = _each(members, lambda m: m.finish(), parallel)
    errors = [exc for _, exc in finished if exc is not None]
    if errors:
        raise errors[0]
    return result


def _abort(members, failed, exc, balancer) -> None:
    """After a failure: every member but the failed ones (which recovered themselves) lets go,
    a switched one back on its previous good release (a restart behind its socket: no request
    fails, so it stays in rotation meanwhile); then every host is back in rotation."""
    others = [m for m in members if m not in failed]
    try:
        for m, error in _each(others, lambda m: m.abort(exc), PARALLEL):
            if error is not None:
                _note(exc, f"{m.name}: putting it back also failed: {error}")
    finally:
        try:
            balancer.set_down([])
        except Exception as error:  # the original error matters more; say this one too
            _note(exc, f"putting the app hosts back into the load balancer failed: {error}")


def _note(exc, text: str) -> None:
    details = getattr(exc, "details", None)
    if isinstance(details, str):
        exc.details = "\n".join(filter(None, [details, text]))


def roll_back(members: list, balancer=None, batch: int = 1) -> list:
    """`invoke rollback` across the app hosts: per batch out of the balancer (the previous batch
    back in, in the same reload), back to the earlier release, health-checked. A failure stops
    there (the hosts before it stay rolled back, the failed one says why); every host is back in
    rotation either way."""
    balancer = balancer or NoBalancer()
    done = []
    try:
        for group in batches(members, batch):
            balancer.set_down([m.name for m in group])
            balancer.drain()
            failures = [exc for _, exc in _each(group, lambda m: m.rollback(), PARALLEL) if exc is not None]
            if failures:
                raise failures[0]
            done += [m.name for m in group]
    finally:
        balancer.set_down([])
    return done
