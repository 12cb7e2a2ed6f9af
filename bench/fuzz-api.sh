#!/usr/bin/env bash
# Fuzz the HTTP API from its own OpenAPI document with schemathesis: start
# `leanfarm serve --simulate` on a free port, run schemathesis with a fixed
# seed against /openapi.json, print its summary, and fail on any 5xx answer
# or any answer that breaks the document.
#
# Two passes: the user API without a token (the `default` tenant), then the
# worker API with a farm worker token.
#
# Usage: bench/fuzz-api.sh [--examples N] [--seed S] [--binary PATH]
#   --examples N   generated cases per operation and phase (default 1000:
#                  about 25,000 requests over the 17 operations)
#   CI runs a short version: bench/fuzz-api.sh --examples 40 (about 1,000)
# schemathesis is installed in a venv under ${LEAN_FARM_FUZZ_VENV:-/tmp/leanfarm-fuzz-venv}.
set -euo pipefail
cd "$(dirname "$0")/.."

examples=1000
seed=20261125
binary=""
while [ $# -gt 0 ]; do
  case "$1" in
    --examples) examples="$2"; shift 2 ;;
    --seed) seed="$2"; shift 2 ;;
    --binary) binary="$2"; shift 2 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done

venv="${LEAN_FARM_FUZZ_VENV:-/tmp/leanfarm-fuzz-venv}"
if [ ! -x "$venv/bin/st" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==4.32.5"
fi

if [ -z "$binary" ]; then
  cargo build -q -p leanfarm
  binary="${CARGO_TARGET_DIR:-target}/debug/leanfarm"
fi

work="$(mktemp -d)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

worker_token="$("$binary" tenant --store "sqlite://$work/leanfarm.db" farm-key --scope worker 2>/dev/null)"

# A declarations index, so that /v1/search answers with premises.
"$binary" index bench/problems/library --output "$work/premises.sqlite" >/dev/null

# A free port: bind 0, read it back, close.
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
LEAN_FARM_LOG=warn "$binary" serve --simulate --sandbox "${LEAN_FARM_TEST_SANDBOX:-native}" --slots 2 \
  --addr "127.0.0.1:$port" --data-dir "$work" --search-index "$work/premises.sqlite" 2>"$work/serve.log" &
server_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  python3 -c "import urllib.request, sys; urllib.request.urlopen(sys.argv[1], timeout=2)" "$url/healthz" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/serve.log"; exit 1; }
  sleep 0.2
done

# Every check but those that assume what this API deliberately does not:
# `positive_data_acceptance` (a schema-valid body may still be refused: an
# unparsable pinned statement, a toolchain no worker runs, a lease not held)
# and `ignored_auth` (without --require-auth a missing token is the
# `default` tenant, by design). Responses are checked against the document
# (`response_schema_conformance`, `status_code_conformance`, ...) and for 5xx.
checks="not_a_server_error,status_code_conformance,content_type_conformance,response_headers_conformance,response_schema_conformance,negative_data_rejection,unsupported_method"

# A request may take as long as the farm lets a client wait (300 s, the
# default max_wait_seconds; the Kimina endpoints wait for every verdict): a
# batch of 1,000 snippets with a timeout of nearly 0 times every check out
# and restarts REPLs, which takes tens of seconds on 2 cores.
run_pass() {
  local name="$1"; shift
  echo "== schemathesis: $name (seed $seed, $examples examples per operation)"
  PYTHONPATH="$PWD/bench" SCHEMATHESIS_HOOKS=fuzz_hooks \
    "$venv/bin/st" --config-file bench/fuzz-api.toml run "$url/openapi.json" \
    --checks "$checks" \
    --max-examples "$examples" \
    --seed "$seed" \
    --generation-deterministic \
    --no-color \
    --output-truncate true \
    --request-timeout 300 \
    --workers 1 \
    --suppress-health-check all \
    --report ndjson --report-ndjson-path "$work/$name.ndjson" \
    "$@"
}

status=0
run_pass user-api --exclude-path-regex '^/v1/worker/' || status=1
run_pass worker-api --include-path-regex '^/v1/worker/' -H "Authorization: Bearer $worker_token" || status=1

# How many requests were sent, counted from the reports.
python3 - "$work"/*.ndjson <<'EOF'
import json, sys
total = 0
for path in sys.argv[1:]:
    with open(path) as report:
        for line in report:
            event = json.loads(line)
            # Each interaction recorded in a ScenarioFinished event is one request.
            for value in event.values():
                if isinstance(value, dict) and "recorder" in value:
                    total += len(value["recorder"].get("interactions", {}))
print(f"requests sent: {total}")
EOF
if grep -q '"level":"ERROR"' "$work/serve.log"; then
  echo "the farm logged errors:"; grep '"level":"ERROR"' "$work/serve.log" | head -20
  status=1
fi
exit "$status"
