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
