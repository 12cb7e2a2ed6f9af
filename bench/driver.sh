#!/usr/bin/env bash
# Driver benchmark: added latency per REPL command and header-reuse hit rate.
# Usage: bench/driver.sh [--sandbox native|gvisor|none] [--commands N] [--headers N] [--stream N] [--slots N] [--warm N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lean-sim
cargo run --release -q -p leanfarm-driver --example driver_bench -- "$@"
