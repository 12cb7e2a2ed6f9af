//! Runs one untrusted process (a Lean REPL or `lean`) inside a sandbox and
//! reports how it ended.
//!
//! Backends: `native` (namespaces, cgroup limits, rlimits, seccomp,
//! no_new_privs, an unprivileged user, an init process as PID 1), `gvisor`
//! (`runsc` from a per-process OCI bundle, inside the same cgroup limits;
//! see `gvisor.rs`) and `none` (development only, refused unless named,
//! logged loudly at every spawn). Teardown kills the whole tree through its
//! cgroup.
//!
//! This crate knows nothing about Lean, jobs or HTTP.

mod cgroup;
mod gvisor;
mod native;
pub mod seccomp;

pub use native::SANDBOX_UID;

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("sandbox backend `{0}` is unknown (expected native, gvisor or none)")]
    UnknownBackend(String),
    /// A limit cannot be enforced on this host and degrading was not allowed.
    #[error("cannot enforce {what} on this host: {why} (set allow_degraded to run anyway)")]
    CannotEnforce { what: String, why: String },
    #[error("failed to prepare sandbox: {0}")]
    Setup(String),
    #[error("failed to spawn sandboxed process: {0}")]
    Spawn(#[source] std::io::Error),
    #[error("sandbox i/o failed: {0}")]
    Io(#[source] std::io::Error),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    Native,
    Gvisor,
    /// No isolation at all. Development only.
    None,
}

impl std::str::FromStr for BackendKind {
    type Err = SandboxError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "native" => Ok(BackendKind::Native),
            "gvisor" => Ok(BackendKind::Gvisor),
            "none" => Ok(BackendKind::None),
            other => Err(SandboxError::UnknownBackend(other.to_string())),
        }
    }
}

/// A host directory made visible inside the sandbox, read-only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadOnlyMount {
    pub host_path: PathBuf,
    pub sandbox_path: PathBuf,
}

/// Limits and layout shared by every process a `Sandbox` starts.
#[derive(Clone, Debug)]
pub struct SandboxConfig {
    pub backend: BackendKind,
    /// Resident memory limit (cgroup), not address space.
    pub memory_limit_bytes: u64,
    pub pids_limit: u64,
    /// CPU limit in cores (cgroup quota), e.g. 1.0.
    pub cpu_limit_cores: f64,
    pub file_size_limit_bytes: u64,
    /// Capacity of each process's scratch directory (native and gvisor: a
    /// tmpfs of this size, charged to the process's memory cgroup; none: a
    /// plain directory).
    pub scratch_size_bytes: u64,
    pub open_files_limit: u64,
    /// Toolchain and project directories, mounted read-only.
    pub read_only_mounts: Vec<ReadOnlyMount>,
    /// Where per-process scratch directories are created on the host.
    pub scratch_root: PathBuf,
    /// Run even where a limit cannot be enforced (logged at start-up).
    pub allow_degraded: bool,
}

/// What to run. The program path is as seen inside the sandbox.
#[derive(Clone, Debug, Default)]
pub struct CommandSpec {
    pub program: PathBuf,
    pub args: Vec<String>,
    /// The only environment variables the process gets.
    pub env: Vec<(String, String)>,
}

/// How a sandboxed process ended.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExitReport {
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    /// The cgroup's OOM killer fired.
    pub oom_killed: bool,
    /// The caller killed it (timeout or teardown).
    pub killed_by_supervisor: bool,
    pub peak_memory_bytes: Option<u64>,
    pub cpu_time: Option<Duration>,
}

/// A configured sandbox; cheap to share, starts many processes.
pub struct Sandbox {
    config: SandboxConfig,
    cgroups: Option<cgroup::Layout>,
    /// The `runsc` binary (gvisor backend).
    runsc: Option<PathBuf>,
}

/// The cgroup layout for memory, process and CPU limits; `None` only when
/// the host has none usable and degrading is allowed (logged).
fn limits(config: &SandboxConfig) -> Result<Option<cgroup::Layout>, SandboxError> {
    match cgroup::detect() {
        Ok(layout) => Ok(Some(layout)),
        Err(why) if config.allow_degraded => {
            tracing::warn!(%why, "sandbox running degraded: no memory, process or CPU limits");
            Ok(None)
        }
        Err(why) => Err(SandboxError::CannotEnforce {
            what: "memory, process and CPU limits".into(),
            why,
        }),
    }
}

