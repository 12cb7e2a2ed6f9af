#!/usr/bin/env bash
# Side by side with the Kimina Lean Server: both servers on lean-sim at the
# same stand-in cost and the same number of REPL slots, driven by the same
# client through the Kimina API (/api/check and /verify); prints the table of
# throughput against the physical limit, added latency, 0 ms throughput and
# server CPU per snippet (crates/cli/examples/kimina_bench.rs).
#
# The Kimina server is not part of this repository. By default this script
# installs PyPI's `kimina-ast-server` (the Kimina Lean Server's `server`
# package, with /api/check and /verify) into a virtual environment under the
# cargo target directory, with FastAPI 0.115 (later releases refuse the
# `logger` argument its app passes to FastAPI). To run a checkout of
# project-numina/kimina-lean-server instead:
#   KIMINA_SOURCE=/path/to/kimina-lean-server bench/kimina.sh
# (installed with `pip install -e`; it must provide `python -m server`).
# Kimina starts each REPL as `lake env REPL_PATH` in its project directory:
# here `lake` is a shim that runs the rest of its arguments, and REPL_PATH is
# lean-sim. Kimina's optional database stays off (no LEAN_SERVER_DATABASE_URL):
# every use of its Prisma client is behind a connection that is then never
# made, so when the client cannot be generated (that needs engines from
# binaries.prisma.sh) an empty `prisma` module stands in for it.
#
# Usage: bench/kimina.sh [--slots 4] [--cost-ms 50] [--jobs 400] [--jobs-zero 2000]
#   [--sandbox native|gvisor|none]
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release -q -p leanfarm -p lean-sim
cargo build --release -q -p leanfarm --example kimina_bench
target=${CARGO_TARGET_DIR:-$PWD/target}
slots=4
args=("$@")
for ((i = 0; i < ${#args[@]}; i++)); do
  if [[ ${args[$i]} == --slots ]]; then slots=${args[$((i + 1))]}; fi
done

venv=${KIMINA_VENV:-$target/kimina-venv}
if [[ ! -x $venv/bin/python ]]; then
  python3 -m venv "$venv"
fi
if [[ -n ${KIMINA_SOURCE:-} ]]; then
  "$venv/bin/pip" install -q -e "$KIMINA_SOURCE"
elif ! "$venv/bin/python" -c 'import server.main' 2>/dev/null; then
  "$venv/bin/pip" install -q 'kimina-ast-server==2.1.3' 'fastapi==0.115.14'
fi

work=$(mktemp -d)
kimina_pid=
cleanup() {
  if [[ -n $kimina_pid ]]; then
    kill "$kimina_pid" 2>/dev/null || true
    wait "$kimina_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
mkdir -p "$work/bin" "$work/project"
cat >"$work/bin/lake" <<'LAKE'
#!/bin/sh
# `lake env CMD ARGS...` runs CMD ARGS...
[ "$1" = env ] && shift
exec "$@"
LAKE
chmod +x "$work/bin/lake"
cp "$target/release/lean-sim" "$work/bin/repl"

# kimina-client's models declare typing.TypedDict classes, which pydantic
# accepts only on Python >= 3.12; on older Pythons typing_extensions'
# TypedDict (the same class, which pydantic accepts) takes its place.
mkdir -p "$work/py"
cat >"$work/py/sitecustomize.py" <<'SITE'
import sys

if sys.version_info < (3, 12):
    import typing

    import typing_extensions

    typing.TypedDict = typing_extensions.TypedDict
SITE
export PYTHONPATH="$work/py"
if ! (cd "$work" && "$venv/bin/python" -c 'from prisma import Prisma' 2>/dev/null); then
  mkdir -p "$work/py/prisma"
  cat >"$work/py/prisma/__init__.py" <<'PRISMA'
class Prisma:
    """The database client of a Kimina server without a database."""

    async def connect(self):
        raise RuntimeError("no database in this benchmark")

    async def disconnect(self):
        pass
PRISMA
fi

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(
  cd "$work"
  export PATH="$work/bin:$PATH"
  export LEAN_SERVER_HOST=127.0.0.1 LEAN_SERVER_PORT=$port LEAN_SERVER_LOG_LEVEL=WARNING
  export LEAN_SERVER_ENVIRONMENT=prod LEAN_SERVER_MAX_REPLS=$slots
  export LEAN_SERVER_REPL_PATH=$work/bin/repl LEAN_SERVER_PROJECT_DIR=$work/project
  export LEAN_SERVER_SKIP_VALIDATION=1
  exec "$venv/bin/python" -m server >"$work/kimina.log" 2>&1
) &
kimina_pid=$!
for _ in $(seq 300); do
  if curl -sf "http://127.0.0.1:$port/health" >/dev/null; then break; fi
  if ! kill -0 "$kimina_pid" 2>/dev/null; then cat "$work/kimina.log"; exit 1; fi
  sleep 0.2
done
curl -sf "http://127.0.0.1:$port/health" >/dev/null || { cat "$work/kimina.log"; exit 1; }
"$target/release/examples/kimina_bench" --kimina "http://127.0.0.1:$port" --kimina-pid "$kimina_pid" "$@"
