//! The Lean REPL wire protocol (leanprover-community/repl) and the
//! `lean --json` message format, as typed Rust.
//!
//! Requests are JSON objects separated by blank lines; replies are JSON
//! objects, pretty-printed over several lines, each ended by a blank line.
//! That framing is implemented once, in `framing` (`FrameReader`,
//! `encode_frame`), for every reader and writer of the protocol.
//! Every reply type keeps fields it does not know in `extra`, so a reply
//! re-serialises to the JSON value Lean printed, field by field.
//!
//! This crate parses and prints; it knows nothing of processes or policies.

mod decoder;
mod framing;
mod lean_json;
pub mod transcripts;

pub use decoder::{DecodeError, ReplyDecoder};
pub use framing::{encode_frame, split_frames, FrameError, FrameReader};
pub use lean_json::{parse_lean_json_line, LeanJsonMessage};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A position in Lean's convention: 1-based line, 0-based column in code points.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pos {
    pub line: u32,
    pub column: u32,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Trace,
    Info,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Trace => "trace",
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Error => "error",
        }
    }
}

/// A message Lean reported about a command.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub severity: Severity,
    pub pos: Pos,
    #[serde(rename = "endPos", default, skip_serializing_if = "Option::is_none")]
    pub end_pos: Option<Pos>,
    pub data: String,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A `sorry` Lean found, with the proof state it leaves open.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sorry {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pos: Option<Pos>,
    #[serde(rename = "endPos", default, skip_serializing_if = "Option::is_none")]
    pub end_pos: Option<Pos>,
    pub goal: String,
    #[serde(
        rename = "proofState",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub proof_state: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A tactic step reported with `allTactics`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TacticInfo {
    pub tactic: String,
    #[serde(rename = "proofState")]
    pub proof_state: u64,
    pub pos: Pos,
    #[serde(rename = "endPos")]
    pub end_pos: Pos,
    pub goals: String,
    #[serde(
        rename = "usedConstants",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub used_constants: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A request to the REPL.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Request {
    Command(CommandRequest),
    File(FileRequest),
    Tactic(TacticRequest),
    PickleEnv {
        #[serde(rename = "pickleTo")]
        pickle_to: String,
        env: u64,
    },
    PickleProofState {
        #[serde(rename = "pickleTo")]
        pickle_to: String,
        #[serde(rename = "proofState")]
        proof_state: u64,
    },
    UnpickleEnv {
        #[serde(rename = "unpickleEnvFrom")]
        unpickle_env_from: String,
    },
    UnpickleProofState {
        #[serde(rename = "unpickleProofStateFrom")]
        unpickle_proof_state_from: String,
    },
}

/// `{"cmd": ..., "env"?: ...}`: elaborate Lean source.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommandRequest {
    pub cmd: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<u64>,
    #[serde(
        rename = "allTactics",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub all_tactics: Option<bool>,
    #[serde(rename = "rootGoals", default, skip_serializing_if = "Option::is_none")]
    pub root_goals: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infotree: Option<String>,
    /// The REPL's `gc`: free what the command elaborated once it has
    /// answered (clients such as the Kimina Lean Server send it with every
    /// command after the header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gc: Option<bool>,
}

/// `{"path": ...}`: elaborate a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRequest {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<u64>,
    #[serde(
        rename = "allTactics",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub all_tactics: Option<bool>,
}

/// `{"tactic": ..., "proofState": ...}`: run a tactic on a proof state.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TacticRequest {
    pub tactic: String,
    #[serde(rename = "proofState")]
    pub proof_state: u64,
}

/// A reply to a command or file request.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CommandReply {
    pub env: u64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorries: Vec<Sorry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tactics: Option<Vec<TacticInfo>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub infotree: Option<Value>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A reply to a tactic request.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProofStepReply {
    #[serde(rename = "proofState")]
    pub proof_state: u64,
    pub goals: Vec<String>,
    #[serde(
        rename = "proofStatus",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub proof_status: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sorries: Vec<Sorry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traces: Option<Vec<String>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Any reply the REPL prints.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Command(CommandReply),
    ProofStep(ProofStepReply),
    /// `{"message": "..."}`: the REPL refused the request.
    Error {
        message: String,
    },
}

impl Reply {
    /// Classify a JSON value the REPL printed.
    pub fn from_value(value: Value) -> Result<Reply, DecodeError> {
        let Value::Object(object) = &value else {
            return Err(DecodeError::NotAReply("not a JSON object".into()));
        };
        let unknown = |error: serde_json::Error| DecodeError::NotAReply(error.to_string());
        if object.contains_key("env") {
            return serde_json::from_value(value)
                .map(Reply::Command)
                .map_err(unknown);
        }
        if object.contains_key("proofState") {
            return serde_json::from_value(value)
                .map(Reply::ProofStep)
                .map_err(unknown);
        }
        match object.get("message") {
            Some(Value::String(message)) if object.len() == 1 => Ok(Reply::Error {
                message: message.clone(),
            }),
            _ => Err(DecodeError::NotAReply(
                "an object with neither env, proofState nor message".into(),
            )),
        }
    }

