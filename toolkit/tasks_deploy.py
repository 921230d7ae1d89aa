"""The deploy toolkit's top-level invoke tasks: provision, deploy, rollback, releases, status,
logs, restart, render, verify, and the `lock` collection.

Each task is thin: it parses options, loads the app's deploy.toml and hands over to
toolkit/ and roles/. `invoke --help TASK` shows a task's options.
"""

from invoke import Collection, task


@task(help={"app": "the app's directory, holding deploy.toml (default: the current directory)"})
def render(c, app=".", out="rendered"):
    """Write every config file the deploy would install into a local folder, for review."""
    from toolkit.config import load_app_config
    from toolkit.render import render_to_dir

    cfg = load_app_config(app)
    render_to_dir(cfg, out)
    print(f"wrote the configs for {cfg.name} under {out}/")


lock = Collection("lock")
