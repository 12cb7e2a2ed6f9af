//! What signing adds to each verdict: building the statement of a verdict
//! (hashing the snippet, its header and policy), signing it, and writing
//! the attestation's JSON, as an in-process worker does before it stores a
//! verdict; and what verifying one costs (`leanfarm verify`, or the farm
//! checking a remote worker's completion).
//!
//! cargo run --release -p leanfarm-attest --example sign_bench -- [COUNT] [SNIPPET_BYTES]

use leanfarm_attest::{
    Attestation, KeyEntry, KeyFile, SigningKeys, Statement, TrustedKeys, WorkerIdentity,
};
use leanfarm_core::{CheckRequest, Verdict};
use std::time::Instant;

fn main() {
    let mut args = std::env::args().skip(1);
    let count: usize = args
        .next()
        .map_or(20_000, |text| text.parse().expect("COUNT"));
    let snippet_bytes: usize = args
        .next()
        .map_or(2_000, |text| text.parse().expect("SNIPPET_BYTES"));
    let mut code = String::from("import Mathlib\ntheorem t : 1 = 1 := by\n");
    while code.len() < snippet_bytes {
        code.push_str("  rfl\n");
    }
    let request: CheckRequest =
        serde_json::from_value(serde_json::json!({ "code": code })).expect("request");
    let mut verdict = Verdict::valid();
    verdict.toolchain = "lean4:v4.19.0".into();
    verdict.project = "mathlib".into();
    verdict
        .axioms
        .insert("t".into(), vec!["propext".into(), "Quot.sound".into()]);
    let file = KeyFile {
        keys: vec![KeyEntry::generate("bench", 0, None).expect("key")],
    };
    let signer = SigningKeys::new(&file).expect("signing keys");
    let trusted = TrustedKeys::new(&file.public_only()).expect("trusted keys");
    let identity = WorkerIdentity {
        worker_id: "embedded-bench".into(),
        toolchain_sha256: "unhashed".into(),
        project_sha256: "unhashed".into(),
    };

    let started = Instant::now();
    let mut statements = Vec::with_capacity(count);
    for index in 0..count {
        statements.push(Statement::for_verdict(
            &request,
            &verdict,
            &identity,
            index as i64,
        ));
    }
    let statement_micros = started.elapsed().as_secs_f64() * 1e6 / count as f64;
    let started = Instant::now();
    for statement in statements {
        std::hint::black_box(signer.sign(statement).expect("sign"));
    }
    let signature_micros = started.elapsed().as_secs_f64() * 1e6 / count as f64;

    let started = Instant::now();
    let mut attestations = Vec::with_capacity(count);
    for index in 0..count {
        let statement = Statement::for_verdict(&request, &verdict, &identity, index as i64);
        attestations.push(signer.sign(statement).expect("sign").to_json());
    }
    let sign_micros = started.elapsed().as_secs_f64() * 1e6 / count as f64;

    let started = Instant::now();
    for text in &attestations {
        let statement = trusted
            .verify(&Attestation::from_json(text).expect("attestation"))
            .expect("verify");
        statement.matches(&request, &verdict).expect("matches");
    }
    let verify_micros = started.elapsed().as_secs_f64() * 1e6 / count as f64;

    println!(
        "{count} verdicts, snippet {} bytes, attestation {} bytes",
        code.len(),
        attestations[0].len()
    );
    println!("sign (statement + Ed25519 + JSON): {sign_micros:.1} µs per verdict");
    println!("  of which the statement (hashes, header split): {statement_micros:.1} µs, the signature: {signature_micros:.1} µs");
    println!("verify (parse + Ed25519 + match):  {verify_micros:.1} µs per verdict");
}
