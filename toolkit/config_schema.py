"""deploy.toml's schema: one `Key` per key (section, name, check, default, help, example).

The same list drives validation (toolkit/config.py) and the reference document
docs/deploy-config.md (`python -m toolkit.config --doc`), so the two cannot drift apart.
A new key: one `Key(...)` line here, in its section's block; a new section also goes in
SECTIONS (and TABLE_SECTIONS when its keys are free-form).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from toolkit.config_checks import (
    DURATION_RE, ENV_NAME_RE, MODULE_RE, PROXY_URL_RE, SIZE_RE, WSGI_RE,
    absolute_path, app_name, boolean, choice, domains, env_table, health_path, host_list, int_range,
    ipv4_network, list_of,
    matching, relative_path, static_table, string, url_path, workers,
)
from toolkit.config_processes import processes_table, schedule_table

# "PORT/PROTOCOL", the port 1-65535 (ufw's syntax for one port).
PORT_RULE_RE = re.compile(r"^([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]"
                          r"|6553[0-5])/(tcp|udp)\Z")


# [tls]: an e-mail address for the ACME account (Let's Encrypt's expiry notices), an https URL.
EMAIL_RE = re.compile(r"^(|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+)\Z")
HTTPS_URL_RE = re.compile(r"^https://[A-Za-z0-9.-]+(:\d{1,5})?(/[A-Za-z0-9._~%/-]*)?\Z")
LETSENCRYPT_DIRECTORY = "https://acme-v02.api.letsencrypt.org/directory"
# HSTS max-age: 180 days. Long enough to protect returning visitors, short enough that a site
# which has to go back to plain HTTP is not locked out for years (Mozilla suggests 2 years once
# a site is sure; hstspreload.org needs at least one year, so `hsts_preload` asks for that).
HSTS_DEFAULT = 15552000
HSTS_PRELOAD_MIN = 31536000


@dataclass(frozen=True)
class Key:
    """One key of deploy.toml: where it lives, how it is checked, its default and its story."""
    section: str
    name: str
    check: Callable[[Any], Any]
    default: Any
    help: str
    example: str
    # defaults that depend on other keys (name from the directory, framework detected, ...)
    default_text: str | None = None

    @property
    def allowed(self) -> str:
        return getattr(self.check, "allowed", "")


SCHEMA: tuple[Key, ...] = (
    # [app]
    Key("app", "name", app_name, None, "The app's name: the system user, the systemd units NAME.service/NAME.socket, /srv/NAME.",
        'name = "shop"', default_text="the app directory's name, made a slug"),
    Key("app", "framework", choice("flask", "django", "bottle", "wsgi"), None,
        'The web framework. "wsgi" is any other WSGI app (set `wsgi` then).',
        'framework = "django"', default_text="detected from the code"),
    Key("app", "wsgi", matching(WSGI_RE, 'a WSGI entry "module:callable" or "module:factory()"'), None,
        "The WSGI callable pronghorn serves, as module:name or module:factory().",
        'wsgi = "shop.wsgi:application"', default_text="detected from the code"),
    Key("app", "python", matching(re.compile(r"^python3(\.\d+)?\Z"), '"python3" or "python3.N"'),
        "python3", "The host's Python interpreter the virtualenv is made with.", 'python = "python3.12"'),
    Key("app", "requirements", relative_path, "requirements.txt",
        "What pip installs, relative to the app directory: a requirements file (with --hash lines: "
        "installed with --require-hashes), pyproject.toml (its [project] dependencies; a src/ layout "
        "is put on the path), or a lock file, uv.lock or pylock.toml (PEP 751), installed with its "
        "hashes. Do not list pronghorn: the toolkit installs the server itself.",
        'requirements = "requirements/prod.txt"',
        default_text="requirements.txt, else pylock.toml, uv.lock or pyproject.toml, the first found"),
    Key("app", "domains", domains, ("_",),
        'Names nginx answers for. ["_"] = any name (this app is the host\'s default site). With real '
        "names, requests for any other Host are dropped (nginx 444).", 'domains = ["example.com", "www.example.com"]'),
    Key("app", "hosts", list_of(string, "--host strings"), (),
        "Hosts `invoke deploy` uses when --host is not given (user@host[:port], an ssh-config name, "
        "or sandbox-NAME).", 'hosts = ["deploy@203.0.113.10"]'),
    Key("app", "workers", workers, "auto",
        "pronghorn worker processes.", "workers = 4"),
    Key("app", "threads", int_range(1, 64), 1,
        "Threads per worker; more than 1 for apps that wait on I/O (database, APIs).", "threads = 4"),
    Key("app", "timeout", int_range(1, 3600), 30,
        "Seconds a request may run before its worker is killed and replaced (nginx waits this long too).",
        "timeout = 60"),
    Key("app", "graceful_timeout", int_range(1, 3600), 30,
        "Seconds in-flight requests get to finish on stop or restart.", "graceful_timeout = 20"),
    Key("app", "keep_releases", int_range(1, 100), 5,
        "How many releases to keep on the host (for `invoke rollback`).", "keep_releases = 3"),
    Key("app", "secrets", list_of(matching(ENV_NAME_RE, "an environment variable name"),
                                   "environment variable names"), (),
        "Names of secret settings. Values come from the deploy machine's environment or the app's local "
        ".env file (never commit it) and are written to the host's shared/.env only.",
        'secrets = ["SECRET_KEY", "DATABASE_URL"]'),
    Key("app", "generate_secrets", list_of(matching(ENV_NAME_RE, "an environment variable name"),
                                            "environment variable names"), (),
        "Secrets made once on the host (50 random characters) when you give no value, then kept: "
        "handy for Django's SECRET_KEY.", 'generate_secrets = ["SECRET_KEY"]'),
    Key("app", "shared", list_of(relative_path, "paths relative to the app directory"), (),
        "Paths that live in /srv/NAME/shared/data and are linked into every release, so what the app writes "
        "there survives deploys and rollbacks (a trailing / makes a folder). Django's sqlite database "
        "and MEDIA_ROOT are found and linked without this.", 'shared = ["db.sqlite3", "uploads/"]'),
    Key("app", "media", url_path, "/media/",
        "URL path of user uploads; files live in /srv/NAME/shared/media and survive releases.",
        'media = "/uploads/"'),
    Key("app", "client_max_body_size", matching(SIZE_RE, 'a size like "10m", "512k" or "1g" (nginx syntax)'),
        "10m", "Largest request body nginx accepts (uploads).", 'client_max_body_size = "50m"'),
    Key("app", "static_expires", matching(DURATION_RE, 'a duration like "7d", "12h" or "0" (nginx syntax)'),
        "7d", "How long browsers may cache static files.", 'static_expires = "30d"'),
    Key("app", "access_log", choice("journal", "file", "off"), "journal",
        'pronghorn\'s access log (JSON lines): "journal" (journalctl -u NAME), "file" '
        "(/var/log/NAME/access.log, rotated daily) or \"off\" (nginx logs requests anyway).",
        'access_log = "file"'),
    Key("app", "memory_deny_write_execute", boolean, False,
        "systemd's MemoryDenyWriteExecute= hardening. Off by default: it breaks libraries that "
        "generate code at run time (cffi callbacks on older libffi, numba, some regex/JIT engines).",
        "memory_deny_write_execute = true"),
    Key("app", "ipv6", boolean, True, "nginx also listens on [::]:80 (turn off on hosts without IPv6).",
        "ipv6 = false"),
    # [source]
    Key("source", "git", matching(re.compile(r"^(|(https?|ssh|git)://\S+|[\w.-]+@[\w.-]+:\S+)\Z"),
                                   'a git URL ("https://...", "ssh://...", "git@host:path") or ""'), "",
        "Deploy from this git repository instead of the local app directory.",
        'git = "https://github.com/me/shop.git"'),
    Key("source", "ref", matching(re.compile(r"^[\w./-]+\Z"), "a branch, tag or commit"), "main",
        "Git branch, tag or commit to deploy (with `git`).", 'ref = "v1.2.0"'),
    Key("source", "include", list_of(relative_path, "paths relative to the app directory"), (), "Upload these files although they look like secrets or local state (`.env*`, `*.pem`, `*.key`, `*.sqlite3`, `*.db`, `instance/`, `secrets.json`, ...: left out by default).", 'include = ["config/public.pem"]'),
    # [static]
    Key("static", "*", static_table, None,
        'URL paths nginx serves straight from a directory of the release, "/url/" = "dir".',
        '"/static/" = "static"',
        default_text='Django: {"/static/" = "staticfiles"} (collectstatic); others: {"/static/" = "static"} '
                     "when that directory exists"),
    # [env]
    Key("env", "*", env_table, None,
        "Non-secret environment variables for the app, written to shared/.env. The toolkit adds "
        "APP_NAME, APP_DATA_DIR, APP_MEDIA_DIR, ALLOWED_HOSTS (and DJANGO_SETTINGS_MODULE for Django).",
        'DEBUG = "false"', default_text="{}"),
    # [processes], [schedule], [services]: roles/processes.py, roles/schedule.py, roles/redis.py
    Key("processes", "*", processes_table, None,
        "Processes besides the web server (Procfile-like): each NAME runs its command as the systemd "
        "unit APP-NAME.service in the live release's folder, venv and environment, restarted with "
        "every release and rolled back with it. The command is a shell command line.",
        'worker = "celery -A mysite worker"', default_text="{}"),
    Key("schedule", "*", schedule_table, None,
        "Commands run by systemd timers (APP-NAME.timer) in the live release's environment; `on` is a "
        "systemd OnCalendar= expression (\"daily\", \"hourly\", \"*-*-* 03:30:00\"); a run missed while "
        "the host was down is caught up.",
        'clearsessions = { command = "python manage.py clearsessions", on = "daily" }', default_text="{}"),
    Key("services", "redis", boolean, False,
        "Redis on the app host (the distribution's redis-server), bound to localhost, with a password "
        "generated once and kept; the app gets REDIS_URL in shared/.env. Turning it off later leaves "
        "redis installed.", "redis = true"),
    # [health]
    Key("health", "path", health_path, "/",
        "Path requested (with the real Host header) to decide that a new release works.",
        'path = "/healthz"'),
    Key("health", "expect", int_range(100, 599), 200, "HTTP status the health check expects.",
        "expect = 204"),
    Key("health", "timeout", int_range(1, 600), 30,
        "Seconds the new release gets to answer the health check before the deploy rolls back.",
        "timeout = 60"),
    # [django]
    Key("django", "settings", matching(MODULE_RE, 'a Python module path like "shop.settings"'), None,
        "DJANGO_SETTINGS_MODULE for the app.", 'settings = "shop.settings.production"',
        default_text="detected from manage.py"),
    Key("django", "migrate", boolean, True, "Run `manage.py migrate` for each release.", "migrate = false"),
    Key("django", "collectstatic", boolean, True, "Run `manage.py collectstatic` for each release.",
        "collectstatic = false"),
    # [database]: roles/postgres.py, toolkit/tasks_db.py
    Key("database", "engine", choice("sqlite", "postgresql"), "sqlite",
        '"sqlite": the app keeps its database file(s) in /srv/NAME/shared/data. "postgresql": the '
        "distribution's PostgreSQL server on the host (localhost only), a role and a database named NAME "
        "with a generated password, DATABASE_URL in shared/.env.", 'engine = "postgresql"'),
    Key("database", "backups", boolean, None,
        "A daily backup (systemd timer NAME-backup.timer, missed runs caught up) into "
        "/srv/NAME/shared/backups, as `invoke db.backup` makes.", "backups = true",
        default_text='true with engine = "postgresql", false with "sqlite"'),
    Key("database", "backup_days", int_range(1, 3650), 14,
        "Days a backup is kept (the newest one is always kept).", "backup_days = 30"),
    # [proxy]
    Key("proxy", "http", matching(PROXY_URL_RE, 'a proxy URL like "http://proxy.example:3128" or ""'), "",
        "HTTP proxy the host's apt and pip use (for hosts behind a corporate proxy).",
        'http = "http://10.0.0.1:3128"'),
    Key("proxy", "https", matching(PROXY_URL_RE, 'a proxy URL like "http://proxy.example:3128" or ""'), "",
        "Proxy for HTTPS traffic of apt and pip (usually the same as http).",
        'https = "http://10.0.0.1:3128"'),
    Key("proxy", "no_proxy", list_of(string, "host names or addresses"), ("localhost", "127.0.0.1", "::1"),
        "Names and addresses reached without the proxy.", 'no_proxy = ["localhost", ".internal"]'),
    Key("proxy", "ca_bundle", absolute_path, "",
        "A CA certificate file on the deploy machine that the host must trust too (a TLS-inspecting "
        "proxy's CA). Installed into the host's trust store; pip uses it.",
        'ca_bundle = "/usr/local/share/ca-certificates/corp.crt"'),
    # [hosts], [network]: several hosts (toolkit/inventory.py; docs/several-hosts.md)
    Key("hosts", "lb", host_list, (),
        "Load balancers: nginx on each, the site's public address, proxying to the app hosts over the "
        "private network; with [tls] they hold the certificate and end HTTPS. Without [hosts], [app] hosts "
        "(or --host) run everything, one host each.",
        'lb = ["deploy@203.0.113.10"]'),
    Key("hosts", "app", host_list, (),
        "App hosts: the app under pronghorn behind their own nginx; with lb hosts they listen on the "
        "private address only and a deploy rolls through them a batch at a time. Needed with [hosts].",
        'app = ["deploy@10.0.0.11", "deploy@10.0.0.12"]'),
    Key("hosts", "worker", host_list, None,
        "Hosts that run [processes] and [schedule] (they get the release as the app hosts do).",
        'worker = ["deploy@10.0.0.11"]', default_text="the app hosts"),
    Key("hosts", "db", host_list, (),
        'The PostgreSQL host for [database] engine = "postgresql" (one), reachable from the app and '
        "worker hosts only.", 'db = ["deploy@10.0.0.20"]'),
    Key("network", "private", ipv4_network, "",
        "The private network the hosts reach each other on: each host's address in it is read from the "
        "host (the upstream addresses, what nginx and PostgreSQL listen on). \"\": the address ssh uses.",
        'private = "10.0.0.0/16"'),
    # [hardening]: roles/hardening; every part on unless turned off here
    Key("hardening", "firewall", boolean, True,
        "ufw: deny incoming except ssh (every port sshd listens on and the one the toolkit uses), "
        "http and https. The ssh port is allowed before the firewall is enabled.", "firewall = false"),
    Key("hardening", "firewall_allow", list_of(matching(PORT_RULE_RE, 'a port and protocol like "5432/tcp"'),
                                                'ports like "5432/tcp"'), (),
        "More incoming ports the firewall lets in (e.g. a database other hosts use).",
        'firewall_allow = ["5432/tcp"]'),
    Key("hardening", "ssh", boolean, True,
        "sshd: keys only (no passwords); root may not log in once the toolkit connects as a deploy "
        "user with sudo (while it connects as root, root logs in with a key only).", "ssh = false"),
    Key("hardening", "unattended_upgrades", boolean, True,
        "Install security updates every day (unattended-upgrades, security origins only, no reboots).",
        "unattended_upgrades = false"),
    Key("hardening", "fail2ban", boolean, True,
        "fail2ban's sshd jail: addresses that keep failing to log in are banned for a while.",
        "fail2ban = false"),
    Key("hardening", "swap", boolean, True,
        "A swap file (/swapfile, 1-2 GiB) on hosts with less than 2 GiB of memory and no swap.",
        "swap = false"),
    Key("hardening", "time_sync", boolean, True,
        "Keep the clock right: systemd-timesyncd (or chrony/ntp when one is installed already).",
        "time_sync = false"),
    Key("hardening", "block_link_local", boolean, True,
        "The app cannot reach link-local addresses (169.254.0.0/16, fe80::/10), where cloud metadata "
        "services answer: an SSRF bug cannot leak the instance's credentials. Turn off when the app "
        "uses the instance's own credentials (e.g. boto3 with an EC2 instance role).",
        "block_link_local = false"),
    # [tls]: roles/tls.py and the nginx site
    Key("tls", "mode", choice("off", "self-signed", "files", "letsencrypt"), "off",
        'HTTPS for the site. "letsencrypt": certbot gets a certificate (HTTP-01 through nginx; needs '
        '`email` and real `domains`) and renews it; "files": your own certificate (`cert`, `key`); '
        '"self-signed": made on the host (internal hosts, sandboxes; browsers warn); "off": HTTP only. '
        "With TLS on, http:// redirects to https:// (301) except the ACME challenge path.",
        'mode = "letsencrypt"',
        default_text='"letsencrypt" when `domains` holds a public name (then `email` is needed); "off" for '
                     '"_", addresses and names no public CA issues for (.test, .example, .invalid, .localhost, '
                     '.local, .internal, .lan, .home.arpa, example.com/.net/.org, one-label names)'),
    Key("tls", "email", matching(EMAIL_RE, 'an e-mail address like "ops@example.com"'), "",
        "The ACME account's e-mail (expiry and policy notices). Needed for letsencrypt.",
        'email = "ops@example.com"'),
    Key("tls", "acme_directory", matching(HTTPS_URL_RE, 'an https:// URL'), LETSENCRYPT_DIRECTORY,
        "The ACME server's directory URL: Let's Encrypt by default; its staging server or a private "
        "CA instead.", 'acme_directory = "https://acme-staging-v02.api.letsencrypt.org/directory"'),
    Key("tls", "cert", string, "",
        'mode = "files": the certificate chain (PEM, the server\'s certificate first) on this machine, '
        "absolute or relative to the app directory.", 'cert = "/home/me/tls/fullchain.pem"'),
    Key("tls", "key", string, "",
        'mode = "files": the private key (PEM) on this machine; uploaded to the host 0600, root\'s '
        "(add it to .gitignore, never commit it).", 'key = "/home/me/tls/privkey.pem"'),
    Key("tls", "hsts", int_range(0, 63072000), HSTS_DEFAULT,
        "Strict-Transport-Security max-age in seconds (180 days by default: browsers then refuse "
        "plain http for the site that long); 0 sends no HSTS header.", "hsts = 63072000"),
    Key("tls", "hsts_preload", boolean, False,
        "Add includeSubDomains; preload to HSTS (for hstspreload.org: every subdomain must serve "
        "HTTPS too; needs hsts of at least a year). Hard to undo: opt in only when sure.",
        "hsts_preload = true"),
)

SECTIONS = ("app", "source", "static", "env", "processes", "schedule", "services", "health",
            "django", "database", "hosts", "network", "proxy", "hardening", "tls")
TABLE_SECTIONS = ("static", "env", "processes", "schedule")          # free-form tables: any key, checked as a whole
KEYS = {(k.section, k.name): k for k in SCHEMA}
