use super::*;
use crate::entry::{Chain, tests::sample};

fn sealed(n: u32) -> Vec<Sealed> {
    let mut chain = Chain::resume(None);
    (0..n).map(|i| chain.seal(sample(i))).collect()
}

/// The check of a spool of `gw-1` (the samples' instance) whose store's
/// chain head is `head`.
fn check(head: Option<&str>) -> Check<'_> {
    Check { instance: "gw-1", head, now: std::time::SystemTime::now() }
}

fn open(path: &Path) -> (Spool, Opened) {
    Spool::open(path, &check(None)).unwrap()
}

fn ids(batch: &[Sealed]) -> Vec<&str> {
    batch.iter().map(|s| s.entry.id.as_str()).collect()
}

#[test]
fn spooled_entries_come_back_in_order_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    let (mut spool, opened) = open(&path);
    assert_eq!((spool.len(), opened.torn_bytes), (0, 0));
    assert!(!path.exists(), "no file until something is spooled");
    let all = sealed(5);
    spool.append(&all[..2]).unwrap();
    spool.append(&all[2..]).unwrap();
    assert_eq!(spool.len(), 5);
    assert!(!spool.is_empty());
    assert_eq!(spool.last_hash(), Some(all[4].entry.hash.as_str()));

    let (mut again, opened) = open(&path);
    assert_eq!((again.len(), opened.torn_bytes), (5, 0));
    assert_eq!(again.last_hash(), Some(all[4].entry.hash.as_str()));
    let (first, to) = again.next(3).unwrap();
    assert_eq!(ids(&first), ids(&all[..3]));
    assert_eq!(first[1].json, all[1].json, "the stored text, byte for byte");
    again.replayed(3, to).unwrap();
    assert_eq!(again.len(), 2);
    let (rest, to) = again.next(10).unwrap();
    assert_eq!(ids(&rest), ids(&all[3..]));
    again.replayed(2, to).unwrap();
    assert!(again.is_empty());
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 0, "emptied once all is replayed");

    // Appends after emptying start the file afresh.
    let more = sealed(1);
    again.append(&more).unwrap();
    let (next, _) = again.next(10).unwrap();
    assert_eq!(ids(&next), ids(&more));
    assert_eq!(open(&path).0.len(), 1);
    assert!(!dir.path().join("a.spool.torn").exists(), "nothing was torn");
}

#[test]
fn a_spool_that_cannot_be_opened_is_an_error_not_an_empty_spool() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: not "no spool yet".
    std::fs::create_dir(dir.path().join("a.spool")).unwrap();
    assert!(matches!(Spool::open(&dir.path().join("a.spool"), &check(None)), Err(SpoolError::Io { .. })));
}

#[test]
fn a_torn_last_line_is_cut_kept_aside_and_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    let all = sealed(3);
    let (mut spool, _) = open(&path);
    spool.append(&all[..2]).unwrap();
    let whole = std::fs::read(&path).unwrap();
    let partial = &all[2].json.as_bytes()[..40];
    std::fs::write(&path, [whole.as_slice(), partial].concat()).unwrap();

    let (spool, opened) = open(&path);
    assert_eq!((spool.len(), opened.torn_bytes), (2, 40));
    assert_eq!(spool.last_hash(), Some(all[1].entry.hash.as_str()));
    assert_eq!(std::fs::read(&path).unwrap(), whole, "the torn tail is cut off");
    assert_eq!(std::fs::read(dir.path().join("a.spool.torn")).unwrap(), partial);
    let (replay, _) = spool.next(10).unwrap();
    assert_eq!(ids(&replay), ids(&all[..2]));

    // A whole last line that is not an entry is torn too.
    std::fs::write(&path, [whole.as_slice(), b"{}\n"].concat()).unwrap();
    let (spool, opened) = open(&path);
    assert_eq!((spool.len(), opened.torn_bytes), (2, 3));
}

/// Opens `text` as a spool whose store's head is `head`: the spool, what
/// opening found, and the `.rejected` file's text.
fn opened_with(text: &str, head: Option<&str>) -> (Spool, Opened, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    std::fs::write(&path, text).unwrap();
    let (spool, opened) = Spool::open(&path, &check(head)).unwrap();
    let rejected = std::fs::read_to_string(dir.path().join("a.spool.rejected")).unwrap_or_default();
    let kept = std::fs::read_to_string(&path).unwrap();
    let good: String = text.lines().take(spool.len()).map(|l| format!("{l}\n")).collect();
    assert_eq!(kept, good, "the spool keeps exactly the lines before the refused one");
    (spool, opened, rejected)
}

