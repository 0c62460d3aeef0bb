#!/usr/bin/env bash
# Builds every function as a Cloudflare Worker (functions/*/build: index.js + index_bg.wasm),
# offline: worker-build, wasm-bindgen, esbuild and wasm-opt are installed when missing and used
# from where they are, never downloaded by worker-build itself (see shared/design/platforms.md).
# Each build runs as `wrangler deploy --dry-run`, so every wrangler.toml (the router's too) is
# also checked the way a deploy reads it.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[workers] %s\n' "$*"; }
# Every function crate (functions/*/Cargo.toml; the router is JavaScript).
functions() { for f in functions/*/Cargo.toml; do basename "$(dirname "$f")"; done; }

# Keep in step with Cargo.lock's wasm-bindgen and the worker crate.
WASM_BINDGEN_VERSION=0.2.130
WORKER_BUILD_VERSION=0.8.7

if ! worker-build --version 2>/dev/null | grep -q "$WORKER_BUILD_VERSION"; then
    log "installing worker-build $WORKER_BUILD_VERSION (about 15 minutes on 2 cores)"
    cargo install worker-build --version "$WORKER_BUILD_VERSION" >/dev/null
fi
if ! wasm-bindgen --version 2>/dev/null | grep -q "$WASM_BINDGEN_VERSION"; then
    log "installing wasm-bindgen-cli $WASM_BINDGEN_VERSION (about 11 minutes on 2 cores)"
    cargo install wasm-bindgen-cli --version "$WASM_BINDGEN_VERSION" >/dev/null
fi
[ -x tests/workers/node_modules/.bin/wrangler ] || npm ci --prefix tests/workers --no-audit --no-fund >/dev/null

export WASM_BINDGEN_BIN="$(command -v wasm-bindgen)"
export ESBUILD_BIN="$PWD/tests/workers/node_modules/.bin/esbuild"
export WASM_OPT_BIN="$PWD/tests/workers/node_modules/.bin/wasm-opt"
export WRANGLER_SEND_METRICS=false
wrangler="$PWD/tests/workers/node_modules/.bin/wrangler"
dry_run() {
    local out
    out=$(mktemp -d)
    if ! "$wrangler" deploy --dry-run --outdir "$out" >"$out.log" 2>&1; then
        cat "$out.log" >&2
        return 1
    fi
    grep -E "^Total Upload" "$out.log" || true
    rm -rf "$out" "$out.log"
}
for function in $(functions); do
    log "building functions/$function (wrangler deploy --dry-run)"
    (cd "functions/$function" && dry_run)
    wasm="functions/$function/build/index_bg.wasm"
    log "$function: $(stat -c %s "$wasm") bytes, $(gzip -9c "$wasm" | wc -c) gzipped"
done
log "the router (wrangler.toml)"
dry_run
