//! The gVisor backend: the program runs under `runsc run` in a user-space
//! kernel, from an OCI bundle written for each process.
//!
//! The bundle's root is an empty, read-only directory holding only mount
//! points and the system symlinks; system directories and the configured
//! mounts are bound read-only, the scratch tmpfs read-write at /scratch.
//! The network is `none` (loopback inside the sandbox only). runsc and its
//! sandbox and gofer processes join the process's cgroup on the host, so
//! the memory, process and CPU limits cover the whole sandbox, user-space
//! kernel included, and teardown kills it through the cgroup.

use crate::{CommandSpec, SandboxConfig, SandboxError};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// Host tasks the user-space kernel needs for its own threads, on top of
/// the configured process limit (which gVisor enforces inside).
pub(crate) const RUNTIME_TASKS: u64 = 1024;

/// Find `runsc` and check that it runs.
pub(crate) fn find_runsc() -> Result<PathBuf, String> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let runsc = std::env::split_paths(&path)
        .map(|dir| dir.join("runsc"))
        .find(|candidate| candidate.is_file())
        .ok_or_else(|| "runsc is not on PATH (Debian: apt-get install runsc)".to_string())?;
    let output = std::process::Command::new(&runsc)
        .arg("--version")
        .output()
        .map_err(|error| format!("cannot run {}: {error}", runsc.display()))?;
    if !output.status.success() {
        return Err(format!("{} --version failed", runsc.display()));
    }
    Ok(runsc)
}

fn bind(source: &Path, destination: &Path, writable: bool) -> Value {
    json!({
        "destination": destination,
        "type": "bind",
        "source": source,
        "options": ["rbind", if writable { "rw" } else { "ro" }, "nosuid", "nodev"],
    })
}

/// Write the OCI bundle for one process into `bundle` and return the
/// arguments for `runsc`.
pub(crate) fn prepare(
    config: &SandboxConfig,
    bundle: &Path,
    id: &str,
    scratch: &Path,
    command: &CommandSpec,
) -> Result<Vec<String>, SandboxError> {
    let setup = |what: &str, error: std::io::Error| {
        SandboxError::Setup(format!(
            "cannot prepare the gVisor bundle ({what}): {error}"
        ))
    };
    let rootfs = bundle.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| setup("rootfs", e))?;
    let mount_point = |inside: &Path| -> Result<(), SandboxError> {
        let relative = inside.strip_prefix("/").unwrap_or(inside);
        std::fs::create_dir_all(rootfs.join(relative)).map_err(|e| setup("mount point", e))
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc"}),
        json!({
            "destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
            "options": ["nosuid", "nodev", "size=64m", "mode=1777"],
        }),
    ];
    for inside in ["/proc", "/tmp", "/dev", "/scratch"] {
        mount_point(Path::new(inside))?;
    }
    for entry in crate::system_entries() {
        match entry {
            crate::SystemEntry::Link { path, target } => {
                let relative = path.strip_prefix("/").unwrap_or(path);
                std::os::unix::fs::symlink(target, rootfs.join(relative))
                    .map_err(|e| setup("system link", e))?;
            }
            crate::SystemEntry::Directory(path) => {
                mount_point(path)?;
                mounts.push(bind(path, path, false));
            }
        }
    }
    for mount in &config.read_only_mounts {
        mount_point(&mount.sandbox_path)?;
        mounts.push(bind(&mount.host_path, &mount.sandbox_path, false));
    }
    mounts.push(bind(scratch, Path::new("/scratch"), true));

    let mut args = vec![command.program.to_string_lossy().into_owned()];
    args.extend(command.args.iter().cloned());
    let env: Vec<String> = command
        .env
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    let rlimit = |kind: &str, limit: u64| json!({"type": kind, "hard": limit, "soft": limit});
    let uid = crate::native::SANDBOX_UID;
    let spec = json!({
        "ociVersion": "1.0.0",
        "process": {
            "terminal": false,
            "user": {"uid": uid, "gid": uid},
            "args": args,
            "env": env,
            "cwd": "/scratch",
            "rlimits": crate::rlimits(config).map(|(_, name, limit)| rlimit(name, limit)),
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": [], "effective": [], "inheritable": [], "permitted": [], "ambient": [],
            },
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "sandbox",
        "mounts": mounts,
        "linux": {
            "namespaces": [
                {"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"},
            ],
            "resources": {"pids": {"limit": config.pids_limit}},
        },
    });
    std::fs::write(bundle.join("config.json"), spec.to_string())
        .map_err(|e| setup("config.json", e))?;
    let state = bundle.join("state");
    std::fs::create_dir_all(&state).map_err(|e| setup("state", e))?;
    Ok(vec![
        format!("--root={}", state.display()),
        "--network=none".to_string(),
        "--ignore-cgroups".to_string(),
        "run".to_string(),
        format!("--bundle={}", bundle.display()),
        id.to_string(),
    ])
}
