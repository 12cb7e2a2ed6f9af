//! The HTTP/1.1 listener: accepts connections up to `Limits::max_connections`,
//! gives each client `Limits::header_read_timeout` to send its request
//! headers (a client that sends them a byte at a time is dropped), and on
//! shutdown stops accepting, lets each connection finish the request it is
//! in, and closes it.
//!
//! A connection beyond the cap is answered `503 too_many_connections` (JSON,
//! with `Retry-After`) and closed at once: it never waits in the kernel's
//! backlog behind clients that hold their connections open.
//!
//! A request hyper cannot parse (a malformed request line, a target over
//! its 64 KiB limit, more than 100 headers or a head over its buffer) gets
//! hyper's own answer, a bare status with an empty body; `JsonParseErrors`
//! rewrites that answer, on the wire, into the `{code, message}` JSON of
//! every other error.
//!
//! With TLS (`ServerTls`), each accepted connection's handshake runs in
//! its own task, under the connection cap, and must finish within the
//! header read timeout; the 503 over the cap is sent over TLS too.
//!
//! This module must never hold a connection open past the shutdown grace
//! period, nor answer anything but the router's answers and that 503.

use crate::error::ApiError;
use crate::tls::ServerTls;
use crate::Limits;
use axum::http::StatusCode;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// How long open connections may take to finish after the listener closed.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How long the answer to a connection over the cap may take to be written.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);

/// Serve `app` on `listener` (over TLS when `tls` is set) until `shutdown`
/// turns true, then close.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<ServerTls>,
    mut shutdown: watch::Receiver<bool>,
) {
    let max_connections = limits.max_connections.max(1);
    let connections = Arc::new(Semaphore::new(max_connections));
    let (closing, closing_receiver) = watch::channel(false);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => break,
        };
        let stream = match accepted {
            Ok((stream, _peer)) => stream,
            Err(error) => {
                // Out of file descriptors, or a connection reset before it
                // was accepted: wait a moment rather than spin.
                tracing::warn!(%error, "accepting a connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let tls = tls.clone();
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tokio::spawn(async move {
                match tls {
                    None => refuse(stream, max_connections).await,
                    Some(tls) => {
                        let handshake =
                            tokio::time::timeout(REFUSAL_DEADLINE, tls.acceptor.accept(stream));
                        if let Ok(Ok(stream)) = handshake.await {
                            refuse(stream, max_connections).await;
                        }
                    }
                }
            });
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let header_read_timeout = limits.header_read_timeout;
        let closing = closing_receiver.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(tls) = tls else {
                serve_connection(stream, service, header_read_timeout, closing).await;
                return;
            };
            // The handshake gets the time a client has to send its request
            // headers (and the headers then get theirs).
            match tokio::time::timeout(header_read_timeout, tls.acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    serve_connection(stream, service, header_read_timeout, closing).await;
                }
                Ok(Err(error)) => tracing::debug!(%error, "tls handshake failed"),
                Err(_) => tracing::debug!("tls handshake timed out"),
            }
        });
    }
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(CLOSE_GRACE, connections.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!(grace = ?CLOSE_GRACE, "connections still open at the end of the grace period; closing them");
    }
}

