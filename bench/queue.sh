#!/usr/bin/env bash
# Queue benchmark: enqueue, claim and complete per second on SQLite and
# PostgreSQL with 10, 100 and 1,000 concurrent workers.
# Usage: bench/queue.sh [JOBS] [POSTGRES_URL] [STORE_PARAMETERS, e.g. sslmode=require]
# (with STORE_PARAMETERS the PostgreSQL row is labelled `postgres+`)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo run --release -q -p leanfarm-store --example queue_bench -- "$@"
