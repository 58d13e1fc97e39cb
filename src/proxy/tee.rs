//! The tee: an audited answer streams to the client frame by frame while a
//! bounded copy is kept for the trail (a created id in the body). When the
//! answer ends, a hook runs on the copy before the client is given the end,
//! so that what the hook does (taking the new resource's turn) happens
//! before the client can act on the answer. Nothing is buffered for it. A
//! client that leaves early does not cost the trail its id: the rest of the
//! answer is read (within the bound) and the hook run without it.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::{Bytes, BytesMut};
use http_body::{Body, Frame, SizeHint};

use super::answer::AnswerError;

pub use crate::audit::EndHook;

/// An upstream answer's body as the tee reads it: from hyper's client
/// connection or from the lean connection, its errors the answer's.
pub type Answer = Pin<Box<dyn Body<Data = Bytes, Error = AnswerError> + Send>>;

/// The answer's body as the client receives it, with the copy on the side.
pub struct Tee {
    /// Taken only when the tee is dropped before the answer's end.
    inner: Option<Answer>,
    copy: Kept,
    hook: Option<EndHook>,
    /// The hook's work, polled to completion before `held` is released.
    ending: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    /// The answer's last frame (`None`: its end), kept back while `ending` runs.
    held: Option<Option<Frame<Bytes>>>,
    ended: bool,
}

impl std::fmt::Debug for Tee {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tee")
            .field("copied", &self.copy.bytes.len())
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

/// The bounded copy of an answer.
struct Kept {
    bytes: BytesMut,
    limit: usize,
    overflowed: bool,
}

impl Kept {
    fn keep(&mut self, data: &Bytes) {
        if self.overflowed {
            return;
        }
        if self.bytes.len() + data.len() > self.limit {
            self.overflowed = true;
            self.bytes = BytesMut::new();
        } else {
            self.bytes.extend_from_slice(data);
        }
    }

    /// The copy, or `None` when the answer was larger than the bound.
    fn take(&mut self) -> Option<Bytes> {
        (!self.overflowed).then(|| std::mem::take(&mut self.bytes).freeze())
    }
}

impl Tee {
    /// Streams `inner`, copying up to `limit` bytes, and runs `hook` at its end.
    pub fn new(inner: Answer, limit: usize, hook: EndHook) -> Tee {
        Tee {
            inner: Some(inner),
            copy: Kept { bytes: BytesMut::new(), limit, overflowed: false },
            hook: Some(hook),
            ending: None,
            held: None,
            ended: false,
        }
    }

    /// Starts the hook on the copy; `last` is released once it is done.
    fn end(&mut self, last: Option<Frame<Bytes>>) {
        let copy = self.copy.take();
        if let Some(hook) = self.hook.take() {
            self.ending = Some(hook(copy));
        }
        self.held = Some(last);
    }
}

impl Drop for Tee {
    /// The client went away before the end: the hook still runs, after
    /// the rest of the answer has been read (or it is dropped if the
    /// answer breaks off), in a task of its own.
    fn drop(&mut self) {
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        if let Some(ending) = self.ending.take() {
            runtime.spawn(ending);
            return;
        }
        let (Some(hook), Some(mut inner)) = (self.hook.take(), self.inner.take()) else { return };
        let mut copy = std::mem::replace(&mut self.copy, Kept { bytes: BytesMut::new(), limit: 0, overflowed: true });
        runtime.spawn(async move {
            while let Some(frame) = http_body_util::BodyExt::frame(&mut inner).await {
                match frame {
                    Ok(frame) => {
                        if let Some(data) = frame.data_ref() {
                            copy.keep(data);
                        }
                    }
                    Err(_) => return,
                }
            }
            hook(copy.take()).await;
        });
    }
}

impl Body for Tee {
    type Data = Bytes;
    type Error = AnswerError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, AnswerError>>> {
        let this = &mut *self;
        loop {
            if let Some(ending) = this.ending.as_mut() {
                ready!(ending.as_mut().poll(cx));
                this.ending = None;
            }
            if let Some(last) = this.held.take() {
                this.ended = true;
                return Poll::Ready(last.map(Ok));
            }
            if this.ended {
                return Poll::Ready(None);
            }
            let inner = this.inner.as_mut().expect("taken only on drop");
            match ready!(inner.as_mut().poll_frame(cx)) {
                Some(Ok(frame)) => {
                    if let Some(data) = frame.data_ref() {
                        this.copy.keep(data);
                    }
                    // With a declared length the client has the whole answer
                    // with its last data frame: hold that one back.
                    if !inner.is_end_stream() {
                        return Poll::Ready(Some(Ok(frame)));
                    }
                    this.end(Some(frame));
                }
                None => this.end(None),
                // The hook is dropped with the tee: the answer broke off.
                Some(Err(e)) => {
                    this.ended = true;
                    this.hook = None;
                    return Poll::Ready(Some(Err(e)));
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended && self.held.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(SizeHint::default, Body::size_hint)
    }
}
