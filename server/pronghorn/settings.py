"""The settings table: every pronghorn setting and server hook, one entry each.

Each `Setting` declares a setting's name (gunicorn's, so a gunicorn config file works unchanged),
its command-line flags, the validator that checks and converts a raw value (validators.py), its
default and its help text. The command line, the `PRONGHORN_CMD_ARGS` variable, the Python config
file, `--print-config` and docs/server-reference.md are all derived from this table by config.py.
`HOOKS` are gunicorn's server hooks; `REFUSED` and `NO_EFFECT` say what happens to the gunicorn
settings pronghorn does not implement.
"""

from __future__ import annotations

import inspect
import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from pronghorn.validators import (_show, a_dict, access_format, allowed_ips, bind_list, boolean,
    cert_reqs, choice, ciphers, comma_list, existing_dir, existing_file, group_id, header_map,
    header_names, int_range, log_file, loglevel, metrics_address, non_negative_int,
    optional_seconds, optional_string, positive_int, proxy_protocol_mode, raw_env_list, root_path,
    seconds, socket_mode, ssl_version, statsd_address, string, string_list, syslog_address,
    syslog_facility, umask, user_id, wire_protocol, worker_class)


@dataclass(frozen=True)
class Setting:
    name: str  # attribute on Config and name in a config file (gunicorn's)
    flags: tuple[str, ...]  # command-line flags; () = config file only
    validate: Callable[[Any], Any]
    default: Any
    help: str
    example: str  # a good value, for error messages and the reference
    kind: str = "value"  # value | append | true (flag sets True) | false (flag sets False)
    #                      | optional (a value may follow the flag; alone it gives True)
    env: str | None = None  # environment variable giving the default
    env_to_value: Callable[[str], Any] | None = None
    section: str = "Server"
    metavar: str | None = None

    def default_value(self) -> Any:
        """A fresh default (callable defaults, e.g. the current uid, are evaluated now)."""
        if callable(self.default):
            return self.default()
        return _copy(self.default)

    @property
    def file_example(self) -> str:
        """The example as a config file line's right-hand side (a Python literal)."""
        text = self.example
        if text in ("True", "False") or text[:1] in "'[{" or re.fullmatch(r"[0-9.]+", text):
            return text
        return repr(text)

    @property
    def flag(self) -> str:
        """The flag shown in messages: the first long one."""
        longs = [f for f in self.flags if f.startswith("--")]
        return (longs or list(self.flags) or [self.name])[0]


