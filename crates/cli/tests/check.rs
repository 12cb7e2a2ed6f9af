//! `leanfarm check` through the real binary: against a `leanfarm serve
//! --simulate` this test starts, and with its own farm (no --server) on
//! lean-sim as `--simulate` and as a configured REPL. Rows go to standard
//! output in file order and nothing else does; a file that cannot be
//! checked is that file's row; the run waits however long the checks take.

mod common;

use common::Server;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn leanfarm_check(args: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leanfarm"));
    command.arg("check").args(args).env("LEAN_FARM_LOG", "warn");
    command
}

fn write(dir: &Path, name: &str, contents: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    path
}

fn stdout_lines(output: &Output) -> Vec<String> {
    String::from_utf8(output.stdout.clone())
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// The rows of `--output jsonl`: (file name, status, row).
fn jsonl_rows(output: &Output) -> Vec<(String, String, Value)> {
    stdout_lines(output)
        .iter()
        .map(|line| {
            let row: Value = serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("not a JSON row ({error}): {line}"));
            let file = Path::new(row["file"].as_str().unwrap())
                .file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned();
            (file, row["status"].as_str().unwrap().to_string(), row)
        })
        .collect()
}

fn statuses(rows: &[(String, String, Value)]) -> Vec<(&str, &str)> {
    rows.iter()
        .map(|(file, status, _)| (file.as_str(), status.as_str()))
        .collect()
}

#[test]
fn against_a_server_every_file_gets_its_row_and_the_run_outlasts_the_longest_wait() {
    let data = tempfile::tempdir().unwrap();
    // The farm lets a request wait 1 s at most; one check takes 2.5 s.
    let server = Server::start(data.path(), &["--max-wait-seconds", "1"]);
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    write(dir, "a_valid.lean", b"theorem t : True := trivial");
    write(
        dir,
        "b_slow.lean",
        b"theorem t : True := by\n  -- sim: sleep 2500\n  trivial",
    );
    write(dir, "c_not_utf8.lean", b"theorem t : True := \xff trivial");
    write(dir, "d_sorry.lean", b"theorem t : 1 = 1 := by sorry");
    write(
        dir,
        "e_too_large.lean",
        format!("theorem t : True := trivial\n{}", "-".repeat(5000)).as_bytes(),
    );
    write(dir, "f_nul.lean", b"theorem t : True := trivial\0");
    std::fs::create_dir(dir.join("g_directory.lean.d")).unwrap();
    std::os::unix::fs::symlink(dir.join("absent"), dir.join("h_dangling.lean")).unwrap();
    let fifo = dir.join("i_fifo.lean");
    let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) on a path we own.
    assert_eq!(unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o644) }, 0);
    write(dir, "j_valid.lean", b"theorem u : 2 = 2 := rfl");
    write(dir, "notes.txt", b"not a lean file");

    let output = leanfarm_check(&[
        "--server",
        &server.url,
        "--output",
        "jsonl",
        "--batch-size",
        "2",
        "--max-open",
        "2",
        "--max-file-bytes",
        "1000",
    ])
    .arg(dir)
    .output()
    .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let rows = jsonl_rows(&output);
    assert_eq!(
        statuses(&rows),
        [
            ("a_valid.lean", "valid"),
            ("b_slow.lean", "valid"),
            ("c_not_utf8.lean", "file_error"),
            ("d_sorry.lean", "sorry"),
            ("e_too_large.lean", "file_error"),
            ("f_nul.lean", "file_error"),
            ("h_dangling.lean", "file_error"),
            ("i_fifo.lean", "file_error"),
            ("j_valid.lean", "valid"),
        ]
    );
    let error_code = |name: &str| {
        let (_, _, row) = rows.iter().find(|(file, _, _)| file == name).unwrap();
        row["error"]["code"].as_str().unwrap().to_string()
    };
    assert_eq!(error_code("c_not_utf8.lean"), "file_not_utf8");
    assert_eq!(error_code("e_too_large.lean"), "file_too_large");
    assert_eq!(error_code("f_nul.lean"), "file_has_nul_byte");
    assert_eq!(error_code("h_dangling.lean"), "file_unreadable");
    assert_eq!(error_code("i_fifo.lean"), "file_not_regular");
    // Each checked row carries the farm's check, stored under the file's path.
    let (_, _, slow) = &rows[1];
    assert!(slow["check"]["custom_id"]
        .as_str()
        .unwrap()
        .ends_with("b_slow.lean"));
    assert_eq!(slow["check"]["state"], "done");
    // stderr is not a terminal: no progress line, one plain summary.
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains('\r'), "{stderr}");
    assert!(
        stderr.contains("9 files checked") && stderr.contains("3 valid, 6 not valid"),
        "{stderr}"
    );
}

