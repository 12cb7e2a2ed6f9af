//! The escape suite: snippets that attack the sandbox for real, through
//! `lean-sim` directives that perform the act inside the sandboxed REPL.
//! Each test asserts the verdict (or the act's reported outcome) and that
//! the host is unchanged: no file written or read outside, no connection
//! made, no process left behind.
//!
//! The tests run one at a time (`SERIAL`) because several check host-wide
//! facts, such as "no sandboxed process is left".

use leanfarm_core::{CheckStatus, Verdict};
use leanfarm_driver::PoolConfig;
use leanfarm_sandbox::{BackendKind, CommandSpec, Sandbox, SandboxedChild, SANDBOX_UID};
use leanfarm_testkit::driver::{driver_with_sandbox, small_pool, TestDriver};
use leanfarm_testkit::sandbox::lean_sim_sandbox_config;
use leanfarm_testkit::{lean_sim_path, reason_code, request};
use std::io::Read;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Run an attack on each named backend: `attack_name::native`, `attack_name::gvisor`.
macro_rules! on_backends {
    ($($test:ident: $($backend:ident)+;)+) => {$(
        mod $test {
            $(
                #[tokio::test]
                async fn $backend() {
                    super::$test(super::backend(stringify!($backend))).await
                }
            )+
        }
    )+};
}

// gVisor is left out where its answer differs by design: it counts no
// processes of its own from the host (a lingering child is contained in the
// REPL's sandbox but not detected), and its user-space kernel allows user
// namespaces, which reach no host kernel code.
on_backends! {
    a_fork_bomb_is_capped_and_leaves_nothing_behind: native gvisor;
    a_memory_bomb_is_stopped_by_the_cgroup: native gvisor;
    a_disk_fill_stops_at_the_scratch_capacity_and_the_file_size_limit: native gvisor;
    descriptor_exhaustion_hits_the_rlimit_and_the_repl_still_answers: native gvisor;
    an_output_flood_is_cut_off_without_buffering_it: native gvisor;
    the_network_holds_nothing_but_an_empty_loopback: native gvisor;
    host_files_are_invisible_and_the_toolchain_is_read_only: native gvisor;
    the_worker_cannot_be_signalled_or_traced_and_privileges_are_gone: native gvisor;
    daemons_and_lingering_children_die_with_the_repl: native gvisor;
    a_core_dump_is_not_written: native gvisor;
    links_left_in_scratch_are_never_followed: native gvisor;
    one_job_cannot_reach_another_jobs_scratch: native gvisor;
    a_repl_that_keeps_a_child_running_is_not_reused: native;
    system_calls_a_proof_never_needs_are_denied: native;
    the_exit_report_says_how_it_ended: native gvisor;
}

fn backend(name: &str) -> BackendKind {
    name.parse().expect("a backend name")
}

fn farm_on(backend: BackendKind) -> TestDriver {
    driver_with_sandbox(small_pool(), |config| config.backend = backend)
}

/// A snippet whose proof performs `directive` inside the sandbox.
fn attack(directive: &str) -> String {
    format!("theorem t : True := by\n  -- sim: {directive}\n  trivial")
}

/// The text of the info messages a check produced (where acts report).
fn reports(verdict: &Verdict) -> String {
    verdict
        .messages
        .iter()
        .map(|m| m.data.as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Pids of every process on the host running as the sandbox user, and of
/// every gVisor process, but for those in another farm's sandbox cgroups.
fn sandboxed_processes() -> Vec<i32> {
    let ours = format!("leanfarm/sandbox-{}-", std::process::id());
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else {
            continue;
        };
        let uid = status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|uid| uid.parse::<u32>().ok());
        // Another farm's sandboxes on this machine are not ours to judge.
        let cgroup = std::fs::read_to_string(entry.path().join("cgroup")).unwrap_or_default();
        if cgroup.contains("leanfarm/sandbox-") && !cgroup.contains(&ours) {
            continue;
        }
        let runsc = std::fs::read(entry.path().join("cmdline"))
            .is_ok_and(|cmdline| cmdline.windows(5).any(|w| w == b"runsc"));
        if uid == Some(SANDBOX_UID) || runsc {
            pids.push(pid);
        }
    }
    pids
}

