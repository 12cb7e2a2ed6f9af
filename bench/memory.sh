#!/usr/bin/env bash
# Memory benchmark: RSS of an API replica (serve --slots 0) and of a
# `leanfarm worker` (its REPLs not counted) at rest after start, over
# --jobs jobs at zero stand-in cost, and every --every seconds of a soak of
# steady load for --minutes minutes; prints the soak's spread (goal: within
# 10 %) and the RSS at rest (goals: API replica <= 50 MiB, worker <= 30 MiB).
# The full run is the default (100,000 jobs, then one hour):
#   bench/memory.sh
# a shortened run:
#   bench/memory.sh --jobs 100000 --minutes 10 --every 60
# Usage: bench/memory.sh [--jobs 100000] [--minutes 60] [--every 60] [--slots 2]
#   [--clients 4] [--soak-cost-ms 10] [--sandbox native|gvisor|none] [--postgres URL]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm -p lean-sim
cargo run --release -q -p leanfarm --example memory_bench -- "$@"
