#!/usr/bin/env bash
# The benchmark in one command:   bash loadtest/run.sh
#
# Builds the release binary, makes sure Postgres runs, starts the test provider (the
# Logto-shaped oidc-provider server from tests/provider) and the app, signs in, and prints a
# table: authenticated GET / and /api/me under wrk (2 threads, 64 connections, 15 s),
# sign-in flows per second (sequential and 4 concurrent) with the app's own /callback time,
# the app's resident memory after the load, and Postgres's own select-only ceiling (pgbench -S,
# 64 clients) with the ratio of authenticated requests to it. Every figure is the median of
# RUNS runs (default 3); each is printed with the command that produced it. The admin listing at
# 1,000,000 users runs last (`cargo bench --bench admin`; SKIP_ADMIN=1 skips it).
#
# Environment: DATABASE_URL (a superuser URL; default local postgres), RUNS, DURATION (wrk),
# CONNECTIONS (wrk), SKIP_ADMIN.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
DURATION=${DURATION:-15s}
CONNECTIONS=${CONNECTIONS:-64}
source loadtest/lib.sh

session_writes() { psql "$BENCH_URL" -Atc "select coalesce(n_tup_upd + n_tup_ins, 0) from pg_stat_user_tables where relname = 'sessions'"; }

declare -A RESULT
wrk_case() { # name path
  local name=$1 path=$2 rps=() p50=() p99=() errors=0
  local writes_before; writes_before=$(session_writes)
  for _ in $(seq 1 "$RUNS"); do
    wrk -t2 -c"$CONNECTIONS" -d"$DURATION" --latency -H "$HEADER" "$APP$path" >"$WORK/wrk.txt"
    rps+=("$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")")
    p50+=("$(awk '$1 == "50%" {print $2}' "$WORK/wrk.txt")")
    p99+=("$(awk '$1 == "99%" {print $2}' "$WORK/wrk.txt")")
    errors=$((errors + $(awk 'BEGIN {n = 0}
      /Non-2xx or 3xx responses/ {n += $NF}
      /Socket errors/ {for (i = 1; i <= NF; i++) if ($i ~ /^[0-9]+,?$/) {gsub(",", "", $i); n += $i}}
      END {print n}' "$WORK/wrk.txt")))
  done
  sleep 1
  local writes_after; writes_after=$(session_writes)
  to_ms() { sed -E 's/([0-9.]+)us/\1 0.001/; s/([0-9.]+)ms/\1 1/; s/([0-9.]+)s$/\1 1000/' | awk '{print $1*$2}'; }
  RESULT[$name]="$(printf '%s\n' "${rps[@]}" | median) | $(printf '%s\n' "${p50[@]}" | to_ms | median) | $(printf '%s\n' "${p99[@]}" | to_ms | median) | $errors | $((writes_after - writes_before))"
}

echo "warming up" >&2
wrk -t2 -c"$CONNECTIONS" -d3s -H "$HEADER" "$APP/api/me" >/dev/null
wrk_case "GET /api/me" /api/me
wrk_case "GET /" /

flows_case() { # total workers
  local rates=() p50=() p99=() errors=0
  for _ in $(seq 1 "$RUNS"); do
    read -r rate c50 c99 err < <(python3 loadtest/signin.py "$APP" "$PROVIDER" flows "$1" "$2")
    rates+=("$rate"); p50+=("$c50"); p99+=("$c99"); errors=$((errors + err))
  done
  echo "$(printf '%s\n' "${rates[@]}" | median) | $(printf '%s\n' "${p50[@]}" | median) | $(printf '%s\n' "${p99[@]}" | median) | $errors"
}
SEQ=$(flows_case 100 1)
CONC=$(flows_case 200 4)
RSS_KB=$(awk '/VmRSS/ {print $2}' "/proc/$APP_PID/status")

PGB_DB=logto_signin_pgbench
PGB_URL="${DATABASE_URL%/*}/$PGB_DB"
psql "$DATABASE_URL" -qc "drop database if exists $PGB_DB with (force)" -c "create database $PGB_DB" >/dev/null
pgbench -q -i -s 10 "$PGB_URL" >/dev/null 2>&1
PGB=()
for _ in $(seq 1 "$RUNS"); do
  PGB+=("$(pgbench -S -c 64 -j 2 -T 15 "$PGB_URL" 2>/dev/null | awk '/^tps/ {print $3; exit}')")
done
PGB_TPS=$(printf '%s\n' "${PGB[@]}" | median)
ME_RPS=$(echo "${RESULT[GET /api/me]}" | awk -F'|' '{print $1}')

cat <<EOT

## logto-signin benchmark ($(nproc) cores; app, Postgres, provider and load generator on this machine; median of $RUNS runs)

| what | requests/s | p50 ms | p99 ms | errors (non-2xx, socket) | session-row writes during the runs |
| --- | ---: | ---: | ---: | ---: | ---: |
| authenticated GET /api/me | ${RESULT[GET /api/me]} |
| authenticated GET / | ${RESULT[GET /]} |

command: wrk -t2 -c$CONNECTIONS -d$DURATION --latency -H "Cookie: logto_signin_session=…" $APP/<path>

| sign-in flows (app + provider + browser-less client) | flows/s | app's own /callback time p50 ms | p99 ms | failed flows |
| --- | ---: | ---: | ---: | ---: |
| sequential | $SEQ |
| 4 concurrent | $CONC |

command: python3 loadtest/signin.py $APP $PROVIDER flows 100 1   (and: flows 200 4)

| other | value | command |
| --- | ---: | --- |
| app resident memory after the load | $((RSS_KB / 1024)) MB | grep VmRSS /proc/<app pid>/status |
| Postgres select-only ceiling | $PGB_TPS tps | pgbench -S -c 64 -j 2 -T 15 (scale 10) |
| authenticated /api/me requests per pgbench transaction | $(awk -v a="$ME_RPS" -v b="$PGB_TPS" 'BEGIN {printf "%.2f", a/b}') | ratio of the two medians |
EOT

if [ -z "${SKIP_ADMIN:-}" ]; then
  echo
  cargo bench --bench admin --quiet 2>/dev/null
fi