/// Numbers every spawn of this process, across all `Sandbox` values.
static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Tells this process's scratch directories and cgroups from those of any
/// other process, including an earlier one that had the same pid.
fn process_tag() -> &'static str {
    static TAG: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TAG.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        format!("{}-{:08x}", std::process::id(), nanos)
    })
}

impl Sandbox {
    /// Check the host can enforce the configuration and prepare what every
    /// spawn shares (parent cgroup, ...).
    pub fn new(config: SandboxConfig) -> Result<Sandbox, SandboxError> {
        std::fs::create_dir_all(&config.scratch_root).map_err(SandboxError::Io)?;
        sweep_stale_scratch(&config.scratch_root);
        let mut runsc = None;
        let cgroups = match config.backend {
            BackendKind::Native => {
                // SAFETY: geteuid has no preconditions.
                if unsafe { libc::geteuid() } != 0 {
                    return Err(SandboxError::CannotEnforce {
                        what: "namespaces and mounts".into(),
                        why: "the native sandbox must run as root (or with CAP_SYS_ADMIN)".into(),
                    });
                }
                limits(&config)?
            }
            BackendKind::Gvisor => {
                runsc = Some(
                    gvisor::find_runsc().map_err(|why| SandboxError::CannotEnforce {
                        what: "the gVisor sandbox".into(),
                        why,
                    })?,
                );
                limits(&config)?
            }
            BackendKind::None => {
                tracing::warn!("sandbox backend `none`: snippets run with the farm's own rights; for development only");
                None
            }
        };
        if let Some(layout) = &cgroups {
            cgroup::sweep_stale(layout, is_stale_name);
        }
        Ok(Sandbox {
            config,
            cgroups,
            runsc,
        })
    }

    /// The memory limit of each sandboxed process tree.
    pub fn memory_limit_bytes(&self) -> u64 {
        self.config.memory_limit_bytes
    }

    pub fn backend(&self) -> BackendKind {
        self.config.backend
    }

    /// What this sandbox enforces, in a few words, for the start-up line.
    pub fn in_force(&self) -> String {
        let limits = match &self.cgroups {
            Some(_) => "with cgroup memory, process and CPU limits",
            None => "degraded: no memory, process or CPU limits",
        };
        match self.config.backend {
            BackendKind::Native => format!("native (namespaces, seccomp, {limits})"),
            BackendKind::Gvisor => format!(
                "gvisor ({}, {limits})",
                self.runsc
                    .as_deref()
                    .map_or("runsc".to_string(), |path| path.display().to_string())
            ),
            BackendKind::None => {
                "none (no isolation: development only, never for untrusted snippets)".to_string()
            }
        }
    }

    fn process_group(
        &self,
        name: &str,
        pids_limit: u64,
    ) -> Result<Option<cgroup::ProcessGroup>, SandboxError> {
        match &self.cgroups {
            Some(layout) => Ok(Some(cgroup::ProcessGroup::create(
                layout,
                name,
                self.config.memory_limit_bytes,
                pids_limit,
                self.config.cpu_limit_cores,
            )?)),
            None => Ok(None),
        }
    }