#[test]
fn a_file_the_farm_refuses_alone_is_that_files_error_and_small_batches_pass() {
    let data = tempfile::tempdir().unwrap();
    // The farm takes 2 snippets per request and snippets of 200 bytes.
    let server = Server::start(
        data.path(),
        &["--max-batch", "2", "--max-snippet-bytes", "200"],
    );
    let files = tempfile::tempdir().unwrap();
    let mut paths = Vec::new();
    for index in 0..5 {
        let code = if index == 3 {
            format!("theorem t : True := trivial\n{}", "-".repeat(300))
        } else {
            format!("theorem t{index} : True := trivial")
        };
        paths.push(write(
            files.path(),
            &format!("p{index}.lean"),
            code.as_bytes(),
        ));
    }
    let output = leanfarm_check(&["--server", &server.url, "--output", "jsonl"])
        .args(&paths)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let rows = jsonl_rows(&output);
    assert_eq!(
        statuses(&rows),
        [
            ("p0.lean", "valid"),
            ("p1.lean", "valid"),
            ("p2.lean", "valid"),
            ("p3.lean", "file_error"),
            ("p4.lean", "valid"),
        ]
    );
    assert_eq!(rows[3].2["error"]["code"], "snippet_too_large");
}

#[test]
fn the_policy_and_timeout_flags_reach_the_verdict() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path(), &[]);
    let files = tempfile::tempdir().unwrap();
    let dir = files.path();
    let custom_axiom = write(
        dir,
        "axiom.lean",
        b"theorem t : True := trivial\n-- sim: axioms t Custom.ax",
    );
    let native = write(
        dir,
        "native.lean",
        b"theorem t : 2 ^ 10 = 1024 := by native_decide",
    );
    let pinned = write(
        dir,
        "pinned.lean",
        b"theorem t (n : Nat) : n + 0 = n := by simp",
    );
    let weakened = write(
        dir,
        "weakened.lean",
        b"theorem t (n : Nat) : n + 0 = n \\/ True := Or.inr trivial",
    );
    let slow = write(
        dir,
        "slow.lean",
        b"theorem t : True := by\n  -- sim: sleep 5000\n  trivial",
    );
    let check = |extra: &[&str], file: &Path| {
        let output = leanfarm_check(&["--server", &server.url, "--output", "jsonl"])
            .args(extra)
            .arg(file)
            .output()
            .unwrap();
        let rows = jsonl_rows(&output);
        assert_eq!(rows.len(), 1, "{output:?}");
        let (_, status, row) = rows.into_iter().next().unwrap();
        let reason = row["check"]["verdict"]["reason"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string();
        (status, reason, output.status.code())
    };
    let (status, reason, _) = check(&[], &custom_axiom);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("lean_error", "forbidden_axiom")
    );
    let (status, _, code) = check(&["--axioms", "propext,Custom.ax"], &custom_axiom);
    assert_eq!((status.as_str(), code), ("valid", Some(0)));
    let (status, _, _) = check(&["--axioms", ""], &pinned);
    assert_eq!(status, "valid", "simp's proof here needs no axiom");

    let (status, reason, _) = check(&[], &native);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("lean_error", "forbidden_command")
    );
    let (status, _, _) = check(&["--allow-native-decide"], &native);
    assert_eq!(status, "valid");

    let statement = "theorem t (n : Nat) : n + 0 = n := by sorry";
    let (status, _, _) = check(&["--pin", statement], &pinned);
    assert_eq!(status, "valid");
    let (status, reason, _) = check(&["--pin", statement], &weakened);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("lean_error", "statement_mismatch")
    );
    let statement_file = write(dir, "statement.txt", statement.as_bytes());
    let at_file = format!("@{}", statement_file.display());
    let (status, reason, _) = check(&["--pin", &at_file], &weakened);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("lean_error", "statement_mismatch")
    );

    let (status, _, _) = check(&["--timeout", "1"], &slow);
    assert_eq!(status, "timeout_error");

    // A statement without a name is refused before anything is sent.
    let output = leanfarm_check(&["--server", &server.url, "--pin", "True"])
        .arg(&pinned)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--pin"));
}

