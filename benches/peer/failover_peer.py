#!/usr/bin/env python3
"""The libpq peer of the failover bench (``benches/failover.rs``): psycopg_pool with its
default settings, on the same host list with ``target_session_attrs=read-write``, writing
while the bench fails the primary over.

Each write is one ``INSERT`` through ``pool.connection()``; after a failed write it pauses
20 ms (as the Rust writers do). It prints one JSON object per line on stdout:

- ``{"ok": T}`` for the first write acknowledged after a failed one, and once a second while
  writes succeed;
- ``{"fail": T}`` for the first failed write after a success;
- ``{"libpq": "MAJOR.MINOR"}`` once at start (from ``psycopg.pq.version()``).

``T`` is the wall clock (``time.time()``). It runs until its standard input closes. The
password comes in ``PGPASSWORD``. Needs ``pip install -r benches/peer/requirements.txt``.
"""

import json
import logging
import sys
import threading
import time

import psycopg
from psycopg_pool import ConnectionPool


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def main():
    conninfo = sys.argv[1]
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    # The pool logs every failed reconnection as a warning; the bench reports what matters.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    version = psycopg.pq.version()
    say({"libpq": f"{version // 10000}.{version % 10000}"})
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS peer_writes (id bigserial PRIMARY KEY, "
                     "at timestamptz NOT NULL DEFAULT now())")
    with ConnectionPool(conninfo, min_size=1, max_size=4, open=True) as pool:
        failing = False
        last_ok = 0.0
        while not stop.is_set():
            try:
                with pool.connection() as conn:
                    conn.execute("INSERT INTO peer_writes DEFAULT VALUES")
                now = time.time()
                if failing or now - last_ok > 1.0:
                    say({"ok": now})
                    last_ok = now
                failing = False
            except Exception:  # noqa: BLE001 - every failure counts the same here
                if not failing:
                    say({"fail": time.time()})
                failing = True
                time.sleep(0.02)


if __name__ == "__main__":
    main()
