//! One sandboxed Lean REPL process and the conversation with it.
//!
//! A `Repl` sends one command at a time and reads one reply, with a deadline
//! and a cap on the reply's size. Whatever the process does (crash, exit in
//! the middle of a reply, print garbage or noise on stderr, go silent, flood
//! its output) ends as a typed `ReplFailure`, never a hang or a panic. A
//! `Repl` that failed is never used again: the pool drops it, which kills its
//! whole process tree.

use crate::wire::{self, CommandReply};
use crate::ToolchainConfig;
use lean_protocol::{FrameError, FrameReader};
use leanfarm_sandbox::{CommandSpec, ExitReport, Sandbox, SandboxError, SandboxedChild};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::process::{ChildStdin, ChildStdout};

/// How much of a REPL's stderr is kept for diagnostics (the rest is discarded).
const STDERR_TAIL_BYTES: usize = 8 * 1024;

/// Why a conversation with a REPL failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReplFailure {
    #[error("the repl did not answer before the deadline")]
    Timeout,
    #[error("the repl exited{}", describe_exit(.report, .stderr_tail))]
    Exited {
        report: ExitReport,
        stderr_tail: String,
    },
    #[error("the repl printed something that is not a reply: {0}")]
    Garbage(String),
    #[error("the repl's reply exceeded {0} bytes")]
    ReplyTooLarge(usize),
    #[error("the repl answered with an error: {0}")]
    ErrorReply(String),
}

fn describe_exit(report: &ExitReport, stderr_tail: &str) -> String {
    let mut text = String::new();
    if report.oom_killed {
        text.push_str(" after running out of memory");
    } else if let Some(signal) = report.signal {
        text.push_str(&format!(" on signal {signal}"));
    } else if let Some(code) = report.exit_code {
        text.push_str(&format!(" with status {code}"));
    }
    let stderr_tail = stderr_tail.trim();
    if !stderr_tail.is_empty() {
        text.push_str(&format!(
            " (stderr: {})",
            stderr_tail.lines().last().unwrap_or("")
        ));
    }
    text
}

pub(crate) struct Repl {
    child: SandboxedChild,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    stderr_tail: Arc<Mutex<VecDeque<u8>>>,
    max_reply_bytes: usize,
    /// The import header this REPL has loaded.
    pub header: String,
    /// The secret of this REPL's audit command.
    pub nonce: String,
    /// The audit's own constants, left out of every report.
    pub farm_names: crate::audit::FarmNames,
    /// The environment holding the header and the audit command; every
    /// snippet runs on it, so nothing a snippet declares is seen by the next.
    pub base_env: u64,
    pub uses: u32,
    pub last_used: Instant,
    /// CPU time of the tree already counted in the pool's total.
    cpu_counted: std::time::Duration,
}

