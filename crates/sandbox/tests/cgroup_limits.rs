//! The native sandbox's cgroup limits and teardown, checked by what the
//! kernel does to real processes, on whichever hierarchy this host has:
//! cgroup v1 on a plain host, cgroup v2 inside `tests/vm/run.sh`'s virtual
//! machine, where the farm runs in a pod's own cgroup namespace.
//!
//! The programs are shell scripts (`/bin/sh` from the host, mounted
//! read-only like every system directory). The tests run one at a time
//! (`SERIAL`): several count every process of this test's sandboxes.

use leanfarm_sandbox::{BackendKind, CommandSpec, Sandbox, SandboxConfig, SandboxedChild};
use leanfarm_testkit::sandbox::sandbox_config;
use std::path::Path;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Whether this host's cgroup hierarchy is v2 (one unified hierarchy).
fn on_cgroup_v2() -> bool {
    Path::new("/sys/fs/cgroup/cgroup.controllers").exists()
}

/// A native sandbox with the test limits, changed by `adjust`.
fn native_sandbox(adjust: impl FnOnce(&mut SandboxConfig)) -> (Sandbox, tempfile::TempDir) {
    let scratch_root = tempfile::tempdir().unwrap();
    let mut config = sandbox_config(BackendKind::Native, scratch_root.path().to_path_buf());
    adjust(&mut config);
    (
        Sandbox::new(config).expect("a native sandbox"),
        scratch_root,
    )
}

fn shell(sandbox: &Sandbox, script: &str) -> SandboxedChild {
    sandbox
        .spawn(&CommandSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        })
        .unwrap()
}

/// The first line the program prints.
async fn first_line(child: &mut SandboxedChild) -> String {
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .expect("the program printed nothing within 30 s")
        .unwrap();
    child.stdout = None;
    line.trim().to_string()
}

/// Pids of every process in a sandbox cgroup of this test process, as the
/// kernel's /proc/PID/cgroup says (v1 and v2 alike name the group there).
fn processes_in_our_sandboxes() -> Vec<i32> {
    let ours = format!("/leanfarm/sandbox-{}-", std::process::id());
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cgroups = std::fs::read_to_string(entry.path().join("cgroup")).ok()?;
            cgroups.contains(&ours).then_some(pid)
        })
        .collect()
}

/// The sandbox cgroup directories of this test process that exist.
fn our_cgroup_directories() -> Vec<String> {
    let ours = format!("sandbox-{}-", std::process::id());
    [
        "/sys/fs/cgroup/leanfarm",
        "/sys/fs/cgroup/memory/leanfarm",
        "/sys/fs/cgroup/pids/leanfarm",
        "/sys/fs/cgroup/cpu/leanfarm",
        "/sys/fs/cgroup/freezer/leanfarm",
    ]
    .iter()
    .flat_map(|parent| {
        std::fs::read_dir(parent)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| name.starts_with(&ours))
            .map(move |name| format!("{parent}/{name}"))
    })
    .collect()
}

#[tokio::test]
async fn kill_tree_ends_every_process_even_those_that_left_the_session() {
    let _serial = SERIAL.lock().await;
    let (sandbox, _scratch) = native_sandbox(|_| {});
    // A daemon in a session of its own, an orphan, and a plain child.
    let mut child = shell(
        &sandbox,
        "setsid sleep 1000 & (sleep 1000 &); sleep 1000 & echo ready; wait",
    );
    assert_eq!(first_line(&mut child).await, "ready");
    // The intermediate, init, the shell and its three sleeps.
    let running = processes_in_our_sandboxes();
    assert!(running.len() >= 6, "{running:?}");
    child.kill_tree();
    let report = child.wait().await;
    assert!(report.killed_by_supervisor, "{report:?}");
    assert_eq!(report.signal, Some(libc::SIGKILL), "{report:?}");
    assert_eq!(processes_in_our_sandboxes(), Vec::<i32>::new());
    assert_eq!(our_cgroup_directories(), Vec::<String>::new());
}

