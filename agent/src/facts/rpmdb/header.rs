//! rpm package headers as rpmdb stores them: the header structure without the lead
//! and without the 8-byte magic that a header has inside a package file.
//!
//! Layout (all numbers big-endian): the index entry count `il` (4 bytes) and the
//! data length `dl` (4 bytes); `il` index entries of 16 bytes, each a tag, a type, an
//! offset into the data store and a count; then the data store of `dl` bytes. A
//! blob is exactly `8 + 16 * il + dl` bytes. The first entry of an installed
//! package's header is usually a region (tag 63, the immutable header, or 61/62):
//! a binary entry of 16 bytes pointing at a trailer, which repeats the region's tag
//! and gives minus the size of the region's index (`-16 * entries`). Entries after
//! the region were added at install time; for a tag present in both, the one added
//! later counts, as rpm does.
//!
//! Only the entries read are decoded, but every entry's type and offset is checked,
//! and so is the region trailer. Strings (type 6), string arrays (8) and
//! translatable strings (9) must end with their NUL inside the store, every one of
//! `count`; 32-bit integers (4) must fit `count` of them. Anything else is an error
//! naming the problem, never a panic or an allocation beyond the blob itself.

/// The entries rpm's header format allows at most.
const MAX_ENTRIES: u32 = 0xffff;
/// The largest data store rpm's header format allows.
const MAX_DATA: u32 = 0x0fff_ffff;

const TAG_IMAGE: i32 = 61;
const TAG_SIGNATURES: i32 = 62;
const TAG_IMMUTABLE: i32 = 63;
pub const TAG_NAME: i32 = 1000;
pub const TAG_VERSION: i32 = 1001;
pub const TAG_RELEASE: i32 = 1002;
pub const TAG_EPOCH: i32 = 1003;
pub const TAG_ARCH: i32 = 1022;

const TYPE_INT32: u32 = 4;
const TYPE_STRING: u32 = 6;
const TYPE_BIN: u32 = 7;
const TYPE_STRING_ARRAY: u32 = 8;
const TYPE_I18NSTRING: u32 = 9;
const TYPE_MAX: u32 = 9;

/// One index entry.
#[derive(Debug, Clone, Copy)]
struct Entry {
    tag: i32,
    kind: u32,
    offset: u32,
    count: u32,
}

/// A parsed header: its index, and the data store it points into.
#[derive(Debug)]
pub struct Header<'a> {
    entries: Vec<Entry>,
    /// Entries before this index belong to the region (none without a region).
    region_end: usize,
    data: &'a [u8],
}

impl<'a> Header<'a> {
    /// Checks the blob's structure: sizes, every entry's type and offset, the region.
    pub fn parse(blob: &'a [u8]) -> Result<Header<'a>, String> {
        if blob.len() < 8 {
            return Err(format!("a header of {} bytes has no index", blob.len()));
        }
        let il = be32(blob, 0);
        let dl = be32(blob, 4);
        if il == 0 || il > MAX_ENTRIES {
            return Err(format!(
                "index entry count {il} is not between 1 and {MAX_ENTRIES}"
            ));
        }
        if dl > MAX_DATA {
            return Err(format!(
                "data length {dl} is over rpm's limit of {MAX_DATA}"
            ));
        }
        let want = 8 + 16 * u64::from(il) + u64::from(dl);
        if want != blob.len() as u64 {
            return Err(format!(
                "{il} index entries and {dl} bytes of data make {want} bytes, but the header is {} bytes",
                blob.len()
            ));
        }
        let store = 8 + 16 * il as usize;
        let data = &blob[store..];
        let mut entries = Vec::with_capacity(il as usize);
        for i in 0..il as usize {
            let at = 8 + 16 * i;
            let e = Entry {
                tag: be32(blob, at) as i32,
                kind: be32(blob, at + 4),
                offset: be32(blob, at + 8),
                count: be32(blob, at + 12),
            };
            if e.kind > TYPE_MAX {
                return Err(format!(
                    "entry {i} (tag {}) has unknown type {}",
                    e.tag, e.kind
                ));
            }
            if e.offset >= dl {
                return Err(format!(
                    "entry {i} (tag {}) points at offset {}, past the {dl}-byte data store",
                    e.tag, e.offset
                ));
            }
            if e.count == 0 {
                return Err(format!("entry {i} (tag {}) has a count of 0", e.tag));
            }
            entries.push(e);
        }
        let region_end = region(&entries, data)?;
        Ok(Header {
            entries,
            region_end,
            data,
        })
    }

    /// The entry for `tag`: the one added after the region if there is one, else the
    /// first.
    fn entry(&self, tag: i32) -> Option<Entry> {
        let mut found: Option<(usize, Entry)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if e.tag != tag {
                continue;
            }
            match found {
                Some((j, _)) if !(j < self.region_end && i >= self.region_end) => {}
                _ => found = Some((i, *e)),
            }
        }
        found.map(|(_, e)| e)
    }

