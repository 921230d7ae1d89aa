"""deploy.toml: defaults a beginner can rely on, and errors that say what to fix before any host is touched."""

import dataclasses
import re
import sys
from pathlib import Path

import pytest

# The toolkit is not an installed package: make the repository importable when pytest
# runs without `pythonpath = .` (as tests/server/*.py do for the server).
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from toolkit.config import SCHEMA, ConfigError, load_app_config, reference_markdown, slugify

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def make_app(tmp_path, toml="", name="shop", code='from flask import Flask\napp = Flask(__name__)\n'):
    """An app directory with a Flask app.py (detectable) and the given deploy.toml."""
    app_dir = tmp_path / name
    app_dir.mkdir()
    (app_dir / "app.py").write_text(code)
    if toml is not None:
        (app_dir / "deploy.toml").write_text(toml)
    return app_dir


def config_error(app_dir, overrides=None):
    with pytest.raises(ConfigError) as info:
        load_app_config(app_dir, overrides)
    return str(info.value)


# --------------------------------------------------------------------------- defaults

def test_flask_example_needs_only_its_name():
    cfg = load_app_config(EXAMPLES / "flask")
    assert (cfg.name, cfg.framework, cfg.wsgi) == ("flaskapp", "flask", "app:app")
    assert cfg.domains == ("_",) and cfg.any_domain
    assert cfg.keep_releases == 5 and cfg.workers == "auto" and cfg.threads == 1
    assert cfg.static == {"/static/": "static"}
    assert cfg.health.path == "/healthz" and cfg.health.expect == 200
    assert cfg.django is None


def test_derived_host_paths_follow_the_name():
    cfg = load_app_config(EXAMPLES / "flask")
    assert cfg.layout.base_dir == "/srv/flaskapp"
    assert cfg.layout.releases_dir == "/srv/flaskapp/releases"
    assert cfg.layout.shared_dir == "/srv/flaskapp/shared"
    assert cfg.layout.current_dir == "/srv/flaskapp/current"
    assert cfg.layout.venvs_dir == "/srv/flaskapp/venvs"
    assert cfg.layout.socket_path == "/run/flaskapp/pronghorn.sock"
    assert cfg.layout.env_file == "/srv/flaskapp/shared/.env"
    assert (cfg.layout.unit_name, cfg.layout.socket_unit_name) == ("flaskapp.service", "flaskapp.socket")


def test_django_example_detects_settings_and_defaults_to_collected_static():
    cfg = load_app_config(EXAMPLES / "django")
    assert cfg.framework == "django"
    assert cfg.wsgi == "guestbook.wsgi:application"
    assert cfg.django.settings == "guestbook.settings"
    assert cfg.django.migrate and cfg.django.collectstatic
    assert cfg.static == {"/static/": "staticfiles"}
    assert cfg.secrets == ("SECRET_KEY",)


def test_name_defaults_to_the_directory_name_made_a_slug(tmp_path):
    app_dir = make_app(tmp_path, toml=None, name="My_Shop 2")
    assert load_app_config(app_dir).name == "my-shop-2"


def test_directory_name_that_makes_no_valid_name_asks_for_one(tmp_path):
    app_dir = make_app(tmp_path, toml="", name="2048")
    assert 'set [app] name = "myapp"' in config_error(app_dir)


def test_slugify():
    assert slugify("Hello World!") == "hello-world"
    assert len(slugify("x" * 50)) == 31


def test_config_is_frozen():
    cfg = load_app_config(EXAMPLES / "flask")
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.name = "other"


# --------------------------------------------------------------------------- errors

def test_wrong_type_names_file_key_value_and_allowed(tmp_path, monkeypatch):
    app_dir = make_app(tmp_path, '[app]\nworkers = "four"\n')
    monkeypatch.chdir(tmp_path)
    assert config_error(app_dir).startswith(
        'shop/deploy.toml:2: [app] workers = "four": expected a whole number from 1 to 64')


