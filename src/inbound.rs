//! The client's request body on its way in: held to a minimum rate after a
//! grace period (as Apache's `mod_reqtimeout`: the deadline starts at
//! `body_timeout` and each byte received moves it by `1 / body_min_rate`
//! s), with its progress shared so that `upstream_timeout` counts from the
//! last byte sent, and its failures kept so that they are answered as the
//! client's fault (400, 408), never the upstream's.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

/// How slowly a client may send its body.
#[derive(Debug, Clone, Copy)]
pub struct BodyRate {
    /// Time allowed before the rate applies.
    pub grace: Duration,
    /// Bytes per second required after it; 0 turns the rate off.
    pub min_rate: u64,
}

impl BodyRate {
    pub fn new(limits: &crate::config::Limits) -> BodyRate {
        BodyRate { grace: limits.body_timeout, min_rate: limits.body_min_rate }
    }
}

/// Why a client's body did not arrive whole.
#[derive(Debug, thiserror::Error)]
pub enum ClientBodyError {
    #[error("the client sent its body slower than limits.body_min_rate")]
    TooSlow,
    #[error("malformed body from the client: {0}")]
    Broken(hyper::Error),
}

/// What the proxy learns of a body it streams: when it last moved (or
/// ended), and why it failed.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    /// Milliseconds from `started` to the last byte or the end.
    last_ms: std::sync::atomic::AtomicU64,
    fault: AtomicU8,
}

/// `Progress::fault` values.
const NO_FAULT: u8 = 0;
const TOO_SLOW: u8 = 1;
const BROKEN: u8 = 2;

impl Progress {
    fn new() -> Progress {
        Progress { started: Instant::now(), last_ms: 0.into(), fault: AtomicU8::new(NO_FAULT) }
    }

    fn moved(&self) {
        let ms = u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// When the body last made progress.
    pub fn last_moved(&self) -> Instant {
        self.started + Duration::from_millis(self.last_ms.load(Ordering::Relaxed))
    }

    /// Whether the client's body failed (too slow, malformed) and how.
    pub fn fault(&self) -> Option<ClientFault> {
        match self.fault.load(Ordering::Relaxed) {
            TOO_SLOW => Some(ClientFault::TooSlow),
            BROKEN => Some(ClientFault::Broken),
            _ => None,
        }
    }
}

/// A client body failure, as recorded for the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientFault {
    TooSlow,
    Broken,
}

pin_project_lite::pin_project! {
    /// The client's body, rate-checked, reporting to its `Progress` (none
    /// when there is no body: nothing to wait for).
    pub struct Inbound {
        #[pin]
        body: Incoming,
        rate: BodyRate,
        received: u64,
        deadline: Option<Pin<Box<Sleep>>>,
        progress: Option<Arc<Progress>>,
    }
}

impl Inbound {
    pub fn new(body: Incoming, rate: BodyRate) -> Inbound {
        let progress = (!body.is_end_stream()).then(|| Arc::new(Progress::new()));
        Inbound { body, rate, received: 0, deadline: None, progress }
    }

    pub fn progress(&self) -> Option<&Arc<Progress>> {
        self.progress.as_ref()
    }

    /// When the body must have arrived, at the bytes received so far.
    fn due(rate: BodyRate, started: Instant, received: u64) -> Option<tokio::time::Instant> {
        if rate.min_rate == 0 {
            return None;
        }
        let earned = Duration::from_secs_f64(received as f64 / rate.min_rate as f64);
        Some(tokio::time::Instant::from_std(started + rate.grace + earned))
    }
}

impl Body for Inbound {
    type Data = Bytes;
    type Error = ClientBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
        let this = self.project();
        let Some(progress) = this.progress.as_ref() else {
            return this.body.poll_frame(cx).map_err(ClientBodyError::Broken);
        };
        match this.body.poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(data) = frame.data_ref() {
                    *this.received += data.len() as u64;
                }
                progress.moved();
                if let (Some(sleep), Some(due)) =
                    (this.deadline.as_mut(), Self::due(*this.rate, progress.started, *this.received))
                {
                    sleep.as_mut().reset(due);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(None) => {
                progress.moved();
                Poll::Ready(None)
            }
            Poll::Ready(Some(Err(e))) => {
                progress.fault.store(BROKEN, Ordering::Relaxed);
                Poll::Ready(Some(Err(ClientBodyError::Broken(e))))
            }
            Poll::Pending => {
                let Some(due) = Self::due(*this.rate, progress.started, *this.received) else {
                    return Poll::Pending;
                };
                let sleep = this.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(due)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        progress.fault.store(TOO_SLOW, Ordering::Relaxed);
                        Poll::Ready(Some(Err(ClientBodyError::TooSlow)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_starts_at_the_grace_and_moves_with_each_byte() {
        let started = Instant::now();
        let rate = BodyRate { grace: Duration::from_secs(10), min_rate: 500 };
        let at = |received| Inbound::due(rate, started, received).unwrap().into_std() - started;
        assert_eq!(at(0), Duration::from_secs(10));
        assert_eq!(at(1000), Duration::from_secs(12));
        assert_eq!(at(250), Duration::from_millis(10_500));
        assert_eq!(Inbound::due(BodyRate { min_rate: 0, ..rate }, started, 1000), None, "0 turns the rate off");
    }
}
