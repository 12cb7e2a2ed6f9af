#!/usr/bin/env bash
# Premise search at a realistic size: generates a dump of Mathlib-like
# declarations (200,000 by default), builds the FTS5 index from it, and
# prints the build rate, queries per second and p50/p99 latency, one thread
# and several. Arguments go to the benchmark:
#   bench/retriever.sh [--declarations N] [--queries N] [--threads N] [--dir DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --quiet --release -p leanfarm-retriever --example search_bench -- "$@"
