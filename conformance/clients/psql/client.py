#!/usr/bin/env python3
"""The psql client of the live conformance kit: libpq itself, through the system psql.

For each request line (see ../PROTOCOL.md) this runs, once,

    psql -X -A -t -w -d CONNINFO -c "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"

where CONNINFO is the request's libpq keyword map (every key but the password, which goes in
PGPASSWORD so that it never shows on a command line), in a cleared environment: PATH, HOME =
the request's home (libpq reads ~/.postgresql/root.crt from there), LC_ALL=C, PGPASSWORD. psql
prints `t` or `f` when it connected and exits 2 when it could not; it is killed when it runs
past a time limit a little below the request's timeout_s.

This client runs the same library the harness uses as its oracle, so it must agree with libpq
on every case: a deviation here is a fault of the harness or of the environment, not a
difference between drivers.

Standard output carries the replies only, one JSON line per request; diagnostics go to
standard error. Standard library only.
"""

import json
import os
import subprocess
import sys

QUERY = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"
DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
PSQL = "psql"

# Replies go to the real standard output; anything else that would print goes to stderr.
REPLIES = sys.stdout
sys.stdout = sys.stderr


def log(text):
    print(f"psql client: {text}", file=sys.stderr, flush=True)


def quote(value):
    """A libpq conninfo value, single-quoted with \\ and ' escaped."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(params):
    """The libpq keyword/value string of the params, without the password."""
    return " ".join(
        f"{key}={quote(str(value))}" for key, value in params.items() if key != "password"
    )


def first_line(text):
    for line in text.splitlines():
        line = line.strip()
        if line:
            return line
    return ""


def redact(text, password):
    if password:
        text = text.replace(password, "***")
    return text


def time_limit(req):
    """Seconds psql may run: a little below the harness's own wait."""
    try:
        timeout_s = float(req.get("timeout_s") or 20)
    except (TypeError, ValueError):
        timeout_s = 20.0
    return max(1.0, timeout_s - 2.0)


def run_case(req):
    params = {k: v for k, v in (req.get("params") or {}).items() if v is not None}
    password = params.get("password")
    env = {
        "PATH": os.environ.get("PATH") or DEFAULT_PATH,
        "HOME": req.get("home") or "/nonexistent",
        "LC_ALL": "C",
    }
    if password is not None:
        env["PGPASSWORD"] = password
    argv = [PSQL, "-X", "-A", "-t", "-w", "-d", conninfo(params), "-c", QUERY]
    limit = time_limit(req)
    try:
        proc = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=limit,
            cwd="/",
        )
    except subprocess.TimeoutExpired:
        return "fail", f"psql did not finish within {limit:.0f} s (killed)"
    except OSError as e:
        return "fail", f"cannot run psql: {e}"

    out = proc.stdout.decode("utf-8", "replace").strip()
    err = proc.stderr.decode("utf-8", "replace")
    if proc.returncode == 0:
        if out == "t":
            return "tls", None
        if out == "f":
            return "plain", None
        return "fail", redact(f"psql connected but printed {out!r} for the ssl query", password)
    message = first_line(err)
    if message.startswith("psql: error: "):
        message = message[len("psql: error: "):]
    if not message:
        message = f"psql exited with status {proc.returncode}"
    return "fail", redact(message, password)


def reply(req_id, outcome, message):
    REPLIES.write(json.dumps({"id": req_id, "outcome": outcome, "message": message}) + "\n")
    REPLIES.flush()


def main():
    try:
        version = subprocess.run(
            [PSQL, "--version"], stdin=subprocess.DEVNULL, capture_output=True, timeout=10
        ).stdout.decode("utf-8", "replace").strip()
        log(version or "psql --version printed nothing")
    except (OSError, subprocess.SubprocessError) as e:
        log(f"cannot run psql --version: {e}")
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
