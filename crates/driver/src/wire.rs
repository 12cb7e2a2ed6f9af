//! The driver's use of the REPL wire format (`lean_protocol`): encode a
//! command, and accept only a command reply back.

use crate::repl::ReplFailure;
use lean_protocol::{CommandRequest, DecodeError, Reply, Request};

pub(crate) use lean_protocol::CommandReply;

pub(crate) fn encode_command(cmd: &str, env: Option<u64>) -> String {
    lean_protocol::encode_request(&Request::Command(CommandRequest {
        cmd: cmd.to_string(),
        env,
        ..Default::default()
    }))
}

/// Parse one framed reply; anything but a command reply is a failure.
pub(crate) fn parse_command_reply(text: &str) -> Result<CommandReply, ReplFailure> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| ReplFailure::Garbage(excerpt(text)))?;
    match Reply::from_value(value) {
        Ok(Reply::Command(reply)) => Ok(reply),
        Ok(Reply::Error { message }) => Err(ReplFailure::ErrorReply(message)),
        Ok(Reply::ProofStep(_)) => Err(ReplFailure::Garbage(
            "a proof-step reply to a command".to_string(),
        )),
        Err(DecodeError::NotAReply(why)) => {
            Err(ReplFailure::Garbage(format!("{why}: {}", excerpt(text))))
        }
        Err(other) => Err(ReplFailure::Garbage(other.to_string())),
    }
}

/// Parse one framed reply of any kind.
pub(crate) fn parse_reply(text: &str) -> Result<Reply, ReplFailure> {
    let value: serde_json::Value =
        serde_json::from_str(text).map_err(|_| ReplFailure::Garbage(excerpt(text)))?;
    Reply::from_value(value).map_err(|error| match error {
        DecodeError::NotAReply(why) => ReplFailure::Garbage(format!("{why}: {}", excerpt(text))),
        other => ReplFailure::Garbage(other.to_string()),
    })
}

fn excerpt(text: &str) -> String {
    text.trim().chars().take(200).collect()
}
