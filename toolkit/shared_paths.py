"""Data that survives every release: which paths of a release live in shared/ and are linked
into it (Capistrano's linked_files and linked_dirs), and the release step that links them.

Two sources:
- deploy.toml `[app] shared = ["db.sqlite3", "uploads/"]`: each path (relative to the app; a
  trailing / makes a folder) lives at shared/data/PATH.
- Django's settings, read on the host (onhost/django_paths.py): a sqlite database inside the
  release (a stock `startproject` keeps `BASE_DIR / "db.sqlite3"`) is linked to shared/data,
  a MEDIA_ROOT inside the release to shared/media (where nginx serves uploads from). A path the
  service could not write (anything outside the release, shared/data and shared/media) stops
  the deploy before the switch, naming the setting to change.
- Static files: nginx serves each [static] URL from a folder of the release. When Django's
  STATIC_URL has no such folder, or STATIC_ROOT is another folder, the deploy stops saying which
  [static] line to write; no STATIC_ROOT at all (a stock project) collects into that folder
  (`DjangoPlan.collect_into`, used by the collectstatic step in stages.py).

`plan_django` is pure (tested with plain data); `link_release` runs the step on the host.
"""

from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass, field

from toolkit import onhost
from toolkit.errors import DeployError, next_task
from toolkit.remote import sh

MARK = "@@django-paths "


@dataclass(frozen=True)
class Link:
    rel: str  # the path in the release; a trailing / for a folder
    target: str  # absolute: where it lives (shared/data/..., shared/media, or in the release)
    why: str  # what asked for it, for the step's output


@dataclass
class DjangoPlan:
    links: list[Link] = field(default_factory=list)  # release paths -> shared/
    collect_into: str = ""  # STATIC_ROOT is unset: collectstatic writes here (absolute)
    notes: list[str] = field(default_factory=list)


def configured_links(cfg) -> list[Link]:
    """The links deploy.toml's [app] shared asks for."""
    data = cfg.layout.data_dir
    for path in cfg.shared:
        if os.path.normpath(path.rstrip("/")) != path.rstrip("/") or path.strip("/") in ("", "."):
            raise DeployError(f"[app] shared: {path!r} is not a plain path of a file or folder of the app",
                              'write it like "db.sqlite3" or "uploads/" (no "./", "//" or ".") in deploy.toml')
    return [Link(p, f"{data}/{p.rstrip('/')}", "[app] shared") for p in cfg.shared]


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def _fix(setting: str, value: str) -> str:
    return f"set {setting} = {value} in your settings, then deploy again: " + next_task("deploy")


def plan_django(cfg, report: dict) -> DjangoPlan:
    """What to link (or the DeployError to stop with) for the paths Django's settings report."""
    lay, release, plan = cfg.layout, report["release"], DjangoPlan()
    writable = (lay.data_dir, lay.media_dir)
    for db in report["databases"]:
        name = db["name"]
        if "sqlite3" not in db["engine"] or not name.startswith("/"):
            continue  # a server database, ":memory:" or a file: URI: nothing on disk to keep
        setting = f'DATABASES["{db["alias"]}"]["NAME"]'
        if _inside(name, release):
            rel = os.path.relpath(name, release)
            plan.links.append(Link(rel, f"{lay.data_dir}/{rel}", setting))
        elif not any(_inside(name, w) for w in writable):
            raise DeployError(
                f"{setting} is {name}: the app's service can write only under {lay.data_dir} and "
                f"{lay.media_dir}, so that database could not be written (nothing was switched)",
                _fix(setting, f'os.environ["APP_DATA_DIR"] + "/{os.path.basename(name)}"'))
    media = report["media_root"]
    if media and _inside(media, release):
        plan.links.append(Link(os.path.relpath(media, release) + "/", lay.media_dir, "MEDIA_ROOT"))
    elif media and not any(_inside(media, w) for w in writable):
        raise DeployError(f"MEDIA_ROOT is {media}: uploads there could not be written and would not be "
                          f"served at {cfg.media} (nothing was switched)",
                          _fix("MEDIA_ROOT", 'os.environ["APP_MEDIA_DIR"]'))
    _plan_static(cfg, report, plan)
    return plan


