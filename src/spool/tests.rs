use super::*;
use crate::entry::{Chain, tests::sample};

fn sealed(n: u32) -> Vec<Sealed> {
    let mut chain = Chain::resume(None);
    (0..n).map(|i| chain.seal(sample(i))).collect()
}

fn ids(batch: &[Sealed]) -> Vec<&str> {
    batch.iter().map(|s| s.entry.id.as_str()).collect()
}

#[test]
fn spooled_entries_come_back_in_order_and_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    let (mut spool, opened) = Spool::open(&path).unwrap();
    assert_eq!((spool.len(), opened.torn_bytes), (0, 0));
    assert!(!path.exists(), "no file until something is spooled");
    let all = sealed(5);
    spool.append(&all[..2]).unwrap();
    spool.append(&all[2..]).unwrap();
    assert_eq!(spool.len(), 5);
    assert!(!spool.is_empty());
    assert_eq!(spool.last_hash(), Some(all[4].entry.hash.as_str()));

    let (mut again, opened) = Spool::open(&path).unwrap();
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
    assert_eq!(Spool::open(&path).unwrap().0.len(), 1);
    assert!(!dir.path().join("a.spool.torn").exists(), "nothing was torn");
}

#[test]
fn a_spool_that_cannot_be_opened_is_an_error_not_an_empty_spool() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: not "no spool yet".
    std::fs::create_dir(dir.path().join("a.spool")).unwrap();
    assert!(matches!(Spool::open(&dir.path().join("a.spool")), Err(SpoolError::Io { .. })));
}

#[test]
fn a_torn_last_line_is_cut_kept_aside_and_not_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    let all = sealed(3);
    let (mut spool, _) = Spool::open(&path).unwrap();
    spool.append(&all[..2]).unwrap();
    let whole = std::fs::read(&path).unwrap();
    let partial = &all[2].json.as_bytes()[..40];
    std::fs::write(&path, [whole.as_slice(), partial].concat()).unwrap();

    let (spool, opened) = Spool::open(&path).unwrap();
    assert_eq!((spool.len(), opened.torn_bytes), (2, 40));
    assert_eq!(spool.last_hash(), Some(all[1].entry.hash.as_str()));
    assert_eq!(std::fs::read(&path).unwrap(), whole, "the torn tail is cut off");
    assert_eq!(std::fs::read(dir.path().join("a.spool.torn")).unwrap(), partial);
    let (replay, _) = spool.next(10).unwrap();
    assert_eq!(ids(&replay), ids(&all[..2]));

    // A whole last line that is not an entry is torn too.
    std::fs::write(&path, [whole.as_slice(), b"{}\n"].concat()).unwrap();
    let (spool, opened) = Spool::open(&path).unwrap();
    assert_eq!((spool.len(), opened.torn_bytes), (2, 3));
}

#[test]
fn a_bad_line_before_the_last_is_corruption_named_by_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.spool");
    let all = sealed(2);
    let text = format!("{}\nnot json\n{}\n", all[0].json, all[1].json);
    std::fs::write(&path, text).unwrap();
    match Spool::open(&path) {
        Err(SpoolError::Corrupt { line, .. }) => assert_eq!(line, 2),
        other => panic!("expected corruption at line 2, got {other:?}"),
    }
    // An entry that was never sealed is no spool line either.
    let unsealed = serde_json::to_string(&sample(9)).unwrap();
    std::fs::write(&path, format!("{unsealed}\n{}\n", all[0].json)).unwrap();
    assert!(matches!(Spool::open(&path), Err(SpoolError::Corrupt { line: 1, .. })));
    // Nor is one with an id but no hash.
    let mut half = sample(8);
    half.id = all[0].entry.id.clone();
    let half = serde_json::to_string(&half).unwrap();
    std::fs::write(&path, format!("{half}\n{}\n", all[0].json)).unwrap();
    assert!(matches!(Spool::open(&path), Err(SpoolError::Corrupt { line: 1, .. })));
}
