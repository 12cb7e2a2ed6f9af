//! A private PostgreSQL server for tests that stop and start their
//! database: the machine's (Debian's packages), as the `postgres` user, in a
//! temporary directory, on a free port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The newest installed PostgreSQL's programs.
fn postgres_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .expect("PostgreSQL is installed (.ci/run installs it)")
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|bin| bin.join("postgres").exists())
        .collect();
    versions.sort();
    versions.pop().expect("a PostgreSQL server binary")
}

/// A private PostgreSQL server, run as the `postgres` user.
pub struct PrivatePostgres {
    dir: tempfile::TempDir,
    port: u16,
    pub server: Option<Child>,
}

impl PrivatePostgres {
    pub fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn init() -> PrivatePostgres {
        let dir = tempfile::tempdir().unwrap();
        Command::new("chown")
            .arg("postgres:postgres")
            .arg(dir.path())
            .status()
            .unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = PrivatePostgres {
            dir,
            port,
            server: None,
        };
        let status = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(postgres_bin().join("initdb"))
            .args(["-A", "trust", "-U", "postgres", "-D"])
            .arg(cluster.data())
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        cluster
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn start(&mut self) {
        self.start_with(&[]);
    }

    /// Start with these extra `-c name=value` settings.
    pub fn start_with(&mut self, settings: &[&str]) {
        let server = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(postgres_bin().join("postgres"))
            .arg("-D")
            .arg(self.data())
            .args([
                "-p",
                &self.port.to_string(),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
            ])
            .args(settings.iter().flat_map(|setting| ["-c", setting]))
            .arg("-k")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.server = Some(server);
        // The port opens before the server takes sessions ("the database
        // system is starting up"): wait until pg_isready says it accepts them.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(postgres_bin().join("pg_isready"))
                .args(["-q", "-h", "127.0.0.1", "-p", &self.port.to_string()])
                .status()
                .unwrap();
            if ready.success() {
                break;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Fast shutdown (SIGINT to the postmaster, as `pg_ctl stop -m fast`).
    pub fn stop(&mut self) {
        if let Some(mut server) = self.server.take() {
            let postmaster = std::fs::read_to_string(self.data().join("postmaster.pid"))
                .ok()
                .and_then(|text| {
                    text.lines()
                        .next()
                        .and_then(|pid| pid.trim().parse::<i32>().ok())
                });
            if let Some(pid) = postmaster {
                // SAFETY: kill(2) on the postmaster this test started.
                unsafe { libc::kill(pid, libc::SIGINT) };
            }
            let _ = server.wait();
            let deadline = Instant::now() + Duration::from_secs(30);
            while Path::new(&self.data().join("postmaster.pid")).exists() {
                assert!(Instant::now() < deadline, "PostgreSQL did not stop");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}
