#!/usr/bin/env bash
# Runs every check and test of the workspace: formatting, lints, the dependency policy
# (cargo deny), the wasm builds of the core, and
# all unit, repository, counter, end-to-end and SDK tests.
#
# Provisions what is missing: PostgreSQL and Redis (scripts/services.sh, needs root on Debian;
# skipped when FEEN_TEST_DATABASE_URL and FEEN_TEST_REDIS_URL point elsewhere), a Python
# virtual environment with the official OpenAI, Anthropic and Google GenAI SDKs (skipped when
# FEEN_PYTHON is set), Debian's Chromium (skipped when FEEN_CHROMIUM names a browser) and the
# dashboard's npm packages.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

if [ -z "${FEEN_TEST_DATABASE_URL:-}" ] || [ -z "${FEEN_TEST_REDIS_URL:-}" ]; then
    step "services"
    bash scripts/services.sh
fi
export FEEN_TEST_DATABASE_URL="${FEEN_TEST_DATABASE_URL:-postgres://feen:feen@127.0.0.1:5432/feen_test}"
export FEEN_TEST_REDIS_URL="${FEEN_TEST_REDIS_URL:-redis://127.0.0.1:6379}"

if [ -z "${FEEN_PYTHON:-}" ]; then
    step "python with the official provider SDKs"
    venv="$HOME/.cache/feen-ci/venv"
    [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
    "$venv/bin/python" -c 'import openai, anthropic, google.genai' 2>/dev/null ||
        "$venv/bin/pip" install --quiet --disable-pip-version-check openai anthropic google-genai
    export FEEN_PYTHON="$venv/bin/python"
fi

step "Chromium, for the dashboard's browser tests"
if [ -z "${FEEN_CHROMIUM:-}" ] && ! command -v chromium >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium fonts-liberation >/dev/null
fi
export FEEN_CHROMIUM="${FEEN_CHROMIUM:-$(command -v chromium)}"

step "the dashboard's toolchain (TypeScript for checking, playwright-core for the browser tests)"
[ -d web/node_modules/playwright-core ] && [ -d web/node_modules/typescript ] || npm ci --prefix web --no-audit --no-fund

step "the official JavaScript clients the stand-ins are proved with"
[ -d tests/standins/node_modules/@neondatabase/serverless ] || npm ci --prefix tests/standins --no-audit --no-fund

step "toolchain"
rustup target add wasm32-unknown-unknown wasm32-wasip2 >/dev/null 2>&1 || true
rustup show active-toolchain

step "format"
cargo fmt --all --check

step "the dashboard type-checks (tsc --checkJs, strict)"
npm run --prefix web --silent check

step "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "dependencies: licences, bans and sources (cargo deny, deny.toml; advisories need the network)"
CARGO_DENY_VERSION=0.20.2
if ! cargo deny --version 2>/dev/null | grep -q "$CARGO_DENY_VERSION"; then
    cargo install cargo-deny --version "$CARGO_DENY_VERSION" --locked >/dev/null
fi
cargo deny --offline --locked check licenses bans sources

# Every function crate, as cargo -p arguments.
function_packages=$(for f in functions/*/Cargo.toml; do printf -- '-p feen-%s ' "$(basename "$(dirname "$f")")"; done)

step "the Workers host and the functions build and lint for wasm32-unknown-unknown"
cargo clippy --locked --target wasm32-unknown-unknown -p feen-workers $function_packages -- -D warnings

step "the Spin host and the functions lint for wasm32-wasip2"
cargo clippy --locked --target wasm32-wasip2 -p feen-spin $function_packages -- -D warnings

step "the core builds for both wasm targets"
cargo build --locked -p feen-core -p feen-store -p feen-service --target wasm32-unknown-unknown
cargo build --locked -p feen-core -p feen-store -p feen-service --target wasm32-wasip2

step "Spin: every function built as a component (the import check among the tests reads them)"
bash scripts/build-spin.sh

step "the feen binary the end-to-end suites start"
cargo build --locked -p feen

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
    cargo nextest run --workspace --locked --no-tests=fail
else
    cargo test --workspace --locked
fi

step "the dashboard in headless Chromium against feen serve (screenshots in artifacts/screenshots)"
cargo build --locked -p feen-e2e --bin mock-provider
rm -rf artifacts/screenshots
FEEN_SCREENSHOTS_DIR="$PWD/artifacts/screenshots" npm test --prefix web
echo "screenshots: $(find artifacts/screenshots -name '*.png' | wc -l) in $PWD/artifacts/screenshots"

step "Workers: every function built as a Worker"
bash scripts/build-workers.sh

step "the end-to-end suites again, against the Workers under Miniflare/workerd"
# The same tests and assertions as on the native host; two workerd at a time (each compiles four
# Workers at start-up).
FEEN_E2E_HOST=workers cargo nextest run --locked -p feen-e2e --test-threads 2 \
    --test journey --test auth --test bad_input --test limits --test providers --test sdk --test jobs \
    --test audit --test teams --test analytics --test email --test web --test security
sleep 1; echo "workerd processes left running: $(ps -C workerd -o stat= | grep -vc "^Z" || true)"

step "the end-to-end suites again, against the Spin components under wasmtime serve"
# One wasmtime serve per component, routed as spin.toml says; the same tests and assertions.
FEEN_E2E_HOST=spin cargo nextest run --locked -p feen-e2e --test-threads 2 \
    --test journey --test auth --test bad_input --test limits --test providers --test sdk --test jobs \
    --test audit --test teams --test analytics --test email --test web --test security
