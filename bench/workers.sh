#!/usr/bin/env bash
# Many workers on one API replica: simulated lease loops (default 500) over
# the real worker HTTP API, on PostgreSQL. Prints the idle cost (API and
# PostgreSQL CPU while every loop long-polls an empty queue), then jobs/s,
# lease latency p50/p99, API CPU and PostgreSQL connections under load.
# Usage: bench/workers.sh [--workers 500] [--slots 1] [--jobs 20000] [--cost-ms 0]
#                         [--idle-seconds 30] [--postgres URL]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm
cargo run --release -q -p leanfarm --example workers_bench -- "$@"
