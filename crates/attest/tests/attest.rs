//! Signing, verification, tamper detection, key rotation, key files, and the
//! RFC 8032 test vectors for the Ed25519 implementation the crate signs with.

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use leanfarm_attest::{
    now_unix_seconds, Attestation, KeyEntry, KeyError, KeyFile, SigningKeys, Statement,
    TrustedKeys, VerifyError, WorkerIdentity,
};
use leanfarm_core::{CheckRequest, ReasonCode, Verdict, VerdictReason};

/// RFC 8032, section 7.1, TEST 1 to 3: (secret key, public key, message, signature).
const RFC_8032_VECTORS: [(&str, &str, &str, &str); 3] = [
    (
        "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
        "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
        "",
        "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
    ),
    (
        "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
        "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
        "72",
        "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
    ),
    (
        "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
        "fc51cd8e6218a1a38da47ed00230f0580816ed13ba3303ac5deb911548908025",
        "af82",
        "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
    ),
];

fn bytes32(text: &str) -> [u8; 32] {
    hex::decode(text).unwrap().try_into().unwrap()
}

fn key_from_seed(key_id: &str, seed: &str, not_before: i64, not_after: Option<i64>) -> KeyEntry {
    KeyEntry::from_signing_key(
        key_id,
        &SigningKey::from_bytes(&bytes32(seed)),
        not_before,
        not_after,
    )
}

fn worker(worker_id: &str) -> WorkerIdentity {
    WorkerIdentity {
        worker_id: worker_id.to_string(),
        toolchain_sha256: "ab".repeat(32),
        project_sha256: "cd".repeat(32),
    }
}

fn request() -> CheckRequest {
    serde_json::from_value(serde_json::json!({
        "code": "import Mathlib\n\ntheorem one_add_one : 1 + 1 = 2 := by norm_num\n"
    }))
    .unwrap()
}

fn verdict() -> Verdict {
    let mut verdict = Verdict::valid();
    verdict.toolchain = "leanprover/lean4:v4.22.0".into();
    verdict.project = "mathlib".into();
    verdict
        .axioms
        .insert("one_add_one".into(), vec!["propext".into()]);
    verdict
}

fn one_key_file() -> KeyFile {
    KeyFile {
        keys: vec![key_from_seed("k1", RFC_8032_VECTORS[0].0, 0, None)],
    }
}

fn signed(keys: &KeyFile, worker_id: &str, signed_at: i64) -> Attestation {
    let statement = Statement::for_verdict(&request(), &verdict(), &worker(worker_id), signed_at);
    SigningKeys::new(keys).unwrap().sign(statement).unwrap()
}

#[test]
fn rfc_8032_vectors_sign_and_verify() {
    for (secret, public, message, signature) in RFC_8032_VECTORS {
        let signing = SigningKey::from_bytes(&bytes32(secret));
        assert_eq!(hex::encode(signing.verifying_key().as_bytes()), public);
        let message = hex::decode(message).unwrap();
        let made = signing.sign(&message);
        assert_eq!(hex::encode(made.to_bytes()), signature);
        let verifying = VerifyingKey::from_bytes(&bytes32(public)).unwrap();
        verifying.verify(&message, &made).unwrap();
        let mut altered = message.clone();
        altered.push(0);
        assert!(verifying.verify(&altered, &made).is_err());
        // The key file records the public key of the secret, as the RFC does.
        let entry = key_from_seed("rfc", secret, 0, None);
        assert_eq!(entry.public_key, public);
    }
}

#[test]
fn a_signed_verdict_verifies_and_matches_its_verdict() {
    let keys = one_key_file();
    let attestation = signed(&keys, "worker-1", 1_700_000_000);
    let trusted = TrustedKeys::new(&keys.public_only()).unwrap();
    let statement = trusted.verify_json(&attestation.to_json()).unwrap();
    assert_eq!(statement.key_id, "k1");
    assert_eq!(statement.worker_id, "worker-1");
    assert_eq!(statement.signed_at, 1_700_000_000);
    assert_eq!(statement.toolchain.name, "leanprover/lean4:v4.22.0");
    assert_eq!(statement.project.content_sha256, "cd".repeat(32));
    statement.matches(&request(), &verdict()).unwrap();
    // A trailing newline, as a file ends, is allowed.
    let with_newline = format!("{}\n", attestation.to_json());
    trusted.verify_json(&with_newline).unwrap();
}