/// Wait (briefly) until no sandboxed process is left; fail with the survivors.
async fn assert_no_sandboxed_process_left() {
    for _ in 0..200 {
        if sandboxed_processes().is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "processes survived the sandbox: {:?}",
        sandboxed_processes()
    );
}

/// What is left under the sandbox's scratch root (mounts) and of this
/// process's cgroups.
fn mounts_and_cgroups_left(scratch_root: &std::path::Path) -> Vec<String> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let root = scratch_root.to_string_lossy();
    let mut left: Vec<String> = mountinfo
        .lines()
        .filter(|line| line.contains(root.as_ref()))
        .map(|line| format!("mount {line}"))
        .collect();
    let ours = format!("sandbox-{}-", std::process::id());
    for parent in [
        "/sys/fs/cgroup/memory/leanfarm",
        "/sys/fs/cgroup/pids/leanfarm",
        "/sys/fs/cgroup/leanfarm",
    ] {
        let Ok(entries) = std::fs::read_dir(parent) else {
            continue;
        };
        left.extend(
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|name| name.starts_with(&ours))
                .map(|name| format!("cgroup {parent}/{name}")),
        );
    }
    left
}

/// No mount under the sandbox's scratch root and no cgroup of this process
/// is left once its sandboxed processes are torn down. A retired REPL is
/// torn down in the background, so wait (briefly) for it.
async fn assert_no_mount_or_cgroup_left(scratch_root: &std::path::Path) {
    for _ in 0..200 {
        if mounts_and_cgroups_left(scratch_root).is_empty() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("left behind: {:?}", mounts_and_cgroups_left(scratch_root));
}

async fn a_fork_bomb_is_capped_and_leaves_nothing_behind(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    let mut check = request(&attack("fork-bomb"));
    check.timeout_seconds = 2.0;
    let verdict = farm.driver.check(&check).await.unwrap();
    match backend {
        // With ptrace as its platform, gVisor backs each process with a host
        // task: the bomb reaches the cgroup's task limit and takes the
        // sandbox down with it, which is a crash, not a hang.
        BackendKind::Gvisor if verdict.status() == CheckStatus::ReplError => {
            assert_eq!(reason_code(&verdict), "repl_crashed", "{verdict:?}")
        }
        _ => assert_eq!(verdict.status(), CheckStatus::TimeoutError, "{verdict:?}"),
    }
    assert_no_sandboxed_process_left().await;
    // The farm still works.
    let verdict = farm
        .driver
        .check(&request("theorem t : True := trivial"))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::Valid);
}

async fn a_memory_bomb_is_stopped_by_the_cgroup(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = driver_with_sandbox(small_pool(), |config| {
        config.backend = backend;
        config.memory_limit_bytes = 128 << 20;
    });
    let verdict = farm
        .driver
        .check(&request(&attack("alloc-unbounded")))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::ReplError, "{verdict:?}");
    assert_eq!(reason_code(&verdict), "out_of_memory", "{verdict:?}");
    assert!(
        verdict
            .peak_memory_bytes
            .is_some_and(|peak| peak <= 130 << 20),
        "{verdict:?}"
    );
    assert_no_sandboxed_process_left().await;
}

