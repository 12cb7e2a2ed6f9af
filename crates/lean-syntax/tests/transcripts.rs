//! Lexes every Lean source of the real REPL transcripts, and checks that the
//! positions Lean reported in its messages are where this lexer's tokens start.
//!
//! The transcripts are in `$LEAN_FARM_SHARED_DIR/fixtures/lean-repl/transcripts`
//! (default: the `shared` directory beside the checkout). Each `NAME.in` holds
//! JSON requests separated by blank lines (`cmd` is Lean source; `path` names
//! a `.lean` file recorded beside it); `NAME.expected.out` holds the replies in
//! the same order, whose `messages` carry `pos` (line from 1, column from 0).

use std::fs;
use std::path::{Path, PathBuf};

use lean_syntax::{lex, Position};
use leanfarm_testkit::shared_transcripts_dir;
use serde_json::Value;

/// The JSON frames of a transcript file, separated by blank lines. Some
/// recorded requests carry raw line breaks inside their strings (the REPL
/// accepts them; a `\n` escape on each line is what Lean reads), so a frame
/// that is not strict JSON is read again without its raw line breaks.
fn json_frames(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|error| panic!("{path:?}: {error}"));
    let mut frames = Vec::new();
    let mut current = String::new();
    for line in text.split_inclusive('\n') {
        if line.trim().is_empty() {
            if !current.trim().is_empty() {
                frames.push(std::mem::take(&mut current));
            }
            current.clear();
        } else {
            current.push_str(line);
        }
    }
    if !current.trim().is_empty() {
        frames.push(current);
    }
    frames
        .iter()
        .map(|frame| {
            serde_json::from_str(frame)
                .or_else(|_| serde_json::from_str(&frame.replace('\n', "")))
                .unwrap_or_else(|error| panic!("{path:?}: {error}\n{frame}"))
        })
        .collect()
}

/// The Lean source a request carries, if any.
fn request_source(dir: &Path, request: &Value) -> Option<String> {
    if let Some(command) = request.get("cmd").and_then(Value::as_str) {
        return Some(command.to_string());
    }
    let path = request.get("path").and_then(Value::as_str)?;
    let file_name = Path::new(path).file_name()?;
    Some(fs::read_to_string(dir.join(file_name)).expect("a recorded path request has its file"))
}

fn position(value: &Value) -> Option<Position> {
    Some(Position {
        line: u32::try_from(value.get("line")?.as_u64()?).ok()?,
        column: u32::try_from(value.get("column")?.as_u64()?).ok()?,
    })
}

#[test]
fn every_transcript_source_lexes_and_message_positions_are_token_starts() {
    let dir = shared_transcripts_dir();
    if !dir.is_dir() {
        println!(
            "skipped: {} does not exist (set LEAN_FARM_SHARED_DIR)",
            dir.display()
        );
        return;
    }
    let mut inputs: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "in"))
        .collect();
    inputs.sort();
    let mut sources_lexed = 0;
    let mut positions_checked = 0;
    let mut sorry_positions_checked = 0;
    let mut misplaced = Vec::new();
    for input in &inputs {
        let requests = json_frames(input);
        let replies = json_frames(&input.with_extension("expected.out"));
        for (index, request) in requests.iter().enumerate() {
            let Some(source) = request_source(&dir, request) else {
                continue;
            };
            let tokens = lex(&source)
                .unwrap_or_else(|error| panic!("{input:?} request {index}: {error}\n{source}"));
            sources_lexed += 1;
            let Some(reply) = replies.get(index) else {
                continue;
            };
            // Messages (`pos` of a `sorry` warning is the declaration's
            // name) and sorries (`pos` is the `sorry` itself).
            let located = ["messages", "sorries"].into_iter().flat_map(|field| {
                reply
                    .get(field)
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
            });
            for entry in located {
                let Some(pos) = entry.get("pos").and_then(position) else {
                    continue;
                };
                if pos.line == 0 {
                    // Lean's position for messages about the whole input.
                    continue;
                }
                let data = entry.get("data").and_then(Value::as_str).unwrap_or("sorry");
                positions_checked += 1;
                if data == "declaration uses `sorry`" {
                    sorry_positions_checked += 1;
                }
                if !tokens.iter().any(|token| token.start == pos) {
                    misplaced.push(format!("{input:?} request {index}: {pos} {data:?}"));
                }
            }
        }
    }
    // The `.lean` files are lexed whole as well, read or not by a request.
    for entry in fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path
            .extension()
            .is_some_and(|extension| extension == "lean")
        {
            let source = fs::read_to_string(&path).unwrap();
            lex(&source).unwrap_or_else(|error| panic!("{path:?}: {error}"));
            sources_lexed += 1;
        }
    }
    println!(
        "{sources_lexed} sources lexed; {positions_checked} message positions checked, {sorry_positions_checked} of them `sorry` warnings"
    );
    assert!(misplaced.is_empty(), "{}", misplaced.join("\n"));
    assert!(sources_lexed > 100, "{sources_lexed}");
    assert!(sorry_positions_checked >= 30, "{sorry_positions_checked}");
}
