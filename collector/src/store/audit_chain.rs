//! The audit log's hash chain. Every entry carries `prev_hash`, the SHA-256 of the
//! entry before it (the first entry carries [`GENESIS`]), and `hash`, its own
//! SHA-256 over [`canonical`] — which covers `prev_hash` too. Editing, deleting or
//! reordering any entry therefore breaks the chain at that entry or the next, and
//! [`verify`] names the first sequence number where it breaks.
//!
//! The chain is tamper-*evident*, not tamper-proof: whoever can rewrite the whole
//! database can rewrite the chain from the edit onward, and dropping entries from
//! the end leaves a valid (shorter) chain.

use super::{AuditRecord, Store, StoreError};

/// `prev_hash` of the first entry: 64 zeros.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The bytes that are hashed: a version tag, then every field except `hash`, each
/// length-prefixed (8 bytes, big-endian) so that no two entries serialise alike.
pub fn canonical(e: &AuditRecord) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u64).to_be_bytes());
        out.extend_from_slice(b);
    }
    let mut out = Vec::with_capacity(128 + e.detail.len());
    field(&mut out, b"rampart-audit-v1");
    field(&mut out, &e.seq.to_be_bytes());
    field(&mut out, &e.at_ms.to_be_bytes());
    field(&mut out, e.actor.as_bytes());
    field(&mut out, e.action.as_bytes());
    match &e.target {
        None => field(&mut out, &[0]),
        Some(t) => {
            field(&mut out, &[1]);
            field(&mut out, t.as_bytes());
        }
    }
    field(&mut out, e.detail.as_bytes());
    field(&mut out, e.prev_hash.as_bytes());
    out
}

/// SHA-256 of [`canonical`], lowercase hex.
pub fn entry_hash(e: &AuditRecord) -> String {
    crate::ca::fingerprint(&canonical(e))
}

/// What a backend stores for `entry` at `seq` after `prev` (the last stored entry,
/// `None` for the first): `seq`, `prev_hash` and `hash` filled in.
pub fn seal(entry: &AuditRecord, seq: u64, prev: Option<&AuditRecord>) -> AuditRecord {
    let mut e = entry.clone();
    e.seq = seq;
    e.prev_hash = prev.map_or_else(|| GENESIS.to_string(), |p| p.hash.clone());
    e.hash = entry_hash(&e);
    e
}

/// How the chain is broken at one entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Break {
    /// The entry in this position carries another sequence number: entries were
    /// deleted, inserted or reordered.
    #[error("expected seq {expected}, found an entry with seq {found} (entries deleted, inserted or reordered)")]
    Sequence { expected: u64, found: u64 },
    /// The entry's content does not hash to its stored hash: it was edited.
    #[error("content does not match its hash (stored {stored}, computed {computed}): the entry was edited")]
    Hash { stored: String, computed: String },
    /// The entry does not point at the entry before it.
    #[error("prev_hash {found} does not match the previous entry's hash {expected}")]
    Link { expected: String, found: String },
}

/// The first broken entry of a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("audit chain broken at seq {seq}: {problem}")]
pub struct ChainBreak {
    /// The sequence number of the position where the chain breaks.
    pub seq: u64,
    pub problem: Break,
}

/// Why verification of a store failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error(transparent)]
    Broken(#[from] ChainBreak),
    /// The log could not be read at all (e.g. an entry is no longer valid JSON).
    #[error("audit log unreadable: {0}")]
    Store(#[from] StoreError),
}

/// Checks entries given oldest first; returns how many there are, or the first break.
pub fn verify<'a>(entries: impl IntoIterator<Item = &'a AuditRecord>) -> Result<u64, ChainBreak> {
    let mut prev_hash = GENESIS.to_string();
    let mut count = 0u64;
    for e in entries {
        let expected = count + 1;
        let broken = |problem| ChainBreak {
            seq: expected,
            problem,
        };
        if e.seq != expected {
            return Err(broken(Break::Sequence {
                expected,
                found: e.seq,
            }));
        }
        let computed = entry_hash(e);
        if e.hash != computed {
            return Err(broken(Break::Hash {
                stored: e.hash.clone(),
                computed,
            }));
        }
        if e.prev_hash != prev_hash {
            return Err(broken(Break::Link {
                expected: prev_hash,
                found: e.prev_hash.clone(),
            }));
        }
        prev_hash = computed;
        count = expected;
    }
    Ok(count)
}

