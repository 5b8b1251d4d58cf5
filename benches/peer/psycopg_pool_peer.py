#!/usr/bin/env python3
"""The Python peer: what TEA users run today for an RDS IAM catalog.

psycopg_pool with a boto3 ``generate_db_auth_token`` per connect (a connection class that
sets the password at every new physical connection), measured against the same server as
the Rust bench (``benches/pool.rs`` starts this script and prints both in one table).

Measures, each as a list of per-operation latencies:
- ``warm``: acquire and release from a warm pool (with a health check, as the Rust pool's
  verified recycle does);
- ``churn``: a new physical connection per acquisition (a fresh token each time);
- ``sign``: ``generate_db_auth_token`` alone.

Prints one JSON object on stdout. Needs: ``pip install -r benches/peer/requirements.txt``.
"""

import argparse
import json
import statistics
import time

import boto3
import psycopg
from psycopg_pool import ConnectionPool


def summary(samples):
    samples = sorted(samples)
    n = len(samples)

    def pct(p):
        return samples[min(n - 1, round((n - 1) * p))]

    return {
        "n": n,
        "mean_ms": statistics.fmean(samples) * 1000,
        "p50_ms": pct(0.50) * 1000,
        "p99_ms": pct(0.99) * 1000,
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--dbname", default="postgres")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--warm", type=int, default=2000)
    ap.add_argument("--churn", type=int, default=300)
    ap.add_argument("--sign", type=int, default=2000)
    args = ap.parse_args()

    session = boto3.session.Session(
        aws_access_key_id="AKIDEXAMPLE",
        aws_secret_access_key="wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        region_name=args.region,
    )
    rds = session.client("rds")

    def token():
        return rds.generate_db_auth_token(
            DBHostname=args.host, Port=args.port, DBUsername=args.user, Region=args.region
        )

    class TokenConnection(psycopg.Connection):
        """A connection that signs a new IAM token at every connect."""

        @classmethod
        def connect(cls, conninfo="", **kwargs):
            kwargs["password"] = token()
            return super().connect(conninfo, **kwargs)

    conninfo = (
        f"host={args.host} port={args.port} user={args.user} dbname={args.dbname} sslmode=disable"
    )

    sign = []
    for _ in range(args.sign):
        t = time.perf_counter()
        token()
        sign.append(time.perf_counter() - t)

    with ConnectionPool(
        conninfo,
        connection_class=TokenConnection,
        min_size=4,
        max_size=4,
        check=ConnectionPool.check_connection,
        open=True,
    ) as pool:
        pool.wait()
        for _ in range(100):
            with pool.connection():
                pass
        warm = []
        for _ in range(args.warm):
            t = time.perf_counter()
            with pool.connection():
                pass
            warm.append(time.perf_counter() - t)

    churn = []
    for _ in range(args.churn):
        t = time.perf_counter()
        conn = TokenConnection.connect(conninfo)
        churn.append(time.perf_counter() - t)
        conn.close()

    print(
        json.dumps(
            {
                "versions": {
                    "psycopg": psycopg.__version__,
                    "psycopg_pool": __import__("psycopg_pool").__version__,
                    "boto3": boto3.__version__,
                },
                "warm": summary(warm),
                "churn": summary(churn),
                "sign": summary(sign),
            }
        )
    )


if __name__ == "__main__":
    main()
