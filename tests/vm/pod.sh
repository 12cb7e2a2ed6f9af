#!/bin/sh
# The test pod inside the cgroup v2 VM (see guest.sh): remounts cgroup2 so
# that /sys/fs/cgroup is this pod's own cgroup, checks that it is, then runs
# every test binary of /vm/plan and prints one result line for each:
#   leanfarm-vm-result <label> <hierarchy> <passed|failed> <seconds>
# It must never run on a real machine: it is only packed into the VM.
say() { echo "leanfarm-vm: $*"; }
umount /sys/fs/cgroup
mount -t cgroup2 cgroup2 /sys/fs/cgroup || { say "error: cannot mount cgroup2 in the pod"; exit 1; }
if [ "$(cat /proc/self/cgroup)" != "0::/" ]; then
  say "error: the pod does not see its own cgroup as the root: $(cat /proc/self/cgroup)"
  exit 1
fi
hierarchy=v1
if [ -e /sys/fs/cgroup/cgroup.controllers ]; then hierarchy=v2; fi
say "pod sees /sys/fs/cgroup as its root ($hierarchy): processes $(tr '\n' ' ' < /sys/fs/cgroup/cgroup.procs), controllers $(cat /sys/fs/cgroup/cgroup.controllers), subtree_control '$(cat /sys/fs/cgroup/cgroup.subtree_control)'"

cd /vm || exit 1
while read -r label binary arguments; do
  [ -n "$label" ] || continue
  say "running $label: $binary $arguments"
  started=$(date +%s)
  # shellcheck disable=SC2086 # the arguments are words
  if "$binary" $arguments; then status=passed; else status=failed; fi
  say "sandbox cgroups left after $label: $(ls /sys/fs/cgroup/leanfarm 2>/dev/null | grep '^sandbox-' | tr '\n' ' ')"
  echo "leanfarm-vm-result $label $hierarchy $status $(( $(date +%s) - started ))"
done < /vm/plan