/// Serve HTTP/1.1 on one accepted (and, with TLS, handshaken) connection
/// until it ends, or until `closing` turns true and its request is done.
async fn serve_connection<Stream>(
    stream: Stream,
    service: TowerToHyperService<Router>,
    header_read_timeout: Duration,
    mut closing: watch::Receiver<bool>,
) where
    Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let connection = builder.serve_connection(TokioIo::new(JsonParseErrors::new(stream)), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "connection ended with an error");
            }
        }
        _ = async { let _ = closing.wait_for(|closing| *closing).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// Answer a connection over the cap with a 503 and close it. The request
/// is read (briefly) first, so that closing does not reset the connection
/// before the client reads the answer.
async fn refuse<Stream: AsyncRead + AsyncWrite + Unpin>(mut stream: Stream, limit: usize) {
    let error = ApiError::TooManyConnections { limit };
    let body = error.body().to_string();
    let response = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let answer = async {
        let mut request = [0u8; 4096];
        let _ = tokio::time::timeout(Duration::from_millis(100), stream.read(&mut request)).await;
        stream.write_all(response.as_bytes()).await?;
        stream.shutdown().await
    };
    let _ = tokio::time::timeout(REFUSAL_DEADLINE, answer).await;
}

/// A connection whose bare parse-error answers from hyper (400, 414, 431
/// with an empty body) are rewritten into JSON error answers.
struct JsonParseErrors<Stream> {
    stream: Stream,
    /// The JSON answer being written in place of hyper's, and how much of
    /// it is written.
    replacement: Option<(Vec<u8>, usize)>,
}

impl<Stream> JsonParseErrors<Stream> {
    fn new(stream: Stream) -> JsonParseErrors<Stream> {
        JsonParseErrors {
            stream,
            replacement: None,
        }
    }
}

/// The JSON answer for hyper's own answer `written`, if that is what it is:
/// a 4xx head that closes the connection and has no body. The router's
/// answers always carry a body.
fn json_for_parse_error(written: &[u8]) -> Option<Vec<u8>> {
    let head = std::str::from_utf8(written).ok()?;
    let status = head.strip_prefix("HTTP/1.1 ")?.get(..3)?;
    let lowercase = head.to_ascii_lowercase();
    let bodiless = head.ends_with("\r\n\r\n")
        && lowercase.contains("\r\nconnection: close\r\n")
        && lowercase.contains("\r\ncontent-length: 0\r\n");
    if !bodiless {
        return None;
    }
    let status = match status {
        "400" => StatusCode::BAD_REQUEST,
        "414" => StatusCode::URI_TOO_LONG,
        "431" => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
        _ => return None,
    };
    let body = ApiError::UnparsableRequest(status).body().to_string();
    Some(
        format!(
            "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            body.len()
        )
        .into_bytes(),
    )
}

impl<Stream: AsyncRead + Unpin> AsyncRead for JsonParseErrors<Stream> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(context, buffer)
    }
}

impl<Stream: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<Stream> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        context: &mut Context<'_>,
        buffer: &[u8],
    ) -> Poll<io::Result<usize>> {
        if self.replacement.is_none() {
            match json_for_parse_error(buffer) {
                Some(answer) => self.replacement = Some((answer, 0)),
                None => return Pin::new(&mut self.stream).poll_write(context, buffer),
            }
        }
        let this = &mut *self;
        if let Some((answer, written)) = &mut this.replacement {
            while *written < answer.len() {
                let more =
                    ready!(Pin::new(&mut this.stream).poll_write(context, &answer[*written..]))?;
                if more == 0 {
                    return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                }
                *written += more;
            }
        }
        // hyper's answer counts as written; it was the last on this connection.
        Poll::Ready(Ok(buffer.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(context)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(context)
    }

    // Not vectored: hyper then writes each answer's head as one buffer,
    // which `poll_write` can recognise.
    fn is_write_vectored(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hypers_bare_parse_error_answers_become_json() {
        for (status, code) in [
            ("400 Bad Request", "invalid_request"),
            ("414 URI Too Long", "uri_too_long"),
            ("431 Request Header Fields Too Large", "headers_too_large"),
        ] {
            let bare = format!("HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 25 Nov 2026 17:01:43 GMT\r\n\r\n");
            let answer = String::from_utf8(json_for_parse_error(bare.as_bytes()).unwrap()).unwrap();
            assert!(
                answer.starts_with(&format!("HTTP/1.1 {status}\r\n")),
                "{answer}"
            );
            let body: serde_json::Value =
                serde_json::from_str(answer.split("\r\n\r\n").nth(1).unwrap()).unwrap();
            assert_eq!(body["code"], code);
            assert!(answer.contains(&format!("content-length: {}\r\n", body.to_string().len())));
        }
    }

    #[test]
    fn the_routers_answers_pass_unchanged() {
        for written in [
            "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 40\r\n\r\n",
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n{}",
            "{\"code\": \"HTTP/1.1 400\"}",
        ] {
            assert_eq!(json_for_parse_error(written.as_bytes()), None, "{written}");
        }
    }
}