    /// Start a process with piped stdin, stdout and stderr in a fresh scratch directory.
    pub fn spawn(&self, command: &CommandSpec) -> Result<SandboxedChild, SandboxError> {
        let name = format!(
            "sandbox-{}-{}",
            process_tag(),
            NEXT_ID.fetch_add(1, Ordering::Relaxed)
        );
        let scratch = self.config.scratch_root.join(&name);
        std::fs::create_dir(&scratch).map_err(SandboxError::Io)?;
        let mut cleanup = Cleanup {
            scratch: Some(scratch.clone()),
            scratch_mounted: false,
            work_dir: None,
            group: None,
        };
        let program = match self.config.backend {
            BackendKind::Gvisor => self.runsc.clone().expect("runsc found at start"),
            _ => command.program.clone(),
        };
        let mut process = tokio::process::Command::new(&program);
        process
            .env_clear()
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if self.config.backend != BackendKind::Gvisor {
            // gVisor takes the program, its arguments and environment from its bundle.
            process
                .args(&command.args)
                .envs(command.env.iter().map(|(key, value)| (key, value)));
        }
        if self.config.backend != BackendKind::None {
            mount_scratch(&scratch, self.config.scratch_size_bytes)?;
            cleanup.scratch_mounted = true;
        }
        match self.config.backend {
            BackendKind::None => {
                tracing::warn!(program = %command.program.display(), "running WITHOUT a sandbox (backend `none`)");
                process.current_dir(&scratch);
                // SAFETY: setsid is async-signal safe.
                unsafe {
                    process.pre_exec(|| {
                        libc::setsid();
                        Ok(())
                    });
                }
            }
            BackendKind::Native => {
                let new_root = self.config.scratch_root.join(format!("{name}.root"));
                std::fs::create_dir(&new_root).map_err(SandboxError::Io)?;
                cleanup.work_dir = Some(new_root.clone());
                cleanup.group = self.process_group(&name, self.config.pids_limit)?;
                let procs_files = cleanup
                    .group
                    .as_ref()
                    .map(|g| g.procs_files.clone())
                    .unwrap_or_default();
                let read_only: Vec<(PathBuf, PathBuf)> = self
                    .config
                    .read_only_mounts
                    .iter()
                    .map(|m| (m.host_path.clone(), m.sandbox_path.clone()))
                    .collect();
                let rlimits = rlimits(&self.config)
                    .iter()
                    .map(|&(resource, _, limit)| (resource, limit))
                    .collect();
                let lifeline = native::lifeline().map_err(SandboxError::Spawn)?;
                let plan = native::ChildPlan::new(
                    &new_root,
                    &scratch,
                    &read_only,
                    &procs_files,
                    rlimits,
                    lifeline,
                );
                // SAFETY: `enter` only makes raw system calls on memory prepared before fork.
                unsafe {
                    process.pre_exec(move || native::enter(&plan));
                }
            }
            BackendKind::Gvisor => {
                let bundle = self.config.scratch_root.join(format!("{name}.bundle"));
                cleanup.work_dir = Some(bundle.clone());
                process.args(gvisor::prepare(
                    &self.config,
                    &bundle,
                    &name,
                    &scratch,
                    command,
                )?);
                cleanup.group =
                    self.process_group(&name, self.config.pids_limit + gvisor::RUNTIME_TASKS)?;
                let lifeline = native::lifeline().map_err(SandboxError::Spawn)?;
                let procs_files = native::c_paths(
                    cleanup
                        .group
                        .as_ref()
                        .map(|g| g.procs_files.as_slice())
                        .unwrap_or_default(),
                );
                // SAFETY: `enter_supervised` only makes raw system calls on memory prepared before fork.
                unsafe {
                    process.pre_exec(move || native::enter_supervised(&procs_files, lifeline));
                }
            }
        }
        let mut child = process.spawn().map_err(SandboxError::Spawn)?;
        Ok(SandboxedChild {
            stdin: child.stdin.take(),
            stdout: child.stdout.take(),
            stderr: child.stderr.take(),
            child,
            cleanup,
            backend: self.config.backend,
            killed_by_supervisor: false,
            finished: None,
        })
    }
}

/// A host system directory as a sandbox sees it, read-only.
pub(crate) enum SystemEntry {
    /// A symlink on the host (merged-/usr systems): the same link inside.
    Link {
        path: &'static std::path::Path,
        target: PathBuf,
    },
    /// A directory: bound read-only at the same place.
    Directory(&'static std::path::Path),
}

/// The host's system directories (`/usr`, `/lib`, ...) that exist.
pub(crate) fn system_entries() -> Vec<SystemEntry> {
    ["/usr", "/lib", "/lib64", "/lib32", "/bin", "/sbin"]
        .into_iter()
        .map(std::path::Path::new)
        .filter_map(|path| match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => std::fs::read_link(path)
                .ok()
                .map(|target| SystemEntry::Link { path, target }),
            Ok(meta) if meta.is_dir() => Some(SystemEntry::Directory(path)),
            _ => None,
        })
        .collect()
}

