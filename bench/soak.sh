#!/usr/bin/env bash
# Soak benchmark: a mixed stream above capacity for a bounded time (default
# 10 minutes); prints the farm's RSS, REPL recycles by cause, verdicts by
# status, and the count of wrong out_of_memory verdicts (exits 1 unless 0).
# Usage: bench/soak.sh [--minutes 10] [--slots 2] [--memory-mib 512] [--every 30] [--sandbox native|gvisor|none]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm
cargo run --release -q -p leanfarm --example soak_bench -- "$@"
