#!/usr/bin/env bash
# Fault drills, with assertions:   bash loadtest/drills.sh
#
# 1. Postgres restarts in the middle of a 30 s load run: requests during the outage get 503
#    (never 500), the app serves normally again within 5 s of Postgres being back, no restart,
#    and the session created before the outage still works.
# 2. The provider is unreachable: signed-in users keep their throughput; sign-in answers 503
#    within 5 s; when the provider is back, sign-in works without restarting the app.
# 3. Overload: 4x the benchmark's connections: only 200s and explicit 503s, memory bounded.
# 4. Graceful shutdown: SIGTERM during load: in-flight requests finish and the app exits 0.
#
# This restarts the local Postgres cluster (drill 1): run it on a development machine only.
set -euo pipefail
cd "$(dirname "$0")/.."
APP_ENV="JWKS_REFETCH_COOLDOWN=5"
source loadtest/lib.sh

FAILED=0
assert() { # description, condition...
  local what=$1; shift
  if "$@"; then echo "PASS  $what"; else echo "FAIL  $what"; FAILED=$((FAILED + 1)); fi
}
statuses() { awk '/^STATUS/ {printf "%s:%s ", $2, $3}' "$1"; }
count_of() { awk -v s="$2" '$1 == "STATUS" && $2 == s {print $3}' "$1" | head -n 1; }
only_statuses() { # file, allowed codes...
  local file=$1; shift
  local allowed=" $* "
  awk '/^STATUS/ {print $2}' "$file" | while read -r code; do [[ $allowed == *" $code "* ]] || exit 1; done
}
rss_mb() { awk '/VmRSS/ {printf "%d", $2 / 1024}' "/proc/$APP_PID/status"; }
cluster=$(ls /etc/postgresql | sort -V | tail -n 1)

echo "== 1. Postgres restart during a 30 s load run"
wrk -t2 -c64 -d30s -s loadtest/status-count.lua -H "$HEADER" "$APP/api/me" >"$WORK/pg.txt" &
WRK=$!
sleep 8
pg_ctlcluster --skip-systemctl-redirect "$cluster" main stop -m fast
DOWN_AT=$(date +%s.%N)
sleep 5
code_down=$(curl -s -o /dev/null -w '%{http_code}' -H "$HEADER" "$APP/api/me")
pg_ctlcluster --skip-systemctl-redirect "$cluster" main start
UP_AT=$(date +%s.%N)
until [ "$(curl -s -o /dev/null -w '%{http_code}' -H "$HEADER" "$APP/api/me")" = 200 ]; do sleep 0.05; done
RECOVERED=$(echo "$(date +%s.%N) - $UP_AT" | bc)
wait $WRK
echo "      outage $(echo "$UP_AT - $DOWN_AT" | bc | cut -c1-4) s; responses by status: $(statuses "$WORK/pg.txt"); back to 200 ${RECOVERED:0:4} s after Postgres started"
assert "a request during the outage got 503" [ "$code_down" = 503 ]
assert "only 200 and 503 during the run (no 500)" only_statuses "$WORK/pg.txt" 200 503
assert "some requests were refused with 503 during the outage" [ -n "$(count_of "$WORK/pg.txt" 503)" ]
assert "serving normally within 5 s after Postgres is back" [ "$(echo "$RECOVERED < 5" | bc)" = 1 ]
assert "the session from before the outage still works" bash -c "curl -fs -H '$HEADER' '$APP/api/me' | grep -q alice"
assert "the app process never restarted" kill -0 "$APP_PID"

echo "== 2. The provider is unreachable"
wrk -t2 -c64 -d5s -H "$HEADER" "$APP/api/me" >"$WORK/before.txt"
kill "$PROVIDER_PID"; wait "$PROVIDER_PID" 2>/dev/null || true
sleep 16 # the app takes a provider that answered in the last 15 s to be up
wrk -t2 -c64 -d5s -s loadtest/status-count.lua -H "$HEADER" "$APP/api/me" >"$WORK/noop.txt"
before=$(awk '/Requests\/sec/ {print $2}' "$WORK/before.txt")
during=$(awk '/Requests\/sec/ {print $2}' "$WORK/noop.txt")
start=$(date +%s.%N)
code=$(curl -s -o /dev/null -w '%{http_code}' "$APP/sign-in")
took=$(echo "$(date +%s.%N) - $start" | bc)
echo "      /api/me requests/s with the provider up: $before, down: $during; /sign-in answered $code in ${took:0:5} s"
assert "signed-in users keep working (all 200)" only_statuses "$WORK/noop.txt" 200
assert "signed-in throughput stays above 80% (no provider call on the request path)" [ "$(echo "$during > 0.8 * $before" | bc)" = 1 ]
assert "sign-in answers 503" [ "$code" = 503 ]
assert "within 5 s" [ "$(echo "$took < 5" | bc)" = 1 ]
start_provider
sleep 6 # past the JWKS refetch cooldown of this drill's app (5 s): the restarted provider has new keys
assert "sign-in works again without restarting the app" bash -c "python3 loadtest/signin.py '$APP' '$PROVIDER' cookie | grep -q ."

echo "== 3. Overload: 256 connections"
wrk -t2 -c256 -d15s --latency -s loadtest/status-count.lua -H "$HEADER" "$APP/api/me" >"$WORK/over.txt"
echo "      $(awk '/Requests\/sec/ {print $2 " requests/s"}' "$WORK/over.txt"), p99 $(awk '$1 == "99%" {print $2}' "$WORK/over.txt"); statuses: $(statuses "$WORK/over.txt"); RSS $(rss_mb) MB"
assert "only 200s and explicit 503s" only_statuses "$WORK/over.txt" 200 503
assert "memory stays under 100 MB" [ "$(rss_mb)" -lt 100 ]

echo "== 4. Graceful shutdown under load"
wrk -t2 -c64 -d6s -s loadtest/status-count.lua -H "$HEADER" "$APP/api/me" >"$WORK/stop.txt" &
WRK=$!
sleep 2
kill -TERM "$APP_PID"
set +e
wait "$APP_PID"
exit_code=$?
set -e
wait $WRK || true
echo "      exit code $exit_code; statuses before the listener closed: $(statuses "$WORK/stop.txt")"
assert "the app exits 0 on SIGTERM" [ "$exit_code" = 0 ]
assert "no 5xx while shutting down" only_statuses "$WORK/stop.txt" 200

echo
if [ "$FAILED" = 0 ]; then echo "drills: all passed"; else echo "drills: $FAILED failed"; exit 1; fi
