//! What the upstream receives: the client's body streamed as it comes, or
//! an audited request's body read whole (or nothing, for a snapshot GET).

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use crate::inbound::{ClientBodyError, Inbound, Progress};

pin_project_lite::pin_project! {
    /// What the upstream receives.
    #[project = UpstreamBodyProj]
    pub enum UpstreamBody {
        /// Pass-through: the client's body, never buffered.
        Stream { #[pin] body: Inbound },
        /// An audited request's body, read whole within `max_body_bytes`.
        Buffered { #[pin] body: Full<Bytes> },
    }
}

impl UpstreamBody {
    pub fn stream(body: Inbound) -> Self {
        UpstreamBody::Stream { body }
    }

    /// How a streamed body is coming along (`None`: it is already whole).
    pub fn progress(&self) -> Option<std::sync::Arc<Progress>> {
        match self {
            UpstreamBody::Stream { body } => body.progress().cloned(),
            UpstreamBody::Buffered { .. } => None,
        }
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
    type Error = ClientBodyError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, ClientBodyError>>> {
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