def _plan_static(cfg, report: dict, plan: DjangoPlan) -> None:
    url, root, release = report["static_url"], report["static_root"], report["release"]
    if not url.startswith("/") or url.startswith("//"):
        return  # static files on another host (a CDN): not nginx's business
    url = url if url.endswith("/") else url + "/"
    folder = cfg.static.get(url)
    collected = os.path.relpath(root, release) if root and _inside(root, release) else "staticfiles"
    # A link from the [static] folder to STATIC_ROOT is not made: the release is root's and
    # its static folders must be real ones (release_commands.static_modes_script).
    if folder is None or (root and _inside(root, release) and root != f"{release}/{folder.rstrip('/')}"):
        served = (f"nginx serves {url} from {folder.rstrip('/')}/" if folder else
                  f"nginx serves static files only at {', '.join(cfg.static) or 'no URL'}")
        raise DeployError(f"STATIC_URL is {url} and collectstatic writes to {collected}/, but {served}: "
                          "every CSS file would be a 404 (nothing was switched)",
                          f'write in deploy.toml:\n  [static]\n  "{url}" = "{collected}"\nthen deploy again: '
                          + next_task("deploy"))
    if not root:
        plan.collect_into = f"{release}/{folder.rstrip('/')}"
        plan.notes.append(f"STATIC_ROOT is not set: collecting into {folder}/, which nginx serves at {url}")
    elif not _inside(root, release):
        raise DeployError(f"STATIC_ROOT is {root}: outside the release, so collectstatic (run as the "
                          f"app's user) could not write it and nginx would not serve it "
                          "(nothing was switched)",
                          _fix("STATIC_ROOT", f'BASE_DIR / "{folder.rstrip("/")}"'))


def parse_report(output: str) -> dict:
    for line in output.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    raise ValueError("no report")


# -- on the host ------------------------------------------------------------------------------

def link_script(cfg, release_dir: str, links: list[Link]) -> str:
    args = [release_dir, cfg.name] + [part for link in links for part in (link.rel, link.target)]
    return " ".join(shlex.quote(a) for a in ["python3", "-c", onhost.program("link_shared"), *args])


def _link(ctx, release_dir: str, links: list[Link]) -> list[str]:
    """Run link_shared on the host; its lines (`REL -> TARGET (what happened)`)."""
    if not links:
        return []
    result = sh(ctx.c, link_script(ctx.cfg, release_dir, links), check=False)
    if not result.ok:
        raise DeployError("linking the release's data into shared/ failed (nothing was switched)",
                          "fix what the error above says, then deploy again: " + next_task("deploy"),
                          (result.stdout + result.stderr).strip())
    return result.stdout.splitlines()


def _django_report(ctx, release_dir: str) -> dict:
    from toolkit import release_commands as cmds  # at call time: it imports the release flow's pieces

    cfg = ctx.cfg
    python = f"{release_dir}/.venv/bin/python"
    result = sh(ctx.c, cmds.as_app(cfg, release_dir, python, "-c", onhost.program("django_paths")),
                check=False)
    try:
        return parse_report(result.stdout)
    except ValueError:
        raise DeployError(f"the new release's settings ({cfg.django.settings}) cannot be loaded: "
                          "nothing was switched, the site still runs the previous release",
                          "fix the error shown above, then deploy again",
                          "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])) from None


def link_release(ctx) -> DjangoPlan | None:
    """The release step: link [app] shared, then what Django's settings need; before the app's
    code runs as the service. Returns the Django plan (collectstatic needs it)."""
    cfg, rep = ctx.cfg, ctx.rep
    release_dir = cfg.layout.release_dir(ctx.release)
    configured = configured_links(cfg)
    if configured:
        with rep.step("link shared paths") as st:
            st.info("; ".join(_link(ctx, release_dir, configured)))
    if cfg.framework != "django" or not cfg.django:
        return None
    with rep.step("django data and static paths") as st:
        plan = plan_django(cfg, _django_report(ctx, release_dir))
        done = _link(ctx, release_dir, plan.links)
        st.info("; ".join(done + plan.notes) or "nothing inside the release to keep")
    return plan
