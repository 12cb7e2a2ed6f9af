#!/usr/bin/env bash
# The cost of exporting traces: the end-to-end farm benchmark (farm_bench,
# as bench/farm.sh runs it) with traces off, then with every span exported
# over OTLP/HTTP to a local sink that answers 200 and counts what it got.
# Usage: bench/traces.sh [farm_bench options: --cost-ms 50 --jobs 200 --sandbox native]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm
sink_log="$(mktemp)"
python3 -u - "$sink_log" <<'PY' &
import http.server, signal, sys
log = sys.argv[1]
received = {"requests": 0, "bytes": 0}
class Sink(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        received["requests"] += 1
        received["bytes"] += len(body)
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *args):
        pass
server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
open(log, "w").write(f"{server.server_address[1]}\n")
def stop(*_):
    print(f"OTLP sink: {received['requests']} export requests, {received['bytes']} bytes")
    sys.exit(0)
signal.signal(signal.SIGTERM, stop)
server.serve_forever()
PY
sink=$!
trap 'kill $sink 2>/dev/null || true; rm -f "$sink_log"' EXIT
until [ -s "$sink_log" ]; do sleep 0.1; done
port="$(head -1 "$sink_log")"
echo "== traces off"
cargo run --release -q -p leanfarm --example farm_bench -- "$@"
echo "== traces exported to http://127.0.0.1:$port (OTLP/HTTP)"
LEAN_FARM_OTLP_ENDPOINT="http://127.0.0.1:$port" cargo run --release -q -p leanfarm --example farm_bench -- "$@"
kill "$sink"
wait "$sink" || true
