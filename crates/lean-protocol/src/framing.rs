//! The REPL protocol's blank-line framing, implemented once for every reader
//! and writer of it: the driver's reply reader, lean-sim's request reader
//! and reply writer, the reply decoder and the transcript reader.
//!
//! A frame is one JSON object printed over one or more lines and ended by a
//! blank line (a line of nothing but whitespace, so `\r\n` ends one too).
//! Blank lines between frames are skipped, and a frame begins at its first
//! non-whitespace byte. Frames are text; invalid UTF-8 is replaced, never
//! fatal.
//!
//! The reader takes bytes in whatever pieces they arrive and yields complete
//! frames. It never holds more than its cap, never panics on any input, and
//! never blocks: waiting for input (and deadlines) is the caller's business.
//! It knows nothing of processes; it splits and joins text.

/// Why the byte stream did not hold a well-formed frame.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("a frame exceeded {max_frame_bytes} bytes")]
    TooLarge { max_frame_bytes: usize },
    #[error("a frame does not start with a json object: {excerpt}")]
    NotAnObject { excerpt: String },
    #[error("the stream ended in the middle of a frame")]
    EndedMidFrame { unterminated: String },
}

/// How much of a line that is not a frame is kept to describe it.
const EXCERPT_CHARS: usize = 200;
/// Enough bytes for `EXCERPT_CHARS` characters of any UTF-8 text.
const EXCERPT_BYTES: usize = EXCERPT_CHARS * 4;

#[derive(Debug)]
enum State {
    /// Between frames: only whitespace seen on the current line.
    BetweenFrames,
    /// Inside a frame; its bytes are in `FrameReader::frame`, the current
    /// line from `line_start` on.
    InFrame {
        line_start: usize,
        line_has_content: bool,
    },
    /// A frame began with something other than `{`: the start of that line,
    /// kept for the error.
    NotAnObject { excerpt: Vec<u8> },
    /// The rest of a line already reported as not a frame.
    SkippingLine,
    /// The rest of a frame already reported as too large, up to the blank
    /// line that ends it.
    SkippingFrame { line_has_content: bool },
}

/// Splits a byte stream into blank-line terminated frames.
///
/// Feed it with [`FrameReader::push_bytes`] (or [`FrameReader::push_line`])
/// and call [`FrameReader::finish`] when the stream ends. After an error the
/// reader goes on with the next frame: the rest of an oversized frame and the
/// rest of a line that is not a frame are skipped, unbuffered.
#[derive(Debug)]
pub struct FrameReader {
    max_frame_bytes: usize,
    require_object_start: bool,
    frame: Vec<u8>,
    state: State,
}

impl FrameReader {
    /// A reader of frames of at most `max_frame_bytes` bytes, counting the
    /// line breaks inside a frame and any whitespace on the blank line that
    /// ends it, but not that line's own newline (so `{}\n\n` is 3 bytes).
    /// Whatever pieces the bytes arrive in, the outcome is the same.
    pub fn new(max_frame_bytes: usize) -> Self {
        FrameReader {
            max_frame_bytes,
            require_object_start: false,
            frame: Vec::new(),
            state: State::BetweenFrames,
        }
    }

    /// Report a frame whose first byte is not `{` as soon as its first line
    /// has been read (as `FrameError::NotAnObject`), instead of waiting for
    /// the blank line that would end it. For reading replies, which are
    /// always objects; a REPL that prints anything else is broken.
    pub fn require_object_start(mut self) -> Self {
        self.require_object_start = true;
        self
    }

    /// Feed bytes as they arrive. Returns how many bytes were consumed and,
    /// when a frame completed (or failed) within them, the outcome; the bytes
    /// after that point are not consumed, so feed them again.
    pub fn push_bytes(&mut self, input: &[u8]) -> (usize, Option<Result<String, FrameError>>) {
        let mut consumed = 0;
        while consumed < input.len() {
            let rest = &input[consumed..];
            let (piece, ends_line) = match rest.iter().position(|byte| *byte == b'\n') {
                Some(newline) => (&rest[..=newline], true),
                None => (rest, false),
            };
            consumed += piece.len();
            if let Some(outcome) = self.take_piece(piece, ends_line) {
                return (consumed, Some(outcome));
            }
        }
        (consumed, None)
    }

