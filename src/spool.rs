//! The spool (docs/trail.md): an append-only file of sealed entries, one stored
//! JSON text a line, written and fsync'ed when the store cannot take a batch,
//! and replayed into the store, in order, once it can. Only the recorder's
//! committer touches it, so appends and replay never interleave.
//!
//! A crash can tear the last line. Opening the spool finds a torn tail (no
//! final newline, or a last line that is not an entry), keeps its bytes in
//! `<spool>.torn` for whoever investigates, and cuts it off. Someone who can
//! write the file could put lines in it, so every line is checked before
//! anything is replayed (`Check`): an entry of this instance, intact, linked
//! to the line before it (and the first to the store's chain head), its id
//! and time not in the future. From the first line that fails, the rest is
//! moved to `<spool>.rejected` and never replayed.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::entry::{AuditEntry, Sealed};

/// Why the spool cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("spool {path} line {line}: not an audit entry ({reason}); move the file aside to start")]
    Corrupt { path: PathBuf, line: usize, reason: String },
}

/// What opening found: a torn tail cut off, in bytes, and lines rejected.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Opened {
    pub torn_bytes: usize,
    pub rejected: Option<Rejected>,
}

/// Lines moved to `<spool>.rejected`: from `line` (1-based) to the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub line: usize,
    pub lines: usize,
    pub reason: String,
}

/// What every spooled line must be: an entry of `instance`'s chain, the
/// first continuing `head` (the store's chain head; or one line holding
/// it, when a replay stored lines before a crash cut it short), none with
/// an id or a timestamp later than `now` plus `SKEW`.
#[derive(Debug, Clone)]
pub struct Check<'a> {
    pub instance: &'a str,
    pub head: Option<&'a str>,
    pub now: std::time::SystemTime,
}

/// How far in the future a spooled entry's id or timestamp may lie (a
/// clock stepped back a little since it was written).
pub const SKEW: std::time::Duration = std::time::Duration::from_secs(60);

impl Check<'_> {
    /// Why `e`, following an entry whose hash is `prev` (none: the first
    /// line), cannot be replayed.
    fn refuse(&self, e: &AuditEntry, prev: Option<&str>) -> Option<String> {
        if e.instance != self.instance {
            return Some(format!("an entry of instance `{}`, not this one's", e.instance));
        }
        if prev.is_some_and(|prev| prev != e.prev_hash) {
            return Some("its prev_hash does not link to the line before it".into());
        }
        if !e.is_intact() {
            return Some("its hash does not hold".into());
        }
        let latest = self.now + SKEW;
        let id_time = ulid::Ulid::from_string(&e.id).map(|id| id.datetime());
        if id_time.is_err() {
            return Some("its id is not a ULID".into());
        }
        if id_time.is_ok_and(|t| t > latest) {
            return Some("its id lies in the future".into());
        }
        let at = chrono::DateTime::parse_from_rfc3339(&e.timestamp).map(std::time::SystemTime::from);
        match at {
            Ok(at) if at > latest => Some("its timestamp lies in the future".into()),
            Ok(_) => None,
            Err(_) => Some("its timestamp is not RFC 3339".into()),
        }
    }
}

/// The spool file and what of it is still to be replayed. Only counts and
/// offsets are held in memory: a long outage grows the file, not the heap.
#[derive(Debug)]
pub struct Spool {
    path: PathBuf,
    /// Open once something was written or found.
    file: Option<File>,
    /// Where the oldest entry not yet replayed begins.
    replay_from: u64,
    /// Entries spooled and not yet replayed.
    waiting: usize,
    /// The hash of the newest entry spooled.
    last_hash: Option<String>,
}