    pub fn to_value(&self) -> Value {
        match self {
            Reply::Command(reply) => serde_json::to_value(reply).expect("replies serialise"),
            Reply::ProofStep(reply) => serde_json::to_value(reply).expect("replies serialise"),
            Reply::Error { message } => serde_json::json!({ "message": message }),
        }
    }
}

/// A request as the REPL expects it: compact JSON and a blank line.
pub fn encode_request(request: &Request) -> String {
    encode_frame(&serde_json::to_string(request).expect("requests serialise"))
}

/// Parse one request as the REPL reads it. Like Lean's own JSON parser, this
/// accepts raw line breaks and tabs inside strings.
pub fn parse_request(text: &str) -> Result<Request, serde_json::Error> {
    match serde_json::from_str(text) {
        Ok(request) => Ok(request),
        Err(strict_error) => {
            let escaped = escape_raw_controls_in_strings(text);
            if escaped == text {
                return Err(strict_error);
            }
            serde_json::from_str(&escaped)
        }
    }
}

fn escape_raw_controls_in_strings(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_string = false;
    let mut escaped = false;
    for character in text.chars() {
        if in_string {
            match character {
                _ if escaped => {
                    escaped = false;
                    out.push(character);
                }
                '\\' => {
                    escaped = true;
                    out.push(character);
                }
                '"' => {
                    in_string = false;
                    out.push(character);
                }
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                control if (control as u32) < 0x20 => {
                    out.push_str(&format!("\\u{:04x}", control as u32))
                }
                _ => out.push(character),
            }
        } else {
            if character == '"' {
                in_string = true;
            }
            out.push(character);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_serialise_with_the_repl_field_names() {
        let request = Request::Command(CommandRequest {
            cmd: "def f := 1".into(),
            env: Some(3),
            ..Default::default()
        });
        assert_eq!(
            encode_request(&request),
            "{\"cmd\":\"def f := 1\",\"env\":3}\n\n"
        );
        let tactic = Request::Tactic(TacticRequest {
            tactic: "rfl".into(),
            proof_state: 2,
        });
        assert_eq!(
            serde_json::to_string(&tactic).unwrap(),
            "{\"tactic\":\"rfl\",\"proofState\":2}"
        );
        let pickle: Request =
            serde_json::from_str("{\"pickleTo\": \"a.olean\", \"env\": 1}").unwrap();
        assert_eq!(
            pickle,
            Request::PickleEnv {
                pickle_to: "a.olean".into(),
                env: 1
            }
        );
        let pickle: Request =
            serde_json::from_str("{\"pickleTo\": \"a.olean\", \"proofState\": 1}").unwrap();
        assert_eq!(
            pickle,
            Request::PickleProofState {
                pickle_to: "a.olean".into(),
                proof_state: 1
            }
        );
    }

    #[test]
    fn raw_line_breaks_inside_strings_are_accepted() {
        let request = parse_request("{\"cmd\": \"theorem foo : 1 = 1 := by\n  sorry\"}").unwrap();
        let Request::Command(command) = request else {
            panic!("not a command")
        };
        assert_eq!(command.cmd, "theorem foo : 1 = 1 := by\n  sorry");
    }

    #[test]
    fn replies_are_classified() {
        let reply =
            Reply::from_value(serde_json::json!({"message": "Unknown environment."})).unwrap();
        assert_eq!(
            reply,
            Reply::Error {
                message: "Unknown environment.".into()
            }
        );
        let reply = Reply::from_value(serde_json::json!({"env": 2})).unwrap();
        assert!(matches!(reply, Reply::Command(CommandReply { env: 2, .. })));
        let reply = Reply::from_value(
            serde_json::json!({"proofState": 1, "goals": [], "proofStatus": "Completed"}),
        )
        .unwrap();
        assert!(matches!(reply, Reply::ProofStep(_)));
        assert!(Reply::from_value(serde_json::json!({"hello": 1})).is_err());
        assert!(Reply::from_value(serde_json::json!([1])).is_err());
        assert!(Reply::from_value(serde_json::json!({"env": "x"})).is_err());
    }

    #[test]
    fn frames_split_on_blank_lines() {
        let frames = split_frames("{\"a\":\n 1}\n\n\n{\"b\": 2}\n\n");
        assert_eq!(
            frames,
            vec!["{\"a\":\n 1}\n".to_string(), "{\"b\": 2}\n".to_string()]
        );
    }
}
