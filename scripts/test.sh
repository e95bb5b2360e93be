#!/usr/bin/env bash
# Runs the whole test suite, fastest tiers first:
#   1. unit tests and the sqlx-backed integration tests (tests/api: in-process hostile provider);
#   2. end-to-end tests (tests/e2e: the oidc-provider fixture + headless Chromium);
#   3. the real-Logto tier (tests/logto: a real Logto 1.42 + headless Chromium on its hosted
#      pages), when LOGTO_ENDPOINT, LOGTO_M2M_ID and LOGTO_M2M_SECRET say where one is
#      (eval "$(bash scripts/real-logto.sh)" builds and starts one from ../shared/logto).
#      Without them the tier is not run and this script says so; REQUIRE_REAL_LOGTO=1 (CI)
#      makes that a failure.
#
# Sets up what it needs on a Debian machine when missing: a Postgres on 127.0.0.1:5432
# (DATABASE_URL, default the local superuser), Chromium + chromedriver, the test provider's Node
# packages. Node.js >= 20 must be installed. Extra arguments go to every `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"

command -v node >/dev/null || { echo "Node.js (>= 20) is required for the end-to-end tiers" >&2; exit 1; }
bash scripts/ensure-postgres.sh >/dev/null
if ! command -v chromedriver >/dev/null || ! command -v chromium >/dev/null; then
  echo "installing chromium and chromium-driver (Debian packages)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null
fi
if [ ! -d tests/provider/node_modules ] || [ tests/provider/package-lock.json -nt tests/provider/node_modules ]; then
  npm ci --prefix tests/provider --no-audit --no-fund
fi

echo "== tiers 1-2: unit, integration (hostile provider), end-to-end (oidc-provider fixture)"
cargo test --lib --bins --test api --test e2e "$@"

if [ -n "${LOGTO_ENDPOINT:-}" ] && [ -n "${LOGTO_M2M_ID:-}" ] && [ -n "${LOGTO_M2M_SECRET:-}" ]; then
  echo "== tier 3: real Logto at $LOGTO_ENDPOINT"
  started=$(date +%s)
  cargo test --test logto "$@"
  echo "real-Logto tier: $(( $(date +%s) - started )) s"
else
  echo "== tier 3 NOT RUN: no real Logto configured (set LOGTO_ENDPOINT, LOGTO_M2M_ID and LOGTO_M2M_SECRET," \
       "e.g. eval \"\$(bash scripts/real-logto.sh)\"; see README, \"Tests against real Logto\")"
  if [ "${REQUIRE_REAL_LOGTO:-0}" = 1 ]; then
    echo "REQUIRE_REAL_LOGTO=1: a skipped real-Logto tier is a failure" >&2
    exit 1
  fi
fi
