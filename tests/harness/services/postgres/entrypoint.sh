#!/bin/sh
# First start: a cluster owned by POSTGRES_USER (password POSTGRES_PASSWORD) with the database
# POSTGRES_DB. Every start: postgres as PID 1 on every address, passwords required over TCP.
set -eu
: "${POSTGRES_USER:?is not set}" "${POSTGRES_PASSWORD:?is not set}" "${POSTGRES_DB:?is not set}"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  pwfile=$(mktemp)
  printf '%s\n' "$POSTGRES_PASSWORD" >"$pwfile"
  initdb --pgdata "$PGDATA" --username "$POSTGRES_USER" --pwfile "$pwfile" \
    --auth-local trust --auth-host scram-sha-256 --encoding UTF8 --no-instructions
  rm -f "$pwfile"
  echo "host all all 0.0.0.0/0 scram-sha-256" >>"$PGDATA/pg_hba.conf"
  echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" |
    postgres --single -D "$PGDATA" postgres >/dev/null
fi
exec postgres -D "$PGDATA" -c listen_addresses='*' -c unix_socket_directories=/tmp
