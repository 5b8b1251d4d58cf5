#!/usr/bin/env python3
"""The pg8000 client of the live conformance kit.

pg8000 implements the PostgreSQL protocol in pure Python and has no sslmode: its TLS setting
is one argument, `ssl_context`:

- `False`: never TLS;
- `None` (the default): ask the server for TLS and, when it agrees, wrap the socket in a
  context that verifies nothing; when the server declines, go on in plain text;
- `True` or an `ssl.SSLContext`: TLS is required ("Server refuses SSL" otherwise), with that
  context's verification (`True` verifies nothing).

A failed handshake is never retried in plain text, and pg8000 reads nothing from
`~/.postgresql/`. This client maps each case's libpq parameters the way a pg8000 user
translating a libpq connection string would, without imitating libpq's fallbacks:

| sslmode            | ssl_context                                                        |
|--------------------|--------------------------------------------------------------------|
| disable            | False                                                              |
| allow, prefer      | None, pg8000's own opportunistic TLS (no verification); a root     |
| (or no sslmode)    | certificate cannot be used here, since any context makes TLS       |
|                    | mandatory in pg8000                                                |
| require            | an SSLContext that verifies nothing (check_hostname False,         |
|                    | CERT_NONE), or, when sslrootcert is given, one that verifies the   |
|                    | chain against it without checking the host name (libpq documents   |
|                    | require + a root certificate as verify-ca)                         |
| verify-ca          | an SSLContext verifying the chain against sslrootcert (the system  |
|                    | trust store when there is none), host name not checked             |
| verify-full        | ssl.create_default_context(cafile=sslrootcert) (the system trust   |
|                    | store when there is none): chain and host name                     |

The request's `home` is ignored: pg8000 has no default root certificate file. sslcert/sslkey,
when given, are loaded into the context. The other parameters: host, port, user, password,
dbname -> database, application_name, connect_timeout -> pg8000's `timeout` (a socket timeout,
capped a little below the request's timeout_s). `hostaddr` has no pg8000 equivalent: the client
makes the host name resolve to that address inside this process only, as an /etc/hosts entry
would, so pg8000 dials 127.0.0.1 and still checks the certificate against (and sends SNI for)
the host name, which is what host + hostaddr mean to libpq.

The driver is imported from target/clients/pg8000/site (install.sh puts it there).
Standard output carries the replies only, one JSON line per request; diagnostics go to
standard error.
"""

import json
import socket
import ssl
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parents[3] / "target/clients/pg8000/site"
if SITE.is_dir():
    sys.path.insert(0, str(SITE))

# Replies go to the real standard output; anything else that would print goes to stderr.
REPLIES = sys.stdout
sys.stdout = sys.stderr

try:
    import pg8000.native
except ImportError as e:
    print(
        f"pg8000 client: cannot import the driver ({e}); "
        "run conformance/clients/pg8000/install.sh first",
        file=sys.stderr,
    )
    sys.exit(1)

QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

# host name -> address, for the case being run (see `hostaddr` above).
HOSTS = {}
_system_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host in HOSTS:
        host = HOSTS[host]
    return _system_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


class ConfigError(Exception):
    """The parameters have no pg8000 mapping."""


def log(text):
    print(f"pg8000 client: {text}", file=sys.stderr, flush=True)


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def describe(exc, password):
    arg = exc.args[0] if exc.args else None
    if isinstance(arg, dict) and "M" in arg:
        # A server error: pg8000 carries the ErrorResponse fields as a dict.
        text = f"{arg.get('S', 'ERROR')}: {arg['M']}"
    else:
        text = first_line(str(exc)) or repr(exc)
    # pg8000 wraps socket and TLS errors; the cause says what really happened.
    cause = exc.__cause__ or exc.__context__
    if cause is not None:
        text = f"{text} ({type(cause).__name__}: {first_line(str(cause)) or repr(cause)})"
    if password:
        text = text.replace(password, "***")
    return f"{type(exc).__name__}: {text}"


def time_limit(req):
    """Seconds a case may take: a little below the harness's own wait."""
    try:
        timeout_s = float(req.get("timeout_s") or 20)
    except (TypeError, ValueError):
        timeout_s = 20.0
    return max(1.0, timeout_s - 2.0)


def ssl_context(params):
    """pg8000's `ssl_context` for the case (see the table above)."""
    mode = params.get("sslmode", "prefer")
    rootcert = params.get("sslrootcert") or None
    if mode == "disable":
        return False
    if mode in ("allow", "prefer"):
        return None
    if mode == "require":
        ctx = ssl.create_default_context(cafile=rootcert) if rootcert else ssl.SSLContext(
            ssl.PROTOCOL_TLS_CLIENT
        )
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED if rootcert else ssl.CERT_NONE
    elif mode == "verify-ca":
        ctx = ssl.create_default_context(cafile=rootcert)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_REQUIRED
    elif mode == "verify-full":
        ctx = ssl.create_default_context(cafile=rootcert)
    else:
        raise ConfigError(f"invalid sslmode value: {mode!r}")
    if params.get("sslcert"):
        ctx.load_cert_chain(params["sslcert"], keyfile=params.get("sslkey") or None)
    return ctx


def run_case(req):
    params = {k: str(v) for k, v in (req.get("params") or {}).items() if v is not None}
    password = params.get("password")
    HOSTS.clear()
    if params.get("host") and params.get("hostaddr"):
        HOSTS[params["host"]] = params["hostaddr"]
    timeout = time_limit(req) - 1.0
    if params.get("connect_timeout"):
        try:
            timeout = min(timeout, max(1.0, float(params["connect_timeout"])))
        except ValueError:
            pass
    conn = None
    try:
        conn = pg8000.native.Connection(
            params.get("user", "postgres"),
            host=params.get("host", "localhost"),
            port=int(params.get("port", "5432")),
            database=params.get("dbname"),
            password=password,
            ssl_context=ssl_context(params),
            timeout=timeout,
            application_name=params.get("application_name"),
        )
        rows = conn.run(QUERY)
    except Exception as e:
        return "fail", describe(e, password)
    finally:
        HOSTS.clear()
        if conn is not None:
            try:
                conn.close()
            except Exception as e:
                log(f"closing the connection failed: {describe(e, password)}")
    if not rows:
        return "fail", "connected, but pg_stat_ssl has no row for this session"
    return ("tls" if rows[0][0] else "plain"), None


def reply(req_id, outcome, message):
    REPLIES.write(json.dumps({"id": req_id, "outcome": outcome, "message": message}) + "\n")
    REPLIES.flush()


def main():
    log(f"pg8000 {getattr(pg8000, '__version__', '?')}")
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("the request is not a JSON object")
        except ValueError as e:
            log(f"unreadable request: {e}")
            reply(None, "fail", f"unreadable request: {e}")
            continue
        try:
            outcome, message = run_case(req)
        except Exception as e:  # never let one case end the client
            outcome, message = "fail", f"{type(e).__name__}: {first_line(str(e))}"
        reply(req.get("id"), outcome, message)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
