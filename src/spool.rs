//! The spool (SPEC 8): an append-only file of sealed entries, one stored
//! JSON text a line, written and fsync'ed when the store cannot take a batch,
//! and replayed into the store, in order, once it can. Only the recorder's
//! committer touches it, so appends and replay never interleave.
//!
//! A crash can tear the last line. Opening the spool finds a torn tail (no
//! final newline, or a last line that is not an entry), keeps its bytes in
//! `<spool>.torn` for whoever investigates, and cuts it off; a bad line
//! anywhere before the last is corruption, and opening fails naming it.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
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

/// What opening found: a torn tail cut off, in bytes.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    pub torn_bytes: usize,
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
    /// spooled) and reads what an earlier run left, cutting a torn tail.
    pub fn open(path: &Path) -> Result<(Spool, Opened), SpoolError> {
        let io = |source| SpoolError::Io { path: path.to_path_buf(), source };
        let mut spool = Spool { path: path.to_path_buf(), file: None, replay_from: 0, waiting: 0, last_hash: None };
        let file = match OpenOptions::new().read(true).append(true).open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((spool, Opened::default())),
            Err(e) => return Err(io(e)),
        };
        let mut reader = BufReader::new(file.try_clone().map_err(io)?);
        let (mut good, mut line, mut n) = (0u64, Vec::new(), 0usize);
        let mut torn = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line).map_err(io)? == 0 {
                break;
            }
            n += 1;
            match parse(&line) {
                Ok(sealed) => {
                    spool.waiting += 1;
                    spool.last_hash = Some(sealed.entry.hash);
                    good += line.len() as u64;
                }
                // Only the last line may be torn.
                Err(_) if reader.fill_buf().map_err(io)?.is_empty() => torn = std::mem::take(&mut line),
                Err(reason) => return Err(SpoolError::Corrupt { path: path.to_path_buf(), line: n, reason }),
            }
        }
        if !torn.is_empty() {
            let mut aside = path.as_os_str().to_owned();
            aside.push(".torn");
            let mut keep = OpenOptions::new().create(true).append(true).open(PathBuf::from(aside)).map_err(io)?;
            keep.write_all(&torn).and_then(|()| keep.sync_all()).map_err(io)?;
            file.set_len(good).and_then(|()| file.sync_all()).map_err(io)?;
        }
        spool.file = Some(file);
        Ok((spool, Opened { torn_bytes: torn.len() }))
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
    pub fn append(&mut self, batch: &[Sealed]) -> Result<(), SpoolError> {
        let Some(newest) = batch.last() else { return Ok(()) };
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
            file.write_all(&text).and_then(|()| file.sync_data()).inspect_err(|_| {
                // Leave no partial batch behind: the file ends where it did.
                let _ = file.set_len(end);
            })
        });
        written.map_err(|source| SpoolError::Io { path: self.path.clone(), source })?;
        self.waiting += batch.len();
        self.last_hash = Some(newest.entry.hash.clone());
        Ok(())
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