#[test]
fn its_own_farm_keeps_every_log_line_out_of_the_table() {
    let files = tempfile::tempdir().unwrap();
    let valid = write(files.path(), "valid.lean", b"theorem t : True := trivial");
    let sorry = write(files.path(), "sorry.lean", b"theorem t : 1 = 1 := by sorry");
    // Logs at their most verbose: they go to stderr, never into the table.
    let output = leanfarm_check(&["--simulate", "--slots", "2"])
        .env("LEAN_FARM_LOG", "debug")
        .args([&valid, &sorry])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(lines[0].starts_with("valid ") && lines[0].contains("valid.lean"));
    assert!(lines[1].starts_with("sorry ") && lines[1].contains("sorry.lean"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("\"level\":\"DEBUG\""), "no logs at all?");

    // With --log-file they go to the file, and stderr holds the summary.
    let log = files.path().join("farm.log");
    let output = leanfarm_check(&["--simulate", "--log-file", log.to_str().unwrap()])
        .env("LEAN_FARM_LOG", "debug")
        .arg(&valid)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(stdout_lines(&output).len(), 1);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("\"level\""), "{stderr}");
    assert!(stderr.contains("1 files checked"), "{stderr}");
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(logged.contains("\"level\":\"DEBUG\""), "{logged}");
}

#[test]
fn its_own_farm_runs_a_configured_repl_with_serves_flags() {
    // lean-sim stands in for a real REPL binary: `--repl`, `--lean-project`
    // and `--toolchain` are `serve`'s own settings.
    let root = tempfile::tempdir().unwrap();
    let project = root.path().join("proofs");
    std::fs::create_dir_all(project.join(".lake/build/lib/lean")).unwrap();
    let file = write(root.path(), "p.lean", b"theorem t : True := trivial");
    let lean_sim = leanfarm_testkit::lean_sim_path();
    let output = leanfarm_check(&[
        "--repl",
        lean_sim.to_str().unwrap(),
        "--lean-project",
        project.to_str().unwrap(),
        "--toolchain",
        "lean-v4.test",
        "--sandbox",
        &leanfarm_testkit::test_backend_name(),
        "--output",
        "jsonl",
    ])
    .arg(&file)
    .output()
    .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows = jsonl_rows(&output);
    let verdict = &rows[0].2["check"]["verdict"];
    assert_eq!(verdict["status"], "valid");
    assert_eq!(verdict["toolchain"], "lean-v4.test");
    assert_eq!(verdict["project"], "proofs");

    // Without a toolchain and without --server, the error says what to pass.
    let output = leanfarm_check(&[]).arg(&file).output().unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("--repl"));
    assert!(output.stdout.is_empty());
}

#[test]
fn settings_of_its_own_farm_are_refused_with_a_server() {
    let files = tempfile::tempdir().unwrap();
    let file = write(files.path(), "p.lean", b"theorem t : True := trivial");
    let output = leanfarm_check(&["--server", "http://127.0.0.1:9", "--simulate"])
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stderr).contains("--simulate"));
}

