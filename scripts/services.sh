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
    # After an unclean stop PostgreSQL syncs its data directory before it accepts connections,
    # which can outlast pg_ctl's 60 s wait. The server goes on starting: wait for it below.
    # shellcheck disable=SC2086
    pg_ctlcluster $cluster start || log "PostgreSQL is still starting (crash recovery); waiting for it"
fi
ready=no
for _ in $(seq 1 1800); do
    if su postgres -c "psql -qAtc 'SELECT 1'" >/dev/null 2>&1; then ready=yes; break; fi
    sleep 0.5
done
if [ "$ready" != yes ]; then
    log "PostgreSQL did not start in 15 minutes; its log:"
    tail -20 /var/log/postgresql/postgresql-*-main.log >&2 || true
    exit 1
fi
# Crash recovery syncs the data directory one file at a time unless told to sync the file
# system at once; the tests make many small databases, so that matters here.
if [ "$(su postgres -c "psql -qAtc 'SHOW recovery_init_sync_method'")" != syncfs ]; then
    su postgres -c "psql -qc \"ALTER SYSTEM SET recovery_init_sync_method = 'syncfs'\"" >/dev/null
    su postgres -c "psql -qAtc 'SELECT pg_reload_conf()'" >/dev/null
fi

su postgres -c "psql -qAtc \"SELECT 1 FROM pg_roles WHERE rolname = 'feen'\"" | grep -q 1 ||
    su postgres -c "psql -qc \"CREATE ROLE feen LOGIN PASSWORD 'feen' CREATEDB\""
su postgres -c "psql -qAtc \"SELECT 1 FROM pg_database WHERE datname = 'feen_test'\"" | grep -q 1 ||
    su postgres -c "psql -qc 'CREATE DATABASE feen_test OWNER feen'"
# Every test makes a database (`e2e_…`) or a schema in feen_test (`t_…`, `bench_…`) of its own and
# leaves it for a person to inspect; the next run clears what earlier runs left.
leftovers=$(su postgres -c "psql -qAtc \"SELECT count(*) FROM pg_database WHERE datname LIKE 'e2e\\_%'\"")
if [ "$leftovers" -gt 0 ]; then
    log "dropping $leftovers test databases left by earlier runs"
    su postgres -c "psql -qAtc \"SELECT format('DROP DATABASE IF EXISTS %I;', datname) FROM pg_database WHERE datname LIKE 'e2e\\_%'\" | psql -q" >/dev/null
fi
# One statement per schema: dropping them all in one transaction can run out of lock slots.
su postgres -c "psql -qAt -d feen_test -c \"SELECT format('DROP SCHEMA %I CASCADE;', nspname) FROM pg_namespace WHERE nspname LIKE 't\\_%' OR nspname LIKE 'bench\\_%'\" | psql -q -d feen_test" >/dev/null 2>&1
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