fn lines(entries: &[&str]) -> String {
    entries.iter().map(|e| format!("{e}\n")).collect()
}

#[test]
fn from_a_bad_line_before_the_last_the_rest_is_rejected_and_kept_aside() {
    let all = sealed(3);
    let text = lines(&[&all[0].json, "not json", &all[1].json, &all[2].json]);
    let (spool, opened, rejected) = opened_with(&text, None);
    assert_eq!(spool.len(), 1);
    assert_eq!(spool.last_hash(), Some(all[0].entry.hash.as_str()));
    let refused = opened.rejected.unwrap();
    assert_eq!((refused.line, refused.lines), (2, 3));
    assert!(refused.reason.contains("not an audit entry"), "{}", refused.reason);
    assert_eq!(rejected, lines(&["not json", &all[1].json, &all[2].json]));
    // An entry that was never sealed is no spool line either, nor one
    // with an id but no hash.
    let unsealed = serde_json::to_string(&sample(9)).unwrap();
    let (spool, opened, _) = opened_with(&lines(&[&unsealed, &all[0].json]), None);
    assert_eq!((spool.len(), opened.rejected.unwrap().line), (0, 1));
    let mut half = sample(8);
    half.id = all[0].entry.id.clone();
    let half = serde_json::to_string(&half).unwrap();
    let (spool, opened, _) = opened_with(&lines(&[&half, &all[0].json]), None);
    assert_eq!((spool.len(), opened.rejected.unwrap().line), (0, 1));
}

#[test]
fn forged_lines_are_refused_each_for_its_reason() {
    let all = sealed(3);
    let refused = |text: &str, head: Option<&str>| {
        let (spool, opened, _) = opened_with(text, head);
        let rejected = opened.rejected.expect("a line refused");
        (spool.len(), rejected.line, rejected.reason)
    };
    // The probe's line: a bad hash, and the greatest id there is.
    let mut forged: serde_json::Value = serde_json::from_str(&all[2].json).unwrap();
    forged["id"] = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ".into();
    let forged = forged.to_string();
    let (kept, line, why) = refused(&lines(&[&all[0].json, &all[1].json, &forged]), None);
    assert_eq!((kept, line), (2, 3));
    assert!(why.contains("hash"), "{why}");
    // The same with its hash made to hold: its id lies in the future.
    let mut chain = Chain::resume(Some(all[1].entry.hash.clone()));
    let later = std::time::SystemTime::now() + SKEW + std::time::Duration::from_secs(60);
    let future = chain.seal_at(sample(2), later);
    let (kept, line, why) = refused(&lines(&[&all[0].json, &all[1].json, &future.json]), None);
    assert_eq!((kept, line, why.as_str()), (2, 3, "its id lies in the future"));
    // A little ahead (a clock stepped back since) is taken.
    let mut chain = Chain::resume(Some(all[1].entry.hash.clone()));
    let soon = chain.seal_at(sample(2), std::time::SystemTime::now() + SKEW / 2);
    let (spool, opened, _) = opened_with(&lines(&[&all[0].json, &all[1].json, &soon.json]), None);
    assert_eq!((spool.len(), opened.rejected), (3, None));
    // Its timestamp in the future.
    let mut chain = Chain::resume(Some(all[1].entry.hash.clone()));
    let stamped = chain.seal(AuditEntry { timestamp: "2999-01-01T00:00:00.000000Z".into(), ..sample(2) });
    let (_, line, why) = refused(&lines(&[&all[0].json, &all[1].json, &stamped.json]), None);
    assert_eq!((line, why.as_str()), (3, "its timestamp lies in the future"));
    // Another instance's entry.
    let mut chain = Chain::resume(Some(all[1].entry.hash.clone()));
    let other = chain.seal(AuditEntry { instance: "gw-2".into(), ..sample(2) });
    let (_, line, why) = refused(&lines(&[&all[0].json, &all[1].json, &other.json]), None);
    assert_eq!(line, 3);
    assert!(why.contains("gw-2"), "{why}");
    // A line of a chain of its own, intact but not linked to the one before.
    let stranger = sealed(1);
    let (_, line, why) = refused(&lines(&[&all[0].json, &stranger[0].json]), None);
    assert_eq!((line, why.as_str()), (2, "its prev_hash does not link to the line before it"));
}