def test_unknown_key_suggests_the_close_one(tmp_path):
    app_dir = make_app(tmp_path, "[app]\nworker = 4\n")
    assert "unknown key 'worker' in [app] (did you mean 'workers'?)" in config_error(app_dir)


def test_unknown_key_names_its_line_and_what_to_do(tmp_path):
    app_dir = make_app(tmp_path, '# my app\n[app]\nname = "shop"\n\n[health]\npath = "/"\ntimout = 5\n')
    with pytest.raises(ConfigError) as err:
        load_app_config(app_dir)
    assert str(err.value).split(": ")[0].endswith("deploy.toml:7")
    assert "docs/deploy-config.md" in err.value.next_step


def test_a_trailing_newline_does_not_pass_a_name_check(tmp_path):
    # `$` in a regex matches before a final newline: every check anchors with \Z instead.
    app_dir = make_app(tmp_path, '[app]\nname = "shop\\n"\n')
    assert "name" in config_error(app_dir)


def test_unknown_section_suggests_the_close_one(tmp_path):
    app_dir = make_app(tmp_path, '[heath]\npath = "/"\n')
    assert "unknown section [heath] (did you mean 'health'?)" in config_error(app_dir)


def test_app_key_at_top_level_says_where_it_belongs(tmp_path):
    app_dir = make_app(tmp_path, 'name = "shop"\n')
    assert "'name' must be inside the [app] section" in config_error(app_dir)


def test_invalid_toml_is_reported_with_the_file(tmp_path):
    app_dir = make_app(tmp_path, "[app\nname = \n")
    message = config_error(app_dir)
    assert "deploy.toml: not valid TOML" in message


@pytest.mark.parametrize("toml, expected", [
    ("[app]\nworkers = 0\n", "from 1 to 64"),
    ("[app]\nworkers = 65\n", "from 1 to 64"),
    ("[app]\nworkers = true\n", "from 1 to 64"),
    ("[app]\nthreads = 1.5\n", "from 1 to 64"),
    ("[app]\nkeep_releases = 0\n", "from 1 to 100"),
    ("[app]\ntimeout = -1\n", "from 1 to 3600"),
    ('[app]\nname = "MyApp"\n', "lower-case slug"),
    ('[app]\nname = "1app"\n', "lower-case slug"),
    ('[app]\nname = "a' + "b" * 31 + '"\n', "at most 31 characters"),
    ('[app]\nname = "my_app"\n', "lower-case slug"),
    ('[app]\nname = "www-data"\n', "system user or reserved name"),
    ('[app]\nname = "root"\n', "system user or reserved name"),
    ('[app]\ndomains = ["Example.com"]\n', "lower-case domain name"),
    ('[app]\ndomains = ["exa mple.com"]\n', "lower-case domain name"),
    ('[app]\ndomains = ["-bad.example.com"]\n', "lower-case domain name"),
    ('[app]\ndomains = ["example.com;"]\n', "lower-case domain name"),
    ('[app]\ndomains = []\n', "non-empty list"),
    ('[app]\ndomains = "example.com"\n', "expected a list"),
    ('[app]\ndomains = ["_", "example.com"]\n', 'cannot be combined'),
    ('[app]\nframework = "fastapi"\n', 'expected one of "flask", "django", "bottle", "wsgi"'),
    ('[app]\nwsgi = "app"\n', "module:callable"),
    ('[app]\nclient_max_body_size = "10 MB"\n', 'like "10m"'),
    ('[app]\nrequirements = "../secret.txt"\n', "no .."),
    ('[app]\nsecrets = ["SECRET-KEY"]\n', "environment variable name"),
    ('[app]\naccess_log = "syslog"\n', 'one of "journal", "file", "off"'),
    ('[health]\npath = "healthz"\n', 'starting with "/"'),
    ('[health]\nexpect = 1000\n', "from 100 to 599"),
    ('[static]\n"/static/" = "../etc"\n', "no .."),
    ('[static]\n"static" = "static"\n', 'starting and ending with "/"'),
    ('[env]\n"BAD-NAME" = "x"\n', "not a valid environment variable name"),
    ('[env]\nMULTI = "a\\nb"\n', "one-line string"),
    ('[proxy]\nhttp = "proxy:3128"\n', "proxy URL"),
    # A value that would close apt.conf's quotes and add an option of its own is refused.
    ('[proxy]\nhttp = "http://p:3128/\\";APT::Update::Pre-Invoke {\\"touch /tmp/x\\";};"\n', "proxy URL"),
    ('[proxy]\nhttps = "http://p:3128 ;x"\n', "proxy URL"),
    ('[proxy]\nca_bundle = "corp.crt"\n', "absolute path"),
    ('[source]\nref = "main"\n', "ref is set but git is not"),
    ('[app]\nsecrets = ["TOKEN"]\n[env]\nTOKEN = "x"\n', "in both [env] and [app] secrets"),
    ('[app]\ngenerate_secrets = ["TOKEN"]\n', "not in [app] secrets"),
    ('[app]\nframework = "flask"\n[django]\nmigrate = false\n', "remove [django]"),
])
def test_bad_values_are_rejected_with_what_is_allowed(tmp_path, toml, expected):
    app_dir = make_app(tmp_path, toml)
    message = config_error(app_dir)
    assert expected in message
    assert "deploy.toml" in message


