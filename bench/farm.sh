#!/usr/bin/env bash
# End-to-end farm benchmark: added latency per job, throughput at 1, 2, 4 slots,
# and the server's own CPU per snippet (1-snippet requests, 8-snippet batches).
# Usage: bench/farm.sh [--cost-ms 50] [--jobs 200] [--sandbox native|gvisor|none]
#                      [--slots 1,2,4] [--compare OTHER_LEANFARM_BINARY]
# --compare runs every slot count on both binaries in turn, in one run.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm
cargo run --release -q -p leanfarm --example farm_bench -- "$@"
