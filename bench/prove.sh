#!/usr/bin/env bash
# Prove-loop benchmark: time to proof and the loop's own cost, against a
# plain check of the same proof, on a `leanfarm serve --simulate` farm.
# Each prove job uses the built-in dummy route (its first candidate is
# right), so a job is: one statement check, one model call, one candidate
# check. Prints p50/p99 time to proof, jobs per second, and the time a
# prove job adds over its two checks.
# Usage: bench/prove.sh [--jobs N] [--concurrency C] [--profile release|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=100
concurrency=4
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --jobs) jobs="$2"; shift 2 ;;
    --concurrency) concurrency="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ "$profile" = release ]; then
  cargo build --release -q -p leanfarm
  binary="${CARGO_TARGET_DIR:-target}/release/leanfarm"
else
  cargo build -q -p leanfarm
  binary="${CARGO_TARGET_DIR:-target}/debug/leanfarm"
fi
data=$(mktemp -d)
log="$data/serve.log"
"$binary" serve --simulate --addr 127.0.0.1:0 --data-dir "$data" --slots 2 \
  --prove-max-running-per-tenant 1000 2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 300); do
  url=$(grep -o 'serving on http://[0-9.:]*' "$log" | head -1 | sed 's/serving on //') || true
  [ -n "${url:-}" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$log"; exit 1; }
python3 - "$url" "$jobs" "$concurrency" <<'PY'
import json, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

url, jobs, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
statement = "theorem t (a b : Nat) : a + b = b + a"

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())

def check():
    started = time.perf_counter()
    answer = call("POST", "/v1/checks", {"snippets": [{"code": statement + " := by\n  simp\n"}], "wait": 300})
    assert answer["results"][0]["verdict"]["status"] == "valid", answer
    return time.perf_counter() - started

def prove():
    started = time.perf_counter()
    job = call("POST", "/v1/prove", {"statement": statement, "route": "dummy",
                                     "strategy": {"kind": "sample", "n": 1, "rounds": 1}})
    while job["state"] == "running":
        job = call("GET", f"/v1/prove/{job['id']}?wait=60")
    assert job["state"] == "proved", job
    return time.perf_counter() - started

def percentile(values, fraction):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]

for _ in range(5):  # warm the REPL pool
    check()
with ThreadPoolExecutor(concurrency) as pool:
    started = time.perf_counter()
    checks = list(pool.map(lambda _: check(), range(jobs)))
    check_wall = time.perf_counter() - started
    started = time.perf_counter()
    proofs = list(pool.map(lambda _: prove(), range(jobs)))
    prove_wall = time.perf_counter() - started
ms = lambda seconds: f"{seconds * 1000:.1f} ms"
print(f"checks: {jobs} at concurrency {concurrency}: p50 {ms(percentile(checks, .5))}, p99 {ms(percentile(checks, .99))}, {jobs / check_wall:.1f}/s")
print(f"prove jobs: {jobs} at concurrency {concurrency}: time to proof p50 {ms(percentile(proofs, .5))}, p99 {ms(percentile(proofs, .99))}, {jobs / prove_wall:.1f}/s")
print(f"a prove job (statement check + model call + candidate check) over two plain checks, p50: {ms(percentile(proofs, .5) - 2 * percentile(checks, .5))}")
PY
