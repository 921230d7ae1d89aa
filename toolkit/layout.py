"""The host layout: every path and unit name the toolkit uses on a host, in one object.

Capistrano's shape, one tree per app:

    /srv/APP/
      releases/TIMESTAMP/        one folder per release (the app's files, .good/.failed marker,
                                 .source-sha256, .venv -> ../../venvs/HASH)
      current -> releases/TS     the live release, switched atomically
      shared/                    what survives releases: .env, pronghorn.conf.py, media/, data/
      venvs/HASH/                a virtualenv per requirements hash, reused across releases
      wheels/HASH/NAME.whl       the pronghorn server wheel per server-source hash
      .deploy-lock/who           the deploy lock (mkdir is atomic) and who holds it
      deploy.log                 the audit trail: who/when/what/result (toolkit/audit.py)
    /run/APP/pronghorn.sock      the unix socket nginx proxies to (systemd's APP.socket)
    /var/log/APP/                log files, when [app] access_log = "file"
    /srv/APP/shared/backups/TS/  database backups (root's, 0700), `invoke db.backup` and APP-backup.timer
    /etc/pronghorn/tls/APP/      the site's certificate chain and key ([tls], roles/tls.py);
                                 /etc/pronghorn/tls/default/ the catch-all's placeholder
    /var/lib/pronghorn/acme/APP/ the webroot of ACME HTTP-01 challenges (certbot writes there)
    /etc/letsencrypt/live/APP/   certbot's certificate for [tls] mode = "letsencrypt"

Roles, the release flow, the templates (as `layout`) and the testinfra checks all read paths
from here; nothing else spells them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class HostLayout:
    app: str  # the app's name: its user, its units, its folders

    # --- the app's tree
    @property
    def base_dir(self) -> str:
        return f"/srv/{self.app}"

    @property
    def releases_dir(self) -> str:
        return f"{self.base_dir}/releases"

    @property
    def current_dir(self) -> str:
        return f"{self.base_dir}/current"

    @property
    def shared_dir(self) -> str:
        return f"{self.base_dir}/shared"

    @property
    def venvs_dir(self) -> str:
        return f"{self.base_dir}/venvs"

    @property
    def wheels_dir(self) -> str:
        return f"{self.base_dir}/wheels"

    @property
    def media_dir(self) -> str:
        return f"{self.shared_dir}/media"

    @property
    def data_dir(self) -> str:
        return f"{self.shared_dir}/data"

    @property
    def env_file(self) -> str:
        return f"{self.shared_dir}/.env"

    @property
    def pronghorn_conf(self) -> str:
        return f"{self.shared_dir}/pronghorn.conf.py"

    @property
    def lock_dir(self) -> str:
        return f"{self.base_dir}/.deploy-lock"

    @property
    def lock_who(self) -> str:
        return f"{self.lock_dir}/who"

    @property
    def deploy_log(self) -> str:
        return f"{self.base_dir}/deploy.log"

    def release_dir(self, release: str) -> str:
        return f"{self.releases_dir}/{release}"

    def venv_dir(self, vhash: str) -> str:
        return f"{self.venvs_dir}/{vhash}"

    def wheel_path(self, key: str) -> str:
        """`key` is HASH/NAME.whl (see toolkit.packaging.wheel_key)."""
        return f"{self.wheels_dir}/{key}"

    # --- outside the tree
    @property
    def log_dir(self) -> str:
        return f"/var/log/{self.app}"

    @property
    def run_dir(self) -> str:
        return f"/run/{self.app}"

    @property
    def socket_path(self) -> str:
        return f"{self.run_dir}/pronghorn.sock"

    @property
    def unit_name(self) -> str:
        return f"{self.app}.service"

    @property
    def socket_unit_name(self) -> str:
        return f"{self.app}.socket"

    @property
    def units(self) -> tuple[str, str]:
        """The socket first: it is started (and enabled) before the service it activates."""
        return (self.socket_unit_name, self.unit_name)

    # --- the database's backups ([database], roles/postgres.py, toolkit/tasks_db.py)
    @property
    def backups_dir(self) -> str:
        """root:root 0700: one folder per backup (backups/TIMESTAMP), files 0600. Root's, so the
        app (or anyone who takes it over) cannot read old data back or delete the backups."""
        return f"{self.shared_dir}/backups"

    @property
    def backup_program(self) -> str:
        """The backup program the daily timer runs (toolkit/onhost/db_backup.py), root's."""
        return f"{self.base_dir}/db-backup.py"

    @property
    def backup_unit(self) -> str:
        return f"{self.app}-backup.service"

    @property
    def backup_timer(self) -> str:
        return f"{self.app}-backup.timer"

    @property
    def db_name(self) -> str:
        """The PostgreSQL role and database of the app: its name, as its system user's (so
        `psql` as that user logs in by peer authentication, no password)."""
        return self.app

    @property
    def db_credentials(self) -> str:
        """On the database host of deploy.toml [hosts] (toolkit/db_host.py): DATABASE_URL as the
        app hosts get it, root's 0600; the password is generated once and kept here."""
        return f"/etc/pronghorn/database/{self.app}.env"

    # --- TLS ([tls], roles/tls.py): root's, outside the app's tree (the app never reads its key)
    @property
    def tls_dir(self) -> str:
        return f"/etc/pronghorn/tls/{self.app}"

    @property
    def tls_cert(self) -> str:
        """The chain nginx serves: the site's certificate first, then intermediates."""
        return f"{self.tls_dir}/fullchain.pem"

    @property
    def tls_key(self) -> str:
        return f"{self.tls_dir}/privkey.pem"

    @property
    def tls_default_cert(self) -> str:
        """The catch-all server's self-signed placeholder (nginx needs a certificate on 443 even
        for a server that only answers 444); shared by every app on the host."""
        return "/etc/pronghorn/tls/default/cert.pem"

    @property
    def tls_default_key(self) -> str:
        return "/etc/pronghorn/tls/default/key.pem"

    @property
    def acme_webroot(self) -> str:
        """nginx serves /.well-known/acme-challenge/ from here; certbot's webroot plugin writes there."""
        return f"/var/lib/pronghorn/acme/{self.app}"

    @property
    def nginx_site(self) -> str:
        """The app's nginx site (templates/etc/nginx/sites-available/APP.conf.j2)."""
        return f"/etc/nginx/sites-available/{self.app}.conf"

    @property
    def maintenance_page(self) -> str:
        """The page nginx answers with 503 while maintenance is on (templates/etc/nginx/pronghorn/
        APP.maintenance.html.j2; installed with the site, so it is there before it is needed)."""
        return f"/etc/nginx/pronghorn/{self.app}.maintenance.html"

    @property
    def maintenance_flag(self) -> str:
        """Present while `invoke maintenance.on` is in force: the site tests for it on each request,
        so turning it on or off needs no reload, and no deploy writes or removes it."""
        return f"/var/lib/pronghorn/maintenance/{self.app}"

    @property
    def lb_static_cache(self) -> str:
        """A load balancer's cache of the app's static files ([hosts] lb): nginx makes it (one
        level) and gives it to its workers' user; what is in it is a copy, safe to delete."""
        return f"/var/cache/pronghorn-{self.app}-static"

    @property
    def lb_out_dir(self) -> str:
        """On a load balancer: one empty file per app host out of rotation (named by its number
        among the app hosts); nginx checks them per request (templates/.../APP-lb.conf.j2). On
        /run, so a reboot puts every host back."""
        return f"/run/pronghorn-lb/{self.app}"

    @property
    def lb_site(self) -> str:
        """The load balancer's nginx site for the app (templates/etc/nginx/sites-available/APP-lb.conf.j2)."""
        return f"/etc/nginx/sites-available/{self.app}-lb.conf"

    @property
    def letsencrypt_cert(self) -> str:
        """certbot's lineage for this app (`--cert-name APP`): what nginx serves with letsencrypt."""
        return f"/etc/letsencrypt/live/{self.app}/fullchain.pem"

    @property
    def letsencrypt_key(self) -> str:
        return f"/etc/letsencrypt/live/{self.app}/privkey.pem"

    @property
    def letsencrypt_hook(self) -> str:
        """certbot runs it after each renewal: nginx reloads to serve the new certificate."""
        return "/etc/letsencrypt/renewal-hooks/deploy/pronghorn-reload-nginx"

    @property
    def certbot_proxy_env(self) -> str:
        """[proxy] for certbot (root's, 0600: a proxy URL may hold a password), read by the
        first issuance, `invoke tls.renew` and certbot's timer (through the drop-in below)."""
        return "/etc/pronghorn/certbot-proxy.env"

    @property
    def certbot_proxy_dropin(self) -> str:
        return "/etc/systemd/system/certbot.service.d/pronghorn-proxy.conf"
