//! Body types of the data path: a client body streamed to the upstream as it
//! arrives, or one already read (an audited request, capped); an answer
//! streamed to the client, through the tee when the trail needs a copy, or
//! one the proxy made.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::Full;

use super::answer::{AnswerBody, AnswerError};
use super::tee::Tee;
use crate::upstream::RawBody;

pin_project_lite::pin_project! {
    /// What the client receives.
    #[project = ResponseBodyProj]
    pub enum ResponseBody {
        /// The upstream's answer, streamed.
        Stream { #[pin] body: AnswerBody },
        /// The upstream's answer to a bodiless request passed through,
        /// read from the lean connection.
        Raw { #[pin] body: RawBody },
        /// The upstream's answer, streamed while the trail keeps a copy.
        Tee { #[pin] body: Tee },
        /// An answer the proxy made (an error).
        Made { #[pin] body: Full<Bytes> },
    }
}

impl ResponseBody {
    pub fn stream(body: AnswerBody) -> Self {
        ResponseBody::Stream { body }
    }

    pub fn raw(body: RawBody) -> Self {
        ResponseBody::Raw { body }
    }

    pub fn tee(body: Tee) -> Self {
        ResponseBody::Tee { body }
    }

    pub fn made(bytes: Bytes) -> Self {
        ResponseBody::Made { body: Full::new(bytes) }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = AnswerError;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, AnswerError>>> {
        match self.project() {
            ResponseBodyProj::Stream { body } => body.poll_frame(cx),
            ResponseBodyProj::Raw { body } => body.poll_frame(cx).map(|f| f.map(|r| r.map_err(AnswerError::from))),
            ResponseBodyProj::Tee { body } => body.poll_frame(cx),
            ResponseBodyProj::Made { body } => {
                body.poll_frame(cx).map(|f| f.map(|r| Ok(r.unwrap_or_else(|e| match e {}))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ResponseBody::Stream { body } => body.is_end_stream(),
            ResponseBody::Raw { body } => body.is_end_stream(),
            ResponseBody::Tee { body } => body.is_end_stream(),
            ResponseBody::Made { body } => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ResponseBody::Stream { body } => body.size_hint(),
            ResponseBody::Raw { body } => body.size_hint(),
            ResponseBody::Tee { body } => body.size_hint(),
            ResponseBody::Made { body } => body.size_hint(),
        }
    }
}
