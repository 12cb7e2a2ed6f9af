//! Wakes this replica's waiting workers (long-polled leases and the
//! in-process workers) when jobs become runnable, so that an idle worker
//! costs nothing while it waits: on the store's notifications (PostgreSQL
//! `LISTEN`, sent by every replica's enqueues, releases and retries), and
//! when the clock makes a job runnable (a release's backoff ends, a lease
//! runs out), found by one small query a second per replica, whatever the
//! number of waiting workers.

use crate::AppState;
use leanfarm_store::{now_millis, WorkNotifications};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the replica looks for jobs the clock made runnable, and waits
/// before listening again after the listening connection was lost.
const RECHECK: Duration = Duration::from_secs(1);

/// The replica's subscription to the store's notifications.
enum Listening {
    /// To subscribe (at start, and a second after a lost connection).
    Due,
    Active(WorkNotifications),
    /// The store has none (SQLite: only this process enqueues, and wakes
    /// its waiters itself).
    Unsupported,
}

/// Wake the waiting workers whenever work may be there, until `shutdown`.
pub(crate) async fn wake_on_work_until_shutdown(
    state: Arc<AppState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut listening = Listening::Due;
    let mut subscribe_at = tokio::time::Instant::now();
    let mut since = now_millis();
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if matches!(listening, Listening::Due) && tokio::time::Instant::now() >= subscribe_at {
            listening = match state.store.work_notifications().await {
                Ok(Some(subscribed)) => {
                    // Work enqueued while nobody listened is found now.
                    state.enqueued.notify_waiters();
                    Listening::Active(subscribed)
                }
                Ok(None) => Listening::Unsupported,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for work; trying again");
                    subscribe_at = tokio::time::Instant::now() + RECHECK;
                    Listening::Due
                }
            };
        }
        tokio::select! {
            notified = async {
                match &mut listening {
                    Listening::Active(listener) => listener.next().await,
                    _ => std::future::pending().await,
                }
            } => {
                if let Err(error) = notified {
                    tracing::warn!(%error, "listening for work stopped; listening again");
                    listening = Listening::Due;
                    subscribe_at = tokio::time::Instant::now() + RECHECK;
                }
                state.enqueued.notify_waiters();
            }
            _ = recheck.tick() => {
                let now = now_millis();
                match state.store.next_due_after(since).await {
                    Ok(Some(due)) if due <= now => {
                        since = now;
                        state.enqueued.notify_waiters();
                    }
                    Ok(_) => {}
                    Err(error) => tracing::debug!(%error, "looking for jobs due failed"),
                }
            }
            _ = async { let _ = shutdown.wait_for(|stop| *stop).await; } => return,
        }
    }
}