async fn a_disk_fill_stops_at_the_scratch_capacity_and_the_file_size_limit(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    // Scratch smaller than the file size limit: the disk is full first.
    let farm = driver_with_sandbox(small_pool(), |config| {
        config.backend = backend;
        config.scratch_size_bytes = 32 << 20;
        config.file_size_limit_bytes = 64 << 20;
    });
    let verdict = farm
        .driver
        .check(&request(&attack("disk-fill 200")))
        .await
        .unwrap();
    let report = reports(&verdict);
    assert!(
        report.contains("disk-fill 200: failed: No space left on device"),
        "{report} {verdict:?}"
    );
    let written: u64 = report
        .split("after ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(written <= 32, "{report}");
    farm.driver.shutdown().await;
    drop(farm);
    // The file size limit: writing past it raises SIGXFSZ, which ends the process.
    let farm = driver_with_sandbox(small_pool(), |config| {
        config.backend = backend;
        config.scratch_size_bytes = 256 << 20;
        config.file_size_limit_bytes = 16 << 20;
    });
    let verdict = farm
        .driver
        .check(&request(&attack("disk-fill 200")))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::ReplError, "{verdict:?}");
    assert_eq!(reason_code(&verdict), "repl_crashed", "{verdict:?}");
    let message = &verdict.reason().as_ref().unwrap().message;
    assert!(message.contains("signal 25"), "{message}");
    assert_no_sandboxed_process_left().await;
}

async fn descriptor_exhaustion_hits_the_rlimit_and_the_repl_still_answers(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    let verdict = farm
        .driver
        .check(&request(&attack("fd-exhaust")))
        .await
        .unwrap();
    let report = reports(&verdict);
    let opened: usize = report
        .split("opened ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{report}"));
    assert!(opened < 256, "{report}");
    assert_eq!(verdict.status(), CheckStatus::Valid, "{verdict:?}");
}

async fn an_output_flood_is_cut_off_without_buffering_it(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    let verdict = farm
        .driver
        .check(&request(&attack("output-flood 64")))
        .await
        .unwrap();
    assert_eq!(verdict.status(), CheckStatus::ReplError, "{verdict:?}");
    assert_eq!(reason_code(&verdict), "reply_too_large", "{verdict:?}");
    assert_no_sandboxed_process_left().await;
}

async fn the_network_holds_nothing_but_an_empty_loopback(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let verdict = farm
        .driver
        .check(&request(&attack(&format!("connect {address}"))))
        .await
        .unwrap();
    let report = reports(&verdict);
    assert!(
        report.contains(&format!("connect {address}: failed")),
        "{report}"
    );
    assert!(
        listener.accept().is_err(),
        "the host's listener saw a connection"
    );
    for outside in ["1.1.1.1:53", "10.0.0.1:80"] {
        let verdict = farm
            .driver
            .check(&request(&attack(&format!("connect {outside}"))))
            .await
            .unwrap();
        let report = reports(&verdict);
        assert!(
            report.contains(&format!("connect {outside}: failed")),
            "{report}"
        );
    }
    let verdict = farm
        .driver
        .check(&request(&attack("resolve crates.io")))
        .await
        .unwrap();
    let report = reports(&verdict);
    assert!(report.contains("resolve crates.io: failed"), "{report}");
}

