#!/usr/bin/env bash
# Tactic sessions at the driver: a tactic's added latency, batch throughput
# with 1, 2 and 4 REPLs, and restoring a state by pickle against re-running.
# Usage: bench/session_driver.sh [--sandbox native|gvisor|none] [--tactics N] [--batch N] [--cost MS] [--depth N]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p lean-sim
cargo run --release -q -p leanfarm-driver --example session_bench -- "$@"
