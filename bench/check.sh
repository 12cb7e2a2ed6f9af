#!/usr/bin/env bash
# `leanfarm check` end to end: N files, each costing C ms (lean-sim sleeps),
# checked by check's own farm with S slots. Prints files per second and the
# share of the physical limit (S slots / C ms per check), and at C = 0 what
# a file costs the whole pipeline (read, submit, check, poll, export, print).
# Usage: bench/check.sh [--files 2000] [--cost-ms 20] [--slots 2] [--sandbox native] [--release]
set -euo pipefail
cd "$(dirname "$0")/.."
files=2000 cost=20 slots=2 sandbox=native profile=debug
while [ $# -gt 0 ]; do
  case "$1" in
    --files) files=$2; shift 2 ;;
    --cost-ms) cost=$2; shift 2 ;;
    --slots) slots=$2; shift 2 ;;
    --sandbox) sandbox=$2; shift 2 ;;
    --release) profile=release; shift ;;
    *) echo "bench/check.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [ "$profile" = release ]; then cargo build --release -q -p leanfarm; else cargo build -q -p leanfarm; fi
binary="${CARGO_TARGET_DIR:-target}/$profile/leanfarm"
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
mkdir "$dir/proofs"
for i in $(seq 1 "$files"); do
  printf 'theorem t%d : True := by\n  -- sim: sleep %d\n  trivial\n' "$i" "$cost" >"$dir/proofs/p$(printf %06d "$i").lean"
done
start=$(date +%s.%N)
"$binary" check --simulate --slots "$slots" --sandbox "$sandbox" "$dir/proofs" >"$dir/table" 2>"$dir/stderr" || {
  echo "leanfarm check failed:" >&2; tail -5 "$dir/stderr" >&2; exit 1; }
end=$(date +%s.%N)
valid=$(grep -c '^valid ' "$dir/table" || true)
python3 - "$files" "$cost" "$slots" "$start" "$end" "$valid" "$profile" <<'PY'
import sys
files, cost, slots = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3])
seconds = float(sys.argv[5]) - float(sys.argv[4])
valid, profile = int(sys.argv[6]), sys.argv[7]
rate = files / seconds
print(f"leanfarm check ({profile}): {files} files, {cost:g} ms each, {slots} slots: "
      f"{seconds:.2f} s, {rate:.1f} files/s, {valid} valid")
if cost > 0:
    limit = slots * 1000 / cost
    print(f"physical limit {limit:.1f} files/s: {100 * rate / limit:.1f} %")
else:
    print(f"{1000 * seconds / files:.2f} ms per file for the whole run (start-up included)")
PY
