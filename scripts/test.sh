#!/usr/bin/env bash
# Runs the whole test suite: unit tests and the sqlx-backed integration tests.
# Needs a Postgres superuser URL in DATABASE_URL (default: the local trust-auth server).
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
exec cargo test --lib --bins --tests "$@"