async fn host_files_are_invisible_and_the_toolchain_is_read_only(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    // A secret outside the sandbox, in a place a worker might keep one.
    let secret_dir = tempfile::Builder::new()
        .prefix("leanfarm-secret")
        .tempdir_in("/root")
        .unwrap();
    let secret = secret_dir.path().join("token");
    std::fs::write(&secret, "hunter2").unwrap();
    for directive in [
        format!("read {}", secret.display()),
        "read /etc/shadow".to_string(),
        format!("read /proc/{}/environ", std::process::id()),
        "list-dir /root".to_string(),
        "list-dir /home".to_string(),
    ] {
        let verdict = farm
            .driver
            .check(&request(&attack(&directive)))
            .await
            .unwrap();
        let report = reports(&verdict);
        assert!(report.contains(": failed"), "{directive}: {report}");
        assert!(!report.contains("hunter2"));
    }
    // Only the sandbox's own processes are in /proc.
    let verdict = farm
        .driver
        .check(&request(&attack("list-dir /proc")))
        .await
        .unwrap();
    let report = reports(&verdict);
    let pids = report
        .split_whitespace()
        .filter(|word| word.parse::<u32>().is_ok())
        .count();
    assert!(pids <= 3, "host processes visible: {report}");
    // The toolchain directory is mounted read-only.
    let toolchain_dir = lean_sim_path().parent().unwrap().to_path_buf();
    let planted = toolchain_dir.join("leanfarm-escape-test");
    let verdict = farm
        .driver
        .check(&request(&attack(&format!(
            "write {} pwned",
            planted.display()
        ))))
        .await
        .unwrap();
    assert!(reports(&verdict).contains(": failed"), "{verdict:?}");
    assert!(!planted.exists(), "the sandbox wrote into the toolchain");
    // The root filesystem is read-only too.
    let verdict = farm
        .driver
        .check(&request(&attack("write /etc-pwned x")))
        .await
        .unwrap();
    assert!(reports(&verdict).contains(": failed"), "{verdict:?}");
}

async fn the_worker_cannot_be_signalled_or_traced_and_privileges_are_gone(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    let worker = std::process::id();
    for directive in [
        format!("signal {worker} 9"),
        format!("ptrace {worker}"),
        "signal -1 9".to_string(),
        "mount-tmpfs /tmp".to_string(),
    ]
    .into_iter()
    .chain((backend == BackendKind::Native).then(|| "unshare-user".to_string()))
    {
        let verdict = farm
            .driver
            .check(&request(&attack(&directive)))
            .await
            .unwrap();
        let report = reports(&verdict);
        assert!(report.contains(": failed"), "{directive}: {report}");
    }
    let verdict = farm
        .driver
        .check(&request(&attack("getpid")))
        .await
        .unwrap();
    assert!(
        reports(&verdict).contains(&format!("uid {SANDBOX_UID}")),
        "{verdict:?}"
    );
}

async fn system_calls_a_proof_never_needs_are_denied(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    // Every argument is zero, so a kernel that ran the call would answer
    // EINVAL or EFAULT (or succeed, for unshare); EPERM is the filter.
    let directives: Vec<String> = [
        "ptrace",
        "mount",
        "unshare",
        "setns",
        "keyctl",
        "bpf",
        "perf_event_open",
        "io_uring_setup",
        "init_module",
        "finit_module",
        "kexec_load",
        "reboot",
        "userfaultfd",
        "process_vm_readv",
        "open_by_handle_at",
    ]
    .iter()
    .map(|name| format!("  -- sim: syscall {name}"))
    .collect();
    let code = format!(
        "theorem t : True := by\n{}\n  trivial",
        directives.join("\n")
    );
    let verdict = farm.driver.check(&request(&code)).await.unwrap();
    let report = reports(&verdict);
    for line in report.lines() {
        assert!(line.contains(": failed: Operation not permitted"), "{line}");
    }
    assert_eq!(report.lines().count(), directives.len(), "{report}");
}

async fn daemons_and_lingering_children_die_with_the_repl(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = farm_on(backend);
    let verdict = farm
        .driver
        .check(&request(
            "theorem t : True := by\n  -- sim: setsid-daemon\n  -- sim: linger\n  trivial",
        ))
        .await
        .unwrap();
    let report = reports(&verdict);
    assert!(
        report.contains("setsid-daemon: pid") && report.contains("linger: pid"),
        "{report}"
    );
    // The REPL is retired (not reused) because it has company; either way
    // nothing may survive it: no process, no mount, no cgroup.
    farm.driver.shutdown().await;
    assert_no_sandboxed_process_left().await;
    assert_no_mount_or_cgroup_left(farm.scratch.path()).await;

    // And after a timeout, with a daemon started first.
    let farm = farm_on(backend);
    let mut check = request(
        "theorem t : True := by\n  -- sim: setsid-daemon\n  -- sim: linger\n  -- sim: spin\n  trivial",
    );
    check.timeout_seconds = 1.0;
    let verdict = farm.driver.check(&check).await.unwrap();
    assert_eq!(verdict.status(), CheckStatus::TimeoutError, "{verdict:?}");
    assert_no_sandboxed_process_left().await;
}

