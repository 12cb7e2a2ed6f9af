//! The README's first command, `leanfarm serve --simulate`, run by a user
//! who is not root: the native sandbox cannot work there, and the farm
//! says so in one message that names the command to run instead; that
//! command then gives a farm that checks. As root, the start-up line names
//! the data directory, the store and the sandbox in force.
//!
//! Run as root, the test makes a system user (`useradd`) and switches to it
//! with `setpriv`; run as another user, it runs the commands as itself.

use serde_json::{json, Value};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const USER: &str = "leanfarm-nonroot";

fn running_as_root() -> bool {
    std::fs::metadata("/proc/self").unwrap().uid() == 0
}

/// `leanfarm ARGS` as a user who is not root, in `directory`.
fn as_non_root(directory: &Path, args: &[&str]) -> Command {
    let binary = env!("CARGO_BIN_EXE_leanfarm");
    let mut command = if running_as_root() {
        let exists = Command::new("id")
            .arg(USER)
            .output()
            .unwrap()
            .status
            .success();
        if !exists {
            let made = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .output()
                .unwrap();
            // Another test process may have made it at the same moment.
            assert!(
                made.status.success() || Command::new("id").arg(USER).status().unwrap().success(),
                "useradd failed: {}",
                String::from_utf8_lossy(&made.stderr)
            );
        }
        let chown = Command::new("chown")
            .arg(format!("{USER}:"))
            .arg(directory)
            .status()
            .unwrap();
        assert!(chown.success());
        let mut command = Command::new("setpriv");
        command
            .args(["--reuid", USER, "--regid", USER, "--init-groups", "--"])
            .arg(binary);
        command
    } else {
        Command::new(binary)
    };
    command
        .args(args)
        .current_dir(directory)
        .env("LEAN_FARM_LOG", "warn")
        .env_remove("LEAN_FARM_DATA_DIR")
        .env_remove("LEAN_FARM_SANDBOX")
        .env_remove("LEAN_FARM_STORE");
    command
}

/// Wait for the start-up line of a `serve` child; panics with what it
/// printed if it exits first.
fn startup_line(child: &mut Child) -> String {
    let stderr = child.stderr.take().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.starts_with("leanfarm: ") {
                let _ = sender.send(line);
            } else {
                eprintln!("[leanfarm] {line}");
            }
        }
    });
    receiver
        .recv_timeout(Duration::from_secs(60))
        .expect("a start-up line within 60 s")
}

fn url_of(startup: &str) -> String {
    startup
        .strip_prefix("leanfarm: serving on ")
        .unwrap_or_else(|| panic!("not a start-up line: {startup}"))
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_user_who_is_not_root_is_told_what_to_run_and_that_command_gives_a_working_farm() {
    let home = tempfile::tempdir().unwrap();
    // The README's first command, on a free port.
    let refused = as_non_root(
        home.path(),
        &["serve", "--simulate", "--addr", "127.0.0.1:0"],
    )
    .output()
    .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    let messages: Vec<&str> = stderr
        .lines()
        .filter(|line| line.starts_with("leanfarm: "))
        .collect();
    assert_eq!(messages.len(), 1, "one message: {stderr}");
    let message = messages[0];
    assert!(
        message.contains("the native sandbox needs root"),
        "{message}"
    );
    assert!(
        message.contains("`sudo leanfarm serve --simulate --addr 127.0.0.1:0`"),
        "{message}"
    );
    // The message's other command, as it is written.
    let instead = message
        .split('`')
        .nth(3)
        .unwrap_or_else(|| panic!("a second command in: {message}"));
    assert_eq!(
        instead,
        "leanfarm serve --simulate --addr 127.0.0.1:0 --sandbox none"
    );
    let arguments: Vec<&str> = instead.split_whitespace().skip(1).collect();
    let mut farm = as_non_root(home.path(), &arguments)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let startup = startup_line(&mut farm);
    let data_dir = std::fs::canonicalize(home.path())
        .unwrap()
        .join("leanfarm-data");
    assert!(
        startup.contains(&format!("data in {}", data_dir.display())),
        "{startup}"
    );
    assert!(
        startup.contains(&format!(
            "store sqlite {}",
            data_dir.join("leanfarm.db").display()
        )),
        "{startup}"
    );
    assert!(
        startup.contains(&format!(
            "artifacts {}",
            data_dir.join("artifacts").display()
        )),
        "{startup}"
    );
    assert!(startup.contains("sandbox none (no isolation"), "{startup}");
    let checked: Value = reqwest::Client::new()
        .post(format!("{}/v1/checks", url_of(&startup)))
        .json(&json!({"snippets": [{"code": "theorem t : True := trivial"}], "wait": 30}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        checked["results"][0]["verdict"]["status"], "valid",
        "{checked}"
    );
    let _ = farm.kill();
    let _ = farm.wait();
    if running_as_root() {
        assert_eq!(
            std::fs::metadata(data_dir.join("leanfarm.db"))
                .unwrap()
                .uid(),
            Command::new("id")
                .args(["-u", USER])
                .output()
                .map(|output| String::from_utf8_lossy(&output.stdout)
                    .trim()
                    .parse::<u32>()
                    .unwrap())
                .unwrap(),
            "the farm wrote its data as the user"
        );
    }
}

#[test]
fn the_start_up_line_names_the_data_directory_the_store_and_the_sandbox() {
    if !running_as_root() {
        eprintln!("skipped: the native sandbox needs root");
        return;
    }
    let home = tempfile::tempdir().unwrap();
    let mut farm = Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "serve",
            "--simulate",
            "--addr",
            "127.0.0.1:0",
            "--slots",
            "1",
        ])
        .args(["--data-dir", "relative-data"])
        .current_dir(home.path())
        .env("LEAN_FARM_LOG", "warn")
        .env_remove("LEAN_FARM_SANDBOX")
        .env_remove("LEAN_FARM_STORE")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let startup = startup_line(&mut farm);
    let _ = farm.kill();
    let _ = farm.wait();
    let data_dir = std::fs::canonicalize(home.path())
        .unwrap()
        .join("relative-data");
    assert!(
        startup.contains(&format!("data in {}", data_dir.display())),
        "an absolute path: {startup}"
    );
    assert!(startup.contains("store sqlite /"), "{startup}");
    assert!(startup.contains("sandbox native (namespaces"), "{startup}");
}