/// Checks a window of the log without reading all of it: `shown`, any entries (a page,
/// perhaps filtered, in any order), and `neighbours`, the entries just below shown ones
/// that are not shown themselves. Each shown entry must hash to its stored hash and
/// carry the hash of the entry one sequence number below it ([`GENESIS`] for the
/// first); a neighbour must hash to its stored hash too. Returns how many entries are
/// shown, or the lowest break. Entries outside the window are not checked: the whole
/// chain is [`verify`]'s.
pub fn verify_window(
    shown: &[AuditRecord],
    neighbours: &[AuditRecord],
) -> Result<usize, ChainBreak> {
    use std::collections::BTreeMap;
    let by_seq: BTreeMap<u64, &AuditRecord> =
        neighbours.iter().chain(shown).map(|e| (e.seq, e)).collect();
    let mut first: Option<ChainBreak> = None;
    let mut found = |b: ChainBreak| {
        if first.as_ref().is_none_or(|f| b.seq < f.seq) {
            first = Some(b);
        }
    };
    for e in by_seq.values() {
        let computed = entry_hash(e);
        if e.hash != computed {
            found(ChainBreak {
                seq: e.seq,
                problem: Break::Hash {
                    stored: e.hash.clone(),
                    computed,
                },
            });
        }
    }
    for e in shown {
        if e.seq == 0 {
            found(ChainBreak {
                seq: 0,
                problem: Break::Sequence {
                    expected: 1,
                    found: 0,
                },
            });
            continue;
        }
        let expected = match e.seq - 1 {
            0 => GENESIS.to_string(),
            below => match by_seq.get(&below) {
                Some(p) => entry_hash(p),
                None => {
                    // The entry one below is missing: name what is there instead.
                    let there = by_seq.range(..below).next_back().map_or(0, |(s, _)| *s);
                    found(ChainBreak {
                        seq: below,
                        problem: Break::Sequence {
                            expected: below,
                            found: there,
                        },
                    });
                    continue;
                }
            },
        };
        if e.prev_hash != expected {
            found(ChainBreak {
                seq: e.seq,
                problem: Break::Link {
                    expected,
                    found: e.prev_hash.clone(),
                },
            });
        }
    }
    match first {
        Some(b) => Err(b),
        None => Ok(shown.len()),
    }
}

