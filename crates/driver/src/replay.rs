//! Kernel replay: the snippet's declarations checked again by Lean's kernel,
//! in a REPL process that never ran the snippet's code.
//!
//! The REPL that ran the snippet pickles the body's environment
//! (`{"pickleTo"}`: the imports and the constants of `map₂`). The farm
//! copies the file into a replayer: a REPL of the same toolchain and header
//! that only ever receives farm commands and pickles. Unpickling
//! (`{"unpickleEnvFrom"}`) builds a fresh environment from the imports and
//! adds every pickled constant back through the kernel (the REPL's
//! `Environment.unpickle` calls `Environment.replay`, as `lean4checker`
//! does), so a declaration added with the kernel check switched off, or a
//! proof term that does not check, is refused there. The replayer then runs
//! its own audit (its own secret nonce) on the replayed environment, and, for
//! a pinned statement, elaborates it in its own clean environment: when a
//! check is replayed, the verdict's axioms and terms come from the replayer,
//! never from the process the snippet ran in.
//!
//! Replayers are kept warm per header (they run no snippet code, so reuse is
//! safe). A pickle is read from the first sandbox without following links,
//! only as a regular file, and at most `MAX_PICKLE_BYTES` long.

use crate::audit::{self, AuditEntry, FarmNames};
use crate::repl::{Repl, ReplFailure};
use crate::{info_data, DriverError, ToolchainConfig};
use lean_protocol::{Request, Severity};
use leanfarm_core::{PinnedStatement, ReasonCode, VerdictReason};
use leanfarm_sandbox::Sandbox;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// The largest pickle the farm copies between sandboxes.
const MAX_PICKLE_BYTES: u64 = 256 << 20;

/// What the replayer says about the body.
pub(crate) struct Replayed {
    /// Every constant the body added, as the replayer's audit reports it.
    pub entries: Vec<AuditEntry>,
    /// The pinned statement's term, elaborated in the replayer.
    pub pinned_term: Option<Result<String, String>>,
}

/// Why a replay gave no report.
pub(crate) enum ReplayFailure {
    /// The snippet's fault, found in the replayer: the kernel refused a
    /// declaration, or the replay failed or ran out of time. A verdict; the
    /// REPL that ran the snippet is sound.
    Verdict(VerdictReason),
    /// The snippet's fault, found in the REPL that ran it: it could not
    /// pickle the body, or left something other than a pickle. A verdict,
    /// and that REPL is not used again.
    Pickle(VerdictReason),
    /// The REPL that ran the snippet failed while pickling.
    Repl(ReplFailure),
    /// The farm's fault.
    Farm(DriverError),
}

/// Idle replayers, by header.
#[derive(Default)]
pub(crate) struct Replayers {
    idle: Mutex<HashMap<String, Vec<Replayer>>>,
}

pub(crate) struct Replayer {
    repl: Repl,
    /// The replayer's own clean environment (header and audit command).
    base_env: u64,
}

impl Replayers {
    fn take(&self, header: &str) -> Option<Replayer> {
        self.idle
            .lock()
            .expect("replayers lock")
            .get_mut(header)
            .and_then(Vec::pop)
    }

    fn give_back(&self, header: &str, replayer: Replayer, most_idle: usize) {
        let mut idle = self.idle.lock().expect("replayers lock");
        let total: usize = idle.values().map(Vec::len).sum();
        if total < most_idle {
            idle.entry(header.to_string()).or_default().push(replayer);
        } else {
            drop(idle);
            tokio::spawn(replayer.repl.kill());
        }
    }

    /// Every idle replayer, for shutdown.
    pub fn drain(&self) -> Vec<Repl> {
        let mut idle = self.idle.lock().expect("replayers lock");
        idle.drain()
            .flat_map(|(_, replayers)| replayers)
            .map(|replayer| replayer.repl)
            .collect()
    }
}

/// A fresh file name for one pickle (never one the snippet could guess).
fn pickle_name() -> String {
    format!("leanfarm-replay-{}.olean", &audit::new_nonce()[..16])
}

/// Read a pickle the sandboxed REPL wrote, refusing links and oversized
/// files, and remove it.
pub(crate) fn take_pickle(scratch: &Path, name: &str) -> Result<Vec<u8>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let path = scratch.join(name);
    let read = (|| {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
            .open(&path)
            .map_err(|error| format!("the pickle cannot be opened: {error}"))?;
        let metadata = file
            .metadata()
            .map_err(|error| format!("the pickle cannot be read: {error}"))?;
        if !metadata.file_type().is_file() {
            return Err("the pickle is not a regular file".to_string());
        }
        if metadata.len() > MAX_PICKLE_BYTES {
            return Err(format!(
                "the pickle is larger than {MAX_PICKLE_BYTES} bytes"
            ));
        }
        let mut bytes = Vec::with_capacity(metadata.len() as usize);
        file.take(MAX_PICKLE_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|error| format!("the pickle cannot be read: {error}"))?;
        Ok(bytes)
    })();
    let _ = std::fs::remove_file(&path);
    read
}

