//! The native backend's child setup. Everything is prepared before fork
//! (paths as C strings, the seccomp program); after fork, in `enter`, only
//! raw system calls run (no allocation, no locks), as async-signal safety
//! demands.
//!
//! The child joins its cgroups, unshares mount, PID, network, IPC and UTS
//! namespaces and forks twice. The process tree is:
//!
//! - the intermediate (in the host's PID namespace): the supervisor's
//!   child; waits for init and ends the way the program ended, so the
//!   supervisor sees the program's status; if the supervisor dies first
//!   (even by SIGKILL), its lifeline pipe closes and the intermediate kills
//!   init, and with it the sandbox;
//! - init (PID 1 of the sandbox): builds a new root on a tmpfs (read-only
//!   system and configured mounts, a read-write scratch directory, private
//!   /tmp, /proc and a minimal /dev), pivots into it, brings up loopback,
//!   then reaps orphans until the program ends and passes its wait status
//!   to the intermediate through a pipe; its exit kills the namespace;
//! - the program (PID 2): sets rlimits, drops to an unprivileged user with
//!   no capabilities and no new privileges, and installs the seccomp filter.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The uid and gid sandboxed programs run as (`nobody`).
pub const SANDBOX_UID: u32 = 65534;

pub(crate) enum MountStep {
    /// mkdir(path)
    Directory(CString),
    /// symlink(target, path)
    Symlink { target: CString, path: CString },
    /// An empty file to bind a device onto.
    File(CString),
    /// Bind `source` on `target`, then remount with `flags`.
    Bind {
        source: CString,
        target: CString,
        flags: libc::c_ulong,
    },
    /// Mount a filesystem of `kind` with `data`.
    Filesystem {
        kind: CString,
        target: CString,
        flags: libc::c_ulong,
        data: CString,
    },
}

pub(crate) struct ChildPlan {
    pub procs_files: Vec<CString>,
    pub new_root: CString,
    pub old_root: CString,
    pub old_root_inside: CString,
    pub steps: Vec<MountStep>,
    pub scratch_inside: CString,
    pub rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
    pub filter: Vec<libc::sock_filter>,
    /// The read end of this process's lifeline (see `lifeline`).
    pub lifeline: libc::c_int,
}

/// A pipe whose write end only this process holds, for as long as it lives.
/// Every sandbox's intermediate process keeps the read end and watches it:
/// when the farm dies, even by SIGKILL, the write end closes, and the
/// intermediate kills its sandbox.
pub(crate) fn lifeline() -> std::io::Result<libc::c_int> {
    static LIFELINE: std::sync::OnceLock<Result<libc::c_int, i32>> = std::sync::OnceLock::new();
    let read_end = LIFELINE.get_or_init(|| {
        let mut ends = [0 as libc::c_int; 2];
        // SAFETY: pipe2 writes two descriptors into the array we own. Both
        // ends close on exec; the write end is never closed by this process.
        if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
        }
        Ok(ends[0])
    });
    read_end.map_err(std::io::Error::from_raw_os_error)
}

fn c_path(path: &Path) -> CString {
    CString::new(path.as_os_str().as_bytes()).expect("paths have no NUL bytes")
}

fn c_string(text: &str) -> CString {
    CString::new(text).expect("no NUL bytes")
}

