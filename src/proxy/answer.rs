//! The upstream's answer body on its way out: cut when the upstream sends
//! nothing for `upstream_read_timeout` (as nginx's `proxy_read_timeout`,
//! between two reads, not for the whole body).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use tokio::time::Sleep;

/// Why an answer's body did not reach its end.
#[derive(Debug, thiserror::Error)]
pub enum AnswerError {
    #[error("the upstream's answer broke off: {0}")]
    Upstream(#[from] hyper::Error),
    #[error("the upstream sent nothing for limits.upstream_read_timeout")]
    Stalled,
    #[error("the upstream's answer broke off: {0}")]
    Raw(crate::upstream::RawError),
}

impl From<crate::upstream::RawBodyError> for AnswerError {
    fn from(e: crate::upstream::RawBodyError) -> AnswerError {
        match e {
            crate::upstream::RawBodyError::Raw(e) => AnswerError::Raw(e),
            crate::upstream::RawBodyError::Stalled => AnswerError::Stalled,
        }
    }
}

pin_project_lite::pin_project! {
    /// The upstream's answer body with a deadline between reads.
    pub struct AnswerBody {
        #[pin]
        body: Incoming,
        limit: Duration,
        // Made on the first wait (in place: no allocation), moved on after
        // each frame.
        #[pin]
        deadline: Option<Sleep>,
        moved: bool,
    }
}

impl AnswerBody {
    pub fn new(body: Incoming, limit: Duration) -> AnswerBody {
        AnswerBody { body, limit, deadline: None, moved: false }
    }
}

impl Body for AnswerBody {
    type Data = Bytes;
    type Error = AnswerError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, AnswerError>>> {
        let this = self.project();
        match this.body.poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.moved = true;
                Poll::Ready(frame.map(|f| f.map_err(AnswerError::Upstream)))
            }
            Poll::Pending => {
                let mut deadline = this.deadline;
                match deadline.as_mut().as_pin_mut() {
                    Some(sleep) if std::mem::take(this.moved) => sleep.reset(tokio::time::Instant::now() + *this.limit),
                    Some(_) => {}
                    None => deadline.set(Some(tokio::time::sleep(*this.limit))),
                }
                let sleep = deadline.as_pin_mut().expect("set above");
                match sleep.poll(cx) {
                    Poll::Ready(()) => Poll::Ready(Some(Err(AnswerError::Stalled))),
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
