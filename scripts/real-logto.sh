#!/usr/bin/env bash
# Builds (once; cached in /var/tmp) and starts a real Logto 1.42 from ../shared/logto for the
# real-Logto test tier, set up for the Hugging Face stand-in, and prints the export lines the tier
# reads:   eval "$(bash scripts/real-logto.sh)"      stop: bash scripts/real-logto.sh --stop
#
# The Hugging Face stand-in (tests/logto/huggingface.mjs) serves https://huggingface.co on this
# machine: this script makes the suite's own CA and a certificate for huggingface.co (in
# $HF_STANDIN_DIR, default /var/tmp/logto-signin-hf), maps huggingface.co to 127.0.0.1 in
# /etc/hosts (needs root) and starts Logto with NODE_EXTRA_CA_CERTS=<that CA>.
# env: LOGTO_SHARED (../shared/logto next to this checkout), LOGTO_BUILD_DIR, and start.sh's
# PORT / DB_URL. Progress goes to stderr; stdout carries only the export lines.
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED="${LOGTO_SHARED:-$(cd .. && pwd)/shared/logto}"
[[ -x "$SHARED/start.sh" ]] || SHARED="$(cd ../.. 2>/dev/null && pwd)/shared/logto"
[[ -x "$SHARED/start.sh" ]] || { echo "real-logto: no ../shared/logto (set LOGTO_SHARED)" >&2; exit 1; }
BUILD_DIR="${LOGTO_BUILD_DIR:-/var/tmp/logto-1.42.0}"
HF_DIR="${HF_STANDIN_DIR:-/var/tmp/logto-signin-hf}"
log() { printf '[real-logto %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }

if [[ "${1:-}" == --stop ]]; then
  "$SHARED/start.sh" "$BUILD_DIR" --stop >&2
  exit 0
fi

for tool in openssl jq psql curl rsync xz flock; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
if [[ -n "${missing[*]:-}" ]]; then
  log "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq openssl jq postgresql-client curl rsync xz-utils util-linux >&2
fi

started=$(date +%s)
"$SHARED/build.sh" "$BUILD_DIR" >&2
log "Logto build ready after $(( $(date +%s) - started )) s"

# The suite's CA and huggingface.co's certificate (kept: Logto trusts the CA it started with).
mkdir -p "$HF_DIR"
if [[ ! -s "$HF_DIR/cert.pem" ]]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -subj "/CN=logto-signin test CA" -keyout "$HF_DIR/ca.key" -out "$HF_DIR/ca.pem" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=huggingface.co" \
    -keyout "$HF_DIR/key.pem" -out "$HF_DIR/cert.csr" 2>/dev/null
  printf 'subjectAltName=DNS:huggingface.co\nextendedKeyUsage=serverAuth\n' > "$HF_DIR/ext.cnf"
  openssl x509 -req -in "$HF_DIR/cert.csr" -CA "$HF_DIR/ca.pem" -CAkey "$HF_DIR/ca.key" -CAcreateserial \
    -days 3650 -extfile "$HF_DIR/ext.cnf" -out "$HF_DIR/cert.pem" 2>/dev/null
  log "made a CA and a huggingface.co certificate in $HF_DIR"
fi
# Chromium trusts exactly this certificate (--ignore-certificate-errors-spki-list).
openssl x509 -in "$HF_DIR/cert.pem" -pubkey -noout | openssl pkey -pubin -outform der \
  | openssl dgst -sha256 -binary | base64 > "$HF_DIR/spki.txt"
if ! grep -Eq '^127\.0\.0\.1[[:space:]]+huggingface\.co([[:space:]]|$)' /etc/hosts; then
  if [[ -w /etc/hosts ]]; then
    echo "127.0.0.1 huggingface.co" >> /etc/hosts
    log "mapped huggingface.co to 127.0.0.1 in /etc/hosts"
  else
    log "WARNING: cannot write /etc/hosts: the Hugging Face scenario will fail (Logto cannot reach the stand-in)"
  fi
fi

# A Logto started earlier without the CA cannot reach the stand-in: restart it with the CA.
pid_file="$BUILD_DIR/logto-${PORT:-3001}.pid"
if [[ -f "$pid_file" ]] && ! tr '\0' '\n' < "/proc/$(cat "$pid_file")/environ" 2>/dev/null \
    | grep -qx "NODE_EXTRA_CA_CERTS=$HF_DIR/ca.pem"; then
  log "restarting Logto with NODE_EXTRA_CA_CERTS"
  "$SHARED/start.sh" "$BUILD_DIR" --stop >&2
fi
started=$(date +%s)
NODE_EXTRA_CA_CERTS="$HF_DIR/ca.pem" "$SHARED/start.sh" "$BUILD_DIR" >/dev/null
log "Logto started after $(( $(date +%s) - started )) s"
exports="$("$SHARED/bootstrap.sh")"
printf '%s\n' "$exports"
echo "export HF_STANDIN_DIR=$HF_DIR"
