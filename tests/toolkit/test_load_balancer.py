"""The load balancer and the app hosts behind it, as rendered and planned (deploy.toml [hosts]):
what each host gets by its roles, the upstream, the app hosts' listen/real-IP settings and
their firewall letting http in from the load balancers only."""

import shutil
import sys
from dataclasses import replace
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from roles.hardening import firewall
from roles.wanted import Wanted
from toolkit import fleet
from toolkit.config import Hardening, TlsConfig, load_app_config
from toolkit.facts.hardening import HardenedHostFacts, HostHardening, UfwRule, parse_ufw
from toolkit.layout import HostLayout
from toolkit.render import render_all

ADDRESSES = {"lb1": fleet.Address("10.78.0.1", "203.0.113.10"), "a1": fleet.Address("10.78.0.2", "a1"),
             "a2": fleet.Address("10.78.0.3", "a2")}


def flask_app(tmp_path, name, toml=None, static=False):
    """A one-file Flask app in tmp_path/name with this deploy.toml (None: none), and a static/
    folder when `static`; returns its folder."""
    app = tmp_path / name
    (app / "static" if static else app).mkdir(parents=True)
    (app / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    if toml is not None:
        (app / "deploy.toml").write_text(toml)
    return app


@pytest.fixture
def cfg(tmp_path):
    app = flask_app(tmp_path, "shop", '[hosts]\nlb = ["lb1"]\napp = ["a1", "a2"]\n'
                                      '[network]\nprivate = "10.78.0.0/16"\n', static=True)
    return load_app_config(app)


def files_for(cfg, host):
    return {f.path: f.content for f in render_all(cfg, fleet.host_vars(cfg, host, ADDRESSES),
                                                  mask_secrets=True)}


def test_the_load_balancer_gets_its_site_and_none_of_the_app(cfg):
    files = files_for(cfg, "lb1")
    # its pages: "being deployed / down" and the maintenance page (maintenance.on is the lb's)
    assert sorted(files) == ["/etc/nginx/pronghorn/shop.maintenance.html", "/etc/nginx/pronghorn/shop.unavailable.html",
                             cfg.layout.lb_site]


def test_upstream_lists_the_app_hosts_private_addresses_in_a_pool_per_rotation(cfg):
    site = files_for(cfg, "lb1")[cfg.layout.lb_site]
    pools = {block.split("{")[0].strip(): block.split("}")[0] for block in site.split("\nupstream ")[1:]}
    assert sorted(pools) == ["shop_pool", "shop_pool_1", "shop_pool_2"]
    assert "server 10.78.0.2:80 max_fails=2 fail_timeout=5s;  # a1" in pools["shop_pool"]
    assert "10.78.0.3:80" in pools["shop_pool"] and "10.78.0.3:80" in pools["shop_pool_1"]
    assert "10.78.0.2:80" not in pools["shop_pool_1"] and "10.78.0.3:80" not in pools["shop_pool_2"]
    # the pool is chosen per request by the out-of-rotation files: no reload during a roll
    assert f"if (-f {cfg.layout.lb_out_dir}/2) {{" in site and "proxy_pass http://shop_pool$shop_out;" in site
    assert "keepalive 16;" in site and 'proxy_set_header Connection "";' in site
    assert "proxy_next_upstream error timeout http_502 http_503;" in site
    assert "non_idempotent" not in site.split("proxy_next_upstream error")[1].split(";")[0]
    assert "proxy_set_header X-Real-IP $remote_addr;" in site and "proxy_set_header Host $host;" in site
    # the static files are cached at the edge, under one key whichever pool served them
    assert "location /static/ {" in site and f"proxy_cache_path {cfg.layout.lb_static_cache} " in site
    assert "proxy_cache_key $scheme$host$request_uri;" in site


def test_every_batch_a_roll_can_take_out_has_its_pool():
    servers = tuple(fleet.Upstream(f"a{i}", f"10.0.0.{i}", i) for i in range(1, 6))
    suffixes = {p.suffix for p in fleet.pools(servers)}
    for size in range(1, 5):
        for start in range(0, 5, size):
            out = [s.host for s in servers[start:start + size]]
            assert "".join(f"_{s.flag}" for s in servers[start:start + size]) in suffixes, out
    assert "_1_2_3_4_5" not in suffixes  # the whole fleet is never taken out


def test_out_suffix_names_the_pool_and_never_empties_the_fleet(cfg):
    assert fleet.out_suffix(cfg, ["a2"]) == "_2"
    assert fleet.out_suffix(cfg, []) == "" and fleet.out_suffix(cfg, ["a1", "a2"]) == ""


def test_app_hosts_listen_privately_and_believe_only_the_load_balancer(cfg):
    files = files_for(cfg, "a1")
    assert cfg.layout.lb_site not in files
    site = files["/etc/nginx/sites-available/shop.conf"]
    listens = [line.strip() for line in site.splitlines() if line.strip().startswith("listen")]
    assert listens == ["listen 10.78.0.2:80 default_server;", "listen 127.0.0.1:80 default_server;"]
    assert "set_real_ip_from 10.78.0.1;" in site and "real_ip_header X-Real-IP;" in site
    assert "location = /.pronghorn/nginx-status {" in site  # the roll's drain asks here
    env = files[cfg.layout.env_file]
    assert "203.0.113.10" in env.split("ALLOWED_HOSTS=")[1].splitlines()[0]


def test_the_single_host_case_renders_as_before(tmp_path):
    app = flask_app(tmp_path, "one")
    cfg = load_app_config(app)
    files = {f.path: f.content for f in render_all(cfg, mask_secrets=True)}
    assert not any(p.endswith("-lb.conf") for p in files)
    assert "listen 80 default_server;" in files["/etc/nginx/sites-available/one.conf"]
    assert "set_real_ip_from" not in files["/etc/nginx/sites-available/one.conf"]


def hardened(rules):
    return HardenedHostFacts(os_id="debian", os_version="12",
                             hardening=HostHardening(sshd={"port": ("22",)}, ufw_rules=rules,
                                                     ufw_default_input="DROP", ufw_enabled=True))


def test_firewall_lets_http_in_from_the_load_balancers_only():
    wanted = Wanted(app="shop", layout=HostLayout("shop"), hardening=Hardening(), web_from=("10.78.0.1",))
    was_alone = hardened((UfwRule("allow", "tcp", "22"), UfwRule("allow", "tcp", "80"), UfwRule("allow", "tcp", "443")))
    [change] = firewall.plan(was_alone, wanted)
    assert change.script.split(" && ") == [
        "ufw allow from 10.78.0.1 to any port 80 proto tcp >/dev/null",
        "ufw delete allow 80/tcp >/dev/null", "ufw delete allow 443/tcp >/dev/null"]
    # as ufw saves it, the rule reads back as wanted: a second provision changes nothing
    saved, _, _ = parse_ufw(["### tuple ### allow tcp 22 0.0.0.0/0 any 0.0.0.0/0 in",
                             "### tuple ### allow tcp 80 0.0.0.0/0 any 10.78.0.1 in"])
    assert firewall.plan(hardened(saved), wanted) == []


def test_nginx_restarts_when_an_app_host_moves_from_every_address_to_its_private_one(cfg):
    from roles import nginx

    site = [f for f in render_all(cfg, fleet.host_vars(cfg, "a1", ADDRESSES), mask_secrets=True)
            if f.path == "/etc/nginx/sites-available/shop.conf"]
    running = {"/etc/nginx/sites-enabled/default": ["80 default_server", "[::]:80 default_server"]}
    # a reload could not bind 10.78.0.2:80 while the running nginx holds *:80
    assert nginx.rebinds(running, site, [nginx.DEFAULT_SITE])
    # once it listens there, a new upstream or config is a plain reload
    now = {"/etc/nginx/sites-enabled/shop.conf": ["10.78.0.2:80 default_server", "127.0.0.1:80 default_server"]}
    assert not nginx.rebinds(now, site, [])
    # the single-host site keeps *:80: a reload
    assert not nginx.rebinds(running, [f for f in render_all(cfg, mask_secrets=True)
                                       if f.path == "/etc/nginx/sites-available/shop.conf"], [])


def test_nginx_restarts_when_the_catch_all_arrives_on_an_app_host_behind_the_lb(tmp_path):
    """domains = ["_"] -> real domains on an app host behind the lb: the catch-all's `listen 80
    default_server` joins a running nginx that holds 10.78.0.2:80 and 127.0.0.1:80. Binding *:80
    beside them fails, so a reload kept the old site while the deploy said "changed" (seen: the
    app never saw the lb's X-Forwarded-Proto: https)."""
    from roles import nginx

    app = flask_app(tmp_path, "shop", '[app]\ndomains = ["shop.example.com"]\n[hosts]\nlb = ["lb1"]\n'
                                      'app = ["a1", "a2"]\n[network]\nprivate = "10.78.0.0/16"\n')
    named = load_app_config(app)
    files = [f for f in render_all(named, fleet.host_vars(named, "a1", ADDRESSES), mask_secrets=True)
             if f.path.startswith("/etc/nginx/sites-available/")]
    assert any("pronghorn-default" in f.path for f in files)
    running = {"/etc/nginx/sites-enabled/shop.conf": ["10.78.0.2:80 default_server", "127.0.0.1:80 default_server"]}
    assert nginx.rebinds(running, files, [])
    # the same files again, once running: a reload
    again = {"/etc/nginx/sites-enabled/shop.conf": ["10.78.0.2:80", "127.0.0.1:80"],
             "/etc/nginx/sites-enabled/pronghorn-default.conf": ["80 default_server"]}
    assert not nginx.rebinds(again, files, [])


def test_only_worker_hosts_run_the_processes(tmp_path):
    from toolkit.fleet import host_config

    app = flask_app(tmp_path, "jobs", '[hosts]\nlb = ["lb1"]\napp = ["a1", "a2"]\nworker = ["a2"]\n'
                                      '[processes]\nticker = "python ticker.py"\n')
    cfg = load_app_config(app)
    assert host_config(cfg, "a1").processes == {} and host_config(cfg, "a2").processes == cfg.processes
    units = {f.path for f in render_all(host_config(cfg, "a1"), mask_secrets=True)}
    assert "/etc/systemd/system/jobs-ticker.service" not in units
    assert "/etc/systemd/system/jobs-ticker.service" in {f.path for f in render_all(cfg, mask_secrets=True)}


@pytest.mark.skipif(not shutil.which("nginx"), reason="nginx is not installed")
def test_the_load_balancers_site_passes_nginx_t(cfg, tmp_path):
    """Every upstream block (one per set of app hosts out of rotation) with its own shared zone:
    nginx refuses two zones of one name, or a zone too small for its servers."""
    from tests.toolkit.test_render import nginx_test
    site = files_for(cfg, "lb1")[cfg.layout.lb_site]
    assert site.count("zone shop_pool") == site.count("upstream shop_pool") == 3
    cache = tmp_path / "cache"
    ok, output = nginx_test(tmp_path, site.replace(cfg.layout.lb_static_cache, str(cache)))
    assert ok, output


@pytest.fixture
def worker_cfg(tmp_path):
    """a1 runs the web app, w1 only the app's processes (a worker host that is no app host)."""
    app = flask_app(tmp_path, "jobs", '[app]\ndomains = ["shop.example.com"]\n'
                                      '[hosts]\nlb = ["lb1"]\napp = ["a1"]\nworker = ["w1"]\n'
                                      '[network]\nprivate = "10.78.0.0/16"\n'
                                      '[processes]\nticker = "python ticker.py"\n', static=True)
    return load_app_config(app)


WORKER_ADDRESSES = {**ADDRESSES, "w1": fleet.Address("10.78.0.9", "w1")}


def test_a_worker_host_runs_the_processes_and_serves_nothing_outside(worker_cfg):
    from toolkit.fleet import host_config

    vars_ = fleet.host_vars(worker_cfg, "w1", WORKER_ADDRESSES)
    files = {f.path: f.content for f in render_all(host_config(worker_cfg, "w1"), vars_, mask_secrets=True)}
    assert "/etc/systemd/system/jobs-ticker.service" in files  # its [processes]
    site = files["/etc/nginx/sites-available/jobs.conf"]
    listens = [line.strip() for line in site.splitlines() if line.strip().startswith("listen")]
    # loopback only: the deploy's health check and `invoke status` ask there, nobody else can
    assert listens == ["listen 127.0.0.1:80;"], listens
    assert "set_real_ip_from" not in site
    # no catch-all either: it would listen on every address
    assert not any("pronghorn-default" in p for p in files) and worker_cfg.layout.lb_site not in files
    # not in the load balancer's upstream
    assert [u.host for u in fleet.upstreams(worker_cfg, WORKER_ADDRESSES)] == ["a1"]
    # the app host keeps its private listener and its catch-all
    app_files = {f.path for f in render_all(host_config(worker_cfg, "a1"),
                                            fleet.host_vars(worker_cfg, "a1", WORKER_ADDRESSES), mask_secrets=True)}
    assert "/etc/nginx/sites-available/pronghorn-default.conf" in app_files
    assert "/etc/systemd/system/jobs-ticker.service" not in app_files  # a1 is no worker


def test_a_worker_host_lets_no_web_port_in():
    wanted = Wanted(app="jobs", layout=HostLayout("jobs"), hardening=Hardening(), roles=("worker",))
    fresh = hardened((UfwRule("allow", "tcp", "22"),))
    assert firewall.plan(fresh, wanted) == []  # ssh only, nothing to add
    # a host that served the site before (a single host, or an app host of [hosts]) closes it
    was_web = hardened((UfwRule("allow", "tcp", "22"), UfwRule("allow", "tcp", "80"), UfwRule("allow", "tcp", "443")))
    [change] = firewall.plan(was_web, wanted)
    assert change.script.split(" && ") == ["ufw delete allow 80/tcp >/dev/null", "ufw delete allow 443/tcp >/dev/null"]
    # a load balancer that is also a worker is the site's front: open to everyone
    both = Wanted(app="jobs", layout=HostLayout("jobs"), hardening=Hardening(), roles=("lb", "worker"))
    assert firewall.web_rules(both) == ["80/tcp", "443/tcp"]
    # the database host alone serves no site either
    db = Wanted(app="jobs", layout=HostLayout("jobs"), hardening=Hardening(), roles=("db",))
    assert firewall.web_rules(db) == []


def test_the_summary_shows_the_site_where_visitors_reach_it(worker_cfg, cfg):
    assert worker_cfg.inventory.serves_site("lb1")
    assert not worker_cfg.inventory.serves_site("a1") and not worker_cfg.inventory.serves_site("w1")
    from toolkit.inventory import Inventory
    from dataclasses import replace
    no_lb = replace(cfg, inventory=Inventory.of({"app": ("a1",), "worker": ("w1",)}))
    assert no_lb.inventory.serves_site("a1") and not no_lb.inventory.serves_site("w1")


def test_the_load_balancers_site_answers_503_while_maintenance_is_on(cfg):
    site = files_for(cfg, "lb1")[cfg.layout.lb_site]
    server = site.split("\nserver {", 1)[1]
    assert f"if (-f {cfg.layout.maintenance_flag}) {{" in server
    assert "error_page 503 /.pronghorn/maintenance.html;" in server
    assert f"alias {cfg.layout.maintenance_page};" in server


class Ran:
    """What the maintenance task ran on which host (toolkit/remote.sh faked)."""

    def __init__(self, exited=0):
        self.scripts, self.exited = [], exited

    def sh(self, conn, script, **kw):
        from types import SimpleNamespace
        self.scripts.append((conn.host, script))
        return SimpleNamespace(exited=self.exited, ok=self.exited == 0, stdout="", stderr="")


def run_maintenance(monkeypatch, app, on, host=None, exited=0):
    """tasks_maintenance.switch with every host faked: [(host, script), ...] it ran."""
    from types import SimpleNamespace

    from toolkit import audit, remote, tasking, tasks_maintenance

    ran = Ran(exited)
    monkeypatch.setattr(remote, "sh", ran.sh)
    monkeypatch.setattr(audit, "record", lambda *a, **k: None)
    monkeypatch.setattr(tasks_maintenance, "site_url", lambda cfg, conn: "")
    monkeypatch.setattr(tasking.hosts_mod, "connect", lambda spec: SimpleNamespace(host=str(spec), close=lambda: None))
    tasks_maintenance.switch(on, host, str(app))
    return ran.scripts


def test_maintenance_is_the_load_balancers_and_leaves_the_app_hosts_alone(cfg, monkeypatch, capsys):
    from invoke.exceptions import Exit

    app = cfg.source.path
    scripts = run_maintenance(monkeypatch, app, True)
    assert [h for h, _ in scripts] == ["lb1"]
    # the flag is made only where the load balancer's site tests it
    assert f"grep -qF {cfg.layout.maintenance_flag} {cfg.layout.lb_site}" in scripts[0][1]
    assert "maintenance.off --host lb1" in capsys.readouterr().out
    assert [h for h, _ in run_maintenance(monkeypatch, app, False)] == ["lb1"]
    # an app host named on its own is refused: a flag there would answer the lb 503
    with pytest.raises(Exit) as info:
        run_maintenance(monkeypatch, app, True, host=["a1"])
    assert "none of the hosts picked has the role lb" in str(info.value.message)


def test_maintenance_on_a_load_balancer_without_it_says_to_provision(cfg, monkeypatch, capsys):
    from invoke.exceptions import Exit
    from toolkit import maintenance

    with pytest.raises(Exit):
        run_maintenance(monkeypatch, cfg.source.path, True, exited=maintenance.NO_SITE_EXIT)
    out = capsys.readouterr().out
    assert "load balancer site of shop" in out and "invoke provision --host lb1" in out, out


def test_maintenance_without_a_load_balancer_is_the_app_hosts(tmp_path, monkeypatch):
    app = flask_app(tmp_path, "solo", '[hosts]\napp = ["a1", "a2"]\nworker = ["w1"]\n')
    scripts = run_maintenance(monkeypatch, app, True)
    assert [h for h, _ in scripts] == ["a1", "a2"]
    assert "/etc/nginx/sites-available/solo.conf" in scripts[0][1]


# --------------------------------------------------------------------------- [tls] at the load balancer

TLS_FLEET = ('[app]\nname = "shop"\ndomains = ["shop.example.org"]\n'
             '[hosts]\nlb = ["lb1"]\napp = ["a1", "a2"]\n[network]\nprivate = "10.78.0.0/16"\n[tls]\n')
LETSENCRYPT = 'mode = "letsencrypt"\nemail = "ops@example.org"\n'


def tls_cfg(tmp_path, tls):
    app = flask_app(tmp_path, "shop-tls", TLS_FLEET + tls, static=True)
    return load_app_config(app)


def rendered(cfg, host, **more):
    """The files `host` gets, rendered with its config as the fleet runs it (fleet.host_config)."""
    return {f.path: f.content for f in render_all(fleet.host_config(cfg, host),
                                                  {**fleet.host_vars(cfg, host, ADDRESSES), **more},
                                                  mask_secrets=True)}


def servers(site):
    """The site's server blocks, as text."""
    return ["server {" + part for part in site.split("\nserver {")[1:]]


def test_the_load_balancer_ends_tls_with_the_single_host_sites_settings(tmp_path):
    cfg = tls_cfg(tmp_path, LETSENCRYPT)
    files = rendered(cfg, "lb1")
    site = files[cfg.layout.lb_site]
    http, https = servers(site)
    # http: the ACME challenge from this host's webroot, everything else redirected
    assert "listen 80;" in http and "listen 443" not in http
    assert f"location ^~ /.well-known/acme-challenge/ {{\n        root {cfg.layout.acme_webroot};" in http
    assert "return 301 https://$host$request_uri;" in http and "proxy_pass" not in http
    # https: Mozilla intermediate, HTTP/2, OCSP stapling, certbot's certificate
    assert "listen 443 ssl http2;" in https and "listen [::]:443 ssl http2;" in https
    assert f"ssl_certificate {cfg.layout.letsencrypt_cert};" in https
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in https and "ssl_stapling on;" in https
    # HSTS on every answer: the server, and each location with add_header of its own (static
    # files, the unavailable page, the maintenance page)
    assert https.count('add_header Strict-Transport-Security "max-age=15552000" always;') == 4
    # the upstream pools, the rotation files and the proxy settings are the plain-http site's
    plain = {f.path: f.content for f in render_all(replace(cfg, tls=TlsConfig()),
                                                   fleet.host_vars(cfg, "lb1", ADDRESSES), mask_secrets=True)}
    plain_site = plain[cfg.layout.lb_site]
    upstreams = plain_site.split("use_temp_path=off;")[0]  # the pools, the static cache
    assert site.startswith(upstreams) and "keepalive_timeout 3s;" in upstreams and "zone shop_pool " in upstreams
    rotation = plain_site.split("# Which app hosts")[1].split("    access_log")[0]
    assert rotation in https
    proxy = plain_site.split("proxy_http_version 1.1;")[1].split("\n    location")[0]
    assert proxy in https and "proxy_set_header X-Forwarded-Proto $scheme;" in proxy
    # the catch-all answers unknown names with 444 on 443 too (its placeholder certificate)
    catch_all = files["/etc/nginx/sites-available/pronghorn-default.conf"]
    assert "listen 443 ssl http2 default_server;" in catch_all and "return 444;" in catch_all


def test_before_its_certificate_the_load_balancer_answers_the_challenge_itself(tmp_path):
    cfg = tls_cfg(tmp_path, LETSENCRYPT)
    files = rendered(cfg, "lb1", tls_ready=False)
    [server] = servers(files[cfg.layout.lb_site])
    assert "443" not in server and "return 301" not in server and "Strict-Transport-Security" not in server
    assert f"location ^~ /.well-known/acme-challenge/ {{\n        root {cfg.layout.acme_webroot};" in server
    assert "443" not in files["/etc/nginx/sites-available/pronghorn-default.conf"]


def test_app_hosts_behind_it_do_no_tls_and_pass_on_the_scheme_it_saw(tmp_path):
    cfg = tls_cfg(tmp_path, LETSENCRYPT)
    on_app = fleet.host_config(cfg, "a1")
    assert not on_app.tls.enabled and on_app.tls.behind_lb
    assert fleet.host_config(cfg, "lb1").tls == cfg.tls  # the load balancer holds the certificate
    from roles.wanted import Wanted
    assert "certbot" not in Wanted.of(on_app).all_packages and "certbot" in Wanted.of(cfg).all_packages
    files = rendered(cfg, "a1")
    site = files["/etc/nginx/sites-available/shop.conf"]
    assert "443" not in site and "return 301" not in site and "Strict-Transport-Security" not in site
    assert "443" not in files["/etc/nginx/sites-available/pronghorn-default.conf"]
    # X-Forwarded-Proto: the load balancer's, believed from its address (and this host's own)
    assert "geo $realip_remote_addr $pronghorn_shop_from_lb {" in site
    geo = site.split("geo $realip_remote_addr")[1].split("}")[0]
    assert "127.0.0.1 1;" in geo and "10.78.0.1 1;" in geo and "default 0;" in geo
    assert '"1:https" https;' in site and "default $scheme;" in site
    assert "proxy_set_header X-Forwarded-Proto $pronghorn_shop_scheme;" in site
    assert "proxy_set_header X-Forwarded-Proto $scheme;" not in site
    # its health check asks as the load balancer does: http on loopback, X-Forwarded-Proto: https
    from toolkit.release_commands import health_check_cmd
    assert health_check_cmd(on_app).endswith(" 127.0.0.1 80 forwarded-https 0")


def test_the_single_host_site_keeps_its_own_scheme(tmp_path):
    app = flask_app(tmp_path, "one", '[app]\ndomains = ["shop.test"]\n[tls]\nmode = "self-signed"\n')
    cfg = load_app_config(app)
    assert fleet.host_config(cfg, "h") is cfg
    site = {f.path: f.content for f in render_all(cfg, mask_secrets=True)}["/etc/nginx/sites-available/one.conf"]
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in site and "geo " not in site


@pytest.mark.skipif(not shutil.which("nginx") or not shutil.which("openssl"), reason="nginx or openssl missing")
@pytest.mark.parametrize("tls", [LETSENCRYPT, 'mode = "self-signed"\nhsts = 0\n'])
def test_the_load_balancers_and_app_hosts_sites_with_tls_pass_nginx_t(tmp_path, tls):
    from tests.toolkit.test_render import nginx_test
    from tests.toolkit.test_tls import make_cert

    cfg = tls_cfg(tmp_path, tls)
    lay = cfg.layout
    files = rendered(cfg, "lb1")
    sites = [files[lay.lb_site], files["/etc/nginx/sites-available/pronghorn-default.conf"]]
    cert, key = make_cert(tmp_path, "shop.example.org")
    placeholder, placeholder_key = make_cert(tmp_path, "invalid")
    moves = {lay.lb_static_cache: str(tmp_path / "cache"), lay.acme_webroot: str(tmp_path),
             lay.letsencrypt_cert: str(cert), lay.letsencrypt_key: str(key), lay.tls_cert: str(cert),
             lay.tls_key: str(key), lay.tls_default_cert: str(placeholder), lay.tls_default_key: str(placeholder_key)}
    for old, new in moves.items():
        sites = [text.replace(old, new) for text in sites]
    ok, output = nginx_test(tmp_path, *sites)
    assert ok, output
    # an app host behind it (its geo/map of the forwarded scheme), on its own
    (tmp_path / "app").mkdir()
    app_site = rendered(cfg, "a1")["/etc/nginx/sites-available/shop.conf"]
    app_site = app_site.replace("listen 10.78.0.2:80", "listen 127.0.0.2:80")  # nginx -t binds it
    ok, output = nginx_test(tmp_path / "app", app_site)
    assert ok, output


def test_the_certificate_tasks_go_to_the_load_balancers(tmp_path):
    from toolkit.tasking import host_specs
    from toolkit.tasks_tls import tls_hosts

    cfg = tls_cfg(tmp_path, LETSENCRYPT)
    assert [str(s) for s in host_specs(None, cfg, roles=tls_hosts(cfg))] == ["lb1"]
    single = flask_app(tmp_path, "single", '[app]\nhosts = ["h1"]\n')
    assert tls_hosts(load_app_config(single)) is None  # every host given, as before