#[tokio::test]
async fn a_program_past_its_memory_limit_is_killed_and_reported_out_of_memory() {
    let _serial = SERIAL.lock().await;
    let (sandbox, _scratch) = native_sandbox(|config| config.memory_limit_bytes = 64 << 20);
    // A string that doubles until the cgroup's OOM killer stops it.
    let mut child = shell(&sandbox, "x=0123456789abcdef; while :; do x=$x$x; done");
    let report = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the memory hog was not stopped within 60 s");
    assert!(report.oom_killed, "{report:?}");
    assert!(!report.killed_by_supervisor, "{report:?}");
    assert_eq!(report.signal, Some(libc::SIGKILL), "{report:?}");
    assert!(
        report
            .peak_memory_bytes
            .is_some_and(|peak| peak > 32 << 20 && peak <= 64 << 20),
        "{report:?}"
    );
    assert_eq!(processes_in_our_sandboxes(), Vec::<i32>::new());
    assert_eq!(our_cgroup_directories(), Vec::<String>::new());
}

#[tokio::test]
async fn a_busy_program_gets_no_more_cpu_than_its_quota() {
    let _serial = SERIAL.lock().await;
    let (sandbox, _scratch) = native_sandbox(|config| config.cpu_limit_cores = 0.1);
    let mut child = shell(&sandbox, "echo spinning; while :; do :; done");
    assert_eq!(first_line(&mut child).await, "spinning");
    tokio::time::sleep(Duration::from_secs(3)).await;
    child.kill_tree();
    let report = child.wait().await;
    let cpu = report.cpu_time.expect("CPU time from the cgroup");
    // A tenth of a core for 3 s is 0.3 s; unthrottled it would be 3 s.
    assert!(
        cpu > Duration::from_millis(50) && cpu < Duration::from_millis(750),
        "{report:?}"
    );
}

#[tokio::test]
async fn forks_past_the_process_limit_fail() {
    let _serial = SERIAL.lock().await;
    let pids_limit = 12;
    let (sandbox, _scratch) = native_sandbox(|config| config.pids_limit = pids_limit);
    // Count each fork that succeeds; the shell gives up at the first that fails.
    let mut child = shell(
        &sandbox,
        "i=0; while [ $i -lt 40 ]; do sleep 1000 & i=$((i+1)); echo $i; done",
    );
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut forked = 0u64;
    let mut line = String::new();
    while tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line))
        .await
        .expect("the shell neither forked nor ended within 30 s")
        .unwrap()
        > 0
    {
        forked = line.trim().parse().unwrap();
        line.clear();
    }
    let report = child.wait().await;
    // The intermediate, init and the shell count too.
    assert!(
        forked >= 3 && forked <= pids_limit - 3,
        "{forked} forks: {report:?}"
    );
    assert_ne!(report.exit_code, Some(0), "{report:?}");
    assert_eq!(processes_in_our_sandboxes(), Vec::<i32>::new());
}

/// The cgroup of process `pid` for `controller` (v1), or its one cgroup
/// (v2), as /proc/PID/cgroup names it.
fn cgroup_of(pid: &str, controller: &str) -> String {
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    cgroups
        .lines()
        .find_map(|line| {
            let mut fields = line.splitn(3, ':');
            let (_, controllers, path) = (fields.next()?, fields.next()?, fields.next()?);
            let matches = if on_cgroup_v2() {
                controllers.is_empty()
            } else {
                controllers.split(',').any(|c| c == controller)
            };
            matches.then(|| path.to_string())
        })
        .unwrap_or_else(|| panic!("process {pid} has no {controller} cgroup: {cgroups}"))
}