    /// Feed one line (text holding no line break but, perhaps, a last one;
    /// a missing one is supplied). Returns the outcome when the line
    /// completes (or fails) a frame.
    pub fn push_line(&mut self, line: &str) -> Option<Result<String, FrameError>> {
        let mut first_outcome = None;
        let mut rest = line.as_bytes();
        while !rest.is_empty() {
            // An outcome ends the line, or the state an error leaves skips
            // the rest of it: one line has at most one outcome.
            let (consumed, outcome) = self.push_bytes(rest);
            rest = &rest[consumed..];
            first_outcome = first_outcome.or(outcome);
        }
        if !line.ends_with('\n') {
            first_outcome = first_outcome.or(self.push_bytes(b"\n").1);
        }
        first_outcome
    }

    /// The stream ended. `Ok(None)` if it ended between frames. A frame not
    /// yet followed by its blank line is still a frame if it is a whole JSON
    /// value (a writer may close its output right after its last frame);
    /// anything else is `FrameError::EndedMidFrame`, which carries the text.
    /// The reader is empty afterwards.
    pub fn finish(&mut self) -> Result<Option<String>, FrameError> {
        let state = std::mem::replace(&mut self.state, State::BetweenFrames);
        let frame = std::mem::take(&mut self.frame);
        match state {
            State::BetweenFrames | State::SkippingLine | State::SkippingFrame { .. } => Ok(None),
            State::NotAnObject { excerpt } => Err(FrameError::NotAnObject {
                excerpt: describe(&excerpt),
            }),
            State::InFrame { .. } => {
                let text = String::from_utf8_lossy(&frame).into_owned();
                if serde_json::from_str::<serde_json::Value>(&text).is_ok() {
                    Ok(Some(text))
                } else {
                    Err(FrameError::EndedMidFrame { unterminated: text })
                }
            }
        }
    }

    /// Take a piece of one line (ending with its `\n` when `ends_line`).
    fn take_piece(&mut self, piece: &[u8], ends_line: bool) -> Option<Result<String, FrameError>> {
        match &mut self.state {
            State::BetweenFrames => {
                let start = piece.iter().position(|byte| !byte.is_ascii_whitespace())?;
                if self.require_object_start && piece[start] != b'{' {
                    self.state = State::NotAnObject {
                        excerpt: Vec::new(),
                    };
                } else {
                    self.state = State::InFrame {
                        line_start: 0,
                        line_has_content: false,
                    };
                }
                self.take_piece(&piece[start..], ends_line)
            }
            State::InFrame {
                line_start,
                line_has_content,
            } => {
                let piece_has_content = !piece.iter().all(u8::is_ascii_whitespace);
                let ends_frame = ends_line && !*line_has_content && !piece_has_content;
                // The newline of the blank line that ends a frame is not counted.
                let counted_bytes = piece.len() - usize::from(ends_frame);
                if self.frame.len() + counted_bytes > self.max_frame_bytes {
                    self.frame = Vec::new();
                    self.state = if ends_frame {
                        State::BetweenFrames
                    } else {
                        State::SkippingFrame {
                            line_has_content: !ends_line
                                && (*line_has_content || piece_has_content),
                        }
                    };
                    return Some(Err(FrameError::TooLarge {
                        max_frame_bytes: self.max_frame_bytes,
                    }));
                }
                if ends_frame {
                    self.frame.truncate(*line_start);
                    let frame = std::mem::take(&mut self.frame);
                    self.state = State::BetweenFrames;
                    return Some(Ok(String::from_utf8_lossy(&frame).into_owned()));
                }
                self.frame.extend_from_slice(piece);
                if ends_line {
                    *line_start = self.frame.len();
                    *line_has_content = false;
                } else {
                    *line_has_content |= piece_has_content;
                }
                None
            }
            State::NotAnObject { excerpt } => {
                let room = EXCERPT_BYTES - excerpt.len();
                excerpt.extend_from_slice(&piece[..piece.len().min(room)]);
                if !ends_line && excerpt.len() < EXCERPT_BYTES {
                    return None;
                }
                let excerpt = describe(excerpt);
                self.state = if ends_line {
                    State::BetweenFrames
                } else {
                    State::SkippingLine
                };
                Some(Err(FrameError::NotAnObject { excerpt }))
            }
            State::SkippingLine => {
                if ends_line {
                    self.state = State::BetweenFrames;
                }
                None
            }
            State::SkippingFrame { line_has_content } => {
                *line_has_content |= !piece.iter().all(u8::is_ascii_whitespace);
                if ends_line {
                    self.state = if *line_has_content {
                        State::SkippingFrame {
                            line_has_content: false,
                        }
                    } else {
                        State::BetweenFrames
                    };
                }
                None
            }
        }
    }
}