def _copy(value: Any) -> Any:
    """A default the caller may change without changing the table's."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


GIB = 1024**3
GUNICORN_ACCESS_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
DEFAULT_SECURE_SCHEME_HEADERS = {
    "X-FORWARDED-PROTOCOL": "ssl",
    "X-FORWARDED-PROTO": "https",
    "X-FORWARDED-SSL": "on",
}

S = Setting
SETTINGS: tuple[Setting, ...] = (
    # -- where and how many
    S("wsgi_app", (), optional_string, None, "The WSGI application, 'module:attr', 'module' "
      "(uses `application`, then `app`) or 'module:factory(literal args)'. Usually given as the "
      "command's argument: `pronghorn myproject.wsgi:application`.", "'myproject.wsgi:application'",
      section="Application"),
    S("bind", ("-b", "--bind"), bind_list, ["127.0.0.1:8000"], "Address to listen on, repeatable: "
      "HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N (an inherited socket). HOST alone means port 8000. "
      "When PORT is set in the environment the default is 0.0.0.0:$PORT (as gunicorn).",
      "127.0.0.1:8000", kind="append", env="PORT", env_to_value=lambda port: ["0.0.0.0:" + port],
      metavar="ADDRESS"),
    S("backlog", ("--backlog",), positive_int, 2048, "Listen queue length (connections waiting to be "
      "accepted).", "2048", metavar="INT"),
    S("reuse_port", ("--reuse-port",), boolean, False, "Set SO_REUSEPORT on the listening sockets.",
      "True", kind="true"),
    S("workers", ("-w", "--workers"), positive_int, 1, "Number of worker processes. Default: "
      "$WEB_CONCURRENCY, else 1. A common choice is the number of CPU cores.", "4",
      env="WEB_CONCURRENCY", metavar="INT", section="Workers"),
    S("worker_class", ("-k", "--worker-class"), worker_class, "sync", "Accepted for gunicorn "
      "compatibility: 'sync' and 'gthread' (both mean pronghorn's worker; use --threads for a thread "
      "pool). Anything else is refused.", "sync", metavar="CLASS", section="Workers"),
    S("threads", ("--threads",), positive_int, 1, "Threads per worker running the app. 1 runs the app "
      "in the worker's event-loop thread (fastest); N>1 runs it in a pool of N threads so an app that "
      "blocks does not stop the worker reading other connections.", "4", metavar="INT",
      section="Workers"),
    S("worker_connections", ("--worker-connections",), positive_int, 1000, "Most open client "
      "connections per worker (gunicorn's name and default). A worker that holds this many stops "
      "accepting; the rest wait in the listen backlog (or go to other workers) until it is below "
      "90% again.", "1000", metavar="INT", section="Workers"),
    S("max_requests", ("--max-requests",), non_negative_int, 0, "Restart a worker after it served "
      "this many requests (0 = never). Limits the damage of a memory leak.", "1000", metavar="INT",
      section="Workers"),
    S("max_requests_jitter", ("--max-requests-jitter",), non_negative_int, 0, "Add a random 0..N to "
      "--max-requests per worker so workers do not all restart at once.", "50", metavar="INT",
      section="Workers"),
    S("max_worker_memory", ("--max-worker-memory",), non_negative_int, 0, "Restart a worker (after "
      "its current requests) when its resident memory exceeds this many MiB (0 = never).", "512",
      metavar="MIB", section="Workers"),
    S("timeout", ("-t", "--timeout"), seconds, 30, "A worker silent for this many seconds is killed "
      "and replaced (0 = never). With --threads 1 an app call that takes longer counts as silent.",
      "30", metavar="SECONDS", section="Workers"),
    S("graceful_timeout", ("--graceful-timeout",), seconds, 30, "On TERM or reload, workers get this "
      "long to finish in-flight requests before they are killed.", "30", metavar="SECONDS",
      section="Workers"),
    S("preload_app", ("--preload",), boolean, False, "Import the app in the master before forking "
      "(saves memory, faster start; code changes then need a full restart, not HUP).", "True",
      kind="true", section="Workers"),
    # -- HTTP
    S("keepalive", ("--keep-alive",), seconds, 5, "Seconds an idle keep-alive connection is kept "
      "open (0 = close after each response). gunicorn's default is 2 because there an idle "
      "connection holds a whole sync worker; in pronghorn it is a few bytes in the event loop, so "
      "the default is 5 (as uvicorn) to let browsers and proxies reuse connections across bursts.",
      "5", metavar="SECONDS", section="HTTP"),
    S("header_timeout", ("--header-timeout",), seconds, 10, "The whole request head (request line "
      "and headers) must arrive within this many seconds of its first byte, else 408 and close "
      "(stops slowloris).", "10", metavar="SECONDS", section="HTTP"),
    S("body_timeout", ("--body-timeout",), seconds, 30, "A request body that makes no progress for "
      "this many seconds is answered 408 and the connection closed.", "30", metavar="SECONDS",
      section="HTTP"),
    S("send_timeout", ("--send-timeout",), optional_seconds, None, "A client that reads nothing of "
      "its responses for this many seconds (its send buffer stays full) is disconnected, so a client "
      "that stops reading holds neither a connection nor memory for long. Meanwhile the worker stops "
      "reading its requests. Default: --body-timeout. gunicorn has no such setting (its sync worker "
      "blocks in the send until --timeout kills it).", "30", metavar="SECONDS", section="HTTP"),
    S("limit_request_line", ("--limit-request-line",), int_range(0, 8190), 4094, "Longest request "
      "line in bytes, 0..8190 (0 = the maximum, 8190). Longer: 414.", "4094", metavar="BYTES",
      section="HTTP"),
    S("limit_request_fields", ("--limit-request-fields",), int_range(0, 32768), 100, "Most header "
      "fields in a request, 0..32768 (0 = the maximum). More: 431.", "100", metavar="INT",
      section="HTTP"),
    S("limit_request_field_size", ("--limit-request-field_size", "--limit-request-field-size"),
      int_range(0, 8190 * 4), 8190, "Largest header field line in bytes, counting its CRLF as gunicorn "
      "does (so a line of up to BYTES-2 characters passes; 0 = the default, 8190). Larger: 431. Both gunicorn's `--limit-request-field_size` and "
      "`--limit-request-field-size` are accepted.", "8190", metavar="BYTES", section="HTTP"),
    S("limit_request_body", ("--limit-request-body",), non_negative_int, GIB, "Largest request body "
      "in bytes (0 = no limit). Larger: 413. gunicorn has no limit; pronghorn spools big bodies to "
      "a temp file, so the default of 1 GiB keeps one client from filling the disk while never "
      "breaking a real upload. Put a tighter limit in nginx's client_max_body_size too.",
      str(GIB), metavar="BYTES", section="HTTP"),
    S("forwarded_allow_ips", ("--forwarded-allow-ips",), allowed_ips, ["127.0.0.1", "::1"],
      "Comma-separated addresses or networks whose proxy headers (secure_scheme_headers, "
      "forwarder_headers) are trusted; '*' trusts every peer. Default: $FORWARDED_ALLOW_IPS, else "
      "127.0.0.1,::1. From any other peer those headers change nothing. Unix-socket peers are "
      "trusted, as gunicorn (only local processes can connect; the socket's permissions decide "
      "which), unless this is empty: pronghorn's way to trust no one.", "127.0.0.1,::1",
      env="FORWARDED_ALLOW_IPS", metavar="IPS", section="HTTP"),
    S("secure_scheme_headers", (), header_map, DEFAULT_SECURE_SCHEME_HEADERS, "Config file only: "
      "headers from a trusted proxy that mean the request came over HTTPS, header -> value (the "
      "value compared exactly, as gunicorn). The first one present sets wsgi.url_scheme (https "
      "when its value matches, else http); another that says otherwise is a 400, as gunicorn "
      "(e.g. `X-Forwarded-Proto: http` with `X-Forwarded-Ssl: on`: a client header the proxy let "
      "through). Name only the header your proxy sets, and have it overwrite the client's.",
      "{'X-FORWARDED-PROTO': 'https'}", section="HTTP"),
    S("forwarder_headers", ("--forwarder-headers",), header_names, ["SCRIPT_NAME", "PATH_INFO"],
      "Comma-separated headers a trusted proxy (--forwarded-allow-ips) sets that go into the "
      "environ. As gunicorn: a name with `_` (SCRIPT_NAME, REMOTE_USER), dropped from everyone "
      "else, is passed to the app (SCRIPT_NAME sets SCRIPT_NAME and is taken off PATH_INFO). "
      "Beyond gunicorn: X-Forwarded-For or X-Real-IP here sets REMOTE_ADDR (so the app and the "
      "access log see the client): the first listed that is present counts; in X-Forwarded-For "
      "the client is the right-most address that is not a trusted proxy. Default: gunicorn's.",
      "X-FORWARDED-FOR", metavar="HEADERS", section="HTTP"),
    S("proxy_protocol", ("--proxy-protocol",), proxy_protocol_mode, "off", "PROXY protocol (for "
      "HAProxy or a cloud TCP balancer): off, v1 (text), v2 (binary) or auto (either; a bare "
      "`--proxy-protocol` means auto). A connection from --proxy-allow-from may open with a PROXY "
      "header, whose client address becomes REMOTE_ADDR; one without it is served as plain HTTP, "
      "as gunicorn.", "auto", kind="optional", metavar="MODE", section="HTTP"),
    S("proxy_allow_ips", ("--proxy-allow-from",), allowed_ips, ["127.0.0.1", "::1"],
      "Comma-separated addresses or networks allowed to send a PROXY header; '*' for all. Unix-"
      "socket peers are allowed, as gunicorn.", "10.0.0.0/8", metavar="IPS", section="HTTP"),
    S("sendfile", ("--no-sendfile",), boolean, True, "`--no-sendfile` turns off sendfile() for "
      "wsgi.file_wrapper responses (useful on some network file systems).", "False", kind="false",
      section="HTTP"),
    # -- process
    S("chdir", ("--chdir",), existing_dir, None, "Change to this directory before loading the app "
      "(and put it on sys.path). Re-entered by every new worker, so a `current -> releases/N` "
      "symlink is followed on reload.", "/srv/app/current", metavar="DIR", section="Process"),
    S("pythonpath", ("--pythonpath",), comma_list, [], "Comma-separated directories put at the "
      "front of sys.path (before --chdir) when loading the app.", "/srv/app/current/src",
      metavar="DIRS", section="Process"),
    S("raw_env", ("-e", "--env"), raw_env_list, [], "Set an environment variable KEY=VALUE in the "
      "server (repeatable).", "DJANGO_SETTINGS_MODULE=mysite.settings", kind="append",
      metavar="KEY=VALUE", section="Process"),
    S("user", ("-u", "--user"), user_id, os.geteuid, "Run workers as this user (name or uid; the master "
      "must be root to switch). Default: the current user.", "www-data", metavar="USER",
      section="Process"),
    S("group", ("-g", "--group"), group_id, os.getegid, "Run workers as this group (name or gid). "
      "Default: the current group.", "www-data", metavar="GROUP", section="Process"),
    S("umask", ("-m", "--umask"), umask, None, "umask of the server and its workers (octal, e.g. "
      "022). Default: unset, the umask pronghorn was started with is kept (systemd's UMask=, the "
      "shell's umask), so files the app creates get the modes the service was given. gunicorn "
      "always applies its own setting, default 0 (files 0666, directories 0777): give `--umask 0` "
      "to have that. A unix socket from `-b unix:PATH` gets mode 0777 minus --umask (0777 when "
      "unset, as gunicorn's default) whatever the inherited umask: the directory it sits in decides "
      "who may connect.", "022", metavar="INT", section="Process"),
    S("pidfile", ("-p", "--pid"), optional_string, None, "Write the master's PID to this file.",
      "/run/app/pronghorn.pid", metavar="FILE", section="Process"),
    S("stats_file", ("--stats-file",), optional_string, None, "Every few seconds the master "
      "writes the workers' stats here as JSON (atomically: a temp file renamed over it): per "
      "worker pid, age, requests served, connections open, RSS and last heartbeat age; the "
      "master's pid, start time and workers wanted. A directory means DIR/pronghorn-stats.json. "
      "Removed when the server stops.", "/run/app/stats.json", metavar="PATH", section="Process"),
    S("control_socket", ("--control-socket",), optional_string, None, "A unix socket where the "
      "master takes `pronghorn ctl --socket PATH COMMAND` (gunicornc's commands: show workers, "
      "show stats, worker add, reload, shutdown, ...). Mode 0600, owned by the server's user. "
      "Default: none (gunicorn 25+ opens one by default under $XDG_RUNTIME_DIR or ~/.gunicorn; "
      "pronghorn only where asked, e.g. in the service's run directory).", "/run/app/pronghorn.ctl",
      metavar="PATH", section="Process"),
    S("control_socket_mode", ("--control-socket-mode",), socket_mode, 0o600, "File mode of the "
      "control socket: octal with a leading 0, as gunicorn reads it.", "0600", metavar="MODE",
      section="Process"),
    S("control_socket_disable", ("--no-control-socket",), boolean, False, "No control socket, "
      "even when --control-socket is set (gunicorn's switch).", "True", kind="true",
      section="Process"),
    S("metrics_bind", ("--metrics-bind",), metrics_address, None, "Serve Prometheus metrics at "
      "http://HOST:PORT/metrics from the master: requests by status class, a latency histogram, "
      "requests in flight, open connections, worker restarts by cause, the listen backlog. "
      "Default: off. Bind it to a private address (it has no authentication).", "127.0.0.1:9100",
      metavar="HOST:PORT", section="Process"),
    S("request_timeout", ("--request-timeout",), seconds, 0, "With --threads above 1: a request "
      "still running after this many seconds gets its worker replaced gracefully (a new worker "
      "starts, the old one finishes its other requests within --graceful-timeout), logged with the "
      "request line. 0 = off. With --threads 1 the app blocks the worker's heartbeat, so --timeout "
      "already covers it.", "60", metavar="SECONDS", section="Workers"),
    S("worker_tmp_dir", ("--worker-tmp-dir",), existing_dir, None, "Directory for the workers' "
      "heartbeat files (default: the system temp dir; /dev/shm avoids disk writes).", "/dev/shm",
      metavar="DIR", section="Process"),
    S("proc_name", ("-n", "--name"), optional_string, None, "Process title prefix shown by ps "
      "(default: the app).", "myapp", metavar="NAME", section="Process"),
    S("reload", ("--reload",), boolean, False, "Development: restart workers when a loaded Python "
      "file (or a --reload-extra-file) changes. Follows a `current` symlink switch.", "True",
      kind="true", section="Process"),
    S("reload_extra_files", ("--reload-extra-file",), string_list, [], "Extra file to watch with "
      "--reload (repeatable), e.g. templates or settings.", "templates/base.html", kind="append",
      metavar="FILE", section="Process"),
    # -- logging
    S("accesslog", ("--access-logfile",), log_file, None, "Access log file; '-' = stdout. "
      "Default: no access log.", "-", metavar="FILE", section="Logging"),
    S("access_log_format", ("--access-logformat",), access_format, GUNICORN_ACCESS_FORMAT, "Access log "
      "line format with gunicorn's atoms (h l u t r m U q H s B b f a T D M L p {header}i "
      "{header}o {var}e), or 'json' for one JSON object per line.", "json", metavar="FORMAT",
      section="Logging"),
    S("errorlog", ("--error-logfile", "--log-file"), log_file, "-", "Error log file; '-' = stderr.",
      "/var/log/app/error.log", metavar="FILE", section="Logging"),
    S("loglevel", ("--log-level",), loglevel, "info", "Error log level: debug, info, warning, "
      "error, critical.", "info", metavar="LEVEL", section="Logging"),
    S("capture_output", ("--capture-output",), boolean, False, "Send the app's stdout and stderr "
      "to the error log file (when it is a file).", "True", kind="true", section="Logging"),
    # -- gunicorn's other logging: stdlib logging config, syslog, statsd
    S("logconfig", ("--log-config",), existing_file, None, "A logging config file in the ini format "
      "of logging.config.fileConfig. As gunicorn, its loggers `gunicorn.error` and `gunicorn.access` "
      "get the error log and the access lines (an existing gunicorn file works unchanged).",
      "/etc/app/logging.ini", metavar="FILE", section="Logging"),
    S("logconfig_dict", (), a_dict, {}, "Config file only: a dict for logging.config.dictConfig "
      "(same loggers as --log-config).", "{'version': 1}", section="Logging"),
    S("logconfig_json", ("--log-config-json",), existing_file, None, "A JSON file holding a "
      "logging.config.dictConfig dict (same loggers as --log-config).", "/etc/app/logging.json",
      metavar="FILE", section="Logging"),
    S("syslog", ("--log-syslog",), boolean, False, "Also send the error log (and the access log, "
      "unless --disable-redirect-access-to-syslog) to syslog at --log-syslog-to.", "True",
      kind="true", section="Logging"),
    S("syslog_addr", ("--log-syslog-to",), syslog_address, "udp://localhost:514", "Syslog address: "
      "udp://HOST:PORT, tcp://HOST:PORT or unix://PATH[#dgram|#stream].", "unix:///dev/log#dgram",
      metavar="ADDRESS", section="Logging"),
    S("syslog_prefix", ("--log-syslog-prefix",), optional_string, None, "Program name in syslog "
      "lines (default: the process name).", "myapp", metavar="NAME", section="Logging"),
    S("syslog_facility", ("--log-syslog-facility",), syslog_facility, "user", "Syslog facility "
      "name.", "daemon", metavar="FACILITY", section="Logging"),
    S("disable_redirect_access_to_syslog", ("--disable-redirect-access-to-syslog",), boolean, False,
      "With --log-syslog, keep access lines out of syslog.", "True", kind="true", section="Logging"),
    S("enable_stdio_inheritance", ("-R", "--enable-stdio-inheritance"), boolean, False, "With "
      "--daemon, keep stdout and stderr (else they go to /dev/null, as gunicorn). Without "
      "--daemon they are always inherited.", "True", kind="true", section="Logging"),
    S("logger_class", ("--logger-class",), string, "gunicorn.glogging.Logger", "Accepted for "
      "gunicorn compatibility; another class has no effect (a warning says so): pronghorn has its "
      "own logger, configure it with --log-config.", "gunicorn.glogging.Logger", metavar="CLASS",
      section="Logging"),
    S("statsd_host", ("--statsd-host",), statsd_address, None, "Send metrics over UDP to this "
      "statsd, HOST:PORT (or unix:PATH), named as gunicorn's: per request `gunicorn.requests`, "
      "`gunicorn.request.duration` (ms) and `gunicorn.request.status.200` (plus the class, "
      "`gunicorn.request.status.2xx`); `gunicorn.log.error`... per error line; the master's "
      "`gunicorn.workers` gauge. Batched once per event-loop pass; nothing is done for them when "
      "unset.", "127.0.0.1:8125", metavar="ADDRESS", section="Logging"),
    S("statsd_prefix", ("--statsd-prefix",), string, "", "Prefix of every statsd metric name "
      "(a '.' is added).", "myapp", metavar="PREFIX", section="Logging"),
    S("dogstatsd_tags", ("--dogstatsd-tags",), string, "", "Comma-separated dogstatsd tags added "
      "to every metric, e.g. env:prod,app:shop.", "env:prod", metavar="TAGS", section="Logging"),
    S("enable_backlog_metric", ("--enable-backlog-metric",), boolean, False, "With --statsd-host, "
      "the master also sends `gunicorn.backlog` (a histogram: connections waiting in the TCP "
      "listeners' accept queues, Linux), as gunicorn.", "True", kind="true", section="Logging"),
    # -- TLS (on the worker's event loop)
    S("certfile", ("--certfile",), existing_file, None, "Serve HTTPS: the certificate chain (PEM). "
      "Needs --keyfile. sendfile is off under TLS (the kernel cannot encrypt).", "/etc/app/cert.pem",
      metavar="FILE", section="TLS"),
    S("keyfile", ("--keyfile",), existing_file, None, "The private key (PEM) of --certfile.",
      "/etc/app/key.pem", metavar="FILE", section="TLS"),
    S("ca_certs", ("--ca-certs",), existing_file, None, "CA certificates (PEM) to verify client "
      "certificates with (see --cert-reqs).", "/etc/app/ca.pem", metavar="FILE", section="TLS"),
    S("cert_reqs", ("--cert-reqs",), cert_reqs, 0, "Client certificates: 0 not asked, 1 optional, "
      "2 required (verified with --ca-certs).", "2", metavar="INT", section="TLS"),
    S("ssl_version", ("--ssl-version",), ssl_version, 2, "gunicorn's protocol choice: TLS / "
      "TLS_SERVER (2, the default) negotiates the best version; TLSv1_2 sets TLS 1.2 as the "
      "minimum. TLS 1.0 and 1.1 are refused when the handshake starts if OpenSSL disabled them.",
      "TLS_SERVER", metavar="VERSION", section="TLS"),
    S("ciphers", ("--ciphers",), ciphers, None, "OpenSSL cipher list (default: Python's).",
      "ECDHE+AESGCM", metavar="CIPHERS", section="TLS"),
    S("suppress_ragged_eofs", ("--suppress-ragged-eofs",), boolean, True, "Accepted for gunicorn "
      "compatibility: a client closing without TLS close_notify is treated as a close.", "True",
      kind="true", section="TLS"),
    S("do_handshake_on_connect", ("--do-handshake-on-connect",), boolean, False, "Accepted for "
      "gunicorn compatibility: the event loop always does the handshake as the connection opens.",
      "True", kind="true", section="TLS"),
    # -- gunicorn's mount point, header and parsing switches
    S("root_path", ("--root-path",), root_path, "", "The app's mount point behind a proxy, e.g. "
      "/api: SCRIPT_NAME of every request, taken off the front of PATH_INFO when there (as the "
      "SCRIPT_NAME environment variable, which it overrides).", "/api", metavar="PATH",
      section="HTTP"),
    S("header_map", ("--header-map",), choice("drop", "refuse", "dangerous"), "drop", "Request "
      "headers whose name has '_' (X_Forwarded_For would land on the same environ key as "
      "X-Forwarded-For): drop them (default), refuse the request with 400, or (dangerous) pass them "
      "as HTTP_X_FORWARDED_FOR... Trusted --forwarder-headers are passed either way.", "refuse",
      metavar="MODE", section="HTTP"),
    S("permit_obsolete_folding", ("--permit-obsolete-folding",), boolean, False, "Accepted for "
      "gunicorn compatibility; has no effect (a warning says so): folded header lines stay a 400, "
      "as RFC 9112 §5.2 allows, because proxies disagree on them (request smuggling).", "True",
      kind="true", section="HTTP"),
    S("strip_header_spaces", ("--strip-header-spaces",), boolean, False, "Accepted for gunicorn "
      "compatibility; has no effect (a warning says so): a space before a header's colon stays a "
      "400 (RFC 9112 §5.1: smuggling).", "True", kind="true", section="HTTP"),
    S("permit_unconventional_http_method", ("--permit-unconventional-http-method",), boolean,
      False, "Accepted for gunicorn compatibility; any RFC 9110 token is already a method here "
      "(a warning says the switch changes nothing).", "True", kind="true", section="HTTP"),
    S("permit_unconventional_http_version", ("--permit-unconventional-http-version",), boolean,
      False, "Accepted for gunicorn compatibility; has no effect (a warning says so): only "
      "HTTP/1.0 and HTTP/1.1 are served.", "True", kind="true", section="HTTP"),
    S("casefold_http_method", ("--casefold-http-method",), boolean, False, "Accepted for gunicorn "
      "compatibility; has no effect (a warning says so): methods are case-sensitive (RFC 9110 "
      "§9.1), a lower-case one is passed on as sent.", "True", kind="true", section="HTTP"),
    S("protocol", ("--protocol",), wire_protocol, "http", "gunicorn's wire protocol: http only "
      "(uwsgi is refused).", "http", metavar="PROTOCOL", section="HTTP"),
    S("uwsgi_allow_ips", ("--uwsgi-allow-from",), allowed_ips, ["127.0.0.1", "::1"], "Accepted "
      "for gunicorn compatibility; no effect (a warning says so): there is no uwsgi protocol here.",
      "127.0.0.1", metavar="IPS", section="HTTP"),
    S("http_parser", ("--http-parser",), choice("auto", "fast", "python"), "auto", "Accepted for "
      "gunicorn compatibility; no effect (a warning says so): pronghorn has one parser.", "auto",
      metavar="PARSER", section="HTTP"),
    # -- gunicorn's other process settings
    S("paste", ("--paste", "--paster"), optional_string, None, "A PasteDeploy ini file (config:FILE "
      "or FILE[#name]) to load the app from instead of MODULE:APP; needs the PasteDeploy package.",
      "production.ini", metavar="FILE", section="Process"),
    S("raw_paste_global_conf", ("--paste-global",), raw_env_list, [], "KEY=VALUE given to the "
      "paste app as a global_conf value (repeatable).", "FOO=1", kind="append",
      metavar="KEY=VALUE", section="Process"),
    S("daemon", ("-D", "--daemon"), boolean, False, "Detach from the terminal (two forks, a new "
      "session, stdio to /dev/null): the command returns and the server runs on; use --pid to find "
      "it. Not under systemd (Type=notify and socket activation need the process it started).",
      "True", kind="true", section="Process"),
    S("initgroups", ("--initgroups",), boolean, False, "Accepted for gunicorn compatibility: with "
      "--user, workers always get the user's supplementary groups (initgroups), as this asks.",
      "True", kind="true", section="Process"),
    S("tmp_upload_dir", (), existing_dir, None, "Config file only. Accepted for gunicorn "
      "compatibility; no effect (a warning says so): request bodies spool to the system temp dir "
      "($TMPDIR).", "/var/tmp", section="Process"),
    S("default_proc_name", (), string, "gunicorn", "Config file only; accepted for gunicorn "
      "compatibility (--name sets the title).", "myapp", section="Process"),
    S("reload_engine", ("--reload-engine",), choice("auto", "poll", "inotify"), "auto", "Accepted "
      "for gunicorn compatibility; no effect (a warning says so): --reload has one engine.",
      "auto", metavar="ENGINE", section="Process"),
    S("spew", ("--spew",), boolean, False, "Accepted for gunicorn compatibility; no effect (a "
      "warning says so): trace with `python -X importtime` or a debugger instead.", "True",
      kind="true", section="Process"),
    # -- actions
    S("check_config", ("--check-config",), boolean, False, "Check the configuration and import the "
      "app, print 'config ok' or the error, exit 0 or 1. Warnings the server would log at start "
      "(a gunicorn setting with no effect here, and why) are printed too.", "True", kind="true", section="Actions"),
    S("print_config", ("--print-config",), boolean, False, "Print every setting and its value, "
      "sorted, then exit.", "True", kind="true", section="Actions"),
)
del S

SETTINGS_BY_NAME: dict[str, Setting] = {s.name: s for s in SETTINGS}


# --------------------------------------------------------------------------------------------
# Server hooks: gunicorn's names and signatures. A config file function of that name replaces
# the default no-op; the number of parameters is checked when the file is loaded.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Hook:
    name: str
    params: tuple[str, ...]
    help: str

    @property
    def signature(self) -> str:
        return f"{self.name}({', '.join(self.params)})"


HOOKS: tuple[Hook, ...] = (
    Hook("on_starting", ("server",), "In the master, before the sockets are bound."),
    Hook("on_reload", ("server",), "In the master, on HUP, before new workers start."),
    Hook("when_ready", ("server",), "In the master, once the sockets listen and workers are being started."),
    Hook("pre_fork", ("server", "worker"), "In the master, just before a worker is forked."),
    Hook("post_fork", ("server", "worker"), "In the new worker, just after the fork."),
    Hook("post_worker_init", ("worker",), "In the worker, after the app is loaded."),
    Hook("worker_int", ("worker",), "In the worker, on INT or QUIT."),
    Hook("worker_abort", ("worker",), "In the worker, on ABRT (the master killed it for --timeout)."),
    Hook("pre_exec", ("server",), "In the master, before re-executing itself on USR2."),
    Hook("pre_request", ("worker", "req"), "In the worker, before the app is called for a request."),
    Hook("post_request", ("worker", "req", "environ", "resp"), "In the worker, after the response is sent."),
    Hook("child_exit", ("server", "worker"), "In the master, after a worker exited."),
    Hook("worker_exit", ("server", "worker"), "In the worker, just before it exits."),
    Hook("nworkers_changed", ("server", "new_value", "old_value"), "In the master, when the number of workers changes (TTIN/TTOU)."),
    Hook("on_exit", ("server",), "In the master, just before pronghorn exits."),
    Hook("ssl_context", ("config", "default_ssl_context_factory"), "In the master before each "
         "worker is forked, with TLS on: "
         "return the ssl.SSLContext to serve with; call default_ssl_context_factory() for the one "
         "the TLS settings make."),
)
HOOKS_BY_NAME: dict[str, Hook] = {h.name: h for h in HOOKS}


def _noop(*args: Any) -> None:
    """The default for every hook: does nothing."""


def check_hook(hook: Hook, func: Any) -> Callable:
    """Return func if it can be called with the hook's arguments, else raise ValueError."""
    if not callable(func):
        raise ValueError(f"{_show(func)} is not a function (expected def {hook.signature}: ...)")
    try:
        signature = inspect.signature(func)
    except (TypeError, ValueError):
        return func  # a builtin without a signature: trust it
    try:
        signature.bind(*hook.params)
    except TypeError:
        count = len(signature.parameters)
        plural = "" if count == 1 else "s"
        raise ValueError(
            f"takes {count} parameter{plural}, expected def {hook.signature}: ..."
        ) from None
    return func


