#!/usr/bin/env python3
"""The asyncpg client of the live conformance kit.

asyncpg implements the PostgreSQL protocol itself (no libpq) and takes a libpq-style
`postgresql://` URI. For each request line (see ../PROTOCOL.md) this client passes the
request's URI as asyncpg's `dsn`, so asyncpg applies its own reading of sslmode, sslrootcert
and the other TLS parameters, with these adjustments for what asyncpg does not have:

- `hostaddr`: asyncpg has no such parameter (it would send it to the server as a run-time
  setting, which the server refuses). The client drops it from the URI and makes the host
  name resolve to that address inside this process only, as an /etc/hosts entry would: asyncpg
  then dials 127.0.0.1 and still checks the server certificate against the host name and sends
  it as SNI, which is what `host` + `hostaddr` mean to libpq.
- `connect_timeout`: asyncpg would likewise send it to the server; the client drops it from the
  URI and passes it as asyncpg's own `timeout=` argument (capped a little below the request's
  timeout_s).
- `application_name` stays in the URI (asyncpg sends unknown URI parameters to the server as
  settings) and is also passed in `server_settings`, so the server logs it.

asyncpg reads `~/.postgresql/root.crt` (and postgresql.crt/.key, root.crl) through
`pathlib.Path.home()`, i.e. HOME, so HOME is set to the request's home before each connect.
PG* variables of this process are removed at start: asyncpg reads PGSSLMODE, PGSSLROOTCERT,
... when the URI lacks them, and only the request may decide.

The driver is imported from target/clients/asyncpg/site (install.sh puts it there).
Standard output carries the replies only, one JSON line per request; diagnostics go to
standard error.
"""

import asyncio
import json
import os
import socket
import sys
import urllib.parse
from pathlib import Path

SITE = Path(__file__).resolve().parents[3] / "target/clients/asyncpg/site"
if SITE.is_dir():
    sys.path.insert(0, str(SITE))

for _name in list(os.environ):
    if _name.startswith("PG"):
        del os.environ[_name]

# Replies go to the real standard output; anything else that would print goes to stderr.
REPLIES = sys.stdout
sys.stdout = sys.stderr

try:
    import asyncpg
except ImportError as e:
    print(
        f"asyncpg client: cannot import the driver ({e}); "
        "run conformance/clients/asyncpg/install.sh first",
        file=sys.stderr,
    )
    sys.exit(1)

QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

# URI parameters asyncpg does not understand and would send to the server as settings.
DROPPED = ("hostaddr", "connect_timeout")

# host name -> address, for the case being run (see `hostaddr` above).
HOSTS = {}
_system_getaddrinfo = socket.getaddrinfo


def _getaddrinfo(host, *args, **kwargs):
    if isinstance(host, str) and host in HOSTS:
        host = HOSTS[host]
    return _system_getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = _getaddrinfo


def log(text):
    print(f"asyncpg client: {text}", file=sys.stderr, flush=True)


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def describe(exc, password):
    text = first_line(str(exc)) or repr(exc)
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


def asyncpg_dsn(uri):
    """The request's URI without the parameters asyncpg would send to the server."""
    parts = urllib.parse.urlsplit(uri)
    query = [
        (k, v)
        for k, v in urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        if k not in DROPPED
    ]
    return urllib.parse.urlunsplit(
        parts._replace(query=urllib.parse.urlencode(query, quote_via=urllib.parse.quote))
    )


async def connect_and_ask(dsn, timeout, application_name):
    kwargs = {"dsn": dsn, "timeout": timeout}
    if application_name is not None:
        kwargs["server_settings"] = {"application_name": application_name}
    conn = await asyncpg.connect(**kwargs)
    try:
        return await conn.fetchval(QUERY, timeout=timeout)
    finally:
        try:
            await conn.close(timeout=2)
        except Exception as e:
            log(f"closing the connection failed: {type(e).__name__}: {e}")
            conn.terminate()


def run_case(loop, req):
    params = req.get("params") or {}
    password = params.get("password")
    os.environ["HOME"] = req.get("home") or "/nonexistent"
    HOSTS.clear()
    if params.get("host") and params.get("hostaddr"):
        HOSTS[params["host"]] = params["hostaddr"]
    limit = time_limit(req)
    timeout = limit - 1.0
    if params.get("connect_timeout"):
        try:
            timeout = min(timeout, max(1.0, float(params["connect_timeout"])))
        except ValueError:
            pass
    try:
        dsn = asyncpg_dsn(req["uri"])
        ssl = loop.run_until_complete(
            asyncio.wait_for(
                connect_and_ask(dsn, timeout, params.get("application_name")), limit
            )
        )
    except asyncio.TimeoutError:
        return "fail", f"TimeoutError: no connection within {timeout:.0f} s"
    except Exception as e:
        return "fail", describe(e, password)
    finally:
        HOSTS.clear()
    if ssl is None:
        return "fail", "connected, but pg_stat_ssl has no row for this session"
    return ("tls" if ssl else "plain"), None


def reply(req_id, outcome, message):
    REPLIES.write(json.dumps({"id": req_id, "outcome": outcome, "message": message}) + "\n")
    REPLIES.flush()


def main():
    log(f"asyncpg {asyncpg.__version__}")
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
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
                outcome, message = run_case(loop, req)
            except Exception as e:  # never let one case end the client
                outcome, message = "fail", f"{type(e).__name__}: {first_line(str(e))}"
            reply(req.get("id"), outcome, message)
    finally:
        loop.close()


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