fn describe(excerpt: &[u8]) -> String {
    String::from_utf8_lossy(excerpt)
        .trim()
        .chars()
        .take(EXCERPT_CHARS)
        .collect()
}

/// One frame as the protocol writes it: the JSON text, then the blank line
/// that ends it (trailing whitespace of `json_text` is replaced by exactly
/// that). The text must hold no blank line, or a reader splits it there;
/// JSON printed by serde_json never does.
pub fn encode_frame(json_text: &str) -> String {
    format!("{}\n\n", json_text.trim_end())
}

/// Split a whole text (a recorded transcript of requests or replies) into
/// its frames, each as it was written, without the blank line that ends it.
/// A last frame without its blank line is a frame too.
pub fn split_frames(text: &str) -> Vec<String> {
    let mut reader = FrameReader::new(usize::MAX);
    let mut frames = Vec::new();
    let mut rest = text.as_bytes();
    while !rest.is_empty() {
        let (consumed, outcome) = reader.push_bytes(rest);
        rest = &rest[consumed..];
        if let Some(Ok(frame)) = outcome {
            frames.push(frame);
        }
    }
    match reader.finish() {
        Ok(Some(frame))
        | Err(FrameError::EndedMidFrame {
            unterminated: frame,
        }) => frames.push(frame),
        Ok(None) | Err(_) => {}
    }
    frames
}

#[cfg(test)]
mod tests {
    use super::*;

    type Outcome = Result<String, FrameError>;
    type End = Result<Option<String>, FrameError>;

    /// Every outcome of feeding `input` in pieces of `piece_size` bytes, then the end.
    fn read_all(reader: &mut FrameReader, input: &[u8], piece_size: usize) -> (Vec<Outcome>, End) {
        let mut outcomes = Vec::new();
        for piece in input.chunks(piece_size) {
            let mut rest = piece;
            while !rest.is_empty() {
                let (consumed, outcome) = reader.push_bytes(rest);
                assert!(consumed > 0, "no progress on {rest:?}");
                rest = &rest[consumed..];
                outcomes.extend(outcome);
            }
        }
        (outcomes, reader.finish())
    }

    fn frames(input: &str, max_frame_bytes: usize) -> Vec<Result<String, FrameError>> {
        let mut every_split = Vec::new();
        for piece_size in [1, 2, 3, 7, input.len().max(1)] {
            let (outcomes, end) = read_all(
                &mut FrameReader::new(max_frame_bytes),
                input.as_bytes(),
                piece_size,
            );
            assert_eq!(end, Ok(None), "{input:?} in pieces of {piece_size}");
            every_split.push(outcomes);
        }
        assert!(
            every_split.windows(2).all(|pair| pair[0] == pair[1]),
            "the outcome depends on how the bytes arrive: {every_split:?}"
        );
        every_split.remove(0)
    }

    #[test]
    fn multi_line_frames_end_at_a_blank_line() {
        assert_eq!(
            frames(
                "{\"env\": 0,\n \"messages\":\n []}\n\n{\"env\": 1}\n\n",
                1024
            ),
            vec![
                Ok("{\"env\": 0,\n \"messages\":\n []}\n".to_string()),
                Ok("{\"env\": 1}\n".to_string())
            ]
        );
    }

