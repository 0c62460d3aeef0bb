#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, the wasm builds of the core, and
# all unit, repository, counter, end-to-end and SDK tests. Needs PostgreSQL and Redis as set up
# by scripts/services.sh, and Python with the `openai` package (FEEN_PYTHON; see README).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

export FEEN_TEST_DATABASE_URL="${FEEN_TEST_DATABASE_URL:-postgres://feen:feen@127.0.0.1:5432/feen_test}"
export FEEN_TEST_REDIS_URL="${FEEN_TEST_REDIS_URL:-redis://127.0.0.1:6379}"
export FEEN_PYTHON="${FEEN_PYTHON:-python3}"

step "format"
cargo fmt --all --check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "the core builds for both wasm targets"
cargo build --locked -p feen-core -p feen-store -p feen-service --target wasm32-unknown-unknown
cargo build --locked -p feen-core -p feen-store -p feen-service --target wasm32-wasip2

step "the feen binary the end-to-end suites start"
cargo build --locked -p feen

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-tests=fail
else
    cargo test --workspace --locked
fi
