#!/usr/bin/env bash
# Runs the whole test suite: unit tests, the sqlx-backed integration tests (in-process fake
# provider) and the end-to-end tests (real oidc-provider + headless Chromium).
#
# Needs: a Postgres superuser URL in DATABASE_URL (default: the local trust-auth server),
# Node.js >= 20 with npm, and chromium + chromedriver (Debian: apt-get install chromium
# chromium-driver). Node packages for the test provider are installed here when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

command -v node >/dev/null || { echo "Node.js is required for the end-to-end tests (tests/provider)" >&2; exit 1; }
command -v chromedriver >/dev/null || { echo "chromedriver is required: apt-get install chromium chromium-driver" >&2; exit 1; }
if [ ! -d tests/provider/node_modules ] || [ tests/provider/package-lock.json -nt tests/provider/node_modules ]; then
  npm ci --prefix tests/provider --no-audit --no-fund
fi

exec cargo test --lib --bins --tests "$@"