#[test]
fn progress_is_drawn_only_when_stderr_is_a_terminal() {
    let files = tempfile::tempdir().unwrap();
    for index in 0..3 {
        write(
            files.path(),
            &format!("p{index}.lean"),
            b"theorem t : True := by\n  -- sim: sleep 400\n  trivial",
        );
    }
    let (mut master, slave) = open_pty();
    let mut child = leanfarm_check(&["--simulate", "--slots", "1"])
        .arg(files.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(slave))
        .spawn()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut seen = Vec::new();
        let mut buffer = [0u8; 4096];
        // The pty's reads fail (EIO) once the child has closed it.
        while let Ok(read) = std::io::Read::read(&mut master, &mut buffer) {
            if read == 0 {
                break;
            }
            seen.extend_from_slice(&buffer[..read]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    });
    let mut stdout = String::new();
    std::io::Read::read_to_string(child.stdout.as_mut().unwrap(), &mut stdout).unwrap();
    assert!(child.wait().unwrap().success());
    let terminal = reader.join().unwrap();
    assert!(
        terminal.contains("\rchecked") || terminal.contains("\r\x1b[Kchecked"),
        "{terminal:?}"
    );
    assert!(
        terminal.contains("valid,") && terminal.contains("ETA"),
        "{terminal:?}"
    );
    assert!(terminal.contains("3 files checked"), "{terminal:?}");
    assert_eq!(stdout.lines().count(), 3, "{stdout}");
    assert!(!stdout.contains("checked"), "{stdout}");
}

/// A pseudo-terminal: the reading end, and the end a child writes to.
fn open_pty() -> (std::fs::File, std::os::fd::OwnedFd) {
    use std::os::fd::FromRawFd;
    let mut master = -1;
    let mut slave = -1;
    // SAFETY: openpty(3) writes two new descriptors, which we then own.
    let result = unsafe {
        libc::openpty(
            &mut master,
            &mut slave,
            std::ptr::null_mut(),
            std::ptr::null(),
            std::ptr::null(),
        )
    };
    assert_eq!(result, 0, "openpty failed");
    // SAFETY: both descriptors are open and owned by nothing else.
    unsafe {
        (
            std::fs::File::from_raw_fd(master),
            std::os::fd::OwnedFd::from_raw_fd(slave),
        )
    }
}

#[test]
fn a_farm_that_is_not_up_yet_is_waited_for() {
    let files = tempfile::tempdir().unwrap();
    let file = write(files.path(), "p.lean", b"theorem t : True := trivial");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let check = leanfarm_check(&["--server", &url])
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The farm starts a second later on that port; the submission is
    // retried until it answers.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let data = tempfile::tempdir().unwrap();
    let mut farm = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "serve",
            "--simulate",
            "--addr",
            &format!("127.0.0.1:{port}"),
        ])
        .args(["--sandbox", &leanfarm_testkit::test_backend_name()])
        .arg("--data-dir")
        .arg(data.path())
        .env("LEAN_FARM_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let output = check.wait_with_output().unwrap();
    let _ = farm.kill();
    let _ = farm.wait();
    common::release_mounts(data.path());
    assert!(output.status.success(), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 1);
    assert!(lines[0].starts_with("valid "), "{lines:?}");
}

#[test]
fn a_full_queue_is_waited_out_and_a_batch_larger_than_the_queue_is_split() {
    let data = tempfile::tempdir().unwrap();
    // The farm queues 3 jobs at most, and runs one at a time.
    let server = Server::start(data.path(), &["--max-queued-jobs", "3", "--slots", "1"]);
    let files = tempfile::tempdir().unwrap();
    for index in 0..10 {
        write(
            files.path(),
            &format!("p{index}.lean"),
            b"theorem t : True := by\n  -- sim: sleep 50\n  trivial",
        );
    }
    // Batches of 5 can never be queued (413: split); batches that do not
    // fit yet are answered 429 and submitted again after Retry-After.
    let output = leanfarm_check(&["--server", &server.url, "--batch-size", "5"])
        .arg(files.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let lines = stdout_lines(&output);
    assert_eq!(lines.len(), 10, "{lines:?}");
    assert!(
        lines.iter().all(|line| line.starts_with("valid ")),
        "{lines:?}"
    );
    // Each file was queued once.
    let (_, listed) = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(server.get_json("/v1/checks?limit=1000"));
    assert_eq!(listed["results"].as_array().unwrap().len(), 10, "{listed}");
}
