//! How records and result chunks are written as bytes: JSON, and result batches as
//! zstd-compressed JSON chunks. Both backends use them.

use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Result, ResultRecord, StoreError};

fn backend(e: impl std::fmt::Display) -> StoreError {
    StoreError::Backend(e.to_string())
}

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(backend)
}

pub fn decode<T: DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|e| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: e.to_string(),
    })
}

/// Largest decompressed chunk read back: far above what a batch can hold
/// ([`crate::limits::RESULTS_PER_BATCH`] results with bounded evidence).
const MAX_CHUNK: u64 = 256 << 20;

/// zstd level of result chunks: level 3 makes a 300-result scan about a tenth of its
/// JSON at a fraction of the time JSON encoding takes.
const CHUNK_LEVEL: i32 = 3;

/// zstd contexts are costly to make (a level-3 compressor holds over a megabyte):
/// a few are kept for reuse rather than one per store thread.
struct Pool<T>(Mutex<Vec<T>>);

impl<T> Pool<T> {
    const KEPT: usize = 4;

    fn with<R>(
        &self,
        make: impl FnOnce() -> std::io::Result<T>,
        f: impl FnOnce(&mut T) -> R,
    ) -> std::io::Result<R> {
        let taken = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let mut ctx = match taken {
            Some(c) => c,
            None => make()?,
        };
        let r = f(&mut ctx);
        let mut kept = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if kept.len() < Self::KEPT {
            kept.push(ctx);
        }
        Ok(r)
    }
}

static COMPRESSORS: Pool<zstd::bulk::Compressor<'static>> = Pool(Mutex::new(Vec::new()));
static DECOMPRESSORS: Pool<zstd::bulk::Decompressor<'static>> = Pool(Mutex::new(Vec::new()));

/// JSON, zstd-compressed with the frame's content size and checksum (a torn record
/// reads as damaged).
pub fn encode_chunk(results: &[ResultRecord]) -> Result<Vec<u8>> {
    let json = encode(&results)?;
    let make = || {
        let mut c = zstd::bulk::Compressor::new(CHUNK_LEVEL)?;
        c.include_checksum(true)?;
        Ok(c)
    };
    COMPRESSORS
        .with(make, |c| c.compress(&json))
        .and_then(|r| r)
        .map_err(backend)
}

pub fn decode_chunk(key: &[u8], v: &[u8]) -> Result<Vec<ResultRecord>> {
    let bad = |reason: String| StoreError::Decode {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    let size = match zstd::zstd_safe::get_frame_content_size(v) {
        Ok(Some(n)) if n <= MAX_CHUNK => n as usize,
        Ok(Some(n)) => return Err(bad(format!("a result chunk of {n} bytes decompressed"))),
        _ => return Err(bad("a result chunk without a zstd frame size".into())),
    };
    let json = DECOMPRESSORS
        .with(zstd::bulk::Decompressor::new, |d| d.decompress(v, size))
        .and_then(|r| r)
        .map_err(|e| bad(format!("a result chunk does not decompress: {e}")))?;
    decode(key, &json)
}
