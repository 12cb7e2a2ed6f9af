//! Every real REPL transcript parses, and every reply re-serialises to the
//! JSON value Lean printed, field by field.

use lean_protocol::{parse_request, split_frames, Reply};
use std::path::PathBuf;

pub fn transcripts_dir() -> PathBuf {
    let shared = std::env::var("LEAN_FARM_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("fixtures/lean-repl/transcripts");
    assert!(
        dir.is_dir(),
        "{} is missing: set LEAN_FARM_SHARED_DIR",
        dir.display()
    );
    dir
}

#[test]
fn every_transcript_round_trips() {
    let mut transcripts = 0;
    let mut replies = 0;
    for entry in std::fs::read_dir(transcripts_dir()).unwrap() {
        let path = entry.unwrap().path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".expected.out"))
        else {
            continue;
        };
        transcripts += 1;
        let input = std::fs::read_to_string(path.with_file_name(format!("{name}.in"))).unwrap();
        let output = std::fs::read_to_string(&path).unwrap();
        let requests = split_frames(&input);
        let recorded = split_frames(&output);
        assert_eq!(
            requests.len(),
            recorded.len(),
            "{name}: one reply per request"
        );
        for request in &requests {
            parse_request(request)
                .unwrap_or_else(|error| panic!("{name}: request {request:?}: {error}"));
        }
        for text in &recorded {
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let reply = Reply::from_value(value.clone())
                .unwrap_or_else(|error| panic!("{name}: {text}: {error}"));
            assert_eq!(
                reply.to_value(),
                value,
                "{name}: reply changed in a round trip"
            );
            replies += 1;
        }
    }
    assert!(transcripts >= 50, "found only {transcripts} transcripts");
    assert!(replies >= 150, "found only {replies} replies");
}
