//! Test support shared by the workspace's tests and benchmarks: where the
//! built binaries and the shared fixtures are, the check-request shortcut,
//! sandbox and driver configurations for tests, and a PostgreSQL database of
//! its own per test.
//!
//! This crate is a `[dev-dependencies]` entry only: it must never be a
//! normal dependency of any crate (`tests/layering.rs` checks it), and it
//! holds no production logic, only what several test crates would otherwise
//! each write again. Heavier parts sit behind features, so that a crate with
//! few dependencies does not build the farm to run its tests: `sandbox`,
//! `driver` and `postgres`.

pub mod bench;
mod binaries;
mod fixtures;
pub mod object_servers;
mod requests;

#[cfg(feature = "driver")]
pub mod driver;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sandbox")]
pub mod sandbox;

pub use binaries::{built_binary, lean_sim_path, leanfarm_stdout};
pub use fixtures::{shared_dir, shared_transcripts_dir};
pub use requests::{reason_code, request};

/// The name of the sandbox backend the tests use: `LEAN_FARM_TEST_SANDBOX`,
/// else `native`.
pub fn test_backend_name() -> String {
    std::env::var("LEAN_FARM_TEST_SANDBOX").unwrap_or_else(|_| "native".to_string())
}