impl ChildPlan {
    /// Plan the root filesystem: system directories and `read_only` mounts
    /// read-only, `scratch` read-write at /scratch.
    pub(crate) fn new(
        new_root: &Path,
        scratch: &Path,
        read_only: &[(std::path::PathBuf, std::path::PathBuf)],
        procs_files: &[std::path::PathBuf],
        rlimits: Vec<(libc::__rlimit_resource_t, u64)>,
        lifeline: libc::c_int,
    ) -> ChildPlan {
        let mut steps = Vec::new();
        let mut made: Vec<std::path::PathBuf> = Vec::new();
        let read_only_flags = libc::MS_BIND
            | libc::MS_REC
            | libc::MS_RDONLY
            | libc::MS_NOSUID
            | libc::MS_NODEV
            | libc::MS_REMOUNT;
        let mut make_dirs = |inside: &Path, steps: &mut Vec<MountStep>| {
            let mut current = new_root.to_path_buf();
            for component in inside.components().skip(1) {
                current.push(component);
                if !made.contains(&current) {
                    made.push(current.clone());
                    steps.push(MountStep::Directory(c_path(&current)));
                }
            }
        };
        let inside_root = |path: &Path| new_root.join(path.strip_prefix("/").unwrap_or(path));
        for entry in crate::system_entries() {
            match entry {
                crate::SystemEntry::Link { path, target } => steps.push(MountStep::Symlink {
                    target: c_path(&target),
                    path: c_path(&inside_root(path)),
                }),
                crate::SystemEntry::Directory(path) => {
                    make_dirs(path, &mut steps);
                    steps.push(MountStep::Bind {
                        source: c_path(path),
                        target: c_path(&inside_root(path)),
                        flags: read_only_flags,
                    });
                }
            }
        }
        make_dirs(Path::new("/tmp"), &mut steps);
        steps.push(MountStep::Filesystem {
            kind: c_string("tmpfs"),
            target: c_path(&new_root.join("tmp")),
            flags: libc::MS_NOSUID | libc::MS_NODEV,
            data: c_string("size=64m,mode=1777"),
        });
        make_dirs(Path::new("/proc"), &mut steps);
        steps.push(MountStep::Filesystem {
            kind: c_string("proc"),
            target: c_path(&new_root.join("proc")),
            flags: libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            data: c_string("hidepid=2"),
        });
        make_dirs(Path::new("/dev"), &mut steps);
        for device in ["null", "zero", "random", "urandom"] {
            let target = new_root.join("dev").join(device);
            steps.push(MountStep::File(c_path(&target)));
            steps.push(MountStep::Bind {
                source: c_path(&Path::new("/dev").join(device)),
                target: c_path(&target),
                flags: libc::MS_BIND | libc::MS_NOSUID | libc::MS_REMOUNT,
            });
        }
        // Configured mounts and the scratch go last, on top of /tmp and the
        // rest: a project under /tmp on the host stays visible.
        for (host, inside) in read_only {
            make_dirs(inside, &mut steps);
            let target = new_root.join(inside.strip_prefix("/").unwrap_or(inside));
            steps.push(MountStep::Bind {
                source: c_path(host),
                target: c_path(&target),
                flags: read_only_flags,
            });
        }
        let scratch_inside = Path::new("/scratch");
        make_dirs(scratch_inside, &mut steps);
        steps.push(MountStep::Bind {
            source: c_path(scratch),
            target: c_path(&new_root.join("scratch")),
            flags: libc::MS_BIND
                | libc::MS_REC
                | libc::MS_NOSUID
                | libc::MS_NODEV
                | libc::MS_REMOUNT,
        });
        let old_root = new_root.join(".old-root");
        steps.push(MountStep::Directory(c_path(&old_root)));
        ChildPlan {
            procs_files: c_paths(procs_files),
            new_root: c_path(new_root),
            old_root: c_path(&old_root),
            old_root_inside: c_string("/.old-root"),
            steps,
            scratch_inside: c_path(scratch_inside),
            rlimits,
            filter: crate::seccomp::program(),
            lifeline,
        }
    }
}