# gunicorn settings pronghorn does not implement, and why: given on the command line or in a
# config file, they stop the start with this message rather than being silently ignored.
REFUSED: dict[str, tuple[tuple[str, ...], int, str]] = {
    # name: (flags, nargs, why)
}

# gunicorn settings accepted for compatibility that change nothing here: a value other than the
# default gets one warning line at start (never a silent ignore), saying why.
NO_EFFECT: dict[str, str] = {
    "logger_class": "pronghorn has its own logger (configure it with --log-config)",
    "permit_obsolete_folding": "folded header lines stay a 400 (request smuggling, RFC 9112 5.2)",
    "strip_header_spaces": "a space before a header's colon stays a 400 (request smuggling, RFC 9112 5.1)",
    "permit_unconventional_http_method": "any RFC 9110 token is already accepted as a method",
    "permit_unconventional_http_version": "only HTTP/1.0 and HTTP/1.1 are served",
    "casefold_http_method": "methods are case-sensitive (RFC 9110 9.1) and passed on as sent",
    "uwsgi_allow_ips": "pronghorn speaks HTTP only, there is no uwsgi protocol",
    "http_parser": "pronghorn has one HTTP parser",
    "tmp_upload_dir": "request bodies spool to the system temp dir ($TMPDIR)",
    "reload_engine": "--reload has one engine",
    "spew": "use `python -X importtime` or a debugger to trace",
}


def no_effect_warnings(cfg: Any) -> list[str]:
    """One line per NO_EFFECT setting given a non-default value, for the error log at start."""
    lines = []
    for name, why in NO_EFFECT.items():
        default = SETTINGS_BY_NAME[name].default_value()
        if getattr(cfg, name, default) != default:
            lines.append(f"{name} has no effect in pronghorn: {why}")
    return lines
