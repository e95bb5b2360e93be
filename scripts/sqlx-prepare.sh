#!/usr/bin/env bash
# Writes `.sqlx/` (the compile-time checked queries' metadata) from a freshly migrated database,
# or with `--check` fails when `.sqlx/` does not match the code and migrations.
# Usage: bash scripts/sqlx-prepare.sh [--check]      (needs sqlx-cli 0.9: see README)
set -euo pipefail
cd "$(dirname "$0")/.."
DATABASE_URL=$(bash scripts/migrated-db.sh logto_signin_sqlx_prepare "${SQLX_PREPARE_SERVER:-postgres://postgres@127.0.0.1:5432/postgres}")
export DATABASE_URL
SQLX_OFFLINE=false cargo sqlx prepare "$@" -- --lib