impl Spool {
    /// Opens the spool at `path` (no file is made until something is
    /// spooled) and reads what an earlier run left: a torn tail is cut, and
    /// from the first line `check` refuses on, the rest is moved aside.
    pub fn open(path: &Path, check: &Check<'_>) -> Result<(Spool, Opened), SpoolError> {
        let io = |source| SpoolError::Io { path: path.to_path_buf(), source };
        let mut spool = Spool { path: path.to_path_buf(), file: None, replay_from: 0, waiting: 0, last_hash: None };
        // Never opened unless a regular file: a FIFO would block here.
        match std::fs::metadata(path) {
            Ok(m) if !m.is_file() => {
                return Err(io(io::Error::new(io::ErrorKind::InvalidInput, "not a regular file")));
            }
            _ => {}
        }
        let file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((spool, Opened::default())),
            Err(e) => return Err(io(e)),
        };
        let mut reader = BufReader::new(file.try_clone().map_err(io)?);
        let (mut good, mut line, mut n) = (0u64, Vec::new(), 0usize);
        let mut opened = Opened::default();
        // Whether the lines so far continue the store's chain: the first
        // links to its head, or a line is its head (stored already).
        let mut linked = false;
        let mut first_prev = None;
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                break;
            }
            n += 1;
            let last = reader.fill_buf().map_err(io)?.is_empty();
            let refused = match parse(&line) {
                // Only the last line may be torn.
                Err(_) if last => {
                    opened.torn_bytes = line.len();
                    set_aside(path, ".torn", &line).map_err(io)?;
                    break;
                }
                Err(reason) => Some(format!("not an audit entry ({reason})")),
                Ok(sealed) => check.refuse(&sealed.entry, spool.last_hash.as_deref()).or_else(|| {
                    first_prev.get_or_insert_with(|| sealed.entry.prev_hash.clone());
                    linked |= check.head == Some(sealed.entry.hash.as_str());
                    spool.waiting += 1;
                    spool.last_hash = Some(sealed.entry.hash);
                    good += line.len() as u64;
                    None
                }),
            };
            if let Some(reason) = refused {
                opened.rejected = Some(Rejected { line: n, lines: 0, reason });
                break;
            }
        }
        linked |= first_prev.as_deref() == Some(check.head.unwrap_or(crate::entry::GENESIS));
        if spool.waiting > 0 && !linked {
            let reason = "its first line does not continue this instance's chain in the store".to_string();
            opened.rejected = Some(Rejected { line: 1, lines: 0, reason });
            (good, spool.waiting, spool.last_hash) = (0, 0, None);
        }
        if let Some(rejected) = &mut opened.rejected {
            let mut rest = Vec::new();
            let mut from = BufReader::new(file.try_clone().map_err(io)?);
            from.seek(SeekFrom::Start(good)).map_err(io)?;
            from.read_to_end(&mut rest).map_err(io)?;
            rejected.lines = rest.split(|b| *b == b'\n').filter(|l| !l.is_empty()).count();
            set_aside(path, ".rejected", &rest).map_err(io)?;
        }
        if opened.torn_bytes > 0 || opened.rejected.is_some() {
            file.set_len(good).and_then(|()| file.sync_all()).map_err(io)?;
        }
        spool.file = Some(file);
        Ok((spool, opened))
    }

    /// Entries waiting to be replayed.
    pub fn len(&self) -> usize {
        self.waiting
    }

    pub fn is_empty(&self) -> bool {
        self.waiting == 0
    }

    /// The hash of the newest entry spooled, which the chain continues from.
    pub fn last_hash(&self) -> Option<&str> {
        self.last_hash.as_deref()
    }

    fn io(&self) -> impl Fn(io::Error) -> SpoolError + '_ {
        |source| SpoolError::Io { path: self.path.clone(), source }
    }

    /// Appends a batch and fsyncs it; the batch then waits for replay.
    /// Answers the file's length after it (where the batch ends).
    pub fn append(&mut self, batch: &[Sealed]) -> Result<u64, SpoolError> {
        let Some(newest) = batch.last() else { return Ok(self.end()) };
        let mut text = Vec::with_capacity(batch.iter().map(|s| s.json.len() + 1).sum());
        for s in batch {
            text.extend_from_slice(s.json.as_bytes());
            text.push(b'\n');
        }
        if self.file.is_none() {
            let file = OpenOptions::new().create(true).append(true).read(true).open(&self.path).map_err(self.io())?;
            self.file = Some(file);
        }
        let file = self.file.as_mut().expect("opened above");
        let written = file.seek(SeekFrom::End(0)).and_then(|end| {
            file.write_all(&text).and_then(|()| file.sync_data()).map(|()| end + text.len() as u64).inspect_err(|_| {
                // Leave no partial batch behind: the file ends where it did.
                let _ = file.set_len(end);
            })
        });
        let end = written.map_err(|source| SpoolError::Io { path: self.path.clone(), source })?;
        self.waiting += batch.len();
        self.last_hash = Some(newest.entry.hash.clone());
        Ok(end)
    }

    /// The file's length (0 before it exists).
    fn end(&self) -> u64 {
        self.file.as_ref().and_then(|f| f.metadata().ok()).map_or(0, |m| m.len())
    }

    /// Up to `n` of the oldest waiting entries, to replay, and where the
    /// next ones begin (to pass to `replayed`).
    pub fn next(&self, n: usize) -> Result<(Vec<Sealed>, u64), SpoolError> {
        let Some(file) = &self.file else { return Ok((Vec::new(), self.replay_from)) };
        let mut reader = BufReader::new(file.try_clone().map_err(self.io())?);
        reader.seek(SeekFrom::Start(self.replay_from)).map_err(self.io())?;
        let (mut out, mut at, mut line) = (Vec::new(), self.replay_from, Vec::new());
        while out.len() < n.min(self.waiting) {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(self.io())? == 0 {
                break;
            }
            let sealed = parse(&line).map_err(|reason| SpoolError::Corrupt {
                path: self.path.clone(),
                line: 0,
                reason: format!("at byte {at}: {reason}"),
            })?;
            at += line.len() as u64;
            out.push(sealed);
        }
        Ok((out, at))
    }

    /// The entries `next` gave, up to byte `to`, are in the store. Once none
    /// waits, the file is emptied (and fsync'ed), so a restart replays
    /// nothing twice.
    pub fn replayed(&mut self, count: usize, to: u64) -> Result<(), SpoolError> {
        self.waiting -= count.min(self.waiting);
        self.replay_from = to;
        if self.waiting == 0
            && let Some(file) = &self.file
        {
            file.set_len(0).and_then(|()| file.sync_all()).map_err(self.io())?;
            self.replay_from = 0;
        }
        Ok(())
    }
}

/// Appends `bytes` to the file beside the spool named with `suffix`, for
/// whoever investigates.
fn set_aside(path: &Path, suffix: &str, bytes: &[u8]) -> io::Result<()> {
    let mut aside = path.as_os_str().to_owned();
    aside.push(suffix);
    let mut keep = OpenOptions::new().create(true).append(true).open(PathBuf::from(aside))?;
    keep.write_all(bytes)?;
    keep.sync_all()
}

/// One spool line: a sealed entry's stored text and a newline.
fn parse(line: &[u8]) -> Result<Sealed, String> {
    let text = line.strip_suffix(b"\n").ok_or("no end of line")?;
    let text = std::str::from_utf8(text).map_err(|e| e.to_string())?;
    let entry: AuditEntry = serde_json::from_str(text).map_err(|e| e.to_string())?;
    if entry.id.is_empty() || entry.hash.is_empty() {
        return Err("not sealed".into());
    }
    Ok(Sealed { entry, json: text.into() })
}

#[cfg(test)]
mod tests;
