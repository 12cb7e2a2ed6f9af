//! Per-process cgroups on cgroup v1 (one directory per controller) or v2
//! (one unified directory): limits, usage, OOM events, and killing the tree.
//!
//! On v2 every group is made under the farm's own cgroup (see
//! `farm_directory_v2`): this module must never write above it, where the
//! node's or another pod's groups are, and must never kill a process that is
//! not in one of its sandbox groups. `docs/sandbox.md` says what a host or a
//! pod must grant, and `tests/vm/run.sh` runs these groups on a cgroup v2
//! kernel.

use crate::SandboxError;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

const PARENT: &str = "leanfarm";

#[derive(Clone, Debug)]
pub(crate) enum Layout {
    V1 {
        root: PathBuf,
        has_freezer: bool,
        has_cpu: bool,
        /// `cpuacct` is a hierarchy of its own (not mounted with `cpu`),
        /// where each process gets a group for its CPU time.
        separate_cpuacct: bool,
    },
    V2 {
        root: PathBuf,
    },
}

/// Where the cgroup filesystems are mounted.
const MOUNT_POINT: &str = "/sys/fs/cgroup";

/// The leaf the farm moves its own processes into on cgroup v2 (see
/// `move_processes_to_leaf`).
const SUPERVISOR_LEAF: &str = "leanfarm-supervisor";

