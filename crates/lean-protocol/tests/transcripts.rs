//! Every real REPL transcript parses, and every reply re-serialises to the
//! JSON value Lean printed, field by field.

use lean_protocol::transcripts::read_transcripts;
use lean_protocol::{parse_request, Reply};
use leanfarm_testkit::shared_transcripts_dir;

#[test]
fn every_transcript_round_trips() {
    let mut transcripts = 0;
    let mut replies = 0;
    let dir = shared_transcripts_dir();
    assert!(
        dir.is_dir(),
        "{} is missing: set LEAN_FARM_SHARED_DIR",
        dir.display()
    );
    for transcript in read_transcripts(&dir).unwrap() {
        let (name, requests, recorded) = (transcript.name, transcript.requests, transcript.replies);
        transcripts += 1;
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
