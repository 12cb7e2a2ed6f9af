//! Directives that change how lean-sim behaves: costs, faults, and hostile
//! acts it really performs (so the sandbox can be tested against them).
//! Each hostile act reports what happened as an info message.

use std::io::{Read, Write};
use std::time::Duration;

/// Memory held for the life of the process (`memory`, `SimMem.mibN`).
static HELD_MEMORY: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());

pub fn hold_memory(mebibytes: usize) {
    let mut block = vec![0u8; mebibytes << 20];
    for page in block.chunks_mut(4096) {
        page[0] = 1;
    }
    HELD_MEMORY.lock().expect("held memory").push(block);
}

pub fn burn_cpu(milliseconds: u64) {
    let budget = Duration::from_millis(milliseconds);
    let started = thread_cpu_time();
    let mut counter = 0u64;
    while thread_cpu_time().saturating_sub(started) < budget {
        for _ in 0..10_000 {
            counter =
                std::hint::black_box(counter.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

fn thread_cpu_time() -> Duration {
    let mut time = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut time) };
    Duration::new(time.tv_sec as u64, time.tv_nsec as u32)
}

pub fn spin_forever() -> ! {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

pub fn sleep_forever() -> ! {
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

pub fn allocate_without_bound() -> ! {
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    loop {
        let mut block = vec![0u8; 16 << 20];
        for page in block.chunks_mut(4096) {
            page[0] = 1;
        }
        blocks.push(block);
    }
}

pub fn fork_bomb() -> ! {
    loop {
        // SAFETY: fork in a single-threaded stand-in; children keep forking.
        unsafe { libc::fork() };
    }
}

/// Perform a hostile act and describe its outcome; `None` if `name` is not one.
pub fn hostile_act(name: &str, args: &[&str]) -> Option<String> {
    let arg = |index: usize| args.get(index).copied().unwrap_or("");
    let rest = || args.get(1..).map(|r| r.join(" ")).unwrap_or_default();
    let outcome = |label: String, result: std::io::Result<String>| match result {
        Ok(ok) => format!(
            "{label}: ok{}",
            if ok.is_empty() {
                String::new()
            } else {
                format!(": {ok}")
            }
        ),
        Err(error) => format!("{label}: failed: {error}"),
    };
    let report = match name {
        "write" => outcome(
            format!("write {}", arg(0)),
            std::fs::write(arg(0), rest()).map(|_| String::new()),
        ),
        "read" => outcome(
            format!("read {}", arg(0)),
            std::fs::File::open(arg(0)).and_then(|file| {
                let mut contents = Vec::new();
                file.take(4096).read_to_end(&mut contents)?;
                Ok(String::from_utf8_lossy(&contents).into_owned())
            }),
        ),
        "list-dir" => outcome(
            format!("list-dir {}", arg(0)),
            std::fs::read_dir(arg(0)).map(|entries| {
                let mut names: Vec<String> = entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect();
                names.sort();
                names.join(" ")
            }),
        ),
        "connect" => outcome(
            format!("connect {}", arg(0)),
            arg(0)
                .parse::<std::net::SocketAddr>()
                .map_err(std::io::Error::other)
                .and_then(|address| {
                    std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
                        .map(|_| String::new())
                }),
        ),
        "resolve" => outcome(format!("resolve {}", arg(0)), {
            use std::net::ToSocketAddrs;
            (arg(0), 80).to_socket_addrs().map(|addresses| {
                addresses
                    .map(|a| a.ip().to_string())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        }),
        "disk-fill" => {
            let mebibytes: usize = arg(0).parse().unwrap_or(1);
            let result = std::fs::File::create("lean-sim-disk-fill").and_then(|mut file| {
                let chunk = vec![b'x'; 1 << 20];
                let mut written = 0usize;
                for _ in 0..mebibytes {
                    if let Err(error) = file.write_all(&chunk) {
                        return Err(std::io::Error::new(
                            error.kind(),
                            format!("{error} after {written} MiB"),
                        ));
                    }
                    written += 1;
                }
                Ok(format!("{written} MiB"))
            });
            outcome(format!("disk-fill {mebibytes}"), result)
        }
        "fd-exhaust" => {
            let mut files = Vec::new();
            let error = loop {
                match std::fs::File::open("/dev/null") {
                    Ok(file) => files.push(file),
                    Err(error) => break error,
                }
                if files.len() >= 1_000_000 {
                    break std::io::Error::other("stopped at a million");
                }
            };
            format!("fd-exhaust: opened {} files, then: {error}", files.len())
        }
        "setsid-daemon" | "linger" => {
            let double = name == "setsid-daemon";
            let mut pipe = [0i32; 2];
            // SAFETY: raw process creation; the child only calls async-signal-safe functions.
            unsafe {
                libc::pipe(pipe.as_mut_ptr());
                let child = libc::fork();
                if child == 0 {
                    if double {
                        libc::setsid();
                        if libc::fork() != 0 {
                            libc::_exit(0);
                        }
                    }
                    let pid = libc::getpid();
                    libc::write(pipe[1], &pid as *const i32 as *const libc::c_void, 4);
                    loop {
                        libc::sleep(3600);
                    }
                }
                let mut pid = 0i32;
                libc::read(pipe[0], &mut pid as *mut i32 as *mut libc::c_void, 4);
                if double {
                    libc::waitpid(child, std::ptr::null_mut(), 0);
                }
                format!("{name}: pid {pid}")
            }
        }
        "signal" => {
            let pid: i32 = arg(0).parse().unwrap_or(0);
            let signal: i32 = arg(1).parse().unwrap_or(libc::SIGKILL);
            // SAFETY: kill has no memory effects.
            let result = unsafe { libc::kill(pid, signal) };
            outcome(format!("signal {pid} {signal}"), errno_result(result))
        }
        "ptrace" => {
            let pid: i32 = arg(0).parse().unwrap_or(0);
            // SAFETY: PTRACE_ATTACH takes no pointers.
            let result = unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, 0usize, 0usize) };
            outcome(format!("ptrace {pid}"), errno_result(result as i32))
        }
        "core-dump" => {
            let unlimited = libc::rlimit {
                rlim_cur: libc::RLIM_INFINITY,
                rlim_max: libc::RLIM_INFINITY,
            };
            // SAFETY: setrlimit reads the struct we own; abort ends the process.
            unsafe {
                libc::setrlimit(libc::RLIMIT_CORE, &unlimited);
                libc::abort();
            }
        }
        "symlink" => outcome(
            format!("symlink {} -> {}", arg(0), arg(1)),
            std::os::unix::fs::symlink(arg(1), arg(0)).map(|_| String::new()),
        ),
        "hardlink" => outcome(
            format!("hardlink {} -> {}", arg(0), arg(1)),
            std::fs::hard_link(arg(1), arg(0)).map(|_| String::new()),
        ),
        "unshare-user" => {
            // SAFETY: unshare has no memory effects.
            let result = unsafe { libc::unshare(libc::CLONE_NEWUSER) };
            outcome("unshare-user".to_string(), errno_result(result))
        }
        "mount-tmpfs" => {
            let target = std::ffi::CString::new(arg(0)).unwrap_or_default();
            let kind = c"tmpfs";
            // SAFETY: all pointers are valid C strings for the duration of the call.
            let result = unsafe {
                libc::mount(
                    kind.as_ptr(),
                    target.as_ptr(),
                    kind.as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            outcome(format!("mount-tmpfs {}", arg(0)), errno_result(result))
        }
        "syscall" => {
            let number = match arg(0) {
                "ptrace" => libc::SYS_ptrace,
                "mount" => libc::SYS_mount,
                "unshare" => libc::SYS_unshare,
                "setns" => libc::SYS_setns,
                "keyctl" => libc::SYS_keyctl,
                "bpf" => libc::SYS_bpf,
                "perf_event_open" => libc::SYS_perf_event_open,
                "io_uring_setup" => libc::SYS_io_uring_setup,
                "init_module" => libc::SYS_init_module,
                "finit_module" => libc::SYS_finit_module,
                "kexec_load" => libc::SYS_kexec_load,
                "reboot" => libc::SYS_reboot,
                "userfaultfd" => libc::SYS_userfaultfd,
                "process_vm_readv" => libc::SYS_process_vm_readv,
                "open_by_handle_at" => libc::SYS_open_by_handle_at,
                other => return Some(format!("syscall {other}: unknown to lean-sim")),
            };
            // SAFETY: every argument is zero: no pointer is dereferenced.
            let result = unsafe { libc::syscall(number, 0, 0, 0, 0, 0, 0) };
            outcome(format!("syscall {}", arg(0)), errno_result(result as i32))
        }
        "env" => format!(
            "env {}: {}",
            arg(0),
            std::env::var(arg(0)).unwrap_or_else(|_| "(unset)".to_string())
        ),
        "getpid" => {
            // SAFETY: these calls have no preconditions.
            let (pid, ppid, uid) = unsafe { (libc::getpid(), libc::getppid(), libc::getuid()) };
            format!("getpid: pid {pid} ppid {ppid} uid {uid}")
        }
        _ => return None,
    };
    Some(report)
}

fn errno_result(result: i32) -> std::io::Result<String> {
    if result == -1 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(String::new())
    }
}