    #[test]
    fn several_blank_lines_and_leading_whitespace_are_skipped() {
        assert_eq!(
            frames("\n\n  \n\t{\"a\":\n 1}\n\n\n \n{\"b\": 2}\n   \n\n", 1024),
            vec![
                Ok("{\"a\":\n 1}\n".to_string()),
                Ok("{\"b\": 2}\n".to_string())
            ]
        );
    }

    #[test]
    fn crlf_line_breaks_frame_like_lf() {
        // The real transcripts use `\n` only; a `\r\n` stream still frames,
        // and the `\r` left in a frame is JSON whitespace.
        let frames = frames("{\"a\":\r\n 1}\r\n\r\n{\"b\": 2}\r\n\r\n", 1024);
        assert_eq!(
            frames,
            vec![
                Ok("{\"a\":\r\n 1}\r\n".to_string()),
                Ok("{\"b\": 2}\r\n".to_string())
            ]
        );
        let value: serde_json::Value = serde_json::from_str(frames[0].as_ref().unwrap()).unwrap();
        assert_eq!(value, serde_json::json!({"a": 1}));
    }

    #[test]
    fn an_oversized_frame_is_reported_once_and_skipped() {
        let big = format!(
            "{{\"x\":\n\"{}\",\n\"y\": 1}}\n\n{{\"b\": 2}}\n\n",
            "a".repeat(100)
        );
        assert_eq!(
            frames(&big, 64),
            vec![
                Err(FrameError::TooLarge {
                    max_frame_bytes: 64
                }),
                Ok("{\"b\": 2}\n".to_string())
            ]
        );
        // Exactly at the cap is not too large; one byte over is.
        let frame = "{\"a\": 12}\n";
        assert_eq!(
            frames(&format!("{frame}\n"), frame.len()),
            vec![Ok(frame.to_string())]
        );
        assert_eq!(
            frames(&format!("{frame}\n"), frame.len() - 1),
            vec![Err(FrameError::TooLarge {
                max_frame_bytes: frame.len() - 1
            })]
        );
    }

    #[test]
    fn a_blank_line_too_long_for_the_cap_still_ends_the_oversized_frame() {
        let input = format!("{{\"a\": 1}}\n{}\n{{\"b\": 2}}\n\n", " ".repeat(20));
        assert_eq!(
            frames(&input, 16),
            vec![
                Err(FrameError::TooLarge {
                    max_frame_bytes: 16
                }),
                Ok("{\"b\": 2}\n".to_string())
            ]
        );
    }

    #[test]
    fn an_endless_line_is_never_buffered_beyond_the_cap() {
        let mut reader = FrameReader::new(1000);
        let chunk = vec![b'x'; 4096];
        let (consumed, outcome) = reader.push_bytes(b"{");
        assert_eq!((consumed, outcome), (1, None));
        let (consumed, outcome) = reader.push_bytes(&chunk);
        assert_eq!(consumed, chunk.len());
        assert_eq!(
            outcome,
            Some(Err(FrameError::TooLarge {
                max_frame_bytes: 1000
            }))
        );
        for _ in 0..100 {
            assert_eq!(reader.push_bytes(&chunk), (chunk.len(), None));
        }
        assert!(reader.frame.capacity() <= 1000);
        assert_eq!(reader.finish(), Ok(None));
    }

    #[test]
    fn a_stream_that_ends_mid_frame_is_an_error_unless_the_frame_is_whole() {
        let (outcomes, end) = read_all(&mut FrameReader::new(1024), b"{\"env\":\n 1", 3);
        assert!(outcomes.is_empty());
        assert_eq!(
            end,
            Err(FrameError::EndedMidFrame {
                unterminated: "{\"env\":\n 1".to_string()
            })
        );
        let (outcomes, end) = read_all(&mut FrameReader::new(1024), b"{\"env\":\n 1}\n", 3);
        assert!(outcomes.is_empty());
        assert_eq!(end, Ok(Some("{\"env\":\n 1}\n".to_string())));
        let (_, end) = read_all(&mut FrameReader::new(1024), b"{\"env\": 1}\n\n  ", 3);
        assert_eq!(end, Ok(None));
    }

