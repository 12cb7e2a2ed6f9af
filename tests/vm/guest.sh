#!/bin/sh
# Second init of the cgroup v2 test VM (PID 1, on a tmpfs root).
#
# Mounts cgroup2 and builds the hierarchy a Kubernetes node gives a pod:
# /sys/fs/cgroup/kubepods/pod1 with cpu, memory and pids delegated down to
# it and a memory and CPU limit of its own, as the kubelet sets them. The
# tests then run inside pod1 in a cgroup namespace of their own, with
# cgroup2 mounted again, so that /sys/fs/cgroup is the pod's cgroup and
# holds the test process itself, as a container sees it (pod.sh runs each
# test binary of /vm/plan; each ends with one result line that run.sh reads
# from the console). Then the sandbox's own tests run again in pod2, which
# has no cgroup namespace of its own and sees the node's whole hierarchy.
# It must never run on a real machine: it is only packed into the VM's
# initramfs.
export PATH=/usr/bin:/usr/sbin:/bin:/sbin
. /vm/settings
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o mode=1777 tmpfs /tmp
ip link set lo up 2>/dev/null || ifconfig lo up

say() { echo "leanfarm-vm: $*"; }
finish() {
  say "end"
  sync
  poweroff -f
  sleep 5
}

mount -t cgroup2 cgroup2 /sys/fs/cgroup || { say "error: cannot mount cgroup2"; finish; }
say "kernel $(uname -r), root cgroup controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "+cpu +memory +pids" > /sys/fs/cgroup/cgroup.subtree_control
mkdir -p /sys/fs/cgroup/kubepods/pod1
echo "+cpu +memory +pids" > /sys/fs/cgroup/kubepods/cgroup.subtree_control
echo "$POD_MEMORY_MAX" > /sys/fs/cgroup/kubepods/pod1/memory.max
echo "$POD_CPU_MAX" > /sys/fs/cgroup/kubepods/pod1/cpu.max
say "pod cgroup /kubepods/pod1: controllers $(cat /sys/fs/cgroup/kubepods/pod1/cgroup.controllers), memory.max $(cat /sys/fs/cgroup/kubepods/pod1/memory.max), cpu.max $(cat /sys/fs/cgroup/kubepods/pod1/cpu.max)"

# The pod as Kubernetes runs it on cgroup v2 (containerd's default): it
# joins pod1, then a cgroup and a mount namespace of its own.
sh -c 'echo $$ > /sys/fs/cgroup/kubepods/pod1/cgroup.procs && exec /usr/bin/unshare-util-linux --cgroup --mount sh /vm/pod.sh own-cgroup-namespace'
say "pod1 exited with status $?"

# A pod without a cgroup namespace of its own (a runtime configured so):
# it sees the node's whole hierarchy, and must still keep its sandboxes
# inside its own cgroup, pod2.
mkdir -p /sys/fs/cgroup/kubepods/pod2
echo "$POD_MEMORY_MAX" > /sys/fs/cgroup/kubepods/pod2/memory.max
sh -c 'echo $$ > /sys/fs/cgroup/kubepods/pod2/cgroup.procs && exec sh /vm/pod.sh node-cgroup-namespace'
say "pod2 exited with status $?"
finish