#[test]
fn the_statement_hashes_snippet_header_and_policy() {
    use sha2::Digest;
    let statement = Statement::for_verdict(&request(), &verdict(), &worker("w"), 5);
    let sha = |bytes: &[u8]| hex::encode(sha2::Sha256::digest(bytes));
    assert_eq!(statement.snippet_sha256, sha(request().code.as_bytes()));
    assert_eq!(statement.header_sha256, sha(b"import Mathlib"));
    assert_eq!(
        statement.policy_sha256,
        sha(&serde_json::to_vec(&request().policy).unwrap())
    );
    let text = String::from_utf8(statement.canonical_bytes()).unwrap();
    assert!(text.starts_with(r#"{"format":"leanfarm-attestation/v1","snippet_sha256":""#));
    assert!(text.contains(
        r#""verdict":{"status":"valid","reason":null,"axioms":{"one_add_one":["propext"]}}"#
    ));
}

#[test]
fn changing_any_byte_of_an_attestation_fails_verification() {
    let keys = one_key_file();
    let trusted = TrustedKeys::new(&keys.public_only()).unwrap();
    let text = signed(&keys, "worker-1", 1_700_000_000).to_json();
    assert!(text.is_ascii());
    let bytes = text.as_bytes();
    for position in 0..bytes.len() {
        for replacement in [b'0', b'a', b' ', b'"'] {
            if bytes[position] == replacement {
                continue;
            }
            let mut tampered = bytes.to_vec();
            tampered[position] = replacement;
            let tampered = String::from_utf8(tampered).unwrap();
            let outcome = trusted.verify_json(&tampered);
            assert!(
                outcome.is_err(),
                "byte {position} changed to {:?} still verifies",
                replacement as char
            );
        }
    }
    // Removing any byte fails as well.
    for position in 0..bytes.len() {
        let mut shorter = bytes.to_vec();
        shorter.remove(position);
        if let Ok(shorter) = String::from_utf8(shorter) {
            assert!(
                trusted.verify_json(&shorter).is_err(),
                "byte {position} removed"
            );
        }
    }
}

#[test]
fn a_tampered_attestation_names_the_check_that_failed() {
    let keys = one_key_file();
    let trusted = TrustedKeys::new(&keys.public_only()).unwrap();
    let attestation = signed(&keys, "worker-1", 1_700_000_000);

    // The verdict inside the statement changed: the signature no longer covers it.
    let mut forged = attestation.clone();
    forged.statement = forged
        .statement
        .replace(r#""status":"valid""#, r#""status":"sorry""#);
    let error = trusted.verify(&forged).unwrap_err();
    assert!(matches!(error, VerifyError::BadSignature { ref key_id } if key_id == "k1"));
    assert_eq!(error.check(), "signature");
    assert!(error.to_string().starts_with("signature check failed"));

    // One hex digit of the signature changed.
    let mut forged = attestation.clone();
    let first = if forged.signature.starts_with('0') {
        "1"
    } else {
        "0"
    };
    forged.signature.replace_range(0..1, first);
    assert!(matches!(
        trusted.verify(&forged).unwrap_err(),
        VerifyError::BadSignature { .. }
    ));

    // A signature of the wrong length.
    let mut forged = attestation.clone();
    forged.signature.push_str("00");
    let error = trusted.verify(&forged).unwrap_err();
    assert!(matches!(error, VerifyError::SignatureMalformed));
    assert_eq!(error.check(), "signature");

    // Whitespace added to the envelope.
    let spaced = attestation
        .to_json()
        .replacen(r#"","signature""#, r#"", "signature""#, 1);
    assert_ne!(spaced, attestation.to_json());
    let error = trusted.verify_json(&spaced).unwrap_err();
    assert!(matches!(error, VerifyError::EnvelopeNotCanonical));
    assert_eq!(error.check(), "envelope");

    // Not JSON at all.
    let error = trusted.verify_json("not json").unwrap_err();
    assert!(matches!(error, VerifyError::EnvelopeUnreadable(_)));

    // The statement re-serialized with whitespace: same meaning, other bytes.
    let mut forged = attestation.clone();
    forged.statement = forged.statement.replacen(',', ", ", 1);
    let error = trusted.verify(&forged).unwrap_err();
    assert!(matches!(error, VerifyError::StatementNotCanonical));
    assert_eq!(error.check(), "statement");

    // A field that statements do not have.
    let mut forged = attestation.clone();
    forged.statement = forged.statement.replacen('{', r#"{"extra":1,"#, 1);
    assert!(matches!(
        trusted.verify(&forged).unwrap_err(),
        VerifyError::StatementUnreadable(_)
    ));
}

#[test]
fn a_statement_names_the_field_that_differs_from_its_verdict() {
    let statement = Statement::for_verdict(&request(), &verdict(), &worker("w"), 5);
    let mut other_request = request();
    other_request.code.push_str("-- changed\n");
    assert_eq!(
        statement
            .matches(&other_request, &verdict())
            .unwrap_err()
            .field,
        "snippet_sha256"
    );
    let mut other_policy = request();
    other_policy.policy.allow_native_decide = true;
    assert_eq!(
        statement
            .matches(&other_policy, &verdict())
            .unwrap_err()
            .field,
        "policy_sha256"
    );
    let rejected = {
        let mut rejected = verdict();
        rejected.reject(VerdictReason::new(ReasonCode::UsesSorry, "sorry"));
        rejected
    };
    assert_eq!(
        statement.matches(&request(), &rejected).unwrap_err().field,
        "status"
    );
    let mut other_axioms = verdict();
    other_axioms
        .axioms
        .insert("one_add_one".into(), vec!["sorryAx".into()]);
    assert_eq!(
        statement
            .matches(&request(), &other_axioms)
            .unwrap_err()
            .field,
        "axioms"
    );
    let mut other_toolchain = verdict();
    other_toolchain.toolchain = "other".into();
    assert_eq!(
        statement
            .matches(&request(), &other_toolchain)
            .unwrap_err()
            .field,
        "toolchain"
    );
    let error = VerifyError::from(statement.matches(&request(), &other_toolchain).unwrap_err());
    assert_eq!(error.check(), "verdict");
}

#[test]
fn rotation_signs_with_the_newest_valid_key_and_old_attestations_still_verify() {
    let old = key_from_seed("2026-a", RFC_8032_VECTORS[0].0, 0, Some(1_000));
    let new = key_from_seed("2026-b", RFC_8032_VECTORS[1].0, 900, None);
    let both = KeyFile {
        keys: vec![old.clone(), new.clone()],
    };
    let signer = SigningKeys::new(&both).unwrap();
    let statement_at = |at| Statement::for_verdict(&request(), &verdict(), &worker("w"), at);
    let trusted = TrustedKeys::new(&both.public_only()).unwrap();

    let before_overlap = signer.sign(statement_at(500)).unwrap();
    let in_overlap = signer.sign(statement_at(950)).unwrap();
    let after_retirement = signer.sign(statement_at(5_000)).unwrap();
    assert_eq!(trusted.verify(&before_overlap).unwrap().key_id, "2026-a");
    assert_eq!(trusted.verify(&in_overlap).unwrap().key_id, "2026-b");
    assert_eq!(trusted.verify(&after_retirement).unwrap().key_id, "2026-b");

    // Before any key is valid, nothing signs.
    let too_early = KeyFile {
        keys: vec![new.clone()],
    };
    assert!(matches!(
        SigningKeys::new(&too_early)
            .unwrap()
            .sign(statement_at(10))
            .unwrap_err(),
        KeyError::NoKeyValidAt { at: 10 }
    ));

    // The retired key, still in someone's hands, cannot sign a statement
    // dated after its window.
    let only_old = SigningKeys::new(&KeyFile {
        keys: vec![KeyEntry {
            not_after: None,
            ..old.clone()
        }],
    })
    .unwrap();
    let late = only_old.sign(statement_at(2_000)).unwrap();
    let error = trusted.verify(&late).unwrap_err();
    assert!(matches!(
        error,
        VerifyError::KeyNotValidAt { ref key_id, signed_at: 2_000 } if key_id == "2026-a"
    ));
    assert_eq!(error.check(), "key");

    // A verifier that dropped the old key refuses what it signed.
    let new_only = TrustedKeys::new(&KeyFile { keys: vec![new] }.public_only()).unwrap();
    assert!(matches!(
        new_only.verify(&before_overlap).unwrap_err(),
        VerifyError::UnknownKey { ref key_id } if key_id == "2026-a"
    ));
}

#[test]
fn a_key_bound_to_a_worker_vouches_for_no_other_worker() {
    let mut entry = key_from_seed("w1-key", RFC_8032_VECTORS[2].0, 0, None);
    entry.worker_id = Some("worker-1".into());
    let file = KeyFile { keys: vec![entry] };
    let trusted = TrustedKeys::new(&file.public_only()).unwrap();
    trusted.verify(&signed(&file, "worker-1", 100)).unwrap();
    let error = trusted.verify(&signed(&file, "worker-2", 100)).unwrap_err();
    assert!(matches!(
        error,
        VerifyError::KeyNotForWorker { ref trusted_worker, ref worker_id, .. }
            if trusted_worker == "worker-1" && worker_id == "worker-2"
    ));
}

#[test]
fn another_key_with_the_same_id_does_not_verify() {
    let keys = one_key_file();
    let impostor = KeyFile {
        keys: vec![key_from_seed("k1", RFC_8032_VECTORS[1].0, 0, None)],
    };
    let attestation = signed(&impostor, "worker-1", 100);
    let trusted = TrustedKeys::new(&keys.public_only()).unwrap();
    assert!(matches!(
        trusted.verify(&attestation).unwrap_err(),
        VerifyError::BadSignature { .. }
    ));
}

#[test]
fn key_files_keep_secrets_out_of_debug_and_public_copies() {
    let file = KeyFile {
        keys: vec![KeyEntry::generate("fresh", now_unix_seconds(), None).unwrap()],
    };
    let secret = file.keys[0].secret_key.clone().unwrap().0;
    assert_eq!(secret.len(), 64);
    assert!(!format!("{file:?}").contains(&secret));
    let signer = SigningKeys::new(&file).unwrap();
    assert!(!format!("{signer:?}").contains(&secret));
    let public = file.public_only();
    assert!(public.keys[0].secret_key.is_none());
    assert!(!public.to_json().contains(&secret));
    assert_eq!(signer.public_keys(), public);
    // Two generated keys differ.
    let other = KeyEntry::generate("other", 0, None).unwrap();
    assert_ne!(other.public_key, file.keys[0].public_key);
    // A public-only file cannot sign.
    assert!(matches!(
        SigningKeys::new(&public).unwrap_err(),
        KeyError::NoSecretKey
    ));
}

#[test]
fn key_files_are_validated() {
    let good = key_from_seed("k", RFC_8032_VECTORS[0].0, 0, Some(10));
    let parse = |file: &KeyFile| KeyFile::parse(&file.to_json());
    assert_eq!(
        parse(&KeyFile {
            keys: vec![good.clone()]
        })
        .unwrap()
        .keys
        .len(),
        1
    );

    let mut wrong_public = good.clone();
    wrong_public.public_key = RFC_8032_VECTORS[1].1.into();
    assert!(matches!(
        parse(&KeyFile {
            keys: vec![wrong_public]
        })
        .unwrap_err(),
        KeyError::PublicKeyMismatch { .. }
    ));
    let mut short = good.clone();
    short.public_key = "abcd".into();
    assert!(matches!(
        parse(&KeyFile { keys: vec![short] }).unwrap_err(),
        KeyError::MalformedKey {
            which: "public",
            ..
        }
    ));
    let mut algorithm = good.clone();
    algorithm.algorithm = "rsa".into();
    assert!(matches!(
        parse(&KeyFile {
            keys: vec![algorithm]
        })
        .unwrap_err(),
        KeyError::UnsupportedAlgorithm { .. }
    ));
    let mut empty_window = good.clone();
    empty_window.not_after = Some(0);
    assert!(matches!(
        parse(&KeyFile {
            keys: vec![empty_window]
        })
        .unwrap_err(),
        KeyError::EmptyWindow { .. }
    ));
    assert!(matches!(
        parse(&KeyFile {
            keys: vec![good.clone(), good.clone()]
        })
        .unwrap_err(),
        KeyError::DuplicateKeyId { .. }
    ));
    assert!(matches!(
        parse(&KeyFile { keys: vec![] }).unwrap_err(),
        KeyError::NoKeys
    ));
    // A broken file is reported by position, never by quoting its content.
    let secret = good.secret_key.clone().unwrap().0;
    let broken = format!("{{\"keys\": [{{\"secret_key\": \"{secret}\"");
    let error = KeyFile::parse(&broken).unwrap_err();
    assert!(matches!(error, KeyError::NotAKeyFile { .. }));
    assert!(!error.to_string().contains(&secret));
}

#[test]
fn a_written_key_file_is_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let directory = tempfile::tempdir().unwrap();
    let path = directory.path().join("worker.keys.json");
    let file = one_key_file();
    file.write(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(KeyFile::read(&path).unwrap(), file);
    assert!(matches!(
        file.write(&path).unwrap_err(),
        KeyError::Write { .. }
    ));
    let public_path = directory.path().join("public.json");
    file.public_only().write(&public_path).unwrap();
    let mode = std::fs::metadata(&public_path)
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o644);
    assert!(matches!(
        KeyFile::read(&directory.path().join("missing")).unwrap_err(),
        KeyError::Read { .. }
    ));
}
