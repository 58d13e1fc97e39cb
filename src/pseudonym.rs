//! Pseudonymous export (issue 15): actors and client addresses replaced by
//! a keyed hash (HMAC-SHA256), the same for the same value under one key,
//! and not reversible without that key. For handing a trail to an outside
//! auditor, who can still follow one actor or address through it.

use std::io::Read;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::entry::AuditEntry;

/// The shortest key a caller may give: anything shorter is guessable.
pub const MIN_KEY_BYTES: usize = 16;

/// Replaces actors and addresses under one key.
pub struct Pseudonymizer {
    mac: Hmac<Sha256>,
}

impl std::fmt::Debug for Pseudonymizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Pseudonymizer { .. }")
    }
}

impl Pseudonymizer {
    /// Pseudonyms under `key` (the same in every export made with it).
    pub fn with_key(key: &[u8]) -> Pseudonymizer {
        Pseudonymizer { mac: Hmac::new_from_slice(key).expect("HMAC takes a key of any length") }
    }

    /// Pseudonyms under a fresh random key, forgotten after the export:
    /// stable within it, unlinkable to any other.
    pub fn random() -> std::io::Result<Pseudonymizer> {
        let mut key = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut key)?;
        Ok(Pseudonymizer::with_key(&key))
    }

    /// `actor-…` or `ip-…`: the kind, then 64 bits of the value's keyed
    /// hash (the kind is hashed too, so a name and an address that are the
    /// same text do not share a pseudonym).
    fn pseudonym(&self, kind: &str, value: &str) -> String {
        let mut mac = self.mac.clone();
        mac.update(kind.as_bytes());
        mac.update(b"\0");
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        format!("{kind}-{hex}")
    }

    /// Replaces the entry's actor and every client address it holds
    /// (`client_ip`, `peer_ip`, `forwarded_for`); erased ones stay empty.
    pub fn apply(&self, e: &mut AuditEntry) {
        let replace = |kind: &str, value: &mut String| {
            if !value.is_empty() {
                *value = self.pseudonym(kind, value);
            }
        };
        replace("actor", &mut e.actor);
        replace("ip", &mut e.client_ip);
        replace("ip", &mut e.peer_ip);
        for hop in &mut e.forwarded_for {
            replace("ip", hop);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        crate::entry::tests::sample(1)
    }

    #[test]
    fn the_same_value_gets_the_same_pseudonym_under_one_key_only() {
        let key = Pseudonymizer::with_key(b"0123456789abcdef");
        let (mut a, mut b) = (entry(), entry());
        key.apply(&mut a);
        key.apply(&mut b);
        assert_eq!(a, b);
        assert!(a.actor.starts_with("actor-") && a.actor.len() == 6 + 16, "{}", a.actor);
        assert!(a.client_ip.starts_with("ip-"), "{}", a.client_ip);
        // The client address and the forwarded hop are the same address.
        assert_eq!(a.forwarded_for, vec![a.client_ip.clone()]);
        assert_ne!(a.peer_ip, a.client_ip);
        let text = serde_json::to_string(&a).unwrap();
        for gone in ["alice", "203.0.113.9", "127.0.0.1"] {
            assert!(!text.contains(gone), "{gone} in {text}");
        }
        let mut other = entry();
        Pseudonymizer::with_key(b"fedcba9876543210").apply(&mut other);
        assert_ne!(other.actor, a.actor);
        let mut fresh = entry();
        Pseudonymizer::random().unwrap().apply(&mut fresh);
        assert_ne!(fresh.actor, a.actor);
        // The key never shows in debug output.
        assert_eq!(format!("{key:?}"), "Pseudonymizer { .. }");
        // A name and an address of the same text stay apart.
        assert_ne!(key.pseudonym("actor", "x"), key.pseudonym("ip", "x").replace("ip-", "actor-"));
    }

    #[test]
    fn an_erased_entry_stays_empty() {
        let mut e = crate::entry::Chain::resume(None).seal(entry()).entry;
        e.erase();
        Pseudonymizer::with_key(b"0123456789abcdef").apply(&mut e);
        assert_eq!((e.actor.as_str(), e.client_ip.as_str(), e.peer_ip.as_str()), ("", "", ""));
    }
}