/// The cgroup under which this farm makes its groups on v2: its own, or,
/// once it moved itself into the `leanfarm-supervisor` leaf, that leaf's
/// parent.
fn farm_cgroup() -> String {
    let own = cgroup_of("self", "");
    let base = own.strip_suffix("/leanfarm-supervisor").unwrap_or(&own);
    if base.is_empty() {
        "/".to_string()
    } else {
        base.to_string()
    }
}

/// On cgroup v2, every sandbox's cgroup lies inside the farm's own cgroup,
/// so that what a sandbox uses counts against the pod's limits. A pod
/// without a cgroup namespace of its own sees the node's whole hierarchy at
/// /sys/fs/cgroup: a group made at its root would escape the pod. (On v1
/// the groups are made at the root of each controller's mount, which in a
/// container is the container's own cgroup; this test checks v2 only.)
#[tokio::test]
async fn a_sandbox_cgroup_lies_inside_the_farms_own_cgroup_on_v2() {
    if !on_cgroup_v2() {
        eprintln!("cgroup v1: this test is for cgroup v2 (tests/vm/run.sh runs it there)");
        return;
    }
    let _serial = SERIAL.lock().await;
    let (sandbox, _scratch) = native_sandbox(|_| {});
    let mut child = shell(&sandbox, "echo up; sleep 1000");
    assert_eq!(first_line(&mut child).await, "up");
    let running = processes_in_our_sandboxes();
    assert!(!running.is_empty());
    let inside = format!("{}/leanfarm/sandbox-", farm_cgroup().trim_end_matches('/'));
    for pid in &running {
        let cgroup = cgroup_of(&pid.to_string(), "");
        assert!(
            cgroup.starts_with(&inside),
            "process {pid} is in {cgroup}, outside the farm's {inside}..."
        );
    }
    child.kill_tree();
    child.wait().await;
}

/// On cgroup v2 the farm hands the memory, pids and (where offered) cpu
/// controllers down to its sandboxes, from its own cgroup: where that
/// cgroup is not the host's root (a pod's), it first moves its own
/// processes out of it into a `leanfarm-supervisor` leaf, since a cgroup
/// holding processes cannot give controllers to its children. On v1, each
/// controller's hierarchy gets a `leanfarm` group.
#[tokio::test]
async fn the_farm_delegates_the_controllers_its_sandboxes_need() {
    let _serial = SERIAL.lock().await;
    let (_sandbox, _scratch) = native_sandbox(|_| {});
    let mount = Path::new("/sys/fs/cgroup");
    if !on_cgroup_v2() {
        for controller in ["memory", "pids"] {
            let parent = mount.join(controller).join("leanfarm");
            assert!(parent.is_dir(), "{}", parent.display());
        }
        return;
    }
    let farm = mount.join(farm_cgroup().trim_start_matches('/'));
    let read = |path: &Path| std::fs::read_to_string(path).unwrap();
    let offered = read(&farm.join("cgroup.controllers"));
    let wanted: Vec<&str> = ["memory", "pids", "cpu"]
        .into_iter()
        .filter(|c| offered.split_whitespace().any(|o| o == *c))
        .collect();
    assert!(
        wanted.contains(&"memory") && wanted.contains(&"pids"),
        "{offered}"
    );
    for dir in [farm.clone(), farm.join("leanfarm")] {
        let enabled = read(&dir.join("cgroup.subtree_control"));
        for controller in &wanted {
            assert!(
                enabled.split_whitespace().any(|c| c == *controller),
                "{controller} is not enabled in {}: {enabled}",
                dir.display()
            );
        }
    }
    // The host's root cgroup has no memory.max; a pod's cgroup has one, and
    // may hold no process once it gives controllers to its children.
    if farm.join("memory.max").exists() {
        assert_eq!(read(&farm.join("cgroup.procs")).trim(), "");
        assert!(
            cgroup_of("self", "").ends_with("/leanfarm-supervisor"),
            "{}",
            cgroup_of("self", "")
        );
    }
}
