#!/usr/bin/env bash
# Admission benchmark: batches admitted per second on SQLite and PostgreSQL
# through the capped enqueue (farm cap and tenant max_queued in the
# transaction), with an idempotency key, and as retries of those keys.
# Usage: bench/admission.sh [BATCHES] [POSTGRES_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p leanfarm-store --example admission_bench -- "$@"