pub(crate) fn put_pickle(scratch: &Path, name: &str, bytes: &[u8]) -> Result<(), DriverError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW)
        .open(scratch.join(name))
        .map_err(|error| DriverError::Toolchain(format!("cannot hand the pickle over: {error}")))?;
    file.write_all(bytes)
        .map_err(|error| DriverError::Toolchain(format!("cannot hand the pickle over: {error}")))
}

fn error_of(reply: &lean_protocol::CommandReply) -> Option<&str> {
    reply
        .messages
        .iter()
        .find(|message| message.severity == Severity::Error)
        .map(|message| message.data.as_str())
}

/// Everything a replay needs from the driver.
pub(crate) struct ReplayContext<'a> {
    pub sandbox: &'a Arc<Sandbox>,
    pub toolchain: &'a ToolchainConfig,
    pub replayers: &'a Replayers,
    pub max_reply_bytes: usize,
    pub most_idle: usize,
}

impl ReplayContext<'_> {
    /// Replay the environment `body_env` of `checked` (the REPL that ran the
    /// snippet) in a replayer for `header`.
    pub async fn replay(
        &self,
        checked: &mut Repl,
        body_env: u64,
        header: &str,
        pinned: Option<&PinnedStatement>,
        deadline: Instant,
    ) -> Result<Replayed, ReplayFailure> {
        let name = pickle_name();
        let pickled = checked
            .request(
                &Request::PickleEnv {
                    pickle_to: name.clone(),
                    env: body_env,
                },
                deadline,
            )
            .await;
        match pickled {
            Ok(_) => {}
            // The REPL is alive but could not write (its scratch is full,
            // say): the snippet's doing.
            Err(ReplFailure::ErrorReply(message)) => {
                let _ = std::fs::remove_file(checked.scratch_dir().join(&name));
                return Err(ReplayFailure::Pickle(VerdictReason::new(
                    ReasonCode::KernelRejected,
                    format!("the body's environment could not be pickled for replay: {message}"),
                )));
            }
            Err(failure) => {
                let _ = std::fs::remove_file(checked.scratch_dir().join(&name));
                return Err(ReplayFailure::Repl(failure));
            }
        }
        let bytes = take_pickle(checked.scratch_dir(), &name).map_err(|why| {
            ReplayFailure::Pickle(VerdictReason::new(
                ReasonCode::KernelRejected,
                format!("the body's environment could not be replayed: {why}"),
            ))
        })?;
        let mut replayer = match self.replayers.take(header) {
            Some(replayer) => replayer,
            None => self.start(header).await.map_err(ReplayFailure::Farm)?,
        };
        let outcome = self
            .replay_in(&mut replayer, &name, &bytes, checked, pinned, deadline)
            .await;
        let _ = std::fs::remove_file(replayer.repl.scratch_dir().join(&name));
        match outcome {
            Ok(replayed) => {
                self.replayers.give_back(header, replayer, self.most_idle);
                Ok(replayed)
            }
            Err(failure) => {
                tokio::spawn(replayer.repl.kill());
                Err(failure)
            }
        }
    }

    async fn replay_in(
        &self,
        replayer: &mut Replayer,
        name: &str,
        bytes: &[u8],
        checked: &Repl,
        pinned: Option<&PinnedStatement>,
        deadline: Instant,
    ) -> Result<Replayed, ReplayFailure> {
        let repl = &mut replayer.repl;
        put_pickle(repl.scratch_dir(), name, bytes).map_err(ReplayFailure::Farm)?;
        let as_verdict = |failure: ReplFailure| match failure {
            ReplFailure::ErrorReply(message) => ReplayFailure::Verdict(VerdictReason::new(
                ReasonCode::KernelRejected,
                format!("Lean's kernel refused the body on replay: {message}"),
            )),
            ReplFailure::Timeout => ReplayFailure::Verdict(VerdictReason::new(
                ReasonCode::Timeout,
                "the kernel replay did not finish within the check's time",
            )),
            other => ReplayFailure::Verdict(VerdictReason::new(
                ReasonCode::KernelRejected,
                format!("the kernel replay failed: {other}"),
            )),
        };
        let unpickled = repl
            .request(
                &Request::UnpickleEnv {
                    unpickle_env_from: name.to_string(),
                },
                deadline,
            )
            .await
            .map_err(as_verdict)?;
        let audited = repl
            .command(
                &audit::audit_definition(&repl.nonce),
                Some(unpickled.env),
                deadline,
            )
            .await
            .map_err(as_verdict)?;
        if let Some(error) = error_of(&audited) {
            return Err(ReplayFailure::Farm(DriverError::Toolchain(format!(
                "the audit command does not compile on a replayed environment: {error}"
            ))));
        }
        let command = audit::audit_command_name(&repl.nonce);
        let report = repl
            .command(&command, Some(audited.env), deadline)
            .await
            .map_err(as_verdict)?;
        let entries = audit::parse_audit(&repl.nonce, info_data(&report)).map_err(|error| {
            ReplayFailure::Verdict(VerdictReason::new(
                ReasonCode::AuditFailed,
                format!("the replayed environment could not be audited: {error}"),
            ))
        })?;
        // The replayed environment holds the checking REPL's audit
        // constants (they were pickled with the body) and the replayer's own.
        let entries = checked
            .farm_names
            .remove_from(repl.farm_names.remove_from(entries));
        let pinned_term = match pinned {
            None => None,
            Some(pinned) => Some(
                pinned_term(repl, replayer.base_env, pinned, &command, deadline)
                    .await
                    .map_err(as_verdict)?,
            ),
        };
        Ok(Replayed {
            entries,
            pinned_term,
        })
    }

    /// Start a replayer: the header and the audit command in one clean
    /// environment, and the audit's own names learned from it.
    async fn start(&self, header: &str) -> Result<Replayer, DriverError> {
        let mut repl = Repl::spawn(
            Arc::clone(self.sandbox),
            self.toolchain,
            header,
            self.max_reply_bytes,
        )
        .await?;
        let deadline = Instant::now() + crate::HEADER_TIMEOUT;
        let nonce = audit::new_nonce();
        let text = format!("{header}\n{}", audit::audit_definition(&nonce));
        let started = async {
            let defined = repl.command(&text, None, deadline).await?;
            if let Some(error) = error_of(&defined) {
                return Ok(Err(format!("the replayer's header does not load: {error}")));
            }
            let own = repl
                .command(
                    &audit::audit_command_name(&nonce),
                    Some(defined.env),
                    deadline,
                )
                .await?;
            Ok::<_, ReplFailure>(Ok((
                defined.env,
                audit::parse_audit(&nonce, info_data(&own)),
            )))
        }
        .await;
        match started {
            Ok(Ok((base_env, Ok(entries)))) => {
                repl.nonce = nonce;
                repl.farm_names = FarmNames::new(&entries);
                Ok(Replayer { repl, base_env })
            }
            Ok(Ok((_, Err(error)))) => {
                tokio::spawn(repl.kill());
                Err(DriverError::Toolchain(format!(
                    "the replayer's audit does not report: {error}"
                )))
            }
            Ok(Err(why)) => {
                tokio::spawn(repl.kill());
                Err(DriverError::Toolchain(why))
            }
            Err(failure) => {
                let report = repl.kill().await;
                Err(DriverError::Toolchain(format!(
                    "the replayer failed while starting: {failure} ({report:?})"
                )))
            }
        }
    }
}