/// Find the cgroup layout of this host and prepare the parent group.
pub(crate) fn detect() -> Result<Layout, String> {
    let mount_point = PathBuf::from(MOUNT_POINT);
    if mount_point.join("cgroup.controllers").exists() {
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
            .map_err(|e| format!("cannot read /proc/self/mountinfo: {e}"))?;
        let farm = farm_directory_v2(&own, &mountinfo)?;
        return prepare_v2(&mount_point.join(farm));
    }
    let root = mount_point;
    if root.join("memory").is_dir() && root.join("pids").is_dir() {
        for controller in ["memory", "pids"] {
            let parent = root.join(controller).join(PARENT);
            std::fs::create_dir_all(&parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let has_freezer = std::fs::create_dir_all(root.join("freezer").join(PARENT)).is_ok();
        let has_cpu = std::fs::create_dir_all(root.join("cpu").join(PARENT)).is_ok();
        let same = |a: &str, b: &str| matches!((root.join(a).canonicalize(), root.join(b).canonicalize()), (Ok(x), Ok(y)) if x == y);
        let separate_cpuacct = root.join("cpuacct").is_dir()
            && !same("cpu", "cpuacct")
            && std::fs::create_dir_all(root.join("cpuacct").join(PARENT)).is_ok();
        if !has_cpu {
            tracing::warn!("no cgroup v1 cpu controller: sandboxes run without a CPU limit");
        }
        return Ok(Layout::V1 {
            root,
            has_freezer,
            has_cpu,
            separate_cpuacct,
        });
    }
    Err("no usable cgroup v1 or v2 hierarchy with the memory and pids controllers".to_string())
}

/// The directory, relative to the cgroup2 mount at /sys/fs/cgroup, under
/// which the farm makes its groups on cgroup v2: its own cgroup (the `0::`
/// line of /proc/self/cgroup, `own`), seen through the mount's root (from
/// /proc/self/mountinfo, `mountinfo`); or that cgroup's parent when it is
/// the supervisor leaf an earlier start moved the farm into.
///
/// In a pod with a cgroup namespace of its own, this is the mount's root,
/// the pod's cgroup. In one that sees the node's whole hierarchy, it is
/// still the pod's cgroup, so that the sandboxes count against the pod's
/// limits instead of escaping them at the node's root.
fn farm_directory_v2(own: &str, mountinfo: &str) -> Result<PathBuf, String> {
    let own_path = own
        .lines()
        .find_map(|line| line.strip_prefix("0::"))
        .ok_or_else(|| format!("/proc/self/cgroup names no cgroup v2 group: {own:?}"))?;
    let mount_root = mountinfo
        .lines()
        .find_map(|line| {
            let (mount, filesystem) = line.split_once(" - ")?;
            let fields: Vec<&str> = mount.split(' ').collect();
            let is_cgroup2 = filesystem.split(' ').next() == Some("cgroup2");
            (is_cgroup2 && fields.get(4) == Some(&MOUNT_POINT))
                .then(|| fields.get(3).copied())
                .flatten()
        })
        .ok_or_else(|| format!("no cgroup2 filesystem is mounted at {MOUNT_POINT}"))?;
    let relative = if mount_root == "/" {
        Some(own_path)
    } else {
        own_path
            .strip_prefix(mount_root)
            .filter(|rest| rest.is_empty() || rest.starts_with('/'))
    }
    .ok_or_else(|| {
        format!(
            "this process's cgroup {own_path} is outside the cgroup2 mount at {MOUNT_POINT} (whose root is {mount_root})"
        )
    })?;
    let mut directory = PathBuf::from(relative.trim_start_matches('/'));
    // A process that entered a cgroup namespace from outside its root sees
    // its own cgroup as `/..`: that is no place of the farm's.
    if directory
        .components()
        .any(|part| part == std::path::Component::ParentDir)
    {
        return Err(format!(
            "this process's cgroup {own_path} is outside the cgroup2 mount at {MOUNT_POINT}"
        ));
    }
    if directory.file_name() == Some(std::ffi::OsStr::new(SUPERVISOR_LEAF)) {
        directory.pop();
    }
    Ok(directory)
}

/// Prepare the farm's cgroup v2 directory `farm`: hand the controllers down
/// to a `leanfarm` group below it, where each sandbox gets its group.
fn prepare_v2(farm: &Path) -> Result<Layout, String> {
    let offered = std::fs::read_to_string(farm.join("cgroup.controllers")).map_err(|e| {
        format!(
            "cannot read {}: {e}",
            farm.join("cgroup.controllers").display()
        )
    })?;
    for required in ["memory", "pids"] {
        if !offered.split_whitespace().any(|c| c == required) {
            return Err(format!(
                "the {required} controller is not delegated to {} (it offers: {})",
                farm.display(),
                offered.trim()
            ));
        }
    }
    let parent = farm.join(PARENT);
    std::fs::create_dir_all(&parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    // A cgroup holding processes cannot hand controllers to its children
    // (unless it is the host's root): move its processes, the farm's own
    // among them, to a leaf, then retry. A process forked while they move,
    // or one the kernel has not finished moving, makes the retry fail with
    // EBUSY again for a moment: move again, a bounded number of times.
    const MOST_MOVES: u32 = 50;
    let mut moves = 0;
    loop {
        match enable_controllers(farm) {
            Ok(()) => break,
            Err(error) if error.raw_os_error() == Some(libc::EBUSY) && moves < MOST_MOVES => {
                if moves > 0 {
                    std::thread::sleep(Duration::from_millis(10));
                }
                move_processes_to_leaf(farm)?;
                moves += 1;
            }
            Err(error) => {
                return Err(format!(
                    "cannot enable controllers in {} (after moving its processes {moves} times): {error}",
                    farm.display()
                ))
            }
        }
    }
    enable_controllers(&parent)
        .map_err(|e| format!("cannot enable controllers in {}: {e}", parent.display()))?;
    if !offered.split_whitespace().any(|c| c == "cpu") {
        tracing::warn!(cgroup = %farm.display(), "the cpu controller is not delegated: sandboxes run without a CPU limit");
    }
    Ok(Layout::V2 { root: parent })
}

/// Enable memory and pids (required) and cpu (if offered) for the children
/// of a cgroup v2 directory.
fn enable_controllers(dir: &Path) -> std::io::Result<()> {
    let control = dir.join("cgroup.subtree_control");
    std::fs::write(&control, "+memory +pids")?;
    let offered = std::fs::read_to_string(dir.join("cgroup.controllers")).unwrap_or_default();
    if offered.split_whitespace().any(|c| c == "cpu") {
        let _ = std::fs::write(&control, "+cpu");
    }
    Ok(())
}

/// Move every process of a cgroup v2 directory into its child
/// `leanfarm-supervisor`, so that the directory may enable controllers.
fn move_processes_to_leaf(dir: &Path) -> Result<(), String> {
    let leaf = dir.join(SUPERVISOR_LEAF);
    std::fs::create_dir_all(&leaf).map_err(|e| format!("cannot create {}: {e}", leaf.display()))?;
    let procs = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map_err(|e| format!("cannot read {}: {e}", dir.join("cgroup.procs").display()))?;
    for pid in procs.lines().map(str::trim).filter(|pid| !pid.is_empty()) {
        if let Err(error) = std::fs::write(leaf.join("cgroup.procs"), pid) {
            // A process that exited meanwhile is gone already.
            if error.raw_os_error() != Some(libc::ESRCH) {
                return Err(format!(
                    "cannot move process {pid} to {}: {error}",
                    leaf.display()
                ));
            }
        }
    }
    Ok(())
}

/// Remove the groups left by processes that died without tearing down
/// (a farm killed with SIGKILL): `sandbox-PID-...` whose PID is gone. What
/// still runs in them is killed first, as at any teardown.
pub(crate) fn sweep_stale(layout: &Layout, is_stale: impl Fn(&str) -> bool) {
    let parents: Vec<PathBuf> = match layout {
        Layout::V2 { root } => vec![root.clone()],
        Layout::V1 { root, .. } => ["memory", "pids", "freezer", "cpu", "cpuacct"]
            .iter()
            .map(|c| root.join(c).join(PARENT))
            .collect(),
    };
    // One group per stale name, with its directory under every controller.
    let mut stale: std::collections::BTreeMap<String, Vec<PathBuf>> = Default::default();
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && is_stale(&name) {
                stale.entry(name).or_default().push(entry.path());
            }
        }
    }
    for (name, directories) in stale {
        let mut group = ProcessGroup {
            layout: layout.clone(),
            name,
            directories,
            procs_files: Vec::new(),
        };
        group.kill_all();
        group.remove();
        tracing::info!(group = %group.name, "removed a cgroup left by a dead process");
    }
}

/// The cgroup(s) of one sandboxed process tree.
#[derive(Debug)]
pub(crate) struct ProcessGroup {
    layout: Layout,
    name: String,
    /// Every directory created, for cleanup.
    directories: Vec<PathBuf>,
    /// `cgroup.procs` files the child must join.
    pub procs_files: Vec<PathBuf>,
}

fn write(path: &Path, value: &str) -> Result<(), SandboxError> {
    std::fs::write(path, value).map_err(|e| {
        SandboxError::Setup(format!(
            "cannot write {} to {}: {e}",
            value.trim(),
            path.display()
        ))
    })
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

fn read_keyed(path: &Path, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().find_map(|line| {
        line.strip_prefix(key)
            .and_then(|rest| rest.trim().parse().ok())
    })
}

impl ProcessGroup {
    pub(crate) fn create(
        layout: &Layout,
        name: &str,
        memory_bytes: u64,
        pids: u64,
        cpu_cores: f64,
    ) -> Result<ProcessGroup, SandboxError> {
        let mut group = ProcessGroup {
            layout: layout.clone(),
            name: name.to_string(),
            directories: Vec::new(),
            procs_files: Vec::new(),
        };
        let quota = (cpu_cores.max(0.01) * 100_000.0) as u64;
        match layout {
            Layout::V2 { root } => {
                let dir = root.join(name);
                group.make(&dir)?;
                write(&dir.join("memory.max"), &memory_bytes.to_string())?;
                let _ = std::fs::write(dir.join("memory.swap.max"), "0");
                write(&dir.join("pids.max"), &pids.to_string())?;
                let _ = std::fs::write(dir.join("cpu.max"), format!("{quota} 100000"));
                group.procs_files.push(dir.join("cgroup.procs"));
            }
            Layout::V1 {
                root,
                has_freezer,
                has_cpu,
                separate_cpuacct,
            } => {
                let memory = root.join("memory").join(PARENT).join(name);
                group.make(&memory)?;
                write(
                    &memory.join("memory.limit_in_bytes"),
                    &memory_bytes.to_string(),
                )?;
                let _ = std::fs::write(
                    memory.join("memory.memsw.limit_in_bytes"),
                    memory_bytes.to_string(),
                );
                let pids_dir = root.join("pids").join(PARENT).join(name);
                group.make(&pids_dir)?;
                write(&pids_dir.join("pids.max"), &pids.to_string())?;
                group.procs_files.push(memory.join("cgroup.procs"));
                group.procs_files.push(pids_dir.join("cgroup.procs"));
                if *has_freezer {
                    let freezer = root.join("freezer").join(PARENT).join(name);
                    group.make(&freezer)?;
                    group.procs_files.push(freezer.join("cgroup.procs"));
                }
                if *has_cpu {
                    let cpu = root.join("cpu").join(PARENT).join(name);
                    group.make(&cpu)?;
                    let _ = std::fs::write(cpu.join("cpu.cfs_period_us"), "100000");
                    let _ = std::fs::write(cpu.join("cpu.cfs_quota_us"), quota.to_string());
                    group.procs_files.push(cpu.join("cgroup.procs"));
                }
                if *separate_cpuacct {
                    let cpuacct = root.join("cpuacct").join(PARENT).join(name);
                    group.make(&cpuacct)?;
                    group.procs_files.push(cpuacct.join("cgroup.procs"));
                }
            }
        }
        Ok(group)
    }

    fn make(&mut self, dir: &Path) -> Result<(), SandboxError> {
        std::fs::create_dir(dir).map_err(|e| {
            SandboxError::Setup(format!("cannot create cgroup {}: {e}", dir.display()))
        })?;
        self.directories.push(dir.to_path_buf());
        Ok(())
    }

    fn memory_dir(&self) -> PathBuf {
        match &self.layout {
            Layout::V2 { root } => root.join(&self.name),
            Layout::V1 { root, .. } => root.join("memory").join(PARENT).join(&self.name),
        }
    }

    pub(crate) fn memory_bytes(&self) -> Option<u64> {
        match &self.layout {
            Layout::V2 { .. } => read_u64(&self.memory_dir().join("memory.current")),
            Layout::V1 { .. } => read_u64(&self.memory_dir().join("memory.usage_in_bytes")),
        }
    }

    pub(crate) fn peak_memory_bytes(&self) -> Option<u64> {
        match &self.layout {
            Layout::V2 { .. } => read_u64(&self.memory_dir().join("memory.peak")),
            Layout::V1 { .. } => read_u64(&self.memory_dir().join("memory.max_usage_in_bytes")),
        }
    }

    /// Whether the kernel's OOM killer killed a process of this group.
    pub(crate) fn oom_killed(&self) -> bool {
        let count = match &self.layout {
            Layout::V2 { .. } => read_keyed(&self.memory_dir().join("memory.events"), "oom_kill "),
            Layout::V1 { .. } => {
                read_keyed(&self.memory_dir().join("memory.oom_control"), "oom_kill ")
            }
        };
        count.unwrap_or(0) > 0
    }

    pub(crate) fn cpu_time(&self) -> Option<Duration> {
        match &self.layout {
            Layout::V2 { root } => {
                read_keyed(&root.join(&self.name).join("cpu.stat"), "usage_usec ")
                    .map(Duration::from_micros)
            }
            // Where the group has no cpuacct directory, the read finds nothing.
            Layout::V1 { root, .. } => read_u64(
                &root
                    .join("cpuacct")
                    .join(PARENT)
                    .join(&self.name)
                    .join("cpuacct.usage"),
            )
            .map(Duration::from_nanos),
        }
    }

    pub(crate) fn process_count(&self) -> usize {
        self.pids().len()
    }

    fn pids(&self) -> Vec<i32> {
        let procs = self.memory_dir().join("cgroup.procs");
        std::fs::read_to_string(procs)
            .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect())
            .unwrap_or_default()
    }

    /// Kill every process in the group, including ones that left their
    /// session or process group; bounded to about a second.
    pub(crate) fn kill_all(&self) {
        if let Layout::V2 { root } = &self.layout {
            if std::fs::write(root.join(&self.name).join("cgroup.kill"), "1").is_ok() {
                self.wait_empty(Duration::from_secs(1));
                return;
            }
        }
        let freezer = match &self.layout {
            Layout::V1 {
                root,
                has_freezer: true,
                ..
            } => Some(
                root.join("freezer")
                    .join(PARENT)
                    .join(&self.name)
                    .join("freezer.state"),
            ),
            _ => None,
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            if let Some(state) = &freezer {
                let _ = std::fs::write(state, "FROZEN");
            }
            let pids = self.pids();
            for pid in &pids {
                // SAFETY: kill(2) has no memory effects.
                unsafe { libc::kill(*pid, libc::SIGKILL) };
            }
            if let Some(state) = &freezer {
                let _ = std::fs::write(state, "THAWED");
            }
            if pids.is_empty() || Instant::now() > deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        self.wait_empty(deadline.saturating_duration_since(Instant::now()));
    }

    fn wait_empty(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.pids().is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Remove the group's directories (after its processes are gone).
    pub(crate) fn remove(&mut self) {
        for dir in self.directories.drain(..).rev() {
            for _ in 0..100 {
                if std::fs::remove_dir(&dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// /proc/self/mountinfo with cgroup2 at /sys/fs/cgroup, its root `root`.
    fn mountinfo_with_cgroup2_root(root: &str) -> String {
        format!(
            "24 1 0:22 / / rw,relatime - tmpfs tmpfs rw\n\
             35 24 0:30 {root} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n\
             36 24 0:31 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"
        )
    }

    #[test]
    fn in_its_own_cgroup_namespace_the_farm_uses_the_mounts_root() {
        let mountinfo = mountinfo_with_cgroup2_root("/");
        assert_eq!(farm_directory_v2("0::/\n", &mountinfo), Ok(PathBuf::new()));
        assert_eq!(
            farm_directory_v2("0::/leanfarm-supervisor\n", &mountinfo),
            Ok(PathBuf::new())
        );
    }

    #[test]
    fn seeing_the_nodes_hierarchy_the_farm_stays_in_its_own_cgroup() {
        let mountinfo = mountinfo_with_cgroup2_root("/");
        assert_eq!(
            farm_directory_v2("0::/kubepods/pod2\n", &mountinfo),
            Ok(PathBuf::from("kubepods/pod2"))
        );
        assert_eq!(
            farm_directory_v2("0::/kubepods/pod2/leanfarm-supervisor\n", &mountinfo),
            Ok(PathBuf::from("kubepods/pod2"))
        );
    }

    #[test]
    fn a_mounted_subtree_is_read_relative_to_its_root() {
        let mountinfo = mountinfo_with_cgroup2_root("/kubepods/pod2");
        assert_eq!(
            farm_directory_v2("0::/kubepods/pod2/leanfarm-supervisor\n", &mountinfo),
            Ok(PathBuf::new())
        );
        assert_eq!(
            farm_directory_v2("0::/kubepods/pod2/worker\n", &mountinfo),
            Ok(PathBuf::from("worker"))
        );
    }

    #[test]
    fn a_cgroup_outside_the_mount_or_no_cgroup2_is_refused_with_a_reason() {
        let mountinfo = mountinfo_with_cgroup2_root("/kubepods/pod1");
        for own in ["0::/kubepods/pod2\n", "0::/kubepods/pod10\n"] {
            let error = farm_directory_v2(own, &mountinfo).unwrap_err();
            assert!(error.contains("outside the cgroup2 mount"), "{error}");
        }
        let error =
            farm_directory_v2("0::/../pod2\n", &mountinfo_with_cgroup2_root("/")).unwrap_err();
        assert!(error.contains("outside the cgroup2 mount"), "{error}");
        let error = farm_directory_v2("0::/\n", "24 1 0:22 / / rw - tmpfs tmpfs rw\n").unwrap_err();
        assert!(
            error.contains("no cgroup2 filesystem is mounted"),
            "{error}"
        );
        let error =
            farm_directory_v2("4:memory:/\n", &mountinfo_with_cgroup2_root("/")).unwrap_err();
        assert!(error.contains("names no cgroup v2 group"), "{error}");
    }

    fn read(path: &Path) -> String {
        std::fs::read_to_string(path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
            .trim()
            .to_string()
    }

    /// A group carries the memory, process and CPU limits it was created
    /// with, in the files of this host's hierarchy, and leaves nothing
    /// behind once removed. Needs root, as the sandbox does.
    #[test]
    fn a_group_carries_its_limits_and_is_removed() {
        let layout = detect().expect("a usable cgroup hierarchy");
        let name = format!("sandbox-{}-unit-limits", std::process::id());
        let mut group = ProcessGroup::create(&layout, &name, 64 << 20, 7, 0.25).unwrap();
        let directories = group.directories.clone();
        match &layout {
            Layout::V2 { root } => {
                let dir = root.join(&name);
                assert_eq!(read(&dir.join("memory.max")), (64u64 << 20).to_string());
                assert_eq!(read(&dir.join("pids.max")), "7");
                assert_eq!(read(&dir.join("memory.swap.max")), "0");
                let offered = read(&root.join("cgroup.controllers"));
                if offered.split_whitespace().any(|c| c == "cpu") {
                    assert_eq!(read(&dir.join("cpu.max")), "25000 100000");
                }
                assert_eq!(group.procs_files, vec![dir.join("cgroup.procs")]);
            }
            Layout::V1 { root, has_cpu, .. } => {
                let memory = root.join("memory").join(PARENT).join(&name);
                assert_eq!(
                    read(&memory.join("memory.limit_in_bytes")),
                    (64u64 << 20).to_string()
                );
                let pids = root.join("pids").join(PARENT).join(&name);
                assert_eq!(read(&pids.join("pids.max")), "7");
                if *has_cpu {
                    let cpu = root.join("cpu").join(PARENT).join(&name);
                    assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "25000");
                    assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
                }
                assert!(group.procs_files.contains(&memory.join("cgroup.procs")));
                assert!(group.procs_files.contains(&pids.join("cgroup.procs")));
            }
        }
        assert_eq!(group.process_count(), 0);
        group.kill_all();
        group.remove();
        for dir in directories {
            assert!(!dir.exists(), "{} is left", dir.display());
        }
    }

    /// Creating a group that exists already fails with a message naming it
    /// (two spawns never share a group).
    #[test]
    fn a_group_name_is_never_reused() {
        let layout = detect().expect("a usable cgroup hierarchy");
        let name = format!("sandbox-{}-unit-twice", std::process::id());
        let mut first = ProcessGroup::create(&layout, &name, 64 << 20, 7, 1.0).unwrap();
        let second = ProcessGroup::create(&layout, &name, 64 << 20, 7, 1.0).unwrap_err();
        assert!(
            second.to_string().contains("cannot create cgroup")
                && second.to_string().contains(&name),
            "{second}"
        );
        first.remove();
    }
}
