#!/usr/bin/env bash
# Makes sure PostgreSQL and Redis are installed, running, and set up for the tests: a role
# `feen` (password `feen`) owning a database `feen_test`. Idempotent; needs root for apt-get.
set -euo pipefail

log() { printf '[services] %s\n' "$*"; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! command -v redis-server >/dev/null 2>&1; then
    log "installing postgresql and redis-server"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql redis-server >/dev/null
fi

if ! pg_lsclusters -h 2>/dev/null | grep -q online; then
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    if [ -z "$cluster" ]; then
        log "creating a PostgreSQL cluster"
        version=$(ls /usr/lib/postgresql | sort -n | tail -1)
        pg_createcluster "$version" main >/dev/null
        cluster="$version main"
    fi
    log "starting PostgreSQL $cluster"
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start
fi
for _ in $(seq 1 50); do
    su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1 && break
    sleep 0.2
done

su postgres -c "psql -qAtc \"SELECT 1 FROM pg_roles WHERE rolname = 'feen'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE feen LOGIN PASSWORD 'feen' CREATEDB\""
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname = 'feen_test'\"" | grep -q 1 ||
    su postgres -c "psql -qc 'CREATE DATABASE feen_test OWNER feen'"
# Test suites each make many short-lived pools; leave them room.
current=$(su postgres -c "psql -qAtc 'SHOW max_connections'")
if [ "$current" -lt 300 ]; then
    log "raising max_connections to 300"
    su postgres -c "psql -qc 'ALTER SYSTEM SET max_connections = 300'"
    cluster=$(pg_lsclusters -h | awk 'NR==1 {print $1" "$2}')
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster restart
fi

if ! redis-cli -h 127.0.0.1 ping >/dev/null 2>&1; then
    log "starting Redis"
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '' --appendonly no >/dev/null
    for _ in $(seq 1 50); do
        redis-cli -h 127.0.0.1 ping >/dev/null 2>&1 && break
        sleep 0.1
    done
fi

log "PostgreSQL: postgres://feen:feen@127.0.0.1:5432/feen_test  Redis: redis://127.0.0.1:6379"
