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
//! This module must never hold a connection open past the shutdown grace
//! period, nor answer anything but the router's answers and that 503.

use crate::error::ApiError;
use crate::Limits;
use axum::Router;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

/// How long open connections may take to finish after the listener closed.
const CLOSE_GRACE: Duration = Duration::from_secs(10);

/// How long the answer to a connection over the cap may take to be written.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(1);

/// Serve `app` on `listener` until `shutdown` turns true, then close.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
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
        let Ok(permit) = Arc::clone(&connections).try_acquire_owned() else {
            tokio::spawn(refuse(stream, max_connections));
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let header_read_timeout = limits.header_read_timeout;
        let mut closing = closing_receiver.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(header_read_timeout);
            let connection = builder.serve_connection(TokioIo::new(stream), service);
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

/// Answer a connection over the cap with a 503 and close it. The request
/// is read (briefly) first, so that closing does not reset the connection
/// before the client reads the answer.
async fn refuse(mut stream: TcpStream, limit: usize) {
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