def test_good_values_pass_and_are_normalised(tmp_path):
    app_dir = make_app(tmp_path, """
[app]
domains = ["example.com", "*.example.org", "203.0.113.10"]
workers = 4
media = "/uploads"
secrets = ["API_TOKEN"]
[static]
"/assets" = "web/assets"
[env]
DEBUG = false
LIMIT = 5
[proxy]
http = "http://10.77.0.1:8888"
""")
    cfg = load_app_config(app_dir)
    assert cfg.domains == ("example.com", "*.example.org", "203.0.113.10")
    assert cfg.workers == 4
    assert cfg.media == "/uploads/"
    assert cfg.static == {"/assets/": "web/assets"}
    assert cfg.env == {"DEBUG": "false", "LIMIT": "5"}
    assert cfg.proxy.enabled and cfg.proxy.http == "http://10.77.0.1:8888"


def test_overrides_are_validated_like_the_file(tmp_path):
    app_dir = make_app(tmp_path, "[app]\nworkers = 2\n")
    assert load_app_config(app_dir, {"app.workers": 6}).workers == 6
    assert load_app_config(app_dir, {"app": {"threads": 3}}).threads == 3
    assert "[app] workers = \"many\"" in config_error(app_dir, {"app.workers": "many"})
    assert "unknown key 'wrkers'" in config_error(app_dir, {"app.wrkers": 2})


def test_app_without_a_detectable_entry_asks_for_wsgi(tmp_path):
    app_dir = make_app(tmp_path, "", code="print('not a web app')\n")
    assert 'wsgi = "module:app"' in config_error(app_dir)


def test_explicit_wsgi_without_framework_is_plain_wsgi(tmp_path):
    app_dir = make_app(tmp_path, '[app]\nwsgi = "service.main:application"\n', code="")
    cfg = load_app_config(app_dir)
    assert (cfg.framework, cfg.wsgi) == ("wsgi", "service.main:application")


def test_missing_app_dir_says_how_to_give_one(tmp_path):
    message = config_error(tmp_path / "nope")
    assert "no such directory" in message and "--app DIR" in message


# --------------------------------------------------------------------------- the reference doc

def test_reference_doc_lists_every_key():
    doc = (REPO / "docs" / "deploy-config.md").read_text()
    for key in SCHEMA:
        assert f"### [{key.section}]" in doc, key.section
        if key.name != "*":
            assert re.search(rf"^\| `{re.escape(key.name)}` \|", doc[doc.index(f"### [{key.section}]"):], re.M), \
                f"[{key.section}] {key.name} is not in docs/deploy-config.md"


def test_reference_doc_is_up_to_date_with_the_schema():
    doc = (REPO / "docs" / "deploy-config.md").read_text()
    assert reference_markdown() in doc, "regenerate the reference: python -m toolkit.config --doc"
