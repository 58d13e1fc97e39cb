//! Body types of the data path: a client body streamed to the upstream as it
//! arrives, or one already read (an audited request, capped).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

/// What the client receives: the upstream's body streamed, or a body the
/// proxy made (an error).
pub type ResponseBody = Either<Incoming, Full<Bytes>>;

pin_project_lite::pin_project! {
    /// What the upstream receives.
    #[project = UpstreamBodyProj]
    pub enum UpstreamBody {
        /// Pass-through: the client's body, never buffered.
        Stream { #[pin] body: Incoming },
        /// An audited request's body, read whole within `max_body_bytes`.
        Buffered { #[pin] body: Full<Bytes> },
    }
}

impl UpstreamBody {
    pub fn stream(body: Incoming) -> Self {
        UpstreamBody::Stream { body }
    }

    pub fn buffered(bytes: Bytes) -> Self {
        UpstreamBody::Buffered { body: Full::new(bytes) }
    }

    /// No body (a snapshot GET).
    pub fn empty() -> Self {
        Self::buffered(Bytes::new())
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        match self.project() {
            UpstreamBodyProj::Stream { body } => body.poll_frame(cx),
            UpstreamBodyProj::Buffered { body } => {
                body.poll_frame(cx).map(|f| f.map(|r| Ok(r.unwrap_or_else(|e| match e {}))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            UpstreamBody::Stream { body } => body.is_end_stream(),
            UpstreamBody::Buffered { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            UpstreamBody::Stream { body } => body.size_hint(),
            UpstreamBody::Buffered { body } => body.size_hint(),
        }
    }
}