    /// The value of a string tag (a string, or the first of a string array or of a
    /// translatable string); `Ok(None)` when absent. Not UTF-8 bytes are replaced.
    pub fn string(&self, tag: i32) -> Result<Option<String>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        match e.kind {
            TYPE_STRING if e.count != 1 => {
                Err(format!("string tag {tag} has a count of {}", e.count))
            }
            TYPE_STRING | TYPE_STRING_ARRAY | TYPE_I18NSTRING => {
                let mut at = e.offset as usize;
                let mut first = None;
                for _ in 0..e.count {
                    let rest = self.data.get(at..).unwrap_or_default();
                    let Some(len) = rest.iter().position(|b| *b == 0) else {
                        return Err(format!(
                            "tag {tag}: a string at offset {at} has no terminating NUL in the data store"
                        ));
                    };
                    first.get_or_insert_with(|| String::from_utf8_lossy(&rest[..len]).into_owned());
                    at += len + 1;
                }
                Ok(first)
            }
            other => Err(format!("tag {tag} has type {other}, not a string")),
        }
    }

    /// The first value of a 32-bit integer tag; `Ok(None)` when absent.
    pub fn int32(&self, tag: i32) -> Result<Option<u32>, String> {
        let Some(e) = self.entry(tag) else {
            return Ok(None);
        };
        if e.kind != TYPE_INT32 {
            return Err(format!(
                "tag {tag} has type {}, not a 32-bit integer",
                e.kind
            ));
        }
        let end = u64::from(e.offset) + 4 * u64::from(e.count);
        if end > self.data.len() as u64 {
            return Err(format!(
                "tag {tag}: {} integers at offset {} run past the {}-byte data store",
                e.count,
                e.offset,
                self.data.len()
            ));
        }
        Ok(Some(be32(self.data, e.offset as usize)))
    }
}

