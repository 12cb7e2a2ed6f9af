#!/usr/bin/env bash
# Sandbox start-up cost: spawn, wait and tear down a short program, plain
# and under each backend that works on this host (none, native, gvisor).
# Usage: bench/sandbox.sh [RUNS] [PROGRAM]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p leanfarm-sandbox --example spawn_bench -- "$@"
