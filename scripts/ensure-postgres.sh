#!/usr/bin/env bash
# Makes sure a Postgres server answers on 127.0.0.1:5432 and DATABASE_URL (default: the local
# postgres superuser) can connect; installs and starts one on Debian when missing.
set -euo pipefail
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
if ! command -v pg_isready >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql postgresql-client >/dev/null
fi
if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  cluster_version=$(ls /etc/postgresql | sort -V | tail -n 1)
  pg_ctlcluster --skip-systemctl-redirect "$cluster_version" main start || true
fi
for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 -q && break; sleep 1; done
pg_isready -h 127.0.0.1 -p 5432 >/dev/null
if ! psql "$DATABASE_URL" -Atqc 'select 1' >/dev/null 2>&1; then
  # A stock Debian cluster authenticates local TCP users by password: trust loopback instead.
  hba=$(su postgres -c "psql -Atqc 'show hba_file'")
  sed -i -E 's/^(host\s+all\s+all\s+127\.0\.0\.1\/32\s+)\S+/\1trust/' "$hba"
  su postgres -c "psql -Atqc 'select pg_reload_conf()'" >/dev/null
fi
psql "$DATABASE_URL" -Atqc 'select version()'
