//! The worker API's JSON, as workers and servers of any build exchange it:
//! field names, defaults, and the refusal of unknown fields.

use leanfarm_core::{ReasonCode, Verdict, VerdictReason};
use leanfarm_store::{CompleteOutcome, ReleaseOutcome};
use leanfarm_worker::protocol::{
    CompleteRequest, CompleteResponse, LeaseRef, LeaseRequest, LeaseResponse, ReleaseRequest,
    ReleaseResponse, RenewRequest, RenewResponse,
};
use serde_json::{json, Value};

fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort();
    keys
}

#[test]
fn a_lease_request_has_the_documented_fields() {
    let request = LeaseRequest {
        worker_id: "worker-1".into(),
        max: 3,
        lease_seconds: 30.0,
        warm_headers: vec!["import Mathlib".into()],
        wait_seconds: 10.0,
        toolchain: Some("v4.9.0".into()),
        project: None,
    };
    let value = serde_json::to_value(&request).unwrap();
    assert_eq!(
        value,
        json!({
            "worker_id": "worker-1",
            "max": 3,
            "lease_seconds": 30.0,
            "warm_headers": ["import Mathlib"],
            "wait_seconds": 10.0,
            "toolchain": "v4.9.0",
            "project": null,
        })
    );
    let back: LeaseRequest = serde_json::from_value(value).unwrap();
    assert_eq!(back, request);
}

#[test]
fn a_lease_request_from_an_older_worker_takes_the_defaults() {
    let request: LeaseRequest =
        serde_json::from_value(json!({ "worker_id": "w", "max": 2, "lease_seconds": 5.0 }))
            .unwrap();
    assert_eq!(request.warm_headers, Vec::<String>::new());
    assert_eq!(request.wait_seconds, 0.0);
    assert_eq!(request.toolchain, None);
    assert_eq!(request.project, None);
}

#[test]
fn requests_refuse_unknown_fields() {
    let lease = json!({ "worker_id": "w", "max": 1, "lease_seconds": 5.0, "priority": 1 });
    let error = serde_json::from_value::<LeaseRequest>(lease).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `priority`"),
        "{error}"
    );

    let renew =
        json!({ "leases": [{ "job_id": "j", "lease_id": "l", "x": 1 }], "lease_seconds": 5.0 });
    let error = serde_json::from_value::<RenewRequest>(renew).unwrap_err();
    assert!(error.to_string().contains("unknown field `x`"), "{error}");

    let release = json!({
        "job_id": "j", "lease_id": "l", "error": "e", "retry_after_seconds": 1.0, "extra": true
    });
    let error = serde_json::from_value::<ReleaseRequest>(release).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `extra`"),
        "{error}"
    );

    let verdict = Verdict::rejected(VerdictReason::new(ReasonCode::ReplCrashed, "y"));
    let mut complete = serde_json::to_value(CompleteRequest {
        job_id: "j".into(),
        lease_id: "l".into(),
        verdict,
        attestation: None,
    })
    .unwrap();
    // Without an attestation (in-process or unsigned workers) the body is as before.
    assert_eq!(keys(&complete), ["job_id", "lease_id", "verdict"]);
    serde_json::from_value::<CompleteRequest>(complete.clone()).expect("its own JSON reads");
    let mut forged = complete.clone();
    forged["verdict"]["status"] = json!("valid");
    let error = serde_json::from_value::<CompleteRequest>(forged).unwrap_err();
    assert!(
        error.to_string().contains("does not go with reason"),
        "a valid status with a reason is refused: {error}"
    );
    complete["tenant"] = json!("t");
    let error = serde_json::from_value::<CompleteRequest>(complete).unwrap_err();
    assert!(
        error.to_string().contains("unknown field `tenant`"),
        "{error}"
    );
}

#[test]
fn renew_and_release_requests_have_the_documented_fields() {
    let renew = RenewRequest {
        leases: vec![LeaseRef {
            job_id: "j".into(),
            lease_id: "l".into(),
        }],
        lease_seconds: 30.0,
    };
    assert_eq!(
        serde_json::to_value(&renew).unwrap(),
        json!({ "leases": [{ "job_id": "j", "lease_id": "l" }], "lease_seconds": 30.0 })
    );
    let release = ReleaseRequest {
        job_id: "j".into(),
        lease_id: "l".into(),
        error: "sandbox failed".into(),
        retry_after_seconds: 2.0,
    };
    let value = serde_json::to_value(&release).unwrap();
    assert_eq!(
        keys(&value),
        ["error", "job_id", "lease_id", "retry_after_seconds"]
    );
}

#[test]
fn answers_read_as_the_server_writes_them() {
    let complete: CompleteResponse = serde_json::from_value(json!({ "outcome": "stale" })).unwrap();
    assert_eq!(complete.outcome, CompleteOutcome::Stale);
    let release: ReleaseResponse =
        serde_json::from_value(json!({ "outcome": "dead_lettered" })).unwrap();
    assert_eq!(release.outcome, ReleaseOutcome::DeadLettered);
    let renew: RenewResponse = serde_json::from_value(json!({ "held": [true, false] })).unwrap();
    assert_eq!(renew.held, [true, false]);
    let lease: LeaseResponse = serde_json::from_value(json!({ "leases": [] })).unwrap();
    assert!(lease.leases.is_empty());
}
