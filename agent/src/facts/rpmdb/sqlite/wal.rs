//! The write-ahead log: its header, frames, salts and checksums, and the pages of
//! its committed transactions.

use std::collections::HashMap;

use super::{be32, malformed};
use crate::facts::{BinaryFile, FactError};

pub(super) const WAL_MAGIC_LE: u32 = 0x377f_0682;
pub(super) const WAL_MAGIC_BE: u32 = 0x377f_0683;
pub(super) const WAL_VERSION: u32 = 3_007_000;
const WAL_HEADER: u64 = 32;
const FRAME_HEADER: u64 = 24;

/// What the committed transactions of a WAL hold.
pub(super) struct Committed {
    /// The database size in pages after the last valid commit.
    pub(super) pages: u32,
    /// Page number → offset of its newest committed copy.
    pub(super) frames: HashMap<u32, u64>,
}

/// The committed state of a WAL; `None` when it holds no committed transaction
/// (empty, a header SQLite would ignore, no valid commit frame).
pub(super) fn read_wal(wal: &BinaryFile, page_size: u32) -> Result<Option<Committed>, FactError> {
    if wal.len() < WAL_HEADER {
        return Ok(None);
    }
    let mut header = [0u8; WAL_HEADER as usize];
    wal.read_at(0, &mut header)?;
    let big_endian = match be32(&header, 0) {
        WAL_MAGIC_LE => false,
        WAL_MAGIC_BE => true,
        _ => return Ok(None),
    };
    if be32(&header, 4) != WAL_VERSION {
        return Err(malformed(
            wal,
            format!("unknown WAL format version {}", be32(&header, 4)),
        ));
    }
    let sum = checksum((0, 0), &header[..24], big_endian);
    if sum != (be32(&header, 24), be32(&header, 28)) {
        return Ok(None);
    }
    let wal_page = be32(&header, 8);
    if wal_page != page_size {
        return Err(malformed(
            wal,
            format!("its page size {wal_page} is not the database's {page_size}"),
        ));
    }
    let salts = (be32(&header, 16), be32(&header, 20));
    let frame_len = FRAME_HEADER + u64::from(page_size);
    let frames = (wal.len() - WAL_HEADER) / frame_len;
    let mut frame = vec![0u8; frame_len as usize];
    let mut sum = sum;
    let mut committed: HashMap<u32, u64> = HashMap::new();
    let mut pending: Vec<(u32, u64)> = Vec::new();
    let mut size = None;
    for i in 0..frames {
        let at = WAL_HEADER + i * frame_len;
        wal.read_at(at, &mut frame)?;
        let page = be32(&frame, 0);
        let commit = be32(&frame, 4);
        if page == 0 || (be32(&frame, 8), be32(&frame, 12)) != salts {
            break;
        }
        let next = checksum(sum, &frame[..8], big_endian);
        let next = checksum(next, &frame[FRAME_HEADER as usize..], big_endian);
        if next != (be32(&frame, 16), be32(&frame, 20)) {
            break;
        }
        sum = next;
        pending.push((page, at + FRAME_HEADER));
        if commit != 0 {
            committed.extend(pending.drain(..));
            size = Some(commit);
        }
    }
    Ok(size.map(|pages| Committed {
        pages,
        frames: committed,
    }))
}

/// SQLite's WAL checksum: the data as 32-bit words (in the byte order the WAL's
/// magic names), summed in pairs into a running pair, wrapping.
pub(super) fn checksum(start: (u32, u32), data: &[u8], big_endian: bool) -> (u32, u32) {
    let (mut s0, mut s1) = start;
    for pair in data.chunks_exact(8) {
        let word = |b: &[u8]| {
            let b = [b[0], b[1], b[2], b[3]];
            if big_endian {
                u32::from_be_bytes(b)
            } else {
                u32::from_le_bytes(b)
            }
        };
        s0 = s0.wrapping_add(word(&pair[..4])).wrapping_add(s1);
        s1 = s1.wrapping_add(word(&pair[4..])).wrapping_add(s0);
    }
    (s0, s1)
}
