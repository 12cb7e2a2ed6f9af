//! A PostgreSQL database of its own for each test, on the server named by
//! `LEAN_FARM_TEST_POSTGRES` (else the local one), dropped when the test
//! ends. Databases left behind by test processes that died are dropped
//! when the next one is created.
//!
//! Usable from plain and from async tests alike: each statement runs on a
//! thread of its own with its own runtime.

use std::sync::atomic::{AtomicU32, Ordering};

/// The PostgreSQL server the tests use: `LEAN_FARM_TEST_POSTGRES`, or the
/// local one.
pub fn admin_url() -> String {
    std::env::var("LEAN_FARM_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_string())
}

/// Every test database's name starts with this, then the creating process's id.
const NAME_PREFIX: &str = "leanfarm_test_";

/// An empty database (no migrations applied), dropped with this guard.
pub struct TestDatabase {
    pub name: String,
    /// The admin url with this database in place of the admin's.
    pub url: String,
}

impl TestDatabase {
    /// A new, empty database whose name carries `label` (lowercase letters,
    /// digits and `_`), this process's id and a counter.
    pub fn create(label: &str) -> TestDatabase {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "a test database label is lowercase letters, digits and _: {label:?}"
        );
        let name = format!(
            "{NAME_PREFIX}{}_{}_{label}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let statement = format!("CREATE DATABASE {name}");
        run_as_admin(move |client| async move {
            drop_databases_of_dead_processes(&client).await;
            client.batch_execute(&statement).await.unwrap();
        });
        let admin = admin_url();
        let (server, _) = admin
            .rsplit_once('/')
            .expect("a database in LEAN_FARM_TEST_POSTGRES");
        TestDatabase {
            url: format!("{server}/{name}"),
            name,
        }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        run_as_admin(move |client| async move {
            let _ = client.batch_execute(&statement).await;
        });
    }
}

/// Databases whose creating process no longer exists.
async fn drop_databases_of_dead_processes(client: &tokio_postgres::Client) {
    let rows = client
        .query(
            "SELECT datname FROM pg_database WHERE datname LIKE 'leanfarm_test_%'",
            &[],
        )
        .await
        .unwrap();
    for row in rows {
        let name: String = row.get(0);
        let creator = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split('_').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        if creator.is_some_and(|pid| !std::path::Path::new(&format!("/proc/{pid}")).exists()) {
            let _ = client
                .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .await;
        }
    }
}

/// Run `work` with a client connected to the admin database, on a thread
/// and runtime of its own (so that it works inside a test's runtime too).
fn run_as_admin<Work, Done>(work: Work)
where
    Work: FnOnce(tokio_postgres::Client) -> Done + Send + 'static,
    Done: std::future::Future<Output = ()>,
{
    let url = admin_url();
    std::thread::spawn(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .unwrap_or_else(|error| {
                        panic!("PostgreSQL at {url} is needed (.ci/run starts it): {error}")
                    });
                tokio::spawn(connection);
                work(client).await;
            })
    })
    .join()
    .expect("the admin statement ran");
}
