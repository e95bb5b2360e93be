#!/usr/bin/env bash
# Creates (or re-creates) the database NAME on the server of SERVER_URL (a superuser URL, e.g.
# DATABASE_URL), applies migrations/ with sqlx-cli, and prints its URL.
# Usage: url=$(bash scripts/migrated-db.sh NAME SERVER_URL)
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 server=$2
psql "$server" -qtc "drop database if exists $name" -c "create database $name" >/dev/null
url="${server%/*}/$name"
DATABASE_URL="$url" sqlx migrate run --source migrations >/dev/null
echo "$url"
