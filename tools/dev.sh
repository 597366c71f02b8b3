#!/usr/bin/env bash
# Runs `warren dev`: builds the host and the scripts, then serves on 127.0.0.1:7700 with
# modules/ watched. The first build compiles wasmtime (a few minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/setup.sh

cargo build --release --locked -p warren
./target/release/warren build
exec ./target/release/warren dev --config config/dev.toml "$@"
