//! One check is one trace across processes: the server writes the W3C
//! `traceparent` of its enqueue span into the job's request
//! (`CheckRequest::trace_context`), the lease hands it to the worker (over
//! the worker HTTP API or in process), and the worker's spans for that job
//! continue the trace from it.
//!
//! Without an OpenTelemetry layer in the process (traces off, the default)
//! no span has a valid context: nothing is written, nothing is continued.

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The `traceparent` of the current span, if it is being traced.
pub fn current_traceparent() -> Option<String> {
    let context = tracing::Span::current().context();
    let span = context.span();
    let span_context = span.span_context();
    if !span_context.is_valid() {
        return None;
    }
    Some(format!(
        "00-{}-{}-{:02x}",
        span_context.trace_id(),
        span_context.span_id(),
        span_context.trace_flags().to_u8()
    ))
}

/// Read a `traceparent` (version `00`: `00-<32 hex>-<16 hex>-<2 hex>`,
/// lowercase); anything else, or all-zero ids, is `None`.
pub fn parse_traceparent(traceparent: &str) -> Option<SpanContext> {
    let parts: Vec<&str> = traceparent.split('-').collect();
    let [version, trace_id, span_id, flags] = parts.as_slice() else {
        return None;
    };
    let lowercase_hex = |text: &str, length: usize| {
        text.len() == length
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if *version != "00"
        || !lowercase_hex(trace_id, 32)
        || !lowercase_hex(span_id, 16)
        || !lowercase_hex(flags, 2)
    {
        return None;
    }
    let span_context = SpanContext::new(
        TraceId::from_hex(trace_id).ok()?,
        SpanId::from_hex(span_id).ok()?,
        TraceFlags::new(u8::from_str_radix(flags, 16).ok()?),
        true,
        TraceState::default(),
    );
    span_context.is_valid().then_some(span_context)
}

/// Make `span` a child of the remote span `traceparent` names (a malformed
/// one is ignored: the span starts a trace of its own).
pub fn continue_trace(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(span_context) = traceparent.and_then(parse_traceparent) else {
        return;
    };
    let parent = opentelemetry::Context::new().with_remote_span_context(span_context);
    let _ = span.set_parent(parent);
}

#[cfg(test)]
mod tests {
    use super::parse_traceparent;

    #[test]
    fn only_well_formed_traceparents_are_read() {
        let good = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let context = parse_traceparent(good).expect("a valid traceparent");
        assert_eq!(
            context.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert!(context.is_remote());
        for bad in [
            "",
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-+bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
    }
}
