#!/usr/bin/env bash
# Smoke tests of a deployed farm: health, one check, and one prove with the
# dummy backend when the farm has a prove endpoint (it is skipped, and says
# so, on a farm whose /openapi.json lists none).
# Usage: smoke.sh URL [TOKEN]
set -euo pipefail
url="${1:?usage: smoke.sh URL [TOKEN]}"
token="${2:-}"
auth=()
if [ -n "$token" ]; then auth=(-H "authorization: Bearer $token"); fi

echo "health"
curl -sSf --retry 10 --retry-delay 3 --retry-all-errors "$url/healthz" >/dev/null
curl -sSf "$url/readyz" >/dev/null

echo "one check"
answer=$(curl -sSf "${auth[@]}" -H 'content-type: application/json' "$url/v1/checks" \
  -d '{"snippets": [{"id": "smoke", "code": "theorem smoke : 1 + 1 = 2 := rfl"}], "wait": 120}')
status=$(printf '%s' "$answer" | python3 -c 'import json,sys; print(json.load(sys.stdin)["results"][0]["verdict"]["status"])')
if [ "$status" != valid ]; then
  echo "the smoke check is $status, not valid: $answer" >&2
  exit 1
fi

prove_path=$(curl -sSf "$url/openapi.json" | python3 -c 'import json,sys; print(next((p for p in json.load(sys.stdin)["paths"] if "prove" in p), ""))')
if [ -z "$prove_path" ]; then
  echo "one prove: skipped, this farm has no prove endpoint"
else
  echo "one prove ($prove_path, dummy backend)"
  curl -sSf "${auth[@]}" -H 'content-type: application/json' "$url$prove_path" \
    -d '{"statement": "theorem smoke : 1 + 1 = 2", "backend": "dummy", "wait": 120}' >/dev/null
fi
echo "smoke tests passed"
