//! How records and result chunks are written as bytes: JSON, and result batches as
//! zstd-compressed JSON chunks. Both backends use them.

use std::sync::Mutex;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::{Result, ResultRecord, StoreError};

pub fn encode<T: Serialize>(v: &T) -> Result<Vec<u8>> {
    Ok(serde_json::to_vec(v)?)
}

pub fn decode<T: DeserializeOwned>(key: &[u8], v: &[u8]) -> Result<T> {
    serde_json::from_slice(v).map_err(|source| StoreError::DecodeJson {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
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
static PLAIN_DECOMPRESSORS: Pool<zstd::bulk::Decompressor<'static>> = Pool(Mutex::new(Vec::new()));

/// The zstd dictionary of result chunks: trained on real scans' results in their
/// stored form (`scripts/results-dict.sh`), it holds the rule IDs, statuses and the
/// wording of evidence that every scan repeats, so that a chunk stores mostly what
/// is this host's own. About half the bytes of a chunk compressed without it.
static RESULTS_DICT: &[u8] = include_bytes!("results.dict");

/// The dictionary's ID, written in every frame compressed with it. Frames without
/// one (chunks written before the dictionary) are read without it; another ID is an
/// error that names it.
pub const RESULTS_DICT_ID: u32 = 32769;

fn encoder_dict() -> &'static zstd::dict::EncoderDictionary<'static> {
    static D: std::sync::OnceLock<zstd::dict::EncoderDictionary<'static>> =
        std::sync::OnceLock::new();
    D.get_or_init(|| zstd::dict::EncoderDictionary::copy(RESULTS_DICT, CHUNK_LEVEL))
}

fn decoder_dict() -> &'static zstd::dict::DecoderDictionary<'static> {
    static D: std::sync::OnceLock<zstd::dict::DecoderDictionary<'static>> =
        std::sync::OnceLock::new();
    D.get_or_init(|| zstd::dict::DecoderDictionary::copy(RESULTS_DICT))
}

/// JSON, zstd-compressed with the results dictionary, the frame's content size and
/// its checksum (a torn record reads as damaged).
pub fn encode_chunk(results: &[ResultRecord]) -> Result<Vec<u8>> {
    let json = encode(&results)?;
    let make = || {
        let mut c = zstd::bulk::Compressor::with_prepared_dictionary(encoder_dict())?;
        c.include_checksum(true)?;
        c.include_dictid(true)?;
        Ok(c)
    };
    COMPRESSORS
        .with(make, |c| c.compress(&json))
        .and_then(|r| r)
        .map_err(StoreError::Io)
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
    let json = match zstd::zstd_safe::get_dict_id_from_frame(v).map(|id| id.get()) {
        None => PLAIN_DECOMPRESSORS.with(zstd::bulk::Decompressor::new, |d| d.decompress(v, size)),
        Some(RESULTS_DICT_ID) => DECOMPRESSORS.with(
            || zstd::bulk::Decompressor::with_prepared_dictionary(decoder_dict()),
            |d| d.decompress(v, size),
        ),
        Some(other) => {
            return Err(bad(format!(
            "a result chunk compressed with dictionary {other}, which this collector does not have"
        )))
        }
    }
    .and_then(|r| r)
    .map_err(|e| bad(format!("a result chunk does not decompress: {e}")))?;
    decode(key, &json)
}

#[cfg(test)]
mod tests {
    use rampart_report::Status;

    use super::*;

    /// A batch like an agent's, with evidence worded as the agent words it.
    fn batch() -> Vec<ResultRecord> {
        let modules = [
            "cramfs", "freevxfs", "hfs", "hfsplus", "jffs2", "squashfs", "udf",
        ];
        let mut out: Vec<ResultRecord> = modules
            .iter()
            .enumerate()
            .map(|(i, m)| ResultRecord {
                rule_id: format!("1.1.1.{}", i + 1),
                status: Status::Pass,
                evidence: vec![
                    "runtime state (loaded modules) not examined: offline root".into(),
                    format!("module {m} is not available: not provided by any installed kernel (6.1.0-50-cloud-amd64 checked in modules.dep)"),
                ],
            })
            .collect();
        out.push(ResultRecord {
            rule_id: "5.1.1".into(),
            status: Status::Fail,
            evidence: vec!["/etc/ssh/sshd_config: mode 0644, owner root (0), group root (0); wanted mode 0600 or stricter".into()],
        });
        out
    }

    /// Typed statuses and severity counts keep the JSON form records always had, so
    /// stored chunks and scan documents (sled and PostgreSQL) read unchanged.
    #[test]
    fn records_keep_their_stored_json_form() {
        let old = r#"{"rule_id":"1.1","status":"not_applicable","evidence":["e"]}"#;
        let r: ResultRecord = serde_json::from_str(old).unwrap();
        assert_eq!(r.status, Status::NotApplicable);
        assert_eq!(serde_json::to_string(&r).unwrap(), old);
        let bad = r#"{"rule_id":"1.1","status":"passed","evidence":[]}"#;
        let e = serde_json::from_str::<ResultRecord>(bad).unwrap_err();
        assert!(e.to_string().contains("passed"), "{e}");
        let mut s = crate::store::ScanRecord::pending(
            "s".into(),
            "a",
            None,
            "manual",
            rampart_report::Profile::default(),
            0,
        );
        s.failed_by_severity = [
            rampart_report::Severity::Critical,
            rampart_report::Severity::Low,
            rampart_report::Severity::Low,
        ]
        .into_iter()
        .collect();
        let doc = serde_json::to_value(&s).unwrap();
        assert_eq!(doc["failed_by_severity"], serde_json::json!([1, 0, 0, 2]));
        let back: crate::store::ScanRecord = serde_json::from_value(doc).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn chunks_carry_the_dictionary_and_read_back() {
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_dict(RESULTS_DICT).map(|i| i.get()),
            Some(RESULTS_DICT_ID),
            "results.dict must carry RESULTS_DICT_ID"
        );
        let chunk = encode_chunk(&batch()).unwrap();
        assert_eq!(
            zstd::zstd_safe::get_dict_id_from_frame(&chunk).map(|i| i.get()),
            Some(RESULTS_DICT_ID)
        );
        assert_eq!(decode_chunk(b"k", &chunk).unwrap(), batch());
        // The dictionary earns its place: well under what the chunk takes without it.
        let json = encode(&batch()).unwrap();
        let plain = zstd::bulk::compress(&json, CHUNK_LEVEL).unwrap();
        assert!(
            chunk.len() * 10 < plain.len() * 7,
            "{} bytes with the dictionary, {} without",
            chunk.len(),
            plain.len()
        );
    }

    #[test]
    fn chunks_written_before_the_dictionary_still_read() {
        let json = encode(&batch()).unwrap();
        let mut c = zstd::bulk::Compressor::new(CHUNK_LEVEL).unwrap();
        c.include_checksum(true).unwrap();
        let old = c.compress(&json).unwrap();
        assert_eq!(zstd::zstd_safe::get_dict_id_from_frame(&old), None);
        assert_eq!(decode_chunk(b"k", &old).unwrap(), batch());
    }

    #[test]
    fn a_chunk_of_another_dictionary_is_an_error_that_names_it() {
        let json = encode(&batch()).unwrap();
        let mut other = RESULTS_DICT.to_vec();
        // Same dictionary, another ID (bytes 4..8 of a dictionary header, little-endian).
        other[4..8].copy_from_slice(&40000u32.to_le_bytes());
        let mut c = zstd::bulk::Compressor::with_dictionary(CHUNK_LEVEL, &other).unwrap();
        c.include_checksum(true).unwrap();
        let chunk = c.compress(&json).unwrap();
        let err = decode_chunk(b"scan/x", &chunk).unwrap_err().to_string();
        assert!(err.contains("dictionary 40000"), "{err}");
        assert!(err.contains("scan/x"), "{err}");
    }
}
