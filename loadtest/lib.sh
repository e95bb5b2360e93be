# Shared by loadtest/run.sh and loadtest/drills.sh: builds the release binary, makes sure Postgres runs,
# starts the test provider and the app on free ports against a fresh database, and signs alice
# in. Exports APP, PROVIDER, APP_PID, PROVIDER_PID, COOKIE, HEADER, BENCH_URL, WORK.
# Extra app settings can be passed in APP_ENV (e.g. "JWKS_REFETCH_COOLDOWN=5").
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
BENCH_DB=${BENCH_DB:-logto_signin_bench}
BENCH_URL="${DATABASE_URL%/*}/$BENCH_DB"
WORK=$(mktemp -d)
PIDS=()
cleanup() { for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done; [ -z "${KEEP_APP_LOG:-}" ] || cp "$WORK/app.log" "$KEEP_APP_LOG"; rm -rf "$WORK"; }
trap cleanup EXIT

need() { command -v "$1" >/dev/null || { export DEBIAN_FRONTEND=noninteractive; apt-get update -qq; apt-get install -y -qq "$2" >/dev/null; }; }
need wrk wrk
need pgbench postgresql-contrib
command -v node >/dev/null || { echo "Node.js is required (the test provider)" >&2; exit 1; }
bash scripts/ensure-postgres.sh >/dev/null
[ -d tests/provider/node_modules ] || npm ci --prefix tests/provider --no-audit --no-fund >/dev/null
# APP_BIN: another build of the app to measure (an A/B against a previous commit); by default
# this tree's release build.
if [ -z "${APP_BIN:-}" ]; then
  cargo build --release --quiet
  APP_BIN=target/release/logto-signin
fi

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

psql "$DATABASE_URL" -qc "drop database if exists $BENCH_DB with (force)" -c "create database $BENCH_DB" >/dev/null 2>&1

APP_PORT=$(free_port)
PROVIDER_PORT=$(free_port)
APP="http://127.0.0.1:$APP_PORT"
PROVIDER="http://127.0.0.1:$PROVIDER_PORT"
CLIENT_ID=bench-client
CLIENT_SECRET=bench-secret

start_provider() {
  CLIENT_ID=$CLIENT_ID CLIENT_SECRET=$CLIENT_SECRET REDIRECT_URI="$APP/callback" POST_LOGOUT_REDIRECT_URI="$APP/" \
    BACKCHANNEL_LOGOUT_URI="$APP/backchannel-logout" PORT=$PROVIDER_PORT node tests/provider/server.js \
    >"$WORK/provider.out" 2>"$WORK/provider.err" &
  PROVIDER_PID=$!
  PIDS+=("$PROVIDER_PID")
  for _ in $(seq 1 100); do grep -q LISTENING "$WORK/provider.out" 2>/dev/null && return 0; sleep 0.1; done
  echo "the provider did not start" >&2
  return 1
}
start_provider

SESSION_SECRET_VALUE=$("$APP_BIN" generate-secret)
start_app() {
  env SESSION_SECRET="$SESSION_SECRET_VALUE" LOGTO_ENDPOINT="$PROVIDER" LOGTO_APP_ID=$CLIENT_ID \
    LOGTO_APP_SECRET=$CLIENT_SECRET APP_BASE_URL="$APP" HOST=127.0.0.1 PORT=$APP_PORT DATABASE_URL="$BENCH_URL" \
    SERVER_TIMING=true SIGN_IN_RATE_LIMIT=1000000 RUST_LOG=warn ${APP_ENV:-} "$APP_BIN" >>"$WORK/app.log" 2>&1 &
  APP_PID=$!
  PIDS+=("$APP_PID")
  for _ in $(seq 1 100); do curl -fs "$APP/readyz" >/dev/null 2>&1 && return 0; sleep 0.1; done
  echo "the app did not become ready" >&2
  return 1
}
start_app

COOKIE=$(python3 loadtest/signin.py "$APP" "$PROVIDER" cookie)
[ -n "$COOKIE" ] || { echo "could not sign in" >&2; exit 1; }
HEADER="Cookie: logto_signin_session=$COOKIE"
curl -fs -H "$HEADER" "$APP/api/me" | grep -q '"username":"alice"' || { echo "the session cookie does not work" >&2; exit 1; }