/// Reads a store's whole audit log and verifies it; returns the entry count.
pub fn verify_store(store: &dyn Store) -> Result<u64, VerifyError> {
    let (mut all, _) = store.audit(0, usize::MAX)?;
    all.reverse();
    Ok(verify(&all)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(i: u64) -> AuditRecord {
        AuditRecord {
            seq: 0,
            at_ms: 1000 + i as i64,
            actor: "ann".into(),
            action: format!("action.{i}"),
            target: i.is_multiple_of(2).then(|| format!("t{i}")),
            detail: format!("detail {i}"),
            prev_hash: String::new(),
            hash: String::new(),
        }
    }

    fn chain(n: u64) -> Vec<AuditRecord> {
        let mut out: Vec<AuditRecord> = Vec::new();
        for i in 1..=n {
            let sealed = seal(&entry(i), i, out.last());
            out.push(sealed);
        }
        out
    }

    #[test]
    fn a_sealed_chain_verifies() {
        let c = chain(5);
        assert_eq!(c[0].prev_hash, GENESIS);
        assert_eq!(c[1].prev_hash, c[0].hash);
        assert_eq!(c[4].hash.len(), 64);
        assert_eq!(verify(&c), Ok(5));
        assert_eq!(verify(&[]), Ok(0));
    }

    #[test]
    fn every_field_is_covered_by_the_hash() {
        let base = chain(1).remove(0);
        let edits: [fn(&mut AuditRecord); 6] = [
            |e| e.at_ms += 1,
            |e| e.actor.push('x'),
            |e| e.action.push('x'),
            |e| e.target = Some("other".into()),
            |e| e.detail.push('x'),
            |e| e.prev_hash = "1".repeat(64),
        ];
        for edit in edits {
            let mut e = base.clone();
            edit(&mut e);
            assert_ne!(entry_hash(&e), base.hash);
        }
        // Field boundaries matter: moving text from actor to action changes the hash.
        let mut a = base.clone();
        a.actor = "an".into();
        a.action = format!("n{}", base.action);
        assert_ne!(entry_hash(&a), base.hash);
    }

    #[test]
    fn an_edited_detail_is_named() {
        let mut c = chain(5);
        c[2].detail = "nothing happened".into();
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 3);
        assert!(matches!(b.problem, Break::Hash { .. }), "{b}");
        assert!(b.to_string().contains("seq 3"), "{b}");
    }

    #[test]
    fn an_edit_with_a_recomputed_hash_breaks_the_next_link() {
        let mut c = chain(5);
        c[2].detail = "nothing happened".into();
        c[2].hash = entry_hash(&c[2]);
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 4);
        assert!(matches!(b.problem, Break::Link { .. }), "{b}");
    }

    #[test]
    fn a_deleted_entry_is_named() {
        let mut c = chain(5);
        c.remove(1);
        let b = verify(&c).unwrap_err();
        assert_eq!(
            b,
            ChainBreak {
                seq: 2,
                problem: Break::Sequence {
                    expected: 2,
                    found: 3
                }
            }
        );
        // Renumbering after the deletion does not help: the link is broken.
        for (i, e) in c.iter_mut().enumerate() {
            e.seq = i as u64 + 1;
        }
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 2);
    }

    #[test]
    fn swapped_entries_are_named() {
        let mut c = chain(5);
        c.swap(1, 3);
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(matches!(
            b.problem,
            Break::Sequence {
                expected: 2,
                found: 4
            }
        ));
        // Even with their sequence numbers and hashes rewritten.
        let mut c = chain(5);
        c.swap(1, 2);
        c[1].seq = 2;
        c[1].hash = entry_hash(&c[1]);
        c[2].seq = 3;
        c[2].hash = entry_hash(&c[2]);
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(matches!(b.problem, Break::Link { .. }), "{b}");
    }

    /// A window of `c` (1-based sequence numbers): the shown entries newest first, as
    /// a page shows them, and the neighbours below them.
    fn window(c: &[AuditRecord], shown: &[u64], below: &[u64]) -> Result<usize, ChainBreak> {
        let pick = |seqs: &[u64]| -> Vec<AuditRecord> {
            seqs.iter().map(|s| c[*s as usize - 1].clone()).collect()
        };
        verify_window(&pick(shown), &pick(below))
    }

    #[test]
    fn a_window_is_checked_with_the_entries_below_it() {
        let c = chain(10);
        // (shown, neighbours) → how the window verifies.
        let intact: [(&[u64], &[u64]); 5] = [
            (&[10, 9, 8, 7, 6, 5], &[4]),
            (&[3, 2, 1], &[]),
            (&[9, 7, 3], &[8, 6, 2]),
            (&[1], &[]),
            (&[], &[]),
        ];
        for (shown, below) in intact {
            assert_eq!(window(&c, shown, below), Ok(shown.len()), "{shown:?}");
        }
        // Without its neighbour, the lowest entry cannot be shown to link.
        let b = window(&c, &[10, 9, 8], &[]).unwrap_err();
        assert_eq!(
            (b.seq, b.problem),
            (
                7,
                Break::Sequence {
                    expected: 7,
                    found: 0
                }
            )
        );
    }

    #[test]
    fn a_window_names_its_lowest_break() {
        let edited = |seq: u64, rehash: bool| {
            let mut c = chain(10);
            let e = &mut c[seq as usize - 1];
            e.detail = "nothing happened".into();
            if rehash {
                e.hash = entry_hash(e);
            }
            c
        };
        // (chain, shown, neighbours) → the seq named and the kind of break.
        type Case = (
            Vec<AuditRecord>,
            &'static [u64],
            &'static [u64],
            u64,
            &'static str,
        );
        let cases: [Case; 7] = [
            (edited(7, false), &[10, 9, 8, 7, 6, 5], &[4], 7, "Hash"),
            (edited(7, true), &[10, 9, 8, 7, 6, 5], &[4], 8, "Link"),
            // An edited neighbour is named, though it is not shown.
            (edited(4, false), &[10, 9, 8, 7, 6, 5], &[4], 4, "Hash"),
            (edited(4, true), &[10, 9, 8, 7, 6, 5], &[4], 5, "Link"),
            // Filtered: only the links of the shown entries count.
            (edited(5, true), &[9, 7, 3], &[8, 6, 2], u64::MAX, ""),
            (edited(6, true), &[9, 7, 3], &[8, 6, 2], 7, "Link"),
            // Two breaks: the lower one.
            (
                {
                    let mut c = edited(8, false);
                    c[2].actor = "mallory".into();
                    c
                },
                &[10, 9, 8, 7, 6, 5, 4, 3],
                &[2],
                3,
                "Hash",
            ),
        ];
        for (c, shown, below, seq, kind) in cases {
            match window(&c, shown, below) {
                Ok(_) => assert_eq!(seq, u64::MAX, "{shown:?}: no break found, {seq} expected"),
                Err(b) => {
                    assert_eq!(b.seq, seq, "{shown:?}: {b}");
                    assert!(format!("{:?}", b.problem).starts_with(kind), "{b}");
                }
            }
        }
    }

    #[test]
    fn a_window_names_a_deleted_entry() {
        let mut c = chain(10);
        c.remove(7); // seq 8
        let shown = [c[8].clone(), c[7].clone(), c[6].clone()]; // 10, 9, 7
        let b = verify_window(&shown, &[c[5].clone()]).unwrap_err();
        assert_eq!(
            b,
            ChainBreak {
                seq: 8,
                problem: Break::Sequence {
                    expected: 8,
                    found: 7
                }
            }
        );
        // The store answers "the entry below 10" with 7 when 8 is gone.
        let b = verify_window(&[c[8].clone()], &[c[6].clone()]).unwrap_err();
        assert_eq!(b.seq, 9, "{b}");
        let b = verify_window(&[c[7].clone()], &[c[6].clone()]).unwrap_err();
        assert_eq!(
            (b.seq, b.problem),
            (
                8,
                Break::Sequence {
                    expected: 8,
                    found: 7
                }
            )
        );
    }

    #[test]
    fn a_replaced_first_entry_is_named() {
        let mut c = chain(3);
        c[0] = seal(&entry(9), 1, None);
        let b = verify(&c).unwrap_err();
        assert_eq!(b.seq, 2);
        assert!(matches!(b.problem, Break::Link { .. }));
    }
}
