#!/usr/bin/env python3
"""The psycopg client of the live conformance kit: psycopg 3, the pure-Python package, on the
system libpq (Debian's libpq5).

For each request line (see ../PROTOCOL.md) this calls `psycopg.connect(**params)` with the
request's libpq keyword map as it is (psycopg hands it to libpq unchanged), after setting HOME
to the request's home: libpq reads `~/.postgresql/root.crt` from HOME at connect time. Once
connected it asks the server whether the session uses TLS.

psycopg is pinned to its pure-Python implementation (PSYCOPG_IMPL=python), so the TLS
decisions are libpq's own; what this client can show is whether psycopg's own connection
logic (it drives libpq's non-blocking connect itself, with its own connect_timeout handling
and host attempts) changes any of them.

The driver is imported from target/clients/psycopg/site (install.sh puts it there).
Standard output carries the replies only, one JSON line per request; diagnostics go to
standard error.
"""

import json
import os
import signal
import sys
from pathlib import Path

SITE = Path(__file__).resolve().parents[3] / "target/clients/psycopg/site"
if SITE.is_dir():
    sys.path.insert(0, str(SITE))

# The pure-Python implementation: ctypes on the system libpq, never a bundled one.
os.environ["PSYCOPG_IMPL"] = "python"

# Only the request reaches libpq: no PGSSLMODE, PGSSLROOTCERT, ... from this process.
for _name in list(os.environ):
    if _name.startswith("PG"):
        del os.environ[_name]

# Replies go to the real standard output; anything else that would print goes to stderr.
REPLIES = sys.stdout
sys.stdout = sys.stderr

try:
    import psycopg
except ImportError as e:
    print(
        f"psycopg client: cannot import the driver ({e}); "
        "run conformance/clients/psycopg/install.sh first",
        file=sys.stderr,
    )
    sys.exit(1)

QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


class TimeLimit(Exception):
    """Raised by the alarm when a case runs past its time limit."""


def _on_alarm(signum, frame):
    raise TimeLimit()


def log(text):
    print(f"psycopg client: {text}", file=sys.stderr, flush=True)


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def describe(exc, password):
    text = first_line(str(exc)) or type(exc).__name__
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


def run_case(req):
    params = {k: str(v) for k, v in (req.get("params") or {}).items() if v is not None}
    password = params.get("password")
    # libpq looks for ~/.postgresql/root.crt (and postgresql.crt/.key) under HOME.
    os.environ["HOME"] = req.get("home") or "/nonexistent"
    limit = time_limit(req)
    signal.setitimer(signal.ITIMER_REAL, limit)
    conn = None
    try:
        conn = psycopg.connect(**params)
        row = conn.execute(QUERY).fetchone()
    except TimeLimit:
        return "fail", f"no answer within {limit:.0f} s (the client's time limit)"
    except Exception as e:
        return "fail", describe(e, password)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        if conn is not None:
            try:
                conn.close()
            except Exception as e:
                log(f"closing the connection failed: {describe(e, password)}")
    if row is None:
        return "fail", "connected, but pg_stat_ssl has no row for this session"
    return ("tls" if row[0] else "plain"), None


def reply(req_id, outcome, message):
    REPLIES.write(json.dumps({"id": req_id, "outcome": outcome, "message": message}) + "\n")
    REPLIES.flush()


def main():
    signal.signal(signal.SIGALRM, _on_alarm)
    log(f"psycopg {psycopg.__version__} ({psycopg.pq.__impl__}), libpq {psycopg.pq.version()}")
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
        except BaseException as e:  # never let one case end the client
            if isinstance(e, KeyboardInterrupt):
                raise
            outcome, message = "fail", f"{type(e).__name__}: {first_line(str(e))}"
        reply(req.get("id"), outcome, message)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
