//! OpenTelemetry traces: one check is one trace across processes. An API
//! replica (`serve --slots 0`) and a `leanfarm worker` both export to an
//! OTLP/HTTP receiver; the check's spans, from the API request through the
//! enqueue, the worker's lease and check, the driver's check and the REPL
//! commands, share one trace id and link each to its parent.
//!
//! The receiver is written here: no OTLP collector installs on these
//! machines (the OpenTelemetry Collector and Jaeger ship as downloaded
//! binaries, not as PyPI, npm or Debian packages). It is a real HTTP
//! server that decodes the protobuf export requests with the
//! `opentelemetry-proto` types, as a collector's OTLP/HTTP receiver does.

mod common;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use common::{leanfarm, Server, Worker};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use prost::Message;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One received span.
#[derive(Clone, Debug)]
struct ReceivedSpan {
    service: String,
    name: String,
    trace_id: String,
    span_id: String,
    parent_span_id: String,
}

type Received = Arc<Mutex<Vec<ReceivedSpan>>>;

async fn receive_traces(
    State(received): State<Received>,
    body: Bytes,
) -> Result<Vec<u8>, StatusCode> {
    let request = ExportTraceServiceRequest::decode(body).map_err(|_| StatusCode::BAD_REQUEST)?;
    let mut spans = received.lock().unwrap();
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|resource| &resource.attributes)
            .find(|attribute| attribute.key == "service.name")
            .and_then(|attribute| attribute.value.as_ref()?.value.as_ref())
            .map(|value| match value {
                AnyValue::StringValue(name) => name.clone(),
                other => format!("{other:?}"),
            })
            .unwrap_or_default();
        for scope_spans in resource_spans.scope_spans {
            for span in scope_spans.spans {
                spans.push(ReceivedSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
    }
    Ok(ExportTraceServiceResponse::default().encode_to_vec())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// An OTLP/HTTP receiver on a free port: its base URL and what it got.
async fn start_receiver() -> (String, Received) {
    let received = Received::default();
    let router = Router::new()
        .route("/v1/traces", post(receive_traces))
        .with_state(Arc::clone(&received));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await });
    (url, received)
}

/// The chain of spans of one check, from the API request down, as far as
/// it goes: each the child of the one before, in one trace.
fn chain_from(spans: &[ReceivedSpan], root: &ReceivedSpan, names: &[&str]) -> Vec<ReceivedSpan> {
    let mut chain = vec![root.clone()];
    for name in names {
        let parent = chain.last().unwrap();
        let Some(child) = spans.iter().find(|span| {
            span.name == *name
                && span.trace_id == parent.trace_id
                && span.parent_span_id == parent.span_id
        }) else {
            break;
        };
        chain.push(child.clone());
    }
    chain
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_check_is_one_trace_from_the_api_request_to_the_repl() {
    let (receiver, received) = start_receiver().await;
    let data = tempfile::tempdir().unwrap();
    let batch_delay = [("OTEL_BSP_SCHEDULE_DELAY", "100")];
    let mut server = Server::start_with_env(
        data.path(),
        &[
            "--slots",
            "0",
            "--otlp-endpoint",
            &receiver,
            "--otlp-service-name",
            "test-api",
        ],
        &batch_delay,
    );
    let store = format!("sqlite://{}", data.path().join("leanfarm.db").display());
    let worker_token = leanfarm(&["tenant", "--store", &store, "farm-key", "--scope", "worker"]);
    let worker_dir = tempfile::tempdir().unwrap();
    // Inherited by the worker process (the batch processor's delay).
    std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
    let mut worker = Worker::start(
        &server.url,
        &worker_token,
        worker_dir.path(),
        &[
            "--slots",
            "1",
            "--otlp-endpoint",
            &receiver,
            "--otlp-service-name",
            "test-worker",
        ],
    );
    let (status, reply) = server
        .post(
            "/v1/checks",
            &json!({"snippets": [{"code": "theorem t : 1 + 1 = 2 := by decide"}], "wait": 60}),
        )
        .await;
    assert_eq!(status, 200, "{reply}");
    assert_eq!(reply["results"][0]["verdict"]["status"], "valid", "{reply}");

    let expected = [
        "enqueue",
        "worker.lease",
        "worker.check",
        "driver.check",
        "repl.command",
    ];
    let deadline = Instant::now() + Duration::from_secs(30);
    let chain = loop {
        let spans = received.lock().unwrap().clone();
        let chain = spans
            .iter()
            .filter(|span| span.name == "POST /v1/checks")
            .map(|root| chain_from(&spans, root, &expected))
            .max_by_key(Vec::len);
        if let Some(chain) = chain
            .as_ref()
            .filter(|chain| chain.len() == expected.len() + 1)
        {
            break chain.clone();
        }
        assert!(
            Instant::now() < deadline,
            "no complete trace of the check within 30 s; got {chain:#?} of\n{spans:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // One trace, across two processes, the API request at its root.
    assert!(chain[0].parent_span_id.is_empty(), "{chain:#?}");
    assert!(chain.iter().all(|span| span.trace_id == chain[0].trace_id));
    let services: Vec<&str> = chain.iter().map(|span| span.service.as_str()).collect();
    assert_eq!(
        services,
        [
            "test-api",
            "test-api",
            "test-worker",
            "test-worker",
            "test-worker",
            "test-worker"
        ],
        "{chain:#?}"
    );
    worker.kill_hard();
    let _ = server.terminate();
}

#[test]
fn a_bad_otlp_endpoint_is_refused_by_name() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_leanfarm"))
        .args([
            "serve",
            "--simulate",
            "--addr",
            "127.0.0.1:0",
            "--otlp-endpoint",
            "ftp://collector:4318",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr
            .contains("invalid setting `otlp_endpoint` (--otlp-endpoint, LEAN_FARM_OTLP_ENDPOINT)"),
        "{stderr}"
    );
}
