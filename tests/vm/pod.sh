#!/bin/sh
# A test pod inside the cgroup v2 VM (see guest.sh), in one of two ways:
#   own-cgroup-namespace   remounts cgroup2 so that /sys/fs/cgroup is the
#                          pod's own cgroup (a Kubernetes pod on cgroup v2),
#                          checks that it is, and runs /vm/plan;
#   node-cgroup-namespace  sees the node's whole hierarchy, and runs
#                          /vm/plan-node-cgroup-namespace.
# It prints one result line for each test binary:
#   leanfarm-vm-result <label> <hierarchy> <passed|failed> <seconds> <tests passed>
# It must never run on a real machine: it is only packed into the VM.
set -o pipefail
say() { echo "leanfarm-vm: $*"; }
if [ ! -e /sys/fs/cgroup/cgroup.controllers ]; then
  say "error: /sys/fs/cgroup is not cgroup v2"
  exit 1
fi
case "$1" in
  own-cgroup-namespace)
    umount /sys/fs/cgroup
    mount -t cgroup2 cgroup2 /sys/fs/cgroup || { say "error: cannot mount cgroup2 in the pod"; exit 1; }
    if [ "$(cat /proc/self/cgroup)" != "0::/" ]; then
      say "error: the pod does not see its own cgroup as the root: $(cat /proc/self/cgroup)"
      exit 1
    fi
    hierarchy=v2
    plan=/vm/plan
    ;;
  node-cgroup-namespace)
    hierarchy=v2-node-view
    plan=/vm/plan-node-cgroup-namespace
    ;;
  *) say "error: unknown pod kind $1"; exit 1 ;;
esac
pod=$(sed -n 's/^0:://p' /proc/self/cgroup)
say "pod ($1) in cgroup $pod: processes $(tr '\n' ' ' < "/sys/fs/cgroup$pod/cgroup.procs"), controllers $(cat "/sys/fs/cgroup$pod/cgroup.controllers"), subtree_control '$(cat "/sys/fs/cgroup$pod/cgroup.subtree_control")'"

cd /vm || exit 1
while read -r label binary arguments; do
  [ -n "$label" ] || continue
  say "running $label: $binary $arguments"
  started=$(date +%s)
  # shellcheck disable=SC2086 # the arguments are words
  if "$binary" $arguments 2>&1 | tee /tmp/test-output; then status=passed; else status=failed; fi
  tests_passed=$(sed -n 's/^test result: .* \([0-9]*\) passed.*/\1/p' /tmp/test-output | head -1)
  say "sandbox cgroups left after $label: $(ls "/sys/fs/cgroup$pod/leanfarm" 2>/dev/null | grep '^sandbox-' | tr '\n' ' ')"
  echo "leanfarm-vm-result $label $hierarchy $status $(( $(date +%s) - started )) ${tests_passed:-0}"
done < "$plan"