async fn a_core_dump_is_not_written(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let scratch_root = tempfile::tempdir().unwrap();
    let mut config = lean_sim_sandbox_config(scratch_root.path().into(), 256 << 20);
    config.backend = backend;
    let sandbox = Sandbox::new(config).unwrap();
    let mut session = Session::start(&sandbox);
    let reply = session.ask(&attack("core-dump")).await;
    assert!(reply.is_none(), "the REPL answered: {reply:?}");
    let leftovers: Vec<_> = std::fs::read_dir(session.child.scratch_dir())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let report = session.child.wait().await;
    assert_eq!(report.signal, Some(libc::SIGABRT), "{report:?}");
}

async fn links_left_in_scratch_are_never_followed(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let scratch_root = tempfile::tempdir().unwrap();
    let mut config = lean_sim_sandbox_config(scratch_root.path().into(), 256 << 20);
    config.backend = backend;
    let sandbox = Sandbox::new(config).unwrap();
    let host_secret = scratch_root.path().join("host-secret");
    std::fs::write(&host_secret, "hunter2").unwrap();
    let mut session = Session::start(&sandbox);
    let reply = session
        .ask(&format!(
            "theorem t : True := by\n  -- sim: symlink result.json {}\n  -- sim: write own.txt mine\n  -- sim: write other.txt other\n  -- sim: hardlink twice.json other.txt\n  -- sim: hardlink host.json /usr/bin/env\n  trivial",
            host_secret.display()
        ))
        .await
        .expect("reply");
    assert!(reply.contains("symlink result.json"), "{reply}");
    let child = &session.child;
    let refused = child.read_scratch_file("result.json", 1 << 20).unwrap_err();
    assert!(refused.to_string().contains("symbolic link"), "{refused}");
    let refused = child.read_scratch_file("twice.json", 1 << 20).unwrap_err();
    assert!(refused.to_string().contains("hard link"), "{refused}");
    // A hard link to a file of another mount cannot even be made.
    assert!(
        reply.contains("hardlink host.json -> /usr/bin/env: failed"),
        "{reply}"
    );
    assert!(child.read_scratch_file("../host-secret", 1 << 20).is_err());
    assert!(child.read_scratch_file("host.json", 1 << 20).is_err());
    assert_eq!(
        child.read_scratch_file("own.txt", 1 << 20).unwrap(),
        b"mine"
    );
    assert!(child.read_scratch_file("own.txt", 2).is_err());
}

async fn one_job_cannot_reach_another_jobs_scratch(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let scratch_root = tempfile::tempdir().unwrap();
    let mut config = lean_sim_sandbox_config(scratch_root.path().into(), 256 << 20);
    config.backend = backend;
    let sandbox = Sandbox::new(config).unwrap();
    let mut first = Session::start(&sandbox);
    first
        .ask(&attack("write proof.txt first-job-secret"))
        .await
        .expect("reply");
    let first_file = first.child.scratch_dir().join("proof.txt");
    let mut contents = String::new();
    std::fs::File::open(&first_file)
        .unwrap()
        .read_to_string(&mut contents)
        .unwrap();
    assert_eq!(contents, "first-job-secret");
    let mut second = Session::start(&sandbox);
    for directive in [
        format!("read {}", first_file.display()),
        format!("list-dir {}", scratch_root.path().display()),
    ] {
        let reply = second.ask(&attack(&directive)).await.expect("reply");
        assert!(reply.contains(": failed"), "{directive}: {reply}");
    }
    // Its own scratch is all it sees: the parent holds no other job's.
    let reply = second
        .ask(&attack("list-dir /scratch/.."))
        .await
        .expect("reply");
    assert!(reply.contains("list-dir /scratch/..: ok"), "{reply}");
    assert!(!reply.contains("sandbox-"), "{reply}");
    assert!(!reply.contains("first-job-secret"), "{reply}");
}