impl Repl {
    /// Start a REPL process in the sandbox (blocking work runs off the async threads).
    pub async fn spawn(
        sandbox: Arc<Sandbox>,
        toolchain: &ToolchainConfig,
        header: &str,
        max_reply_bytes: usize,
    ) -> Result<Repl, SandboxError> {
        let spec = CommandSpec {
            program: toolchain.repl_program.clone(),
            args: toolchain.repl_args.clone(),
            env: toolchain.env.clone(),
        };
        let mut child = tokio::task::spawn_blocking(move || sandbox.spawn(&spec))
            .await
            .map_err(|join_error| {
                SandboxError::Setup(format!("spawn task failed: {join_error}"))
            })??;
        let missing_pipe = || SandboxError::Setup("sandboxed child has no stdio pipe".to_string());
        let stdin = child.stdin.take().ok_or_else(missing_pipe)?;
        let stdout = child.stdout.take().ok_or_else(missing_pipe)?;
        let stderr = child.stderr.take().ok_or_else(missing_pipe)?;
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_TAIL_BYTES)));
        tokio::spawn(drain_stderr(stderr, Arc::clone(&stderr_tail)));
        Ok(Repl {
            child,
            stdin,
            stdout: BufReader::with_capacity(64 * 1024, stdout),
            stderr_tail,
            max_reply_bytes,
            header: header.to_string(),
            nonce: String::new(),
            farm_names: Default::default(),
            base_env: 0,
            uses: 0,
            last_used: Instant::now(),
            cpu_counted: std::time::Duration::ZERO,
        })
    }

    /// Send a command and read its reply before `deadline`.
    pub async fn command(
        &mut self,
        cmd: &str,
        env: Option<u64>,
        deadline: Instant,
    ) -> Result<CommandReply, ReplFailure> {
        let frame = self
            .exchange(&wire::encode_command(cmd, env), deadline)
            .await?;
        wire::parse_command_reply(&frame)
    }

    /// Send any request whose reply is shaped as a command reply (pickling
    /// and unpickling environments) and read it before `deadline`.
    pub async fn request(
        &mut self,
        request: &lean_protocol::Request,
        deadline: Instant,
    ) -> Result<CommandReply, ReplFailure> {
        let frame = self
            .exchange(&lean_protocol::encode_request(request), deadline)
            .await?;
        wire::parse_command_reply(&frame)
    }

    /// Send any request and read whatever reply it gets (a tactic's reply
    /// is a proof step, or Lean's `{"message"}` when the tactic fails).
    pub async fn send(
        &mut self,
        request: &lean_protocol::Request,
        deadline: Instant,
    ) -> Result<lean_protocol::Reply, ReplFailure> {
        let frame = self
            .exchange(&lean_protocol::encode_request(request), deadline)
            .await?;
        wire::parse_reply(&frame)
    }

    /// Host path of the REPL's scratch directory (its working directory).
    pub fn scratch_dir(&self) -> &std::path::Path {
        self.child.scratch_dir()
    }

    /// Write one request frame and read one reply frame before `deadline`.
    async fn exchange(&mut self, request: &str, deadline: Instant) -> Result<String, ReplFailure> {
        use tracing::Instrument;
        let span = tracing::info_span!("repl.command", request_bytes = request.len());
        self.exchange_in_span(request, deadline)
            .instrument(span)
            .await
    }

    async fn exchange_in_span(
        &mut self,
        request: &str,
        deadline: Instant,
    ) -> Result<String, ReplFailure> {
        let exchange = async {
            self.stdin.write_all(request.as_bytes()).await?;
            self.stdin.flush().await?;
            read_frame(&mut self.stdout, self.max_reply_bytes).await
        };
        match tokio::time::timeout_at(deadline.into(), exchange).await {
            Err(_elapsed) => Err(ReplFailure::Timeout),
            Ok(Ok(Frame::Reply(text))) => Ok(text),
            Ok(Ok(Frame::TooLarge)) => Err(ReplFailure::ReplyTooLarge(self.max_reply_bytes)),
            Ok(Ok(Frame::Garbage(line))) => Err(ReplFailure::Garbage(line)),
            Ok(Ok(Frame::EndOfStream)) | Ok(Err(_)) => Err(self.exited().await),
        }
    }

    /// Whether the process printed something nobody asked for, or closed its
    /// output, since its last reply. Such a REPL is not reused.
    pub fn is_tainted(&mut self) -> bool {
        use futures::FutureExt;
        match self.stdout.fill_buf().now_or_never() {
            None => false,
            Some(Ok(_pending_bytes_or_eof)) => true,
            Some(Err(_)) => true,
        }
    }

    /// Processes the REPL left running beside itself, if countable.
    pub fn extra_processes(&self) -> Option<usize> {
        self.child.extra_processes()
    }

    /// CPU time of the REPL's process tree since the last call (all of it
    /// at the first), if the sandbox measures it.
    pub fn cpu_time_since_last_read(&mut self) -> std::time::Duration {
        let Some(total) = self.child.cpu_time() else {
            return std::time::Duration::ZERO;
        };
        let delta = total.saturating_sub(self.cpu_counted);
        self.cpu_counted = self.cpu_counted.max(total);
        delta
    }

    /// Resident memory of the REPL's process tree.
    pub fn memory_bytes(&self) -> Option<u64> {
        self.child.memory_bytes()
    }

    /// Kill the tree and report how it ended (used after a failure).
    async fn exited(&mut self) -> ReplFailure {
        let wait = self.child.wait();
        let report = match tokio::time::timeout(std::time::Duration::from_secs(2), wait).await {
            Ok(report) => report,
            Err(_) => {
                self.child.kill_tree();
                self.child.wait().await
            }
        };
        ReplFailure::Exited {
            report,
            stderr_tail: self.stderr_tail(),
        }
    }

    /// Kill the whole tree now and report how it ended.
    pub async fn kill(mut self) -> ExitReport {
        self.child.kill_tree();
        self.child.wait().await
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().expect("stderr tail lock");
        String::from_utf8_lossy(&tail.iter().copied().collect::<Vec<u8>>()).into_owned()
    }
}

