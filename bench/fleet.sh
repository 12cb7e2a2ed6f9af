#!/usr/bin/env bash
# Fleet benchmark: 1 API replica on PostgreSQL + N worker processes, end to
# end, against the physical limit (workers / cost).
# Usage: bench/fleet.sh [--workers 4] [--cost-ms 50] [--jobs 400] [--sandbox native] [--postgres URL]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm
cargo run --release -q -p leanfarm --example fleet_bench -- "$@"
