//! Replay mode: answer each command with the reply a real Lean REPL gave to
//! the same sequence of commands, from recorded transcripts.

use std::path::Path;

struct Transcript {
    requests: Vec<serde_json::Value>,
    replies: Vec<String>,
}

pub struct Recordings {
    transcripts: Vec<Transcript>,
}

impl Recordings {
    /// Load every `NAME.in` / `NAME.expected.out` pair in `dir`.
    pub fn load(dir: &Path) -> std::io::Result<Recordings> {
        let transcripts: Vec<Transcript> = lean_protocol::transcripts::read_transcripts(dir)?
            .into_iter()
            .map(|transcript| Transcript {
                requests: transcript
                    .requests
                    .iter()
                    .filter_map(|frame| lean_protocol::parse_request(frame).ok())
                    .map(|request| serde_json::to_value(request).expect("requests serialise"))
                    .collect(),
                replies: transcript.replies,
            })
            .collect();
        if transcripts.is_empty() {
            return Err(std::io::Error::other("no *.expected.out transcripts found"));
        }
        Ok(Recordings { transcripts })
    }

    /// The recorded reply to the last command of `history`, from a transcript
    /// whose commands begin with exactly `history`.
    pub fn reply_for(&self, history: &[serde_json::Value]) -> Option<&str> {
        self.transcripts
            .iter()
            .find(|transcript| {
                transcript.requests.len() >= history.len()
                    && transcript.requests[..history.len()] == *history
            })
            .and_then(|transcript| transcript.replies.get(history.len() - 1))
            .map(String::as_str)
    }
}
