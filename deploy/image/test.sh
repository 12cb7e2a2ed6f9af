#!/usr/bin/env bash
# Build the `leanfarm` image and run it: `/healthz` answers and one
# simulated check gets a `valid` verdict from inside the image.
#
# The image runs under gVisor (`runsc`) directly on its root filesystem
# (`buildah mount`), read-only, as the image's own non-root user, with only
# the image's declared volumes writable (tmpfs). `podman run` is not used:
# on the development machine it fails without `--network=none` (netavark
# is missing) and with it (crun cannot set RLIMIT_NOFILE/NPROC there).
#
# Inside, `leanfarm serve --simulate --sandbox none` checks with lean-sim;
# the sandbox itself is tested by the Rust suites, not here.
#
# Skips (exit 0, printing `SKIP: reason`) where buildah, runsc or curl is
# missing or buildah cannot work (not root, no storage driver). Any other
# failure exits 1.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

skip() { echo "SKIP: image test: $*"; exit 0; }
fail() { echo "FAIL: image test: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || skip "needs root for buildah and runsc"
for tool in buildah runsc curl python3; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done
buildah info >/dev/null 2>&1 || skip "buildah cannot work here: $(buildah info 2>&1 | tail -1)"

tag="$("$here/build.sh" localhost/leanfarm:test | tail -1)"
echo "built $tag"

user="$(buildah inspect --type image --format '{{.OCIv1.Config.User}}' "$tag")"
case "$user" in
  ""|0|0:*|root|root:*) fail "the image runs as root ('$user'), API replicas must not" ;;
esac
uid="${user%%:*}"; gid="${user##*:}"
volumes="$(buildah inspect --type image --format '{{range $path, $_ := .OCIv1.Config.Volumes}}{{$path}} {{end}}' "$tag")"
for volume in /var/lib/leanfarm /tmp; do
  case " $volumes" in
    *" $volume "*) ;;
    *) fail "the image does not declare $volume as a volume (declared: $volumes)" ;;
  esac
done

work="$(mktemp -d)"
container="$(buildah from "$tag")"
state="$work/runsc-state"
id="leanfarm-image-test-$$"
cleanup() {
  runsc --root "$state" kill "$id" KILL >/dev/null 2>&1 || true
  runsc --root "$state" delete --force "$id" >/dev/null 2>&1 || true
  buildah umount "$container" >/dev/null 2>&1 || true
  buildah rm "$container" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
rootfs="$(buildah mount "$container")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"

# The OCI bundle: the image's entrypoint with the image test's command,
# its user, a read-only root, tmpfs on the declared volumes.
mkdir -p "$work/bundle" "$state"
python3 - "$work/bundle/config.json" "$rootfs" "$uid" "$gid" "$port" <<'PY'
import json, sys
path, rootfs, uid, gid, port = sys.argv[1:]
config = {
    "ociVersion": "1.0.2",
    "root": {"path": rootfs, "readonly": True},
    "process": {
        "user": {"uid": int(uid), "gid": int(gid)},
        "cwd": "/var/lib/leanfarm",
        "args": ["/usr/local/bin/leanfarm", "serve", "--simulate", "--sandbox", "none",
                 "--slots", "1", "--addr", f"127.0.0.1:{port}"],
        "env": ["PATH=/usr/local/bin:/usr/bin:/bin", "LEAN_FARM_DATA_DIR=/var/lib/leanfarm",
                "LEAN_FARM_LOG=warn"],
        "noNewPrivileges": True,
        "capabilities": {k: [] for k in ["bounding", "effective", "inheritable", "permitted", "ambient"]},
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 4096, "soft": 4096}],
    },
    "hostname": "leanfarm",
    "mounts": [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]},
        {"destination": "/var/lib/leanfarm", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=256m"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", "size=64m"]},
    ],
    "linux": {"namespaces": [{"type": t} for t in ["pid", "ipc", "uts", "mount"]]},
}
json.dump(config, open(path, "w"), indent=1)
PY

runsc --root "$state" --network=host --ignore-cgroups run --bundle "$work/bundle" "$id" \
  >"$work/stdout" 2>"$work/stderr" &
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fsS "$url/healthz" >"$work/healthz" 2>/dev/null && break
  sleep 0.3
done
if ! grep -q '"status":"ok"' "$work/healthz" 2>/dev/null; then
  cat "$work/stderr" >&2
  fail "/healthz did not answer {\"status\":\"ok\"} within 30 s"
fi
echo "healthz: $(cat "$work/healthz")"

curl -fsS -H 'content-type: application/json' \
  -d '{"snippets":[{"id":"image","code":"theorem t : 1 + 1 = 2 := by decide"}],"wait":60}' \
  "$url/v1/checks" >"$work/check" || { cat "$work/stderr" >&2; fail "POST /v1/checks failed"; }
python3 - "$work/check" <<'PY' || fail "the simulated check did not come back valid: $(cat "$work/check")"
import json, sys
reply = json.load(open(sys.argv[1]))
status = reply["results"][0]["verdict"]["status"]
print("check verdict:", status)
sys.exit(0 if status == "valid" else 1)
PY
echo "PASS: image test: $tag serves /healthz and checks a snippet, read-only root, uid $uid"
