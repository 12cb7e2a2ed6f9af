//! Incremental decoding of the REPL's output into replies: the framing of
//! `framing::FrameReader`, then the JSON of each frame classified as a `Reply`.

use crate::{FrameError, FrameReader, Reply};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("the repl printed something that is not json: {0}")]
    Garbage(String),
    #[error("the repl printed json that is not a reply: {0}")]
    NotAReply(String),
    #[error("a reply exceeded {0} bytes")]
    TooLarge(usize),
    #[error("the repl's output ended in the middle of a reply")]
    Truncated,
}

/// Feed it the REPL's output, line by line; it yields one reply per
/// blank-line-terminated JSON object, framed by a `FrameReader`. Never
/// panics, whatever the input.
#[derive(Debug)]
pub struct ReplyDecoder {
    frames: FrameReader,
    max_reply_bytes: usize,
}

impl ReplyDecoder {
    pub fn new(max_reply_bytes: usize) -> Self {
        ReplyDecoder {
            frames: FrameReader::new(max_reply_bytes).require_object_start(),
            max_reply_bytes,
        }
    }

    /// Feed one line (with or without its newline). Returns a reply when the
    /// line completes one.
    pub fn push_line(&mut self, line: &str) -> Option<Result<Reply, DecodeError>> {
        match self.frames.push_line(line)? {
            Ok(frame) => Some(decode_frame(&frame)),
            Err(error) => Some(Err(self.frame_error(error))),
        }
    }

    /// The stream ended: a whole reply not yet followed by a blank line is
    /// still a reply; anything else left over is truncated output.
    pub fn finish(&mut self) -> Option<Result<Reply, DecodeError>> {
        match self.frames.finish() {
            Ok(None) => None,
            Ok(Some(frame)) => Some(decode_frame(&frame)),
            Err(error) => Some(Err(self.frame_error(error))),
        }
    }

    fn frame_error(&self, error: FrameError) -> DecodeError {
        match error {
            FrameError::TooLarge { .. } => DecodeError::TooLarge(self.max_reply_bytes),
            FrameError::NotAnObject { excerpt } => DecodeError::Garbage(excerpt),
            FrameError::EndedMidFrame { .. } => DecodeError::Truncated,
        }
    }
}

fn decode_frame(frame: &str) -> Result<Reply, DecodeError> {
    let value: serde_json::Value =
        serde_json::from_str(frame).map_err(|_| DecodeError::Garbage(excerpt(frame)))?;
    Reply::from_value(value)
}

fn excerpt(text: &str) -> String {
    text.trim().chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &str, cap: usize) -> Vec<Result<Reply, DecodeError>> {
        let mut decoder = ReplyDecoder::new(cap);
        let mut out: Vec<_> = input
            .split_inclusive('\n')
            .filter_map(|line| decoder.push_line(line))
            .collect();
        out.extend(decoder.finish());
        out
    }

    #[test]
    fn decodes_pretty_printed_replies() {
        let out = decode_all(
            "{\"messages\":\n [],\n \"env\": 0}\n\n{\"env\": 1}\n\n",
            1024,
        );
        assert_eq!(out.len(), 2);
        assert!(out.iter().all(|reply| reply.is_ok()));
    }

    #[test]
    fn garbage_truncation_and_size_are_errors() {
        assert!(matches!(
            decode_all("hello world\n", 1024)[0],
            Err(DecodeError::Garbage(_))
        ));
        assert!(matches!(
            decode_all("{\"env\":\n", 1024)[0],
            Err(DecodeError::Truncated)
        ));
        let big = format!("{{\"env\": 0, \"x\": \"{}\"}}\n\n", "a".repeat(2000));
        assert!(matches!(
            decode_all(&big, 1024)[0],
            Err(DecodeError::TooLarge(1024))
        ));
        assert!(matches!(
            decode_all("{\"nope\": 1}\n\n", 1024)[0],
            Err(DecodeError::NotAReply(_))
        ));
    }

    #[test]
    fn never_panics_on_arbitrary_bytes() {
        let mut state: u64 = 0x1234_5678_9abc_def0;
        for _ in 0..2000 {
            let mut bytes = Vec::new();
            for _ in 0..64 {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let alphabet = b"{}[]\":, \n\nenv0123abc\\";
                bytes.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let text = String::from_utf8_lossy(&bytes);
            let _ = decode_all(&text, 64);
        }
    }
}
