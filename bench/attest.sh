#!/usr/bin/env bash
# What signed verdicts and retention cost: signing and verifying one
# verdict's attestation, and deleting expired jobs per second on SQLite and
# PostgreSQL, in the batches `leanfarm gc` and the sweep of `serve` use.
# Usage: bench/attest.sh [COUNT] [JOBS] [BATCH] [POSTGRES_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
count="${1:-20000}"
jobs="${2:-20000}"
batch="${3:-500}"
cargo run --release -q -p leanfarm-attest --example sign_bench -- "$count"
if [ $# -ge 4 ]; then
  cargo run --release -q -p leanfarm-store --example retention_bench -- "$jobs" "$batch" "$4"
else
  cargo run --release -q -p leanfarm-store --example retention_bench -- "$jobs" "$batch"
fi