    #[test]
    fn a_frame_that_is_not_an_object_is_reported_at_its_first_line() {
        let mut reader = FrameReader::new(1024).require_object_start();
        assert_eq!(
            reader.push_line("  this is not json\n"),
            Some(Err(FrameError::NotAnObject {
                excerpt: "this is not json".to_string()
            }))
        );
        assert_eq!(reader.push_line("{\"env\": 1}\n"), None);
        assert_eq!(
            reader.push_line("\n"),
            Some(Ok("{\"env\": 1}\n".to_string()))
        );
        // Without the requirement, anything up to a blank line is a frame.
        let mut reader = FrameReader::new(1024);
        assert_eq!(reader.push_line("hello"), None);
        assert_eq!(reader.push_line(""), Some(Ok("hello\n".to_string())));
    }

    #[test]
    fn a_long_line_that_is_not_an_object_is_reported_without_waiting_for_its_end() {
        let mut reader = FrameReader::new(1 << 20).require_object_start();
        let (consumed, outcome) = reader.push_bytes(&[b'z'; 5000]);
        assert_eq!(consumed, 5000, "the rest of the line is skipped");
        assert_eq!(
            outcome,
            Some(Err(FrameError::NotAnObject {
                excerpt: "z".repeat(EXCERPT_CHARS)
            }))
        );
        assert_eq!(reader.push_bytes(&[b'z'; 5000]), (5000, None));
        assert_eq!(reader.push_line("zzz"), None);
        assert_eq!(reader.push_line("{\"env\": 1}"), None);
        assert_eq!(reader.push_line(""), Some(Ok("{\"env\": 1}\n".to_string())));
        assert_eq!(
            read_all(&mut FrameReader::new(64).require_object_start(), b"oops", 1).1,
            Err(FrameError::NotAnObject {
                excerpt: "oops".to_string()
            })
        );
    }

    #[test]
    fn encoded_frames_read_back_as_written() {
        assert_eq!(encode_frame("{\"env\": 1}"), "{\"env\": 1}\n\n");
        assert_eq!(encode_frame("{\"env\": 1}\n\n\n"), "{\"env\": 1}\n\n");
        let text = ["{\"a\":\n 1}", "{\"b\": 2}"].map(encode_frame).concat();
        assert_eq!(
            frames(&text, 1024),
            vec![
                Ok("{\"a\":\n 1}\n".to_string()),
                Ok("{\"b\": 2}\n".to_string())
            ]
        );
        assert_eq!(split_frames(&text), vec!["{\"a\":\n 1}\n", "{\"b\": 2}\n"]);
    }

    #[test]
    fn split_frames_keeps_a_last_frame_without_its_blank_line() {
        assert_eq!(
            split_frames("{\"a\": 1}\n\n{\"b\":"),
            vec!["{\"a\": 1}\n", "{\"b\":"]
        );
        assert!(split_frames("\n \n").is_empty());
    }

    #[test]
    fn arbitrary_bytes_never_panic_exceed_the_cap_or_depend_on_their_pieces() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let alphabet: &[u8] = b"{}[]\":, \n\n\r\t env01\\\xff\xc3";
            let length = (next() % 200) as usize;
            let bytes: Vec<u8> = (0..length)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let cap = 1 + (next() % 64) as usize;
            let new_reader = || {
                let reader = FrameReader::new(cap);
                if round % 2 == 0 {
                    reader.require_object_start()
                } else {
                    reader
                }
            };
            let piece_size = 1 + (next() % 16) as usize;
            let (outcomes, end) = read_all(&mut new_reader(), &bytes, piece_size);
            let at_once = read_all(&mut new_reader(), &bytes, bytes.len().max(1));
            assert_eq!(
                (&outcomes, &end),
                (&at_once.0, &at_once.1),
                "{bytes:?} in pieces of {piece_size} and at once"
            );
            for frame in outcomes.into_iter().chain(end.transpose()).flatten() {
                // Each replacement character stands for at least one invalid byte.
                let raw_bytes_at_least: usize = frame
                    .chars()
                    .map(|c| {
                        if c == char::REPLACEMENT_CHARACTER {
                            1
                        } else {
                            c.len_utf8()
                        }
                    })
                    .sum();
                assert!(raw_bytes_at_least <= cap, "{frame:?} exceeds {cap}");
            }
        }
    }
}