/// The rlimits every sandboxed program runs under, with their names in an
/// OCI runtime spec.
pub(crate) fn rlimits(
    config: &SandboxConfig,
) -> [(libc::__rlimit_resource_t, &'static str, u64); 3] {
    [
        (
            libc::RLIMIT_FSIZE,
            "RLIMIT_FSIZE",
            config.file_size_limit_bytes,
        ),
        (
            libc::RLIMIT_NOFILE,
            "RLIMIT_NOFILE",
            config.open_files_limit,
        ),
        (libc::RLIMIT_CORE, "RLIMIT_CORE", 0),
    ]
}

/// Mount a private tmpfs of `size_bytes` on `scratch`, owned by the sandbox user.
fn mount_scratch(scratch: &std::path::Path, size_bytes: u64) -> Result<(), SandboxError> {
    use std::os::unix::ffi::OsStrExt;
    let target = std::ffi::CString::new(scratch.as_os_str().as_bytes())
        .map_err(|_| SandboxError::Setup("scratch path has a NUL byte".into()))?;
    let data = std::ffi::CString::new(format!(
        "size={size_bytes},mode=0700,uid={uid},gid={uid}",
        uid = native::SANDBOX_UID
    ))
    .expect("no NUL");
    // SAFETY: all pointers are valid C strings for the duration of the call.
    let result = unsafe {
        libc::mount(
            c"tmpfs".as_ptr(),
            target.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            data.as_ptr().cast(),
        )
    };
    if result != 0 {
        return Err(SandboxError::Setup(format!(
            "cannot mount the scratch tmpfs on {}: {}",
            scratch.display(),
            std::io::Error::last_os_error()
        )));
    }
    Ok(())
}

fn unmount(path: &std::path::Path) {
    use std::os::unix::ffi::OsStrExt;
    if let Ok(target) = std::ffi::CString::new(path.as_os_str().as_bytes()) {
        // SAFETY: a valid C string; a failed unmount is harmless here.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Whether a scratch or cgroup name (`sandbox-PID-...`) belongs to a
/// process that is gone.
fn is_stale_name(name: &str) -> bool {
    let Some(pid) = name
        .strip_prefix("sandbox-")
        .and_then(|rest| rest.split('-').next())
        .and_then(|pid| pid.parse::<u32>().ok())
    else {
        return false;
    };
    pid != std::process::id() && !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove scratch directories (and their mounts) left by a process that
/// died without tearing down.
fn sweep_stale_scratch(scratch_root: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(scratch_root) else {
        return;
    };
    for entry in entries.flatten() {
        if !is_stale_name(&entry.file_name().to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        unmount(&path);
        let _ = std::fs::remove_dir_all(&path);
        tracing::info!(path = %path.display(), "removed a scratch directory left by a dead process");
    }
}

/// What a spawn leaves on the host, removed at teardown.
struct Cleanup {
    scratch: Option<PathBuf>,
    /// The scratch directory is a tmpfs mount point.
    scratch_mounted: bool,
    /// The native backend's root mount point or the gVisor bundle.
    work_dir: Option<PathBuf>,
    group: Option<cgroup::ProcessGroup>,
}

impl Cleanup {
    fn kill_all(&self, child: &tokio::process::Child, backend: BackendKind) {
        match &self.group {
            Some(group) => group.kill_all(),
            None => {
                if let Some(pid) = child.id() {
                    // SAFETY: kill(2) has no memory effects. The child leads its
                    // own session (backend none) or is the sandbox's intermediate.
                    unsafe {
                        if backend == BackendKind::None {
                            libc::kill(-(pid as i32), libc::SIGKILL);
                        }
                        libc::kill(pid as i32, libc::SIGKILL);
                    }
                }
            }
        }
    }

    fn remove(&mut self) {
        if let Some(mut group) = self.group.take() {
            group.remove();
        }
        if let Some(dir) = self.work_dir.take() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if let Some(scratch) = self.scratch.take() {
            if self.scratch_mounted {
                unmount(&scratch);
            }
            let _ = std::fs::remove_dir_all(&scratch);
        }
    }
}

/// A running sandboxed process. Dropping it kills the whole tree and removes
/// its cgroup and scratch directory.
pub struct SandboxedChild {
    pub stdin: Option<tokio::process::ChildStdin>,
    pub stdout: Option<tokio::process::ChildStdout>,
    pub stderr: Option<tokio::process::ChildStderr>,
    child: tokio::process::Child,
    cleanup: Cleanup,
    backend: BackendKind,
    killed_by_supervisor: bool,
    finished: Option<ExitReport>,
}

impl SandboxedChild {
    /// Host path of this process's scratch directory.
    pub fn scratch_dir(&self) -> &std::path::Path {
        self.cleanup
            .scratch
            .as_deref()
            .unwrap_or(std::path::Path::new(""))
    }

    /// Current resident memory of the whole tree, if measurable.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.cleanup
            .group
            .as_ref()
            .and_then(|group| group.memory_bytes())
    }

    /// CPU time the whole tree has used so far, if the cgroup measures it.
    pub fn cpu_time(&self) -> Option<Duration> {
        self.cleanup
            .group
            .as_ref()
            .and_then(|group| group.cpu_time())
    }

    /// Processes of the tree besides the program itself (children it left
    /// running, daemons), if the backend can count them.
    pub fn extra_processes(&self) -> Option<usize> {
        match self.backend {
            // The native tree is the intermediate, the sandbox's init and the program.
            BackendKind::Native => self
                .cleanup
                .group
                .as_ref()
                .map(|group| group.process_count().saturating_sub(3)),
            // The program's processes live inside the user-space kernel.
            BackendKind::Gvisor | BackendKind::None => None,
        }
    }

    /// Kill every process of the tree (including ones that called `setsid`).
    pub fn kill_tree(&mut self) {
        if self.finished.is_none() {
            self.killed_by_supervisor = true;
        }
        self.cleanup.kill_all(&self.child, self.backend);
    }

    /// Wait for the main process to exit, kill what is left of the tree, and report.
    pub async fn wait(&mut self) -> ExitReport {
        if let Some(report) = &self.finished {
            return report.clone();
        }
        let status = self.child.wait().await.ok();
        self.cleanup.kill_all(&self.child, self.backend);
        let group = self.cleanup.group.as_ref();
        let mut exit_code = status.and_then(|s| s.code());
        let mut signal = status.and_then(|s| std::os::unix::process::ExitStatusExt::signal(&s));
        if self.backend == BackendKind::Gvisor {
            // runsc reports a program killed by signal N as exit code 128 + N.
            if let Some(code @ 129..=192) = exit_code {
                exit_code = None;
                signal = Some(code - 128);
            }
        }
        let report = ExitReport {
            exit_code,
            signal,
            oom_killed: group.is_some_and(|g| g.oom_killed()),
            killed_by_supervisor: self.killed_by_supervisor,
            peak_memory_bytes: group.and_then(|g| g.peak_memory_bytes()),
            cpu_time: group.and_then(|g| g.cpu_time()),
        };
        self.cleanup.remove();
        self.finished = Some(report.clone());
        report
    }

    /// Read a file the process left in its scratch directory, never following
    /// a symlink, refusing anything but a plain file with one link, at most
    /// `max_bytes` long.
    pub fn read_scratch_file(&self, name: &str, max_bytes: u64) -> Result<Vec<u8>, SandboxError> {
        use std::io::Read;
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let refuse = |why: &str| {
            SandboxError::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("{name}: {why}"),
            ))
        };
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || name == ".."
            || name.contains('\0')
        {
            return Err(refuse("not a plain file name"));
        }
        let path = self.scratch_dir().join(name);
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|error| {
                if error.raw_os_error() == Some(libc::ELOOP) {
                    refuse("is a symbolic link")
                } else {
                    SandboxError::Io(error)
                }
            })?;
        let meta = file.metadata().map_err(SandboxError::Io)?;
        if !meta.is_file() {
            return Err(refuse("is not a regular file"));
        }
        if meta.nlink() > 1 {
            return Err(refuse("has more than one hard link"));
        }
        if meta.len() > max_bytes {
            return Err(refuse("is too large"));
        }
        let mut contents = Vec::new();
        file.take(max_bytes)
            .read_to_end(&mut contents)
            .map_err(SandboxError::Io)?;
        Ok(contents)
    }
}

impl Drop for SandboxedChild {
    fn drop(&mut self) {
        if self.finished.is_none() {
            self.cleanup.kill_all(&self.child, self.backend);
            let _ = self.child.start_kill();
            self.cleanup.remove();
        }
    }
}
