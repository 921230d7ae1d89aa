"""Where each pronghorn setting comes from: the command line, PRONGHORN_CMD_ARGS, the config
file, the environment; and the `Config` object that holds them.

What the settings are lives in settings.py (`SETTINGS`, one entry per setting: name, flags,
validator, default, help; and the server hooks), how one value is checked in validators.py. This
module builds the command-line parser from that table, reads the config file, applies the
sources in order, and renders `--print-config` and docs/server-reference.md.

Where a value comes from, strongest first (the same order as gunicorn):

    1. the command line
    2. PRONGHORN_CMD_ARGS (extra flags from the environment, shell-split)
    3. the config file: -c FILE, -c python:module.name, or ./pronghorn.conf.py when -c is not given
    4. environment defaults: WEB_CONCURRENCY (workers), FORWARDED_ALLOW_IPS, PORT (bind 0.0.0.0:PORT)
    5. the built-in default

Every bad value is a `ConfigError` whose text is one line naming where the value came from, the
setting, what was wrong and an example of a good value. `load_config` never exits the process and
never changes it (no chdir, no sys.path edits): that is left to cli.py and loader.py.

The names settings.py and validators.py define stay importable from here (`from pronghorn.config
import SETTINGS_BY_NAME, proxy_trust, ...`), as before they moved.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib
import os
import re
import shlex
import sys
import traceback
import types
from typing import Any, Callable, Mapping

from pronghorn import __version__
from pronghorn.settings import (  # noqa: F401 (re-exported: the public API before the split)
    DEFAULT_SECURE_SCHEME_HEADERS, GIB, GUNICORN_ACCESS_FORMAT, HOOKS, HOOKS_BY_NAME, NO_EFFECT,
    REFUSED, SETTINGS, SETTINGS_BY_NAME, Hook, Setting, _noop, check_hook, no_effect_warnings)
from pronghorn.validators import (  # noqa: F401 (re-exported, idem)
    ACCEPTED_WORKER_CLASSES, PROXY_PROTOCOL_MODES, a_dict, access_format, allowed_ips,
    bind_address, bind_list, boolean, cert_reqs, choice, ciphers, comma_list, existing_dir,
    existing_file, group_id, header_map, header_names, int_range, log_file, loglevel,
    metrics_address, non_negative_int, optional_seconds, optional_string, positive_int,
    proxy_protocol_mode, proxy_trust, raw_env_list, root_path, seconds, socket_mode, ssl_version,
    statsd_address, string, string_list, syslog_address, syslog_facility, umask, user_id,
    wire_protocol, worker_class)

DEFAULT_CONFIG_FILE = "pronghorn.conf.py"
ENV_ARGS = "PRONGHORN_CMD_ARGS"


class ConfigError(Exception):
    """A setting is wrong. str(err) is one line, without the `pronghorn: error: ` prefix."""


class InfoRequested(Exception):
    """--help or --version: str(exc) is the text to print, then exit 0."""


# --------------------------------------------------------------------------------------------
# The Config object.
# --------------------------------------------------------------------------------------------


class Config:
    """All settings as plain attributes (cheap to read in the request path), plus every hook.

    Config(**overrides) gives the defaults with some settings changed (values are checked as a
    config file's would be); handy in tests of other parts. load_config() is what the command
    line uses.
    """

    def __init__(self, **overrides: Any) -> None:
        self.sources: dict[str, str] = {}
        self.config_file: str | None = None
        self.argv: list[str] | None = None
        for setting in SETTINGS:
            setattr(self, setting.name, setting.default_value())
            self.sources[setting.name] = "default"
        for hook in HOOKS:
            setattr(self, hook.name, _noop)
            self.sources[hook.name] = "default"
        for name, value in overrides.items():
            self.set(name, value, "code")

    def set(self, name: str, value: Any, source: str = "code") -> None:
        """Check and set one setting or hook; raises ConfigError naming the source."""
        if name == "app_uri":
            name = "wsgi_app"
        if name in HOOKS_BY_NAME:
            try:
                value = check_hook(HOOKS_BY_NAME[name], value)
            except ValueError as err:
                raise ConfigError(f"{source}: hook {name} {err}") from None
        elif name in SETTINGS_BY_NAME:
            setting = SETTINGS_BY_NAME[name]
            try:
                value = setting.validate(value)
            except ValueError as err:
                raise ConfigError(f"{source}: {name}: " + _expected(str(err), f"{name} = {setting.file_example}")) from None
        else:
            raise ConfigError(f"{source}: unknown setting {name!r}{_did_you_mean(name, _all_names())}")
        setattr(self, name, value)
        self.sources[name] = source

    # Read-only conveniences derived from settings.

    @property
    def app_uri(self) -> str | None:
        """The app as named: wsgi_app, or 'paste:FILE' for --paste (loader.py tells them apart)."""
        return self.wsgi_app or (f"paste:{self.paste}" if self.paste else None)

    @property
    def env(self) -> dict[str, str]:
        """raw_env as a dict."""
        return dict(item.split("=", 1) for item in self.raw_env)

    @property
    def access_log_json(self) -> bool:
        return self.access_log_format.strip().lower() == "json"

    def values(self) -> dict[str, Any]:
        """Every setting and hook by name."""
        names = [s.name for s in SETTINGS] + [h.name for h in HOOKS]
        return {name: getattr(self, name) for name in names}

    def __repr__(self) -> str:
        return f"<Config app={self.wsgi_app!r} bind={self.bind!r} workers={self.workers}>"


@dataclasses.dataclass(frozen=True)
class WorkerSettings:
    """What a worker reads from the config, read once, checked and normalised: the worker and its
    connections use these plain attributes and never fall back on defaults of their own."""

    threads: int
    workers: int
    backlog: int
    keepalive: float
    header_timeout: float
    body_timeout: float
    send_timeout: float  # --send-timeout, else --body-timeout
    graceful_timeout: float
    worker_connections: int
    max_requests: int
    max_requests_jitter: int
    max_worker_memory: int  # bytes; 0 = no limit
    sendfile: bool
    limit_request_line: int
    limit_request_fields: int
    limit_request_field_size: int
    limit_request_body: int | None  # None = no limit
    proxy_protocol: str  # off / v1 / v2 / auto (who may send it: environ.proxy, from proxy_allow_ips)
    pre_request: Callable | None  # None when it is the no-op default (skipped on the hot path)
    post_request: Callable | None
    metrics: bool = False  # --metrics-bind is set: count every response (metrics.WorkerMetrics)
    request_timeout: float = 0.0  # publish the oldest request in progress for the master


def worker_settings(cfg: Any) -> WorkerSettings:
    """The WorkerSettings of a Config (or of any object with some settings as attributes, as
    tests and embedders pass): a missing or None value takes the setting's default from SETTINGS."""

    def get(name: str) -> Any:
        value = getattr(cfg, name, None)
        return SETTINGS_BY_NAME[name].default_value() if value is None else value

    def hook(name: str) -> Callable | None:
        fn = getattr(cfg, name, None)
        return None if fn is None or fn is _noop else fn

    body_timeout = float(get("body_timeout"))
    send_timeout = getattr(cfg, "send_timeout", None)
    return WorkerSettings(
        threads=max(1, int(get("threads"))), workers=max(1, int(get("workers"))),
        backlog=int(get("backlog")), keepalive=float(get("keepalive")),
        header_timeout=float(get("header_timeout")), body_timeout=body_timeout,
        send_timeout=body_timeout if send_timeout is None else float(send_timeout),
        graceful_timeout=float(get("graceful_timeout")),
        worker_connections=int(get("worker_connections")),
        max_requests=int(get("max_requests")), max_requests_jitter=int(get("max_requests_jitter")),
        max_worker_memory=int(get("max_worker_memory")) * 1024 * 1024,
        # Under TLS the bytes must go through OpenSSL: the kernel's sendfile would send plaintext.
        sendfile=get("sendfile") is not False and not getattr(cfg, "certfile", None),
        limit_request_line=int(get("limit_request_line")),
        limit_request_fields=int(get("limit_request_fields")),
        limit_request_field_size=int(get("limit_request_field_size")),
        limit_request_body=int(get("limit_request_body")) or None,
        proxy_protocol=proxy_protocol_mode(get("proxy_protocol")),
        pre_request=hook("pre_request"), post_request=hook("post_request"),
        metrics=bool(getattr(cfg, "metrics_bind", None)),
        request_timeout=float(getattr(cfg, "request_timeout", 0) or 0),
    )




def _all_names() -> list[str]:
    return list(SETTINGS_BY_NAME) + list(HOOKS_BY_NAME)


def _expected(message: str, example: str) -> str:
    """Append '(expected e.g. ...)' unless the message already lists what is allowed."""
    return message if "(allowed:" in message else f"{message} (expected e.g. {example})"


def _did_you_mean(word: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(word, candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------------
# The command line (and PRONGHORN_CMD_ARGS, parsed the same way).
# --------------------------------------------------------------------------------------------

USAGE = "pronghorn [OPTIONS] [MODULE:APP]"
DESCRIPTION = (
    "A fast, strict pre-fork WSGI server. Flags are named as gunicorn's.\n"
    "Example: pronghorn -w 4 -b 0.0.0.0:8000 myproject.wsgi:application"
)


class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but every error is a one-line ConfigError instead of usage text and exit."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(_reshape_argparse_error(message))


def _flag_setting(flag: str) -> Setting | None:
    for setting in SETTINGS:
        if flag in setting.flags:
            return setting
    return None


def _reshape_argparse_error(message: str) -> str:
    match = re.match(r"argument ([^:]+): expected one argument", message)
    if match:
        flags = match.group(1).split("/")
        setting = _flag_setting(flags[-1])
        if setting is not None:
            return f"{setting.flag}: needs a value (expected e.g. {setting.flag} {setting.example})"
        return f"{flags[-1]}: needs a value"
    match = re.match(r"argument ([^:]+): ignored explicit argument (.*)", message)
    if match:
        flag = match.group(1).split("/")[-1]
        return f"{flag}: takes no value (remove ={match.group(2).strip(chr(39))})"
    return message


def _all_flags() -> list[str]:
    flags = [f for s in SETTINGS for f in s.flags]
    flags += [f for flags_, _, _ in REFUSED.values() for f in flags_]
    return flags + ["-c", "--config", "-h", "--help", "-v", "--version"]


def build_parser() -> argparse.ArgumentParser:
    parser = _ArgumentParser(
        prog="pronghorn", usage=USAGE, description=DESCRIPTION, add_help=False, allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("wsgi_app", nargs="?", default=argparse.SUPPRESS, metavar="MODULE:APP",
                        help="the WSGI app, e.g. myproject.wsgi:application or app:create_app()")
    general = parser.add_argument_group("general")
    general.add_argument("-c", "--config", dest="config", default=argparse.SUPPRESS, metavar="FILE",
                         help=f"Python config file, or python:module.name (default: ./{DEFAULT_CONFIG_FILE} if it exists)")
    general.add_argument("-h", "--help", dest="help", action="store_true", default=argparse.SUPPRESS,
                         help="show this help and exit")
    general.add_argument("-v", "--version", dest="version", action="store_true", default=argparse.SUPPRESS,
                         help="print the version and exit")
    groups: dict[str, Any] = {}
    for setting in SETTINGS:
        if not setting.flags:
            continue
        group = groups.get(setting.section) or parser.add_argument_group(setting.section.lower())
        groups[setting.section] = group
        kwargs: dict[str, Any] = {"dest": setting.name, "default": argparse.SUPPRESS,
                                  "help": _short_help(setting)}
        if setting.kind == "true":
            kwargs.update(action="store_const", const=True)
        elif setting.kind == "false":
            kwargs.update(action="store_const", const=False)
        elif setting.kind == "optional":  # a value may follow; alone the flag means True
            kwargs.update(action="store", nargs="?", const=True, metavar=setting.metavar or "VALUE")
        else:
            kwargs.update(action="append" if setting.kind == "append" else "store",
                          metavar=setting.metavar or "VALUE")
        group.add_argument(*setting.flags, **kwargs)
    refused = parser.add_argument_group("gunicorn flags pronghorn refuses")
    for name, (flags, nargs, _) in REFUSED.items():
        if nargs:
            refused.add_argument(*flags, dest="refused_" + name, default=argparse.SUPPRESS,
                                 help=argparse.SUPPRESS)
        else:
            refused.add_argument(*flags, dest="refused_" + name, action="store_const", const=True,
                                 default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    return parser


def _short_help(setting: Setting) -> str:
    first = re.split(r"\.\s+(?=[A-Z`$])", setting.help)[0].rstrip(".")
    default = setting.default
    if setting.kind in ("true", "false") or callable(default) or default in (None, [], ""):
        return first
    shown = ",".join(default) if isinstance(default, list) else default
    return f"{first} (default: {shown})".replace("%", "%%")


def parse_args(argv: list[str], source: str = "") -> dict[str, Any]:
    """Parse flags into {name: raw value}; refused and unknown flags raise ConfigError.

    source is a prefix for messages ("PRONGHORN_CMD_ARGS: ") when argv is not the command line.
    """
    parser = build_parser()
    try:
        namespace, extras = parser.parse_known_args(argv)
    except ConfigError as err:
        raise ConfigError(source + str(err)) from None
    if extras:
        raise ConfigError(source + _unknown_argument_message(extras[0]))
    raw = vars(namespace)
    for key in list(raw):
        if key.startswith("refused_"):
            name = key[len("refused_"):]
            flags, _, why = REFUSED[name]
            raise ConfigError(f"{source}{flags[-1]} {why}")
    return raw


def _unknown_argument_message(arg: str) -> str:
    if arg.startswith("-"):
        flag = arg.split("=", 1)[0]
        hint = _did_you_mean(flag, _all_flags()) or " (see pronghorn --help)"
        return f"{flag}: unknown flag{hint}"
    return f"unexpected argument {arg!r}: give the app once, e.g. pronghorn -w 4 myproject.wsgi:application"


# --------------------------------------------------------------------------------------------
# The config file.
# --------------------------------------------------------------------------------------------


def read_config_file(spec: str) -> tuple[str, dict[str, Any]]:
    """Run a config file (or import python:module.name); return (label, its settings by name).

    Private helpers are skipped: names starting with '_', ALL_CAPS constants, imported modules,
    classes and functions imported from elsewhere. Any other name must be a setting or a hook.
    """
    if spec.startswith("python:"):
        module_name = spec[len("python:"):]
        # A console script's sys.path starts at its bin/ directory; the module is looked for
        # in the working directory too, as gunicorn puts it on sys.path before this.
        added = os.getcwd() not in sys.path
        if added:
            sys.path.insert(0, os.getcwd())
        try:
            module = importlib.import_module(module_name)
        except Exception as err:
            raise ConfigError(f"-c {spec}: cannot import config module {module_name!r}: {_exc_line(err)}") from None
        finally:
            if added and os.getcwd() in sys.path:
                sys.path.remove(os.getcwd())
        return spec, _config_names(vars(module), module.__name__)
    path = label = spec
    try:
        with open(path, "rb") as handle:
            source = handle.read()
    except FileNotFoundError:
        raise ConfigError(f"-c: config file {spec!r} not found (looked in {os.path.abspath(path)})") from None
    except OSError as err:
        raise ConfigError(f"-c: cannot read config file {spec!r}: {err.strerror}") from None
    namespace: dict[str, Any] = {"__file__": os.path.abspath(path), "__name__": "__config__"}
    try:
        code = compile(source, path, "exec")
        exec(code, namespace)
    except SyntaxError as err:
        raise ConfigError(f"{label}: line {err.lineno}: syntax error: {err.msg}") from None
    except Exception as err:
        raise ConfigError(f"{label}: line {_file_line(err, path)}: {_exc_line(err)}") from None
    return label, _config_names(namespace, "__config__")


def _config_names(namespace: dict[str, Any], module_name: str) -> dict[str, Any]:
    found = {}
    for name, value in namespace.items():
        if name.startswith("_") or name.isupper():
            continue
        if isinstance(value, (types.ModuleType, type)):
            continue
        if callable(value) and getattr(value, "__module__", module_name) != module_name \
                and name not in HOOKS_BY_NAME:
            continue  # e.g. `from multiprocessing import cpu_count`
        found[name] = value
    return found


def _exc_line(err: BaseException) -> str:
    return "".join(traceback.format_exception_only(type(err), err)).strip().splitlines()[-1]


def _file_line(err: BaseException, path: str) -> str:
    line = "?"
    for frame in traceback.extract_tb(err.__traceback__):
        if frame.filename == path:
            line = str(frame.lineno)
    return line


# --------------------------------------------------------------------------------------------
# load_config: everything together.
# --------------------------------------------------------------------------------------------


def load_config(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Build the Config from argv (without the program name) and the environment.

    Raises ConfigError (one line) for anything wrong, InfoRequested for --help / --version.
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    environ = os.environ if environ is None else environ

    cli = parse_args(argv)
    if cli.get("help"):
        raise InfoRequested(build_parser().format_help().rstrip())
    if cli.get("version"):
        raise InfoRequested(f"pronghorn {__version__}")
    env_argv = _split_env_args(environ.get(ENV_ARGS, ""))
    env_args = parse_args(env_argv, f"{ENV_ARGS}: ")
    for key in ("help", "version"):
        env_args.pop(key, None)

    cfg = Config()
    cfg.argv = argv  # the arbiter re-reads the same command line on HUP
    _apply_environment_defaults(cfg, environ)

    config_spec = cli.pop("config", None) or env_args.pop("config", None)
    env_args.pop("config", None)
    if config_spec is None:
        # Looked up in --chdir when given (as gunicorn, which changes directory first).
        base = cli.get("chdir") or env_args.get("chdir")
        candidate = os.path.join(base, DEFAULT_CONFIG_FILE) if base else DEFAULT_CONFIG_FILE
        if os.path.isfile(candidate):
            _apply_file(cfg, candidate)
    else:
        chdir = cli.get("chdir") or env_args.get("chdir")
        if chdir and not os.path.isabs(config_spec) and not config_spec.startswith("python:") \
                and not os.path.exists(config_spec):
            # gunicorn changes directory before reading -c, so a relative file may live there.
            config_spec = os.path.join(chdir, config_spec)
        _apply_file(cfg, config_spec)

    _apply_flags(cfg, env_args, f"{ENV_ARGS}: ")
    _apply_flags(cfg, cli, "")

    if bool(cfg.certfile) != bool(cfg.keyfile):
        given, missing = ("--certfile", "--keyfile") if cfg.certfile else ("--keyfile", "--certfile")
        raise ConfigError(f"{given} needs {missing} too (the certificate and its private key), "
                          "e.g. --certfile cert.pem --keyfile key.pem")
    if cfg.wsgi_app is None and cfg.paste is None and not (cfg.check_config or cfg.print_config):
        raise ConfigError(
            "no application given: name the WSGI app, e.g. pronghorn myproject.wsgi:application "
            "(or set wsgi_app in the config file)"
        )
    return cfg


def _split_env_args(text: str) -> list[str]:
    try:
        return shlex.split(text)
    except ValueError as err:
        raise ConfigError(f"{ENV_ARGS}: cannot split {text!r}: {err}") from None


def _apply_environment_defaults(cfg: Config, environ: Mapping[str, str]) -> None:
    for setting in SETTINGS:
        if setting.env is None or not environ.get(setting.env, "").strip():
            continue
        text = environ[setting.env].strip()
        value = setting.env_to_value(text) if setting.env_to_value else text
        try:
            setattr(cfg, setting.name, setting.validate(value))
        except ValueError as err:
            raise ConfigError(f"{setting.env}: " + _expected(str(err), f"{setting.env}={setting.example}")) from None
        cfg.sources[setting.name] = f"environment {setting.env}"


def _apply_file(cfg: Config, spec: str) -> None:
    label, names = read_config_file(spec)
    cfg.config_file = spec
    for name, value in names.items():
        if name in REFUSED:
            raise ConfigError(f"{label}: {name} {REFUSED[name][2]}")
        cfg.set(name, value, label)


def _apply_flags(cfg: Config, raw: dict[str, Any], source: str) -> None:
    for name, value in raw.items():
        setting = SETTINGS_BY_NAME[name]
        if setting.kind == "append":
            # Each occurrence is checked on its own so a bad one is named exactly.
            items: list[Any] = []
            for item in value:
                items.extend(_check_flag(setting, item, source))
            value = items
        else:
            value = _check_flag(setting, value, source)
        setattr(cfg, name, value)
        cfg.sources[name] = "command line" if not source else source.rstrip(": ")


def _check_flag(setting: Setting, value: Any, source: str) -> Any:
    try:
        return setting.validate(value)
    except ValueError as err:
        if setting.name == "wsgi_app":
            raise ConfigError(f"{source}{err}") from None
        raise ConfigError(f"{source}{setting.flag}: " + _expected(str(err), f"{setting.flag} {setting.example}")) from None


# --------------------------------------------------------------------------------------------
# Output: --print-config and the reference document.
# --------------------------------------------------------------------------------------------


def format_value(value: Any) -> str:
    if callable(value):
        if value is _noop:
            return "(no-op)"
        return f"<function {getattr(value, '__qualname__', repr(value))}>"
    return repr(value)


def print_config_lines(cfg: Config) -> list[str]:
    """Every setting and hook as 'name = value', sorted by name."""
    values = cfg.values()
    lines = []
    for name in sorted(values):
        shown = oct(values[name]) if name == "umask" and values[name] is not None else format_value(values[name])
        lines.append(f"{name} = {shown}")
    return lines


def reference_markdown() -> str:
    """docs/server-reference.md, generated from SETTINGS and HOOKS."""
    out = [
        "# pronghorn server reference",
        "",
        "<!-- Generated from the settings table (server/pronghorn/settings.py): "
        "`python -m pronghorn.config > docs/server-reference.md`. Do not edit by hand. -->",
        "",
        "Usage: `" + USAGE + "`. Flags and config-file names are gunicorn's, so a gunicorn",
        "command line or `gunicorn.conf.py` works with `gunicorn` replaced by `pronghorn`.",
        "",
        "## Where settings come from",
        "",
        "Strongest first (the same order as gunicorn):",
        "",
        "1. the command line;",
        f"2. `{ENV_ARGS}`: extra flags from the environment, split as a shell would "
        "(like `GUNICORN_CMD_ARGS`);",
        f"3. the config file: `-c FILE` (a Python file), `-c python:module.name`, or "
        f"`./{DEFAULT_CONFIG_FILE}` (in `--chdir` when given) when `-c` is not given;",
        "4. environment defaults: `WEB_CONCURRENCY` (workers), `FORWARDED_ALLOW_IPS`, "
        "`PORT` (bind `0.0.0.0:$PORT`);",
        "5. the built-in default.",
        "",
        "In a config file every module-level name must be a setting or a hook below; a misspelt "
        "name stops the start (`unknown setting 'worker' (did you mean 'workers'?)`). Helpers are "
        "allowed when their name starts with `_` or is ALL_CAPS, and imported modules, classes and "
        "functions are skipped.",
        "",
        "A bad flag or value prints one line and exits with status 2 (1 with `--check-config`), e.g.",
        "`pronghorn: error: --workers: 'abc' is not a whole number (expected e.g. --workers 4)`.",
        "",
        "## Settings",
        "",
    ]
    section = None
    for setting in SETTINGS:
        if setting.section != section:
            section = setting.section
            out += ([] if out[-1] == "" else [""]) + [f"### {section}", ""]
        flags = ", ".join(f"`{f}`" for f in setting.flags) or "(config file only)"
        default = setting.default
        if callable(default):
            shown = "the current " + setting.name
        else:
            shown = ",".join(default) if isinstance(default, list) and default else repr(default)
        out.append(f"- **`{setting.name}`** — {flags}; default `{shown}`"
                   + (f"; environment `{setting.env}`" if setting.env else "")
                   + ("; repeatable" if setting.kind == "append" else ""))
        out.append(f"  {setting.help}")
    out += ["", "Other flags: `-c/--config FILE`, `-h/--help`, `-v/--version`.", ""]
    if REFUSED:
        out += ["## gunicorn settings pronghorn refuses", "",
                "These stop the start with a one-line message rather than being silently ignored:", ""]
        for name, (flags, _, why) in REFUSED.items():
            out.append(f"- `{name}` ({', '.join(flags)}): {why}.")
    out += ["", "## gunicorn settings accepted without effect", "",
            "Each is accepted so a gunicorn command line starts; a value other than the default "
            "logs one warning line at start saying why it changes nothing here:", ""]
    for name, why in NO_EFFECT.items():
        out.append(f"- `{name}`: {why}.")
    out += ["", "`-k/--worker-class` accepts `sync` and `gthread` (both are pronghorn's worker; "
            "`--threads N` gives gthread's thread pool) and refuses every other class.", "",
            "## Server hooks", "",
            "Define a function of this name in the config file to replace the default no-op. The "
            "number of parameters is checked when the file is loaded.", ""]
    for hook in HOOKS:
        out.append(f"- `{hook.signature}` — {hook.help}")
    out += ["", "## Environment variables", "",
            f"- `{ENV_ARGS}`: extra command-line flags.",
            "- `WEB_CONCURRENCY`: default for `--workers`.",
            "- `FORWARDED_ALLOW_IPS`: default for `--forwarded-allow-ips`.",
            "- `PORT`: default `--bind 0.0.0.0:$PORT`.",
            "- `PRONGHORN_CONTROL_SOCKET`: default for `pronghorn ctl --socket` (the client of "
            "`--control-socket`; `pronghorn ctl help` lists its commands).", ""]
    return "\n".join(out)


if __name__ == "__main__":
    sys.stdout.write(reference_markdown())