/// Elaborate a pinned statement (with its preamble) in `base_env` and read
/// its term through the audit.
pub(crate) async fn pinned_term(
    repl: &mut Repl,
    base_env: u64,
    pinned: &PinnedStatement,
    audit_command: &str,
    deadline: Instant,
) -> Result<Result<String, String>, ReplFailure> {
    let signature = match pinned.signature() {
        Ok(signature) => signature,
        Err(error) => return Ok(Err(error.to_string())),
    };
    let pinned_name = format!("leanfarm_pinned_{}", repl.nonce);
    let preamble = pinned.preamble.as_deref().unwrap_or("");
    let statement = format!("{preamble}\ntheorem {pinned_name} {signature} := sorry");
    let reply = repl.command(&statement, Some(base_env), deadline).await?;
    if let Some(error) = error_of(&reply) {
        return Ok(Err(error.to_string()));
    }
    let report = repl
        .command(audit_command, Some(reply.env), deadline)
        .await?;
    Ok(match audit::parse_audit(&repl.nonce, info_data(&report)) {
        Ok(entries) => entries
            .into_iter()
            .find(|entry| entry.name == pinned_name)
            .map(|entry| entry.term)
            .ok_or_else(|| "the pinned statement was not declared".to_string()),
        Err(error) => Err(error.to_string()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pickle_is_read_only_as_a_regular_file_and_removed() {
        let scratch = tempfile::tempdir().unwrap();
        std::fs::write(scratch.path().join("p.olean"), b"pickled").unwrap();
        assert_eq!(take_pickle(scratch.path(), "p.olean").unwrap(), b"pickled");
        assert!(
            !scratch.path().join("p.olean").exists(),
            "removed after reading"
        );

        // A link the snippet planted is not followed to the host's files.
        let secret = scratch.path().join("secret");
        std::fs::write(&secret, b"host data").unwrap();
        std::os::unix::fs::symlink(&secret, scratch.path().join("l.olean")).unwrap();
        let error = take_pickle(scratch.path(), "l.olean").unwrap_err();
        assert!(error.contains("cannot be opened"), "{error}");

        // Nor a pipe (which would block) or a directory.
        let fifo =
            std::ffi::CString::new(scratch.path().join("f.olean").to_str().unwrap().as_bytes())
                .unwrap();
        // SAFETY: a valid C string path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        let error = take_pickle(scratch.path(), "f.olean").unwrap_err();
        assert!(error.contains("not a regular file"), "{error}");
        std::fs::create_dir(scratch.path().join("d.olean")).unwrap();
        assert!(take_pickle(scratch.path(), "d.olean").is_err());
        assert!(take_pickle(scratch.path(), "missing.olean").is_err());
    }

    #[test]
    fn pickle_names_are_fresh() {
        assert_ne!(pickle_name(), pickle_name());
    }
}
