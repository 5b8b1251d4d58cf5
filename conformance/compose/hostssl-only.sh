#!/bin/sh
# An init script of docker-compose.yml's PostgreSQL (run once, on an empty data directory, as
# the image contract says): the image's catch-all `host all all all <method>` line becomes
# `hostssl`, so the stack accepts TLS connections only.
sed -i 's/^host all all all /hostssl all all all /' "$PGDATA/pg_hba.conf"