fn check(result: libc::c_int) -> std::io::Result<()> {
    if result == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// Write the calling process's pid to a cgroup's `cgroup.procs`.
///
/// # Safety
/// Async-signal safe: no allocation.
unsafe fn join_cgroup(procs_file: &CString) -> std::io::Result<()> {
    // SAFETY: plain system calls on a valid C string and a stack buffer.
    unsafe {
        let fd = libc::open(procs_file.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let mut digits = [0u8; 16];
        let mut pid = libc::getpid() as u32;
        let mut start = digits.len();
        loop {
            start -= 1;
            digits[start] = b'0' + (pid % 10) as u8;
            pid /= 10;
            if pid == 0 {
                break;
            }
        }
        let written = libc::write(fd, digits[start..].as_ptr().cast(), digits.len() - start);
        libc::close(fd);
        if written < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn c_paths(paths: &[std::path::PathBuf]) -> Vec<CString> {
    paths.iter().map(|p| c_path(p)).collect()
}

/// Join every cgroup whose `cgroup.procs` file is given.
///
/// # Safety
/// Async-signal safe: for `pre_exec`.
pub(crate) unsafe fn join_cgroups(procs_files: &[CString]) -> std::io::Result<()> {
    for procs_file in procs_files {
        // SAFETY: as for this function.
        unsafe { join_cgroup(procs_file)? };
    }
    Ok(())
}

/// For a program that makes its own sandbox (gVisor's `runsc`): join the
/// cgroups, then fork an intermediate that stays behind, like the native
/// backend's, to end the way the program ends, and to kill every process of
/// the cgroups if the farm dies first.
///
/// # Safety
/// Only to be called from `pre_exec`: after fork, in a single thread.
pub(crate) unsafe fn enter_supervised(
    procs_files: &[CString],
    lifeline: libc::c_int,
) -> std::io::Result<()> {
    // SAFETY: raw system calls on memory prepared before fork.
    unsafe {
        join_cgroups(procs_files)?;
        let program = libc::fork();
        if program < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if program > 0 {
            close_all_but(&[lifeline]);
            match watch(program, lifeline) {
                Some(status) => end_like(status),
                None => {
                    kill_cgroups(procs_files);
                    libc::_exit(128 + libc::SIGKILL);
                }
            }
        }
    }
    Ok(())
}

/// Kill every process listed in these cgroups (but the caller), until they
/// are empty or a second has passed.
///
/// # Safety
/// Async-signal safe: no allocation.
unsafe fn kill_cgroups(procs_files: &[CString]) {
    // SAFETY: open/read/close into a stack buffer; kill has no memory effects.
    unsafe {
        let me = libc::getpid();
        for _ in 0..100 {
            let mut found = false;
            for procs_file in procs_files {
                let fd = libc::open(procs_file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    continue;
                }
                let mut buffer = [0u8; 8192];
                let length = libc::read(fd, buffer.as_mut_ptr().cast(), buffer.len());
                libc::close(fd);
                let mut pid: libc::pid_t = 0;
                for &byte in &buffer[..length.max(0) as usize] {
                    if byte.is_ascii_digit() {
                        pid = pid * 10 + libc::pid_t::from(byte - b'0');
                    } else {
                        if pid > 0 && pid != me {
                            libc::kill(pid, libc::SIGKILL);
                            found = true;
                        }
                        pid = 0;
                    }
                }
            }
            if !found {
                return;
            }
            let pause = libc::timespec {
                tv_sec: 0,
                tv_nsec: 10_000_000,
            };
            libc::nanosleep(&pause, std::ptr::null_mut());
        }
    }
}

/// Runs in the forked child before exec (see the module docs).
///
/// # Safety
/// Only to be called from `pre_exec`: after fork, in a single thread.
pub(crate) unsafe fn enter(plan: &ChildPlan) -> std::io::Result<()> {
    // SAFETY: every call below is a raw system call on memory prepared before fork.
    unsafe {
        join_cgroups(&plan.procs_files)?;
        check(libc::unshare(
            libc::CLONE_NEWNS
                | libc::CLONE_NEWPID
                | libc::CLONE_NEWNET
                | libc::CLONE_NEWIPC
                | libc::CLONE_NEWUTS,
        ))?;
        // The init process reports the program's wait status through this pipe.
        let mut status_pipe = [0 as libc::c_int; 2];
        check(libc::pipe2(status_pipe.as_mut_ptr(), libc::O_CLOEXEC))?;
        let init = libc::fork();
        if init < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if init > 0 {
            // The intermediate: keep only the status pipe and the lifeline,
            // wait for init (killing it if the farm dies first), and end the
            // way the program ended.
            close_all_but(&[status_pipe[0], plan.lifeline]);
            let _ = watch(init, plan.lifeline);
            let mut status: libc::c_int = 0;
            let read = libc::read(
                status_pipe[0],
                (&mut status as *mut libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>(),
            );
            if read != std::mem::size_of::<libc::c_int>() as isize {
                libc::_exit(127);
            }
            end_like(status);
        }
        libc::close(status_pipe[0]);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        let none = std::ptr::null::<libc::c_char>();
        check(libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ))?;
        check(libc::mount(
            c"tmpfs".as_ptr(),
            plan.new_root.as_ptr(),
            c"tmpfs".as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV,
            c"size=1m,mode=0755".as_ptr().cast(),
        ))?;
        for step in &plan.steps {
            match step {
                MountStep::Directory(path) => {
                    // It may exist already: a configured mount inside a
                    // system directory (e.g. a toolchain under /usr/local).
                    if libc::mkdir(path.as_ptr(), 0o755) != 0
                        && *libc::__errno_location() != libc::EEXIST
                    {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                MountStep::Symlink { target, path } => {
                    check(libc::symlink(target.as_ptr(), path.as_ptr()))?
                }
                MountStep::File(path) => {
                    let fd = libc::open(
                        path.as_ptr(),
                        libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                        0o644,
                    );
                    if fd < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    libc::close(fd);
                }
                MountStep::Bind {
                    source,
                    target,
                    flags,
                } => {
                    check(libc::mount(
                        source.as_ptr(),
                        target.as_ptr(),
                        none,
                        libc::MS_BIND | libc::MS_REC,
                        std::ptr::null(),
                    ))?;
                    check(libc::mount(
                        none,
                        target.as_ptr(),
                        none,
                        *flags,
                        std::ptr::null(),
                    ))?;
                }
                MountStep::Filesystem {
                    kind,
                    target,
                    flags,
                    data,
                } => {
                    check(libc::mount(
                        kind.as_ptr(),
                        target.as_ptr(),
                        kind.as_ptr(),
                        *flags,
                        data.as_ptr().cast(),
                    ))?;
                }
            }
        }
        check(libc::syscall(
            libc::SYS_pivot_root,
            plan.new_root.as_ptr(),
            plan.old_root.as_ptr(),
        ) as libc::c_int)?;
        check(libc::chdir(c"/".as_ptr()))?;
        check(libc::umount2(
            plan.old_root_inside.as_ptr(),
            libc::MNT_DETACH,
        ))?;
        check(libc::rmdir(plan.old_root_inside.as_ptr()))?;
        check(libc::mount(
            none,
            c"/".as_ptr(),
            none,
            libc::MS_REMOUNT | libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV,
            std::ptr::null(),
        ))?;
        check(libc::chdir(plan.scratch_inside.as_ptr()))?;
        loopback_up();
        let hostname = b"sandbox";
        libc::sethostname(hostname.as_ptr().cast(), hostname.len());
        let program = libc::fork();
        if program < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if program > 0 {
            // Init (PID 1 of the sandbox): reap every orphan until the
            // program ends, pass its status on, and exit, which kills
            // whatever is left in the namespace.
            close_all_but(&[status_pipe[1]]);
            let mut status: libc::c_int = 0;
            loop {
                let pid = libc::waitpid(-1, &mut status, 0);
                if pid == program {
                    break;
                }
                if pid < 0 && *libc::__errno_location() != libc::EINTR {
                    libc::_exit(127);
                }
            }
            libc::write(
                status_pipe[1],
                (&status as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>(),
            );
            libc::_exit(0);
        }
        // The program: not PID 1, so signals act on it as usual.
        libc::close(status_pipe[1]);
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
        for (resource, limit) in &plan.rlimits {
            let value = libc::rlimit {
                rlim_cur: *limit,
                rlim_max: *limit,
            };
            check(libc::setrlimit(*resource, &value))?;
        }
        for capability in 0..64 {
            libc::prctl(libc::PR_CAPBSET_DROP, capability);
        }
        check(libc::setgroups(0, std::ptr::null()))?;
        check(libc::setresgid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID))?;
        check(libc::setresuid(SANDBOX_UID, SANDBOX_UID, SANDBOX_UID))?;
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))?;
        let program = libc::sock_fprog {
            len: plan.filter.len() as u16,
            filter: plan.filter.as_ptr() as *mut libc::sock_filter,
        };
        check(libc::prctl(
            libc::PR_SET_SECCOMP,
            libc::SECCOMP_MODE_FILTER,
            &program as *const libc::sock_fprog,
        ))?;
    }
    Ok(())
}

/// Close every descriptor except those in `keep` (at most four).
///
/// # Safety
/// Async-signal safe.
unsafe fn close_all_but(keep: &[libc::c_int]) {
    // SAFETY: closing descriptors has no memory effects.
    unsafe {
        let mut sorted = [0 as libc::c_uint; 4];
        let count = keep.len().min(sorted.len());
        for (slot, fd) in sorted.iter_mut().zip(keep) {
            *slot = *fd as libc::c_uint;
        }
        sorted[..count].sort_unstable();
        let mut next = 0 as libc::c_uint;
        let mut ok = true;
        for &fd in &sorted[..count] {
            if fd > next {
                ok &= libc::syscall(libc::SYS_close_range, next, fd - 1, 0u32) == 0;
            }
            next = fd + 1;
        }
        ok &= libc::syscall(libc::SYS_close_range, next, u32::MAX, 0u32) == 0;
        if !ok {
            for fd in 0..4096 {
                if !keep.contains(&fd) {
                    libc::close(fd);
                }
            }
        }
    }
}

/// Wait for a child to end and return its wait status. If the lifeline
/// breaks first (the farm died), kill the child, wait, and return `None`.
///
/// # Safety
/// Async-signal safe.
unsafe fn watch(init: libc::pid_t, lifeline: libc::c_int) -> Option<libc::c_int> {
    // SAFETY: pidfd_open, poll and waitpid on descriptors and memory we own.
    unsafe {
        let pidfd = libc::syscall(libc::SYS_pidfd_open, init, 0) as libc::c_int;
        loop {
            let mut fds = [
                libc::pollfd {
                    fd: lifeline,
                    events: libc::POLLIN,
                    revents: 0,
                },
                libc::pollfd {
                    fd: pidfd,
                    events: libc::POLLIN,
                    revents: 0,
                },
            ];
            // Without a pidfd (old kernels), look at init four times a second.
            let (count, timeout) = if pidfd >= 0 { (2, -1) } else { (1, 250) };
            let ready = libc::poll(fds.as_mut_ptr(), count, timeout);
            if ready < 0 && *libc::__errno_location() != libc::EINTR {
                break;
            }
            if fds[0].revents != 0 {
                // Nobody ever writes to the lifeline: any event is its end.
                libc::kill(init, libc::SIGKILL);
                break;
            }
            let mut status = 0;
            if libc::waitpid(init, &mut status, libc::WNOHANG) == init {
                return Some(status);
            }
        }
        let mut status = 0;
        while libc::waitpid(init, &mut status, 0) < 0 {
            if *libc::__errno_location() != libc::EINTR {
                break;
            }
        }
        None
    }
}

/// Exit with the given wait status: the same exit code, or death by the
/// same signal (without a core dump).
///
/// # Safety
/// Async-signal safe; does not return.
unsafe fn end_like(status: libc::c_int) -> ! {
    // SAFETY: signal disposition, rlimit and kill on this process only.
    unsafe {
        if libc::WIFSIGNALED(status) {
            let signal = libc::WTERMSIG(status);
            libc::signal(signal, libc::SIG_DFL);
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            libc::setrlimit(libc::RLIMIT_CORE, &no_core);
            libc::kill(libc::getpid(), signal);
            libc::_exit(128 + signal);
        }
        libc::_exit(if libc::WIFEXITED(status) {
            libc::WEXITSTATUS(status)
        } else {
            127
        })
    }
}

/// Bring up `lo` in the new network namespace (best effort).
///
/// # Safety
/// Async-signal safe.
unsafe fn loopback_up() {
    // SAFETY: ioctl on a socket we own with a zeroed, stack-allocated ifreq.
    unsafe {
        let socket = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if socket < 0 {
            return;
        }
        let mut request: libc::ifreq = std::mem::zeroed();
        request.ifr_name[0] = b'l' as libc::c_char;
        request.ifr_name[1] = b'o' as libc::c_char;
        if libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request) == 0 {
            request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(socket, libc::SIOCSIFFLAGS, &mut request);
        }
        libc::close(socket);
    }
}
