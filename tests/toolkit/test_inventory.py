"""deploy.toml [hosts] and [network]: which host holds which role, what --host/--limit pick, and
the errors a wrong inventory gets before any host is contacted."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit.config import ConfigError, load_app_config
from toolkit.facts.addresses import Ipv4Addresses
from toolkit.inventory import Inventory, InventoryError

FLEET = """
[hosts]
lb = ["sandbox-lb"]
app = ["sandbox-app1", "sandbox-app2"]
db = ["sandbox-db"]
[network]
private = "10.78.0.0/16"
[database]
engine = "postgresql"
"""


def make_app(tmp_path, toml):
    app_dir = tmp_path / "shop"
    app_dir.mkdir()
    (app_dir / "app.py").write_text("from flask import Flask\napp = Flask(__name__)\n")
    (app_dir / "deploy.toml").write_text(toml)
    return app_dir


def error_of(tmp_path, toml):
    with pytest.raises(ConfigError) as info:
        load_app_config(make_app(tmp_path, toml))
    return str(info.value)


def test_roles_from_hosts_and_worker_defaults_to_the_app_hosts(tmp_path):
    inv = load_app_config(make_app(tmp_path, FLEET)).inventory
    assert inv.multi and inv.balanced
    assert inv.hosts("app") == ("sandbox-app1", "sandbox-app2")
    assert inv.hosts("worker") == inv.hosts("app")
    assert inv.roles_of("sandbox-app1") == ("app", "worker")
    assert inv.roles_of("sandbox-lb") == ("lb",) and inv.roles_of("elsewhere") == ()
    # the database first, the load balancer last: nothing gets traffic before what it needs is up
    assert inv.all_hosts == ("sandbox-db", "sandbox-app1", "sandbox-app2", "sandbox-lb")
    assert inv.private_network == "10.78.0.0/16"


def test_the_site_is_announced_where_visitors_reach_it(tmp_path):
    """The summary's `site:` line: the load balancer's address, never an app host's (it listens
    on its private address only) nor the database host's (it serves no site)."""
    inv = load_app_config(make_app(tmp_path, FLEET)).inventory
    assert [h for h in inv.all_hosts if inv.serves_site(h)] == ["sandbox-lb"]
    (tmp_path / "shop" / "deploy.toml").write_text('[hosts]\napp = ["a1", "a2"]\nworker = ["w1"]\n')
    unbalanced = load_app_config(tmp_path / "shop").inventory
    assert [h for h in unbalanced.all_hosts if unbalanced.serves_site(h)] == ["a1", "a2"]
    assert Inventory.single(["anything"]).serves_site("somewhere-else")


def test_a_host_may_hold_several_roles_and_worker_may_be_empty(tmp_path):
    inv = load_app_config(make_app(tmp_path, '[hosts]\nlb = ["one"]\napp = ["one", "two"]\nworker = []\n')).inventory
    assert inv.roles_of("one") == ("lb", "app") and inv.hosts("worker") == ()
    assert inv.all_hosts == ("one", "two")


def test_without_hosts_the_single_host_case_is_unchanged(tmp_path):
    cfg = load_app_config(make_app(tmp_path, '[app]\nhosts = ["root@203.0.113.10"]\n'))
    inv = cfg.inventory
    assert not inv.multi and not inv.balanced
    assert inv.hosts("app") == ("root@203.0.113.10",) and inv.hosts("lb") == ()
    assert cfg.hosts == ("root@203.0.113.10",)


def test_app_hosts_and_hosts_together_is_an_error_naming_both_lines(tmp_path):
    msg = error_of(tmp_path, '[app]\nhosts = ["a"]\n\n[hosts]\napp = ["b"]\n')
    assert "deploy.toml:2: [app] hosts and [hosts] (line 4)" in msg


