#!/usr/bin/env bash
# Smoke tests of a deployed farm: health, one check, and one prove job with
# the built-in dummy model route. Exits non-zero, saying why, on any failure.
# Usage: smoke.sh URL [TOKEN]
set -euo pipefail
url="${1:?usage: smoke.sh URL [TOKEN]}"
token="${2:-}"
# Seconds a check may take (SMOKE_WAIT; at most the farm's max_wait_seconds).
wait_seconds="${SMOKE_WAIT:-120}"
auth=()
if [ -n "$token" ]; then auth=(-H "authorization: Bearer $token"); fi

echo "health"
curl -sSf --retry 10 --retry-delay 3 --retry-all-errors "$url/healthz" >/dev/null
curl -sSf "$url/readyz" >/dev/null

echo "one check"
answer=$(curl -sSf "${auth[@]}" -H 'content-type: application/json' "$url/v1/checks" \
  -d '{"snippets": [{"id": "smoke", "code": "theorem smoke : 1 + 1 = 2 := rfl"}], "wait": '"$wait_seconds"'}')
status=$(printf '%s' "$answer" | python3 -c 'import json,sys; r = json.load(sys.stdin)["results"][0]; print((r.get("verdict") or {}).get("status", "unfinished"))')
if [ "$status" != valid ]; then
  echo "the smoke check is $status, not valid: $answer" >&2
  exit 1
fi

echo "one prove (dummy route)"
started=$(curl -sSf "${auth[@]}" -H 'content-type: application/json' "$url/v1/prove" \
  -d '{"statement": "theorem smoke (a b : Nat) : a + b = b + a", "route": "dummy", "strategy": {"kind": "sample", "n": 1, "rounds": 1}}')
prove_id=$(printf '%s' "$started" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
deadline=$(( $(date +%s) + 300 ))
while :; do
  job=$(curl -sSf "${auth[@]}" "$url/v1/prove/$prove_id?wait=30")
  state=$(printf '%s' "$job" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')
  [ "$state" != running ] && break
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "the smoke prove job $prove_id is still running after 300 s" >&2
    exit 1
  fi
done
if [ "$state" != proved ]; then
  echo "the smoke prove job is $state, not proved: $job" >&2
  exit 1
fi
echo "smoke tests passed"