/// Checks the region, when the first entry is one, and returns how many index
/// entries it covers (0 without a region).
fn region(entries: &[Entry], data: &[u8]) -> Result<usize, String> {
    let Some(first) = entries.first() else {
        return Ok(0);
    };
    if ![TAG_IMAGE, TAG_SIGNATURES, TAG_IMMUTABLE].contains(&first.tag) {
        return Ok(0);
    }
    let tag = first.tag;
    if first.kind != TYPE_BIN || first.count != 16 {
        return Err(format!(
            "region tag {tag} has type {} and count {}, not a 16-byte binary trailer",
            first.kind, first.count
        ));
    }
    let at = first.offset as usize;
    let Some(trailer) = data.get(at..at + 16) else {
        return Err(format!(
            "region tag {tag}: its trailer at offset {at} runs past the {}-byte data store",
            data.len()
        ));
    };
    let (ttag, tkind, toffset, tcount) = (
        be32(trailer, 0) as i32,
        be32(trailer, 4),
        be32(trailer, 8) as i32,
        be32(trailer, 12),
    );
    if ttag != tag || tkind != TYPE_BIN || tcount != 16 {
        return Err(format!(
            "region tag {tag}: its trailer reads tag {ttag}, type {tkind}, count {tcount}"
        ));
    }
    // The trailer's offset is minus the size of the region's index entries.
    let size = -i64::from(toffset);
    if size <= 0 || size % 16 != 0 || size / 16 > entries.len() as i64 {
        return Err(format!(
            "region tag {tag}: its trailer's offset {toffset} is not minus 16 times a count of at most {} entries",
            entries.len()
        ));
    }
    Ok((size / 16) as usize)
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An index entry to write: tag, type, offset, count.
    type Raw = (i32, u32, u32, u32);

    /// The fields read from a header: name, epoch, version, release, arch.
    type Fields = (String, Option<u32>, String, String, Option<String>);

    /// A header blob from index entries and a data store.
    fn blob(entries: &[Raw], data: &[u8]) -> Vec<u8> {
        let mut b = Vec::new();
        b.extend_from_slice(&(entries.len() as u32).to_be_bytes());
        b.extend_from_slice(&(data.len() as u32).to_be_bytes());
        for (tag, kind, offset, count) in entries {
            for v in [*tag as u32, *kind, *offset, *count] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b.extend_from_slice(data);
        b
    }

    /// A header as rpm installs one: a region of six entries (the region tag, name,
    /// version, release, arch, epoch) with its trailer, then one entry added at
    /// install time. Returns the entries and the data store, to be damaged.
    fn installed() -> (Vec<Raw>, Vec<u8>) {
        let mut data = b"openssh-server\x008.7p1\x0038.el9\x00x86_64\x00".to_vec();
        // name 0, version 15, release 21, arch 28; the epoch aligned at 36.
        data.resize(36, 0);
        data.extend_from_slice(&1u32.to_be_bytes());
        let trailer = data.len() as u32;
        for v in [63u32, 7, (-(6 * 16i32)) as u32, 16] {
            data.extend_from_slice(&v.to_be_bytes());
        }
        let install_time = data.len() as u32;
        data.extend_from_slice(&1_700_000_000u32.to_be_bytes());
        let entries = vec![
            (TAG_IMMUTABLE, TYPE_BIN, trailer, 16),
            (TAG_NAME, TYPE_STRING, 0, 1),
            (TAG_VERSION, TYPE_STRING, 15, 1),
            (TAG_RELEASE, TYPE_STRING, 21, 1),
            (TAG_ARCH, TYPE_STRING, 28, 1),
            (TAG_EPOCH, TYPE_INT32, 36, 1),
            (1008, TYPE_INT32, install_time, 1),
        ];
        (entries, data)
    }

    fn fields(b: &[u8]) -> Result<Fields, String> {
        let h = Header::parse(b)?;
        Ok((
            h.string(TAG_NAME)?.unwrap_or_default(),
            h.int32(TAG_EPOCH)?,
            h.string(TAG_VERSION)?.unwrap_or_default(),
            h.string(TAG_RELEASE)?.unwrap_or_default(),
            h.string(TAG_ARCH)?,
        ))
    }

    #[test]
    fn an_installed_header_gives_its_fields() {
        let (e, d) = installed();
        assert_eq!(
            fields(&blob(&e, &d)).unwrap(),
            (
                "openssh-server".into(),
                Some(1),
                "8.7p1".into(),
                "38.el9".into(),
                Some("x86_64".into())
            )
        );
        // Absent tags are `None`, not errors (no region here, no epoch).
        let b = blob(&e[1..5], &d);
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.int32(TAG_EPOCH), Ok(None));
        // Without a region at all (a legacy header) the entries still count.
        let b = blob(&e[1..], &d);
        let h = Header::parse(&b).unwrap();
        assert_eq!(
            h.string(TAG_NAME).unwrap().as_deref(),
            Some("openssh-server")
        );
    }

    #[test]
    fn an_entry_added_after_the_region_wins() {
        let (mut e, mut d) = installed();
        let at = d.len() as u32;
        d.extend_from_slice(b"9.0p1\0");
        e.push((TAG_VERSION, TYPE_STRING, at, 1));
        // A second copy inside the region does not replace the first.
        e.insert(2, (TAG_RELEASE, TYPE_STRING, 0, 1));
        let b = blob(&e, &d);
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.string(TAG_VERSION).unwrap().as_deref(), Some("9.0p1"));
        assert_eq!(
            h.string(TAG_RELEASE).unwrap().as_deref(),
            Some("openssh-server")
        );
    }

    #[test]
    fn string_arrays_and_translated_strings_give_their_first_string() {
        let data = b"C name\0de Name\0";
        for kind in [TYPE_STRING_ARRAY, TYPE_I18NSTRING] {
            let b = blob(&[(TAG_NAME, kind, 0, 2)], data);
            let h = Header::parse(&b).unwrap();
            assert_eq!(h.string(TAG_NAME).unwrap().as_deref(), Some("C name"));
        }
        // Bytes that are not UTF-8 are replaced, not fatal.
        let b = blob(&[(TAG_NAME, TYPE_STRING, 0, 1)], b"caf\xe9\0");
        let h = Header::parse(&b).unwrap();
        assert_eq!(h.string(TAG_NAME).unwrap().as_deref(), Some("caf\u{fffd}"));
    }

    /// Every damage is an error saying what is wrong, never a panic.
    #[test]
    fn damaged_headers_are_errors() {
        let (e, d) = installed();
        let good = blob(&e, &d);
        let with = |i: usize, f: &dyn Fn(&mut Raw)| {
            let mut e = e.clone();
            f(&mut e[i]);
            blob(&e, &d)
        };
        let mut huge_il = good.clone();
        huge_il[..4].copy_from_slice(&0x0001_0000u32.to_be_bytes());
        let mut il_past = good.clone();
        il_past[..4].copy_from_slice(&9u32.to_be_bytes());
        let mut dl_past = good.clone();
        dl_past[4..8].copy_from_slice(&(d.len() as u32 + 1).to_be_bytes());
        let mut dl_over = good.clone();
        dl_over[4..8].copy_from_slice(&0x1000_0000u32.to_be_bytes());
        let mut bad_trailer = d.clone();
        bad_trailer[40..44].copy_from_slice(&62u32.to_be_bytes());
        let mut positive_trailer = d.clone();
        positive_trailer[48..52].copy_from_slice(&96u32.to_be_bytes());
        let mut too_many = d.clone();
        too_many[48..52].copy_from_slice(&((-(8 * 16i32)) as u32).to_be_bytes());
        let cases: Vec<(&str, Vec<u8>, &str)> = vec![
            ("a stub", good[..5].to_vec(), "has no index"),
            ("no entries", blob(&[], b""), "index entry count 0"),
            ("too many entries", huge_il, "index entry count 65536"),
            ("entries past the blob", il_past, "but the header is"),
            ("data past the blob", dl_past, "but the header is"),
            ("data over rpm's limit", dl_over, "over rpm's limit"),
            (
                "cut short",
                good[..good.len() - 1].to_vec(),
                "but the header is",
            ),
            (
                "one byte too many",
                [good.as_slice(), &[0]].concat(),
                "but the header is",
            ),
            (
                "an offset past the store",
                with(2, &|x| x.2 = d.len() as u32),
                "past the 60-byte data store",
            ),
            ("an unknown type", with(3, &|x| x.1 = 10), "unknown type 10"),
            ("a count of 0", with(3, &|x| x.3 = 0), "count of 0"),
            (
                "a string without its NUL",
                blob(&[(TAG_NAME, TYPE_STRING, 0, 1)], b"no end"),
                "no terminating NUL",
            ),
            (
                "a string array running out",
                with(1, &|x| {
                    x.1 = TYPE_STRING_ARRAY;
                    x.3 = u32::MAX
                }),
                "no terminating NUL",
            ),
            ("a string with a count", with(1, &|x| x.3 = 2), "count of 2"),
            (
                "a huge count of integers",
                with(5, &|x| x.3 = u32::MAX),
                "4294967295 integers at offset 36",
            ),
            (
                "integers from the last bytes",
                with(5, &|x| x.2 = d.len() as u32 - 2),
                "run past",
            ),
            (
                "a name that is a number",
                with(1, &|x| x.1 = TYPE_INT32),
                "not a string",
            ),
            (
                "an epoch that is a string",
                with(5, &|x| x.1 = TYPE_STRING),
                "not a 32-bit integer",
            ),
            (
                "a region that is not binary",
                with(0, &|x| x.1 = TYPE_STRING),
                "not a 16-byte binary trailer",
            ),
            (
                "a region trailer past the store",
                with(0, &|x| x.2 = d.len() as u32 - 8),
                "runs past",
            ),
            (
                "a trailer of another tag",
                blob(&e, &bad_trailer),
                "trailer reads tag 62",
            ),
            (
                "a positive trailer offset",
                blob(&e, &positive_trailer),
                "not minus 16 times",
            ),
            (
                "a region larger than the index",
                blob(&e, &too_many),
                "not minus 16 times",
            ),
        ];
        for (what, b, want) in cases {
            match fields(&b) {
                Err(e) => assert!(e.contains(want), "{what}: {e:?} does not say {want:?}"),
                Ok(f) => panic!("{what}: parsed as {f:?}"),
            }
        }
    }

    /// Random damage to a good header: whatever is read, nothing panics.
    #[test]
    fn random_damage_never_panics() {
        let (e, d) = installed();
        let good = blob(&e, &d);
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for _ in 0..20_000 {
            let mut b = good.clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % b.len() as u64) as usize;
                b[at] = next() as u8;
            }
            if next() % 8 == 0 {
                b.truncate((next() % b.len() as u64) as usize);
            }
            let _ = fields(&b);
        }
    }
}
