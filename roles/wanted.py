"""What provisioning wants on a host, as plain data: the app's name, its host layout, the files
rendered for it and the packages it needs. Built from the config (`Wanted.of(cfg, files)`);
tests build it by hand."""

from __future__ import annotations

from dataclasses import dataclass

from toolkit.layout import HostLayout

# Packages every app host needs. python3-venv brings ensurepip, so each venv gets its own pip.
BASE_PACKAGES = ("python3", "python3-venv", "nginx", "ca-certificates", "tar", "gzip")


@dataclass(frozen=True)
class Wanted:
    app: str
    layout: HostLayout
    files: tuple = ()  # render.RenderedFile: path, content, mode, owner, group
    packages: tuple = BASE_PACKAGES
    access_log: str = "journal"  # "file": the app writes log files under layout.log_dir

    @classmethod
    def of(cls, cfg, files=()) -> "Wanted":
        return cls(app=cfg.name, layout=cfg.layout, files=tuple(files),
                   access_log=getattr(cfg, "access_log", "journal"))

    def select(self, *prefixes) -> list:
        """The wanted files whose path starts with one of `prefixes`."""
        return [f for f in self.files if any(str(f.path).startswith(p) for p in prefixes)]