async fn a_repl_that_keeps_a_child_running_is_not_reused(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let farm = driver_with_sandbox(
        PoolConfig {
            slots: 1,
            max_repls: 1,
            ..small_pool()
        },
        |config| config.backend = backend,
    );
    farm.driver
        .check(&request(&attack("linger")))
        .await
        .unwrap();
    let verdict = farm
        .driver
        .check(&request("theorem t : True := trivial"))
        .await
        .unwrap();
    assert!(!verdict.repl_reused, "{verdict:?}");
    assert_eq!(verdict.status(), CheckStatus::Valid);
    farm.driver.shutdown().await;
    assert_no_sandboxed_process_left().await;
}

async fn the_exit_report_says_how_it_ended(backend: BackendKind) {
    let _serial = SERIAL.lock().await;
    let scratch_root = tempfile::tempdir().unwrap();
    let mut config = lean_sim_sandbox_config(scratch_root.path().into(), 128 << 20);
    config.backend = backend;
    let sandbox = Sandbox::new(config).unwrap();

    // A normal end: exit code 0, with the CPU time it burnt and its memory.
    let mut session = Session::start(&sandbox);
    session.ask(&attack("cpu 300")).await.expect("reply");
    drop(session.child.stdin.take());
    let report = session.child.wait().await;
    assert_eq!(
        (report.exit_code, report.signal),
        (Some(0), None),
        "{report:?}"
    );
    assert!(
        !report.oom_killed && !report.killed_by_supervisor,
        "{report:?}"
    );
    let cpu = report.cpu_time.expect("CPU time from the cgroup");
    assert!(cpu >= Duration::from_millis(250), "{report:?}");
    assert!(
        report.peak_memory_bytes.is_some_and(|bytes| bytes > 0),
        "{report:?}"
    );

    // Out of memory, as the cgroup's own OOM events say.
    let mut session = Session::start(&sandbox);
    assert!(session.ask(&attack("alloc-unbounded")).await.is_none());
    let report = session.child.wait().await;
    assert!(report.oom_killed, "{report:?}");
    assert_eq!(report.signal, Some(libc::SIGKILL), "{report:?}");

    // Killed by the supervisor (a timeout).
    let mut session = Session::start(&sandbox);
    session.child.kill_tree();
    let report = session.child.wait().await;
    assert!(report.killed_by_supervisor, "{report:?}");
}

/// A raw REPL conversation with `lean-sim` in a sandbox.
struct Session {
    child: SandboxedChild,
    stdout: BufReader<tokio::process::ChildStdout>,
}

impl Session {
    fn start(sandbox: &Sandbox) -> Session {
        let mut child = sandbox
            .spawn(&CommandSpec {
                program: lean_sim_path(),
                args: vec!["repl".into()],
                env: Vec::new(),
            })
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Session { child, stdout }
    }

    /// Send one command; the reply's text, or `None` if the REPL ended first.
    async fn ask(&mut self, code: &str) -> Option<String> {
        let command = serde_json::json!({ "cmd": code }).to_string();
        let stdin = self.child.stdin.as_mut().unwrap();
        stdin.write_all(command.as_bytes()).await.ok()?;
        stdin.write_all(b"\n\n").await.ok()?;
        let mut reply = String::new();
        let read = async {
            loop {
                let mut line = String::new();
                if self.stdout.read_line(&mut line).await.ok()? == 0 {
                    return None;
                }
                if line.trim().is_empty() && !reply.is_empty() {
                    return Some(());
                }
                reply.push_str(&line);
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read)
            .await
            .expect("the REPL neither answered nor ended")?;
        Some(reply)
    }
}