enum Frame {
    Reply(String),
    /// The first line of a reply is not the start of a JSON object.
    Garbage(String),
    TooLarge,
    EndOfStream,
}

/// Read one reply frame (`lean_protocol::FrameReader`: a JSON object over
/// one or more lines, ended by a blank line; blank lines before it skipped)
/// without ever buffering more than `max_bytes` of it. At end of stream,
/// what was read so far is returned if it is a whole JSON value.
async fn read_frame(
    stdout: &mut (impl AsyncBufRead + Unpin),
    max_bytes: usize,
) -> std::io::Result<Frame> {
    let mut frames = FrameReader::new(max_bytes).require_object_start();
    loop {
        let available = stdout.fill_buf().await?;
        let outcome = if available.is_empty() {
            match frames.finish() {
                Ok(Some(text)) => Ok(text),
                Ok(None) => return Ok(Frame::EndOfStream),
                Err(error) => Err(error),
            }
        } else {
            let (consumed, outcome) = frames.push_bytes(available);
            stdout.consume(consumed);
            match outcome {
                Some(outcome) => outcome,
                None => continue,
            }
        };
        return Ok(match outcome {
            Ok(text) => Frame::Reply(text),
            Err(FrameError::NotAnObject { excerpt }) => Frame::Garbage(excerpt),
            Err(FrameError::TooLarge { .. }) => Frame::TooLarge,
            Err(FrameError::EndedMidFrame { .. }) => Frame::EndOfStream,
        });
    }
}