@pytest.mark.parametrize("toml, expected", [
    ('[hosts]\nlb = ["a"]\n', 'deploy.toml:1: [hosts] needs app = ["HOST", ...]'),
    ('[hosts]\napp = ["a", "a"]\n', "deploy.toml:2: [hosts] app = [\"a\", \"a\"]: a is listed twice"),
    ('[hosts]\napp = ["a b"]\n', "no spaces or commas"),
    ('[hosts]\napp = ["a"]\nweb = ["b"]\n', "deploy.toml:3: unknown key 'web' in [hosts]"),
    ('[hosts]\napp = ["a"]\ndb = ["b"]\n', 'deploy.toml:3: [hosts] db is set but [database] engine is not'),
    ('[hosts]\napp = ["a"]\n[database]\nengine = "postgresql"\n', "needs the database host"),
    ('[hosts]\napp = ["a"]\ndb = ["b", "c"]\n[database]\nengine = "postgresql"\n', "one database host"),
    ('[network]\nprivate = "10.78.0.0/16"\n', "deploy.toml:2: [network] private is set but there is no [hosts]"),
    ('[hosts]\napp = ["a"]\n[network]\nprivate = "10.78.0.1/16"\n', "host bits set"),
    ('[hosts]\napp = ["a"]\n[network]\nprivate = "8.8.0.0/16"\n', "not a private network"),
])
def test_inventory_mistakes_stop_before_any_host(tmp_path, toml, expected):
    assert expected in error_of(tmp_path, toml)


def test_select_takes_roles_and_hosts_in_work_order():
    inv = Inventory.of({"lb": ("lb1",), "app": ("a1", "a2"), "db": ("d1",)})
    assert inv.select(["lb", "a2"]) == ("a2", "lb1")
    assert inv.select(["app"]) == ("a1", "a2")
    assert inv.select(["worker"]) == ("a1", "a2")
    with pytest.raises(InventoryError, match="'a3' is neither a role"):
        inv.select(["a3"])


def test_private_address_is_the_one_in_the_network_or_ssh_s_without_one():
    inv = Inventory.of({"app": ("a1",)}, "10.78.0.0/16")
    assert inv.private_address(("203.0.113.10", "10.78.0.5"), fallback="203.0.113.10") == "10.78.0.5"
    assert inv.private_address(("203.0.113.10",), fallback="203.0.113.10") == ""
    assert Inventory.of({"app": ("a1",)}).private_address(("10.78.0.5",), fallback="h") == "h"


def test_ipv4_fact_reads_ip_addr_output():
    lines = ["2: host0    inet 10.77.3.2/30 brd 10.77.3.3 scope global host0\\       valid_lft forever",
             "3: shop0    inet 10.78.0.5/16 scope global shop0\\       valid_lft forever",
             "garbage"]
    assert Ipv4Addresses().parse(lines) == ("10.77.3.2", "10.78.0.5")


def test_https_with_a_load_balancer_is_the_load_balancers(tmp_path):
    for tls in ('mode = "self-signed"', 'mode = "letsencrypt"\nemail = "ops@shop.org"'):
        app = tmp_path / tls.split('"')[1]
        app.mkdir()
        cfg = load_app_config(make_app(app, '[app]\ndomains = ["shop.org"]\n[hosts]\nlb = ["l"]\napp = ["a"]\n'
                                            f'[tls]\n{tls}\n'))
        assert cfg.tls.enabled and cfg.inventory.balanced


def test_letsencrypt_with_several_load_balancers_is_refused_naming_the_lb_line(tmp_path):
    with pytest.raises(ConfigError) as info:
        load_app_config(make_app(tmp_path, '[app]\ndomains = ["shop.org"]\n[tls]\nemail = "ops@shop.org"\n'
                                           '[hosts]\napp = ["a"]\nlb = ["l1", "l2"]\n'))
    msg = str(info.value)
    # mode not written: letsencrypt because the domain is public; the message says where both are
    assert "deploy.toml:7: [hosts] lb lists 2 load balancers" in msg, msg
    assert "deploy.toml:2" in msg and 'mode = "letsencrypt"' in msg
    assert 'mode = "files"' in info.value.next_step
    # the same certificate on every load balancer (files) or one each (self-signed) is fine
    (tmp_path / "two").mkdir()
    load_app_config(make_app(tmp_path / "two", '[app]\ndomains = ["shop.org"]\n[tls]\nmode = "self-signed"\n'
                                               '[hosts]\napp = ["a"]\nlb = ["l1", "l2"]\n'))
