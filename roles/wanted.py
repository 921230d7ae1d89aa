"""What provisioning wants on a host, as plain data: the app's name, its host layout, the files
rendered for it and the packages it needs. Built from the config (`Wanted.of(cfg, files)`);
tests build it by hand."""

from __future__ import annotations

from dataclasses import dataclass

from roles import hardening as hardening_roles
from toolkit.config import Hardening, TlsConfig
from toolkit import process_units, redis_service
from toolkit.layout import HostLayout

# Packages every app host needs. python3-venv brings ensurepip, so each venv gets its own pip.
BASE_PACKAGES = ("python3", "python3-venv", "nginx", "ca-certificates", "tar", "gzip")
# [database] (roles/postgres.py): the distribution's server, or sqlite's shell for `invoke db.shell`
# once the app's database matters to deploy.toml (its backups are on).
DATABASE_PACKAGES = {"postgresql": ("postgresql",), "sqlite": ("sqlite3",)}


def database_packages(database) -> tuple:
    if database is None or not (database.postgresql or database.backups):
        return ()
    return DATABASE_PACKAGES[database.engine]


def tls_packages(tls) -> tuple:
    """[tls]: openssl makes the self-signed certificates (ca-certificates pulls it in; said
    anyway), certbot gets Let's Encrypt's."""
    if tls is None or not tls.enabled:
        return ()
    return ("openssl",) + (("certbot",) if tls.mode == "letsencrypt" else ())


def tls_fields(cfg) -> dict:
    """Wanted's [tls] fields from the config (the files of mode = "files" read here)."""
    from roles import tls as tls_role

    tls = getattr(cfg, "tls", None)
    source = getattr(cfg, "source", None)
    return {"tls": tls, "domains": tuple(getattr(cfg, "domains", ("_",))),
            "tls_files": tls_role.uploaded_files(cfg) if tls else (),
            "app_dir": str(source.path) if source is not None else "."}


@dataclass(frozen=True)
class Wanted:
    app: str
    layout: HostLayout
    files: tuple = ()  # render.RenderedFile: path, content, mode, owner, group
    packages: tuple = BASE_PACKAGES
    access_log: str = "journal"  # "file": the app writes log files under layout.log_dir
    # deploy.toml [hardening] (roles/hardening); None: no hardening (a Wanted built for one role)
    hardening: Hardening | None = None
    # How the toolkit is logged in (provision fills these from the connection): the hardening
    # roles never lock that login out.
    ssh_port: int = 22
    login_user: str = "root"
    login_method: str = "publickey"  # paramiko's: publickey, password, keyboard-interactive
    drop_packages: tuple = ()  # not on this host (timesyncd where another time daemon runs)
    processes: tuple = ()  # [processes] names (roles/processes.py)
    schedules: tuple = ()  # [schedule] names (roles/schedule.py)
    # Their rendered unit files (and redis's drop-in): apart from `files`, so the systemd role
    # (every file under /etc/systemd/system) leaves them to those roles.
    extra_unit_files: tuple = ()
    redis: bool = False  # [services] redis (roles/redis.py)
    database: object = None  # deploy.toml [database] (config.DatabaseConfig); None: nothing to do
    # deploy.toml [tls] (roles/tls.py), the app's domains (the self-signed certificate's names)
    # and, for mode = "files", the certificate and key to upload; None: no TLS.
    tls: TlsConfig | None = None
    domains: tuple = ("_",)
    tls_files: tuple = ()  # and certbot's hook and [proxy] environment (roles/tls.py)
    app_dir: str = "."  # the app's folder on this machine: the --app of a `next:` hint (tls_issue.py)
    # deploy.toml [hosts] (toolkit/fleet.py): this host's roles (None: the single-host case, the
    # app and everything it needs) and, behind a load balancer, the addresses http may come from.
    roles: tuple | None = None
    web_from: tuple = ()

    @property
    def runs_app(self) -> bool:
        """The app's release, units and environment belong here (not a bare load balancer)."""
        return self.roles is None or bool({"app", "worker"} & set(self.roles))

    @classmethod
    def of(cls, cfg, files=()) -> "Wanted":
        extra = set(process_units.unit_paths(cfg)) | set(redis_service.paths(cfg))
        return cls(app=cfg.name, layout=cfg.layout, files=tuple(f for f in files if f.path not in extra),
                   extra_unit_files=tuple(f for f in files if f.path in extra),
                   access_log=getattr(cfg, "access_log", "journal"), hardening=getattr(cfg, "hardening", None),
                   processes=tuple(sorted(getattr(cfg, "processes", {}) or {})),
                   schedules=tuple(sorted(getattr(cfg, "schedules", {}) or {})),
                   redis=redis_service.enabled(cfg), packages=BASE_PACKAGES + redis_service.packages(cfg),
                   database=getattr(cfg, "database", None),
                   **tls_fields(cfg))

    @property
    def all_packages(self) -> tuple:
        """`packages` and the hardening parts' (one apt-get call installs them all)."""
        extra = hardening_roles.packages(self.hardening) if self.hardening else ()
        if self.roles is None or "db" in self.roles:  # app hosts of [hosts] use the db host's server
            extra += database_packages(self.database)
        extra += tls_packages(self.tls)
        return tuple(p for p in dict.fromkeys(self.packages + extra) if p not in self.drop_packages)

    def select(self, *prefixes) -> list:
        """The wanted files whose path starts with one of `prefixes`."""
        return [f for f in self.files if any(str(f.path).startswith(p) for p in prefixes)]