async fn drain_stderr(mut stderr: tokio::process::ChildStderr, tail: Arc<Mutex<VecDeque<u8>>>) {
    let mut buffer = [0u8; 4096];
    loop {
        match stderr.read(&mut buffer).await {
            Ok(0) | Err(_) => return,
            Ok(read) => {
                let mut tail = tail.lock().expect("stderr tail lock");
                tail.extend(&buffer[..read]);
                let excess = tail.len().saturating_sub(STDERR_TAIL_BYTES);
                tail.drain(..excess);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Ground truth: every real transcript, fed through this REPL client to
    //! `lean-sim` replaying it, gives back the recorded replies, field by field.

    use super::*;
    use leanfarm_sandbox::{BackendKind, SandboxConfig};
    use leanfarm_testkit::sandbox::sandbox_config;
    use leanfarm_testkit::{lean_sim_path, shared_transcripts_dir};

    /// Every frame `read_frame` reads from `output`, delivered `chunk` bytes
    /// at a time, up to the end of the stream or the first failure (after
    /// which the driver never reads from that REPL again).
    async fn frames_read(output: &[u8], chunk: usize, max_bytes: usize) -> Vec<String> {
        let mut stdout = BufReader::with_capacity(chunk, output);
        let mut frames = Vec::new();
        loop {
            let frame = read_frame(&mut stdout, max_bytes).await.unwrap();
            match frame {
                Frame::Reply(text) => frames.push(format!("reply {text:?}")),
                Frame::Garbage(excerpt) => {
                    frames.push(format!("garbage {excerpt:?}"));
                    return frames;
                }
                Frame::TooLarge => {
                    frames.push("too large".to_string());
                    return frames;
                }
                Frame::EndOfStream => return frames,
            }
        }
    }

    #[tokio::test]
    async fn replies_are_framed_whatever_pieces_they_arrive_in() {
        let output = b"\n{\"env\": 0,\n \"messages\": []}\n\n{\"env\": 1}\r\n\r\n{\"env\": 2}\n";
        for chunk in [1, 2, 5, 64 * 1024] {
            assert_eq!(
                frames_read(output, chunk, 1024).await,
                [
                    "reply \"{\\\"env\\\": 0,\\n \\\"messages\\\": []}\\n\"",
                    "reply \"{\\\"env\\\": 1}\\r\\n\"",
                    // A whole reply at the end of the stream, without its blank line.
                    "reply \"{\\\"env\\\": 2}\\n\"",
                ],
                "in chunks of {chunk}"
            );
        }
    }

    #[tokio::test]
    async fn garbage_oversized_and_truncated_replies_are_told_apart() {
        assert_eq!(
            frames_read(b"  not json at all\n\n", 3, 1024).await,
            ["garbage \"not json at all\""]
        );
        let oversized = format!("{{\"env\": 0, \"x\": \"{}\"}}\n\n", "a".repeat(5000));
        assert_eq!(
            frames_read(oversized.as_bytes(), 7, 1024).await,
            ["too large"]
        );
        // A reply cut off by the end of the stream is the end of the stream
        // (the REPL exited mid-reply), not a reply.
        assert!(frames_read(b"{\"env\":\n", 4, 1024).await.is_empty());
    }

    #[tokio::test]
    async fn every_transcript_replays_through_the_driver() {
        let transcripts = shared_transcripts_dir();
        let scratch = tempfile::tempdir().unwrap();
        let sandbox = Arc::new(
            Sandbox::new(SandboxConfig {
                memory_limit_bytes: 1 << 30,
                file_size_limit_bytes: 1 << 20,
                scratch_size_bytes: 1 << 20,
                allow_degraded: true,
                ..sandbox_config(BackendKind::None, scratch.path().to_path_buf())
            })
            .unwrap(),
        );
        let toolchain = ToolchainConfig {
            name: "lean-sim".into(),
            repl_program: lean_sim_path(),
            repl_args: vec![
                "repl".into(),
                "--replay".into(),
                transcripts.display().to_string(),
            ],
            project_name: "replay".into(),
            env: Vec::new(),
        };
        let mut checked = 0;
        for transcript in lean_protocol::transcripts::read_transcripts(&transcripts)
            .expect("transcripts (set LEAN_FARM_SHARED_DIR)")
        {
            let name = &transcript.name;
            let mut repl = Repl::spawn(Arc::clone(&sandbox), &toolchain, "", 16 << 20)
                .await
                .unwrap();
            for (request, recorded) in transcript.requests.iter().zip(&transcript.replies) {
                let request = lean_protocol::parse_request(request).unwrap();
                let deadline = Instant::now() + std::time::Duration::from_secs(10);
                let frame = repl
                    .exchange(&lean_protocol::encode_request(&request), deadline)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                let reply = lean_protocol::Reply::from_value(serde_json::from_str(&frame).unwrap())
                    .unwrap();
                let recorded_value: serde_json::Value = serde_json::from_str(recorded).unwrap();
                assert_eq!(
                    reply,
                    lean_protocol::Reply::from_value(recorded_value.clone()).unwrap(),
                    "{name}"
                );
                assert_eq!(reply.to_value(), recorded_value, "{name}");
                checked += 1;
            }
            repl.kill().await;
        }
        assert!(checked >= 150, "only {checked} replies checked");
    }
}