#[test]
fn the_first_line_continues_the_stores_chain_or_the_whole_spool_is_rejected() {
    let all = sealed(3);
    let text = lines(&[&all[0].json, &all[1].json, &all[2].json]);
    // Its first line links to the store's head (genesis: an empty store).
    let (spool, opened, rejected) = opened_with(&text, None);
    assert_eq!((spool.len(), opened.rejected, rejected.as_str()), (3, None, ""));
    // The store holds its first two already (a replay cut short): taken,
    // the store skips what it holds.
    let (spool, opened, _) = opened_with(&text, Some(&all[1].entry.hash));
    assert_eq!((spool.len(), opened.rejected), (3, None));
    // Its last is the head: every line stored already, still taken.
    assert_eq!(opened_with(&text, Some(&all[2].entry.hash)).0.len(), 3);
    // A store whose chain is elsewhere: nothing links, all rejected.
    let (spool, opened, rejected) = opened_with(&text, Some(&"ab".repeat(32)));
    assert_eq!(spool.len(), 0);
    assert_eq!(spool.last_hash(), None, "the chain resumes from the store");
    let refused = opened.rejected.unwrap();
    assert_eq!((refused.line, refused.lines), (1, 3));
    assert_eq!(rejected, text);
    // Lines from a later point of the chain, the store behind them.
    let (spool, opened, _) = opened_with(&lines(&[&all[1].json, &all[2].json]), None);
    assert_eq!((spool.len(), opened.rejected.unwrap().line), (0, 1));
}

#[test]
fn a_spool_that_is_a_fifo_is_refused_without_opening_it() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("a.spool");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Opened, a FIFO with no writer would block the reader for ever.
    match Spool::open(&fifo, &check(None)) {
        Err(SpoolError::Io { source, .. }) => assert!(source.to_string().contains("not a regular file"), "{source}"),
        other => panic!("a FIFO taken as a spool: {other:?}"),
    }
}

#[test]
fn an_append_answers_where_the_file_ends_and_an_empty_file_rejects_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    let all = sealed(3);
    let (mut spool, _) = open(&path);
    let first = spool.append(&all[..1]).unwrap();
    assert_eq!(first, std::fs::metadata(&path).unwrap().len());
    let second = spool.append(&all[1..]).unwrap();
    assert_eq!(second, std::fs::metadata(&path).unwrap().len());
    assert!(second > first);
    assert_eq!(spool.append(&[]).unwrap(), second, "nothing appended: where the file ends");
    // Replayed and emptied, the file stays, empty: opening it finds nothing
    // to refuse.
    let (batch, to) = spool.next(10).unwrap();
    spool.replayed(batch.len(), to).unwrap();
    let (again, opened) = open(&path);
    assert_eq!((again.len(), opened), (0, Opened::default()));
    assert!(!dir.path().join("a.spool.rejected").exists());
}

#[test]
fn a_spool_path_under_a_regular_file_is_an_error_not_a_missing_spool() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain");
    std::fs::write(&file, "").unwrap();
    assert!(matches!(Spool::open(&file.join("a.spool"), &check(None)), Err(SpoolError::Io { .. })));
}

#[test]
fn rejected_lines_are_counted_a_torn_last_one_too() {
    let all = sealed(2);
    let text = format!("{}\nnot json\n{}\n{{\"torn", all[0].json, all[1].json);
    let (spool, opened, rejected) = {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.spool");
        std::fs::write(&path, &text).unwrap();
        let (spool, opened) = Spool::open(&path, &check(None)).unwrap();
        (spool, opened, std::fs::read_to_string(dir.path().join("a.spool.rejected")).unwrap())
    };
    assert_eq!(spool.len(), 1);
    let refused = opened.rejected.unwrap();
    assert_eq!((refused.line, refused.lines, opened.torn_bytes), (2, 3, 0));
    assert_eq!(rejected, text[all[0].json.len() + 1..]);
}
