#!/usr/bin/env bash
# End-to-end farm benchmark: added latency per job and throughput at 1, 2, 4 slots.
# Usage: bench/farm.sh [--cost-ms 50] [--jobs 200] [--sandbox native|gvisor|none]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm
cargo run --release -q -p leanfarm --example farm_bench -- "$@"
