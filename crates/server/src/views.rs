//! How checks look on the user API (`CheckView`, shared by the handlers
//! that show checks) and the query-string check every handler with a query
//! makes. Pure conversions: no I/O, no handler.

use leanfarm_attest::Attestation;
use leanfarm_core::Verdict;
use leanfarm_store::artifacts::VERDICT_ARTIFACTS;
use leanfarm_store::{JobRecord, JobState};
use serde::Serialize;

/// A check as the API shows it.
#[derive(Serialize)]
pub(crate) struct CheckView {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub custom_id: Option<String>,
    pub batch_id: Option<String>,
    pub state: JobState,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<Verdict>,
    /// The verdict's signed attestation, when its worker signed it
    /// (`leanfarm verify` checks it offline against `GET /v1/keys`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attestation: Option<Attestation>,
    /// The names of the check's artifacts (`GET
    /// /v1/checks/{id}/artifacts/{name}`): those of a stored verdict, once
    /// the check is done; none before.
    pub artifacts: Vec<&'static str>,
    pub attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<i64>,
}

impl From<JobRecord> for CheckView {
    fn from(record: JobRecord) -> Self {
        let error = match record.state {
            JobState::Dead => Some(format!(
                "the farm gave up after {} attempts: {}",
                record.attempts,
                record.last_error.as_deref().unwrap_or("unknown error")
            )),
            _ => None,
        };
        // The store keeps the attestation's canonical JSON; an unreadable
        // one is not shown (a verifier would refuse it anyway).
        let attestation = record
            .attestation
            .as_deref()
            .and_then(|text| Attestation::from_json(text).ok());
        let artifacts = match record.state {
            JobState::Done => VERDICT_ARTIFACTS.to_vec(),
            _ => Vec::new(),
        };
        CheckView {
            id: record.id,
            custom_id: record.request.custom_id.clone(),
            batch_id: record.batch_id,
            state: record.state,
            verdict: record.result,
            attestation,
            artifacts,
            attempts: record.attempts,
            error,
            created_at: record.created_at,
            finished_at: record.finished_at,
        }
    }
}

/// Whether every `%XX` escape of a query decodes, with the text around
/// it, to UTF-8 (axum's query extractor would replace what does not).
pub(crate) fn percent_decodes_to_utf8(query: &str) -> bool {
    let bytes = query.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut index = 0;
    while index < bytes.len() {
        let hex = |at: usize| bytes.get(at).and_then(|b| (*b as char).to_digit(16));
        match (bytes[index], hex(index + 1), hex(index + 2)) {
            (b'%', Some(high), Some(low)) => {
                decoded.push((high * 16 + low) as u8);
                index += 3;
            }
            (byte, _, _) => {
                decoded.push(byte);
                index += 1;
            }
        }
    }
    std::str::from_utf8(&decoded).is_ok()
}
