#!/usr/bin/env bash
# Tactic-session benchmark on a `leanfarm serve --simulate` farm (its
# embedded workers hold the sessions' lean-sim REPLs in the sandbox).
# Prints the round trip of one tactic through the farm (p50/p99), the same
# tactic sent straight to a lean-sim REPL process over its pipes (the REPL's
# own cost), the difference (the farm's added cost), and tactics per second
# with 1, 10 and 100 concurrent sessions (each session one REPL, sending one
# pair per request, back to back).
# Usage: bench/sessions.sh [--tactics N] [--profile release|dev]
set -euo pipefail
cd "$(dirname "$0")/.."
tactics=200
profile=release
while [ $# -gt 0 ]; do
  case "$1" in
    --tactics) tactics="$2"; shift 2 ;;
    --profile) profile="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ "$profile" = release ]; then
  cargo build --release -q -p leanfarm -p lean-sim
  bin="${CARGO_TARGET_DIR:-target}/release"
else
  cargo build -q -p leanfarm -p lean-sim
  bin="${CARGO_TARGET_DIR:-target}/debug"
fi
data=$(mktemp -d)
log="$data/serve.log"
"$bin/leanfarm" serve --simulate --addr 127.0.0.1:0 --data-dir "$data" --slots 2 \
  --max-session-repls 110 --max-sessions-per-tenant 1000 --max-tactics-per-second 1000000 \
  2>"$log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 1 300); do
  url=$(grep -o 'serving on http://[0-9.:]*' "$log" | head -1 | sed 's/serving on //') || true
  [ -n "${url:-}" ] && break
  sleep 0.1
done
[ -n "${url:-}" ] || { cat "$log"; exit 1; }
python3 - "$url" "$tactics" "$bin/lean-sim" <<'PY'
import json, subprocess, sys, time, urllib.request
from concurrent.futures import ThreadPoolExecutor

url, tactics, lean_sim = sys.argv[1], int(sys.argv[2]), sys.argv[3]
opener = urllib.request.build_opener()

def call(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data=data, method=method,
                                     headers={"content-type": "application/json"})
    with opener.open(request, timeout=120) as response:
        return json.loads(response.read())

def open_session(index):
    opened = call("POST", "/v1/sessions", {
        "header": "import Mathlib",
        "theorem": {"name": f"t{index}", "statement": f"theorem t{index} : 1 + 1 = 2"},
    })
    return opened["id"], opened["proof_states"][0]["proof_state"]

def tactic(session, root):
    answer = call("POST", f"/v1/sessions/{session}/tactics",
                  {"pairs": [{"proof_state": root, "tactic": "rfl"}]})
    assert answer["results"][0]["status"] == "proved", answer

def quantile(samples, q):
    samples = sorted(samples)
    return samples[min(len(samples) - 1, int(q * len(samples)))]

# The REPL's own round trip: the same tactic over a lean-sim REPL's pipes.
repl = subprocess.Popen([lean_sim, "repl"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
def exchange(request):
    repl.stdin.write(json.dumps(request) + "\n\n")
    repl.stdin.flush()
    lines = []
    while True:
        line = repl.stdout.readline()
        if line.strip() == "" and lines:
            return json.loads("".join(lines))
        lines.append(line)
reply = exchange({"cmd": "theorem t : 1 + 1 = 2 := by\n  sorry"})
state = reply["sorries"][0]["proofState"]
exchange({"tactic": "rfl", "proofState": state})
own = []
for _ in range(tactics):
    started = time.perf_counter()
    exchange({"tactic": "rfl", "proofState": state})
    own.append((time.perf_counter() - started) * 1000)
repl.stdin.close(); repl.wait()

session, root = open_session(0)
tactic(session, root)
farm = []
for _ in range(tactics):
    started = time.perf_counter()
    tactic(session, root)
    farm.append((time.perf_counter() - started) * 1000)
call("DELETE", f"/v1/sessions/{session}")

print(f"one tactic, {tactics} round trips, sequential:")
print(f"  through the farm:  p50 {quantile(farm, .5):7.2f} ms  p99 {quantile(farm, .99):7.2f} ms")
print(f"  the REPL alone:    p50 {quantile(own, .5):7.2f} ms  p99 {quantile(own, .99):7.2f} ms")
print(f"  farm's added cost: p50 {quantile(farm, .5) - quantile(own, .5):7.2f} ms  p99 {quantile(farm, .99) - quantile(own, .99):7.2f} ms")

for concurrent in (1, 10, 100):
    with ThreadPoolExecutor(concurrent) as pool:
        sessions = list(pool.map(open_session, range(concurrent)))
    per_session = max(1, tactics // concurrent) if concurrent > 1 else tactics
    per_session = max(per_session, 10)
    def run(pair):
        for _ in range(per_session):
            tactic(*pair)
    started = time.perf_counter()
    with ThreadPoolExecutor(concurrent) as pool:
        list(pool.map(run, sessions))
    elapsed = time.perf_counter() - started
    total = per_session * concurrent
    print(f"{concurrent:4d} concurrent sessions: {total} tactics in {elapsed:6.2f} s = {total / elapsed:8.1f} tactics/s")
    with ThreadPoolExecutor(min(concurrent, 16)) as pool:
        list(pool.map(lambda pair: call("DELETE", f"/v1/sessions/{pair[0]}"), sessions))
PY
