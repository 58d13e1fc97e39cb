//! `kind = "syslog"`: RFC 5424 messages over TCP, or TLS for `tls://`,
//! framed by octet counting (RFC 6587 3.4.1: the message's length in
//! bytes, a space, the message). APP-NAME `auditgate`, HOSTNAME the
//! entry's instance, MSGID its action, MSG the formatted entry.
//!
//! TCP syslog has no acknowledgement: a write succeeds once the kernel has
//! the bytes. What was written counts as delivered only once the
//! connection is seen still open a moment later ([`Syslog::alive`]); a
//! receiver that went away in between gets those entries again.

use std::io::Write as _;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::{Connector, Io, SendError};
use std::borrow::Cow;

use serde::Deserialize;

/// Facility 13 (log audit), severity 6 (informational).
const PRI: u8 = 13 * 8 + 6;
/// How long a batch's write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// A syslog receiver and the connection to it, made when needed.
pub(super) struct Syslog {
    connector: Connector,
    conn: Option<Box<dyn Io>>,
}

impl std::fmt::Debug for Syslog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Syslog").field("connector", &self.connector).field("connected", &self.conn.is_some()).finish()
    }
}

impl Syslog {
    pub fn new(connector: Connector) -> Syslog {
        Syslog { connector, conn: None }
    }

    /// Writes the batch's frames, connecting first when needed (or when
    /// the connection was found closed).
    pub async fn send(&mut self, lines: &[Vec<u8>]) -> Result<(), SendError> {
        let mut frames = Vec::with_capacity(lines.iter().map(|l| l.len() + 128).sum());
        for line in lines {
            frame(line, &mut frames);
        }
        if !self.alive() {
            self.conn = None;
        }
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => self.conn.insert(self.connector.connect().await?),
        };
        let written = tokio::time::timeout(WRITE_TIMEOUT, async {
            conn.write_all(&frames).await?;
            conn.flush().await
        })
        .await;
        match written {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => {
                self.conn = None;
                Err(SendError::Io(e))
            }
            Err(_) => {
                self.conn = None;
                Err(SendError::Timeout)
            }
        }
    }

    /// Whether the connection is still open: a receiver never writes, so
    /// anything readable is its end (or an error). No connection: false.
    pub fn alive(&mut self) -> bool {
        let Some(conn) = &mut self.conn else { return false };
        let mut byte = [0u8; 1];
        match conn.read(&mut byte).now_or_never() {
            None | Some(Ok(1..)) => true,
            Some(Ok(0) | Err(_)) => {
                self.conn = None;
                false
            }
        }
    }
}

/// The entry fields a message's header carries, read from its JSON (an
/// OCSF event keeps them under `metadata` and `api`).
#[derive(Debug, Default, Deserialize)]
struct Header<'a> {
    #[serde(borrow, default)]
    timestamp: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    instance: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    metadata: Option<OcsfMetadata<'a>>,
    #[serde(borrow, default)]
    api: Option<OcsfApi<'a>>,
}

#[derive(Debug, Default, Deserialize)]
struct OcsfMetadata<'a> {
    #[serde(borrow, default)]
    original_time: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    log_name: Option<Cow<'a, str>>,
}

#[derive(Debug, Default, Deserialize)]
struct OcsfApi<'a> {
    #[serde(borrow, default)]
    operation: Option<Cow<'a, str>>,
}

/// One octet-counted RFC 5424 frame of `msg`, an entry's JSON (native or
/// OCSF): TIMESTAMP its time, HOSTNAME its instance, MSGID its action
/// (`-` where the JSON does not say).
pub(super) fn frame(msg: &[u8], out: &mut Vec<u8>) {
    let h: Header<'_> = serde_json::from_slice(msg).unwrap_or_default();
    let (meta, api) = (h.metadata.unwrap_or_default(), h.api.unwrap_or_default());
    let timestamp = h.timestamp.or(meta.original_time).filter(|t| t.len() <= 32 && t.is_ascii());
    let mut head = Vec::with_capacity(128);
    let _ = write!(
        head,
        "<{PRI}>1 {} {} auditgate - {} - ",
        header_field(timestamp.as_deref().unwrap_or(""), 32),
        header_field(h.instance.or(meta.log_name).as_deref().unwrap_or(""), 255),
        header_field(h.action.or(api.operation).as_deref().unwrap_or(""), 32)
    );
    let _ = write!(out, "{} ", head.len() + msg.len());
    out.extend_from_slice(&head);
    out.extend_from_slice(msg);
}

/// A header field as RFC 5424 allows it: printable US-ASCII without
/// spaces (anything else becomes `_`), at most `max` characters, `-` when
/// empty.
fn header_field(s: &str, max: usize) -> String {
    if s.is_empty() {
        return "-".into();
    }
    s.chars().take(max).map(|c| if c.is_ascii_graphic() { c } else { '_' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_frame_is_counted_in_bytes_and_carries_the_entrys_fields() {
        let mut e = crate::entry::tests::sample(1);
        e.instance = "gw 1".into();
        e.action = "approve".into();
        e.actor = "é".into();
        let native = serde_json::to_vec(&e).unwrap();
        let ocsf = serde_json::to_vec(&crate::sink::ocsf::event(&e)).unwrap();
        for msg in [native, ocsf] {
            let mut out = Vec::new();
            frame(&msg, &mut out);
            let text = String::from_utf8(out).unwrap();
            let (len, rest) = text.split_once(' ').unwrap();
            assert_eq!(len.parse::<usize>().unwrap(), rest.len(), "the length counts bytes");
            let head = format!("<110>1 {} gw_1 auditgate - approve - ", e.timestamp);
            assert_eq!(rest.strip_prefix(&head).unwrap().as_bytes(), msg);
        }
        // A message that says nothing of them has `-` in their places.
        let mut out = Vec::new();
        frame(b"{}", &mut out);
        assert_eq!(out, b"29 <110>1 - - auditgate - - - {}");
    }

    #[test]
    fn header_fields_are_printable_ascii_within_their_bounds() {
        assert_eq!(header_field("", 32), "-");
        assert_eq!(header_field("a b\tç", 32), "a_b__");
        assert_eq!(header_field(&"x".repeat(40), 32).len(), 32);
    }
}
