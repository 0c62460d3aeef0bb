#!/usr/bin/env bash
# Builds every function as a Spin component (wasm32-wasip2, profile wasm-release: the files
# spin.toml names) and installs wasmtime-cli, the wasi:http host the tests run them under, when
# it is missing (platforms.md: the Spin CLI cannot be had here; wasmtime is what Spin runs on).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[spin] %s\n' "$*"; }
# Every function crate (functions/*/Cargo.toml).
functions() { for f in functions/*/Cargo.toml; do basename "$(dirname "$f")"; done; }

# Keep in step with the WASI 0.3.0 that spin-sdk 7 speaks (wasmtime 48 is Spin 4.1's).
WASMTIME_VERSION=48.0.8

if ! wasmtime --version 2>/dev/null | grep -q "$WASMTIME_VERSION"; then
    # Only what the tests use (`wasmtime serve` with the compilation cache): about 7 minutes on 2
    # cores instead of 25 for the default features.
    log "installing wasmtime-cli $WASMTIME_VERSION (about 7 minutes on 2 cores)"
    cargo install wasmtime-cli --version "$WASMTIME_VERSION" --locked --no-default-features \
        --features serve,run,cranelift,cache,component-model,component-model-async,parallel-compilation,pooling-allocator,logging,clap/default \
        >/dev/null
fi

rustup target add wasm32-wasip2 >/dev/null 2>&1 || true
packages=()
for function in $(functions); do packages+=(-p "feen-$function"); done
cargo build --locked --target wasm32-wasip2 --profile wasm-release "${packages[@]}"
target="${CARGO_TARGET_DIR:-target}/wasm32-wasip2/wasm-release"
for function in $(functions); do
    wasm="$target/feen_$function.wasm"
    log "$function: $(stat -c %s "$wasm") bytes, $(gzip -9c "$wasm" | wc -c) gzipped"
done
