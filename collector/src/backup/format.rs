//! The backup file's format (described in the parent module): the writer, and a
//! reader that checks every length against its bound before it reads or allocates,
//! and hands the entries to a [`Sink`].

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::{io_at, BackupError, Counts, Manifest, Result, KEY_FILES};
use crate::store::Section;

/// The first bytes of every backup.
pub const MAGIC: &[u8; 8] = b"RAMPBKUP";
/// The one version of the format this collector writes and reads.
pub const FORMAT_VERSION: u32 = 1;
/// Bounds on what a backup file declares; a length past one is refused before
/// anything is allocated for it.
pub const MAX_MANIFEST_BYTES: u32 = 64 << 10;
pub const MAX_BLOCK_RAW: u32 = 1 << 20;
pub const MAX_BLOCK_COMPRESSED: u32 = 2 << 20;
pub const MAX_KEY_BYTES: u32 = crate::store::sled_snapshot::MAX_KEY_BYTES as u32;
pub const MAX_VALUE_BYTES: u32 = 64 << 20;
pub const MAX_PIECE_BYTES: u32 = 1 << 20;
pub const MAX_NAME_BYTES: u16 = 255;
pub const DIGEST_BYTES: usize = 32;
pub const LEVEL: i32 = 3;

pub const TAG_END: u8 = 0;
pub const TAG_RECORD: u8 = 1;
pub const TAG_FILE: u8 = 2;

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

/// A writer that hashes what passes through it.
struct Hashing<W> {
    inner: W,
    sha: ring::digest::Context,
    bytes: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Writes the format: header, entries in compressed blocks, manifest, checksum.
pub struct Writer<W: Write> {
    out: Hashing<W>,
    block: Vec<u8>,
    zstd: zstd::bulk::Compressor<'static>,
}

impl<W: Write> Writer<W> {
    /// Writes the header.
    pub fn new(out: W) -> io::Result<Writer<W>> {
        let mut out = Hashing {
            inner: out,
            sha: ring::digest::Context::new(&ring::digest::SHA256),
            bytes: 0,
        };
        out.write_all(MAGIC)?;
        out.write_all(&FORMAT_VERSION.to_be_bytes())?;
        let mut zstd = zstd::bulk::Compressor::new(LEVEL)?;
        zstd.include_checksum(true)?;
        Ok(Writer {
            out,
            block: Vec::with_capacity(MAX_BLOCK_RAW as usize),
            zstd,
        })
    }

    pub(super) fn put(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let room = MAX_BLOCK_RAW as usize - self.block.len();
            let (now, later) = bytes.split_at(room.min(bytes.len()));
            self.block.extend_from_slice(now);
            bytes = later;
            if self.block.len() == MAX_BLOCK_RAW as usize {
                self.seal()?;
            }
        }
        Ok(())
    }

    fn seal(&mut self) -> io::Result<()> {
        if self.block.is_empty() {
            return Ok(());
        }
        let packed = self.zstd.compress(&self.block)?;
        self.out.write_all(&(packed.len() as u32).to_be_bytes())?;
        self.out
            .write_all(&(self.block.len() as u32).to_be_bytes())?;
        self.out.write_all(&packed)?;
        self.block.clear();
        Ok(())
    }

    /// One record of a section.
    pub fn record(&mut self, s: Section, key: &[u8], value: &[u8]) -> io::Result<()> {
        if key.len() > MAX_KEY_BYTES as usize || value.len() > MAX_VALUE_BYTES as usize {
            return Err(io::Error::other(format!(
                "a {} record of {} + {} bytes is past the format's bounds",
                s.name(),
                key.len(),
                value.len()
            )));
        }
        self.put(&[TAG_RECORD, s.id()])?;
        self.put(&(key.len() as u32).to_be_bytes())?;
        self.put(key)?;
        self.put(&(value.len() as u32).to_be_bytes())?;
        self.put(value)
    }

    /// One file: exactly `len` bytes of `from`.
    pub fn file(&mut self, name: &str, from: &mut dyn Read, len: u64) -> io::Result<()> {
        self.put(&[TAG_FILE])?;
        self.put(&(name.len() as u16).to_be_bytes())?;
        self.put(name.as_bytes())?;
        let mut left = len;
        let mut buf = vec![0u8; MAX_PIECE_BYTES as usize];
        while left > 0 {
            let want = left.min(MAX_PIECE_BYTES as u64) as usize;
            let n = from.read(&mut buf[..want])?;
            if n == 0 {
                return Err(io::Error::other(format!(
                    "{name} ended {left} bytes before its length at the cut"
                )));
            }
            self.put(&(n as u32).to_be_bytes())?;
            self.put(&buf[..n])?;
            left -= n as u64;
        }
        self.put(&0u32.to_be_bytes())
    }

    /// The end entry, the last block, the manifest, the checksum; returns the output
    /// and its size.
    pub fn finish(mut self, manifest: &Manifest) -> io::Result<(W, u64)> {
        let json = serde_json::to_vec(manifest).map_err(io::Error::other)?;
        if json.len() > MAX_MANIFEST_BYTES as usize {
            return Err(io::Error::other("the manifest is past its bound"));
        }
        self.put(&[TAG_END])?;
        self.seal()?;
        self.out.write_all(&[0; 8])?;
        self.out.write_all(&(json.len() as u32).to_be_bytes())?;
        self.out.write_all(&json)?;
        let digest = self.out.sha.clone().finish();
        let mut out = self.out;
        out.inner.write_all(digest.as_ref())?;
        out.inner.flush()?;
        Ok((out.inner, out.bytes + DIGEST_BYTES as u64))
    }
}

/// A reader that hashes what it reads and knows where it is.
struct Input<R> {
    inner: R,
    sha: ring::digest::Context,
    offset: u64,
}

impl<R: Read> Input<R> {
    /// Exactly `buf.len()` bytes, hashed.
    fn exact(&mut self, buf: &mut [u8], inside: &'static str) -> Result<()> {
        let mut got = 0;
        while got < buf.len() {
            match self.inner.read(&mut buf[got..]) {
                Ok(0) => {
                    return Err(BackupError::Truncated {
                        offset: self.offset + got as u64,
                        inside,
                    })
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(BackupError::Io {
                        path: PathBuf::from("the backup"),
                        source: e,
                    })
                }
            }
        }
        self.sha.update(buf);
        self.offset += buf.len() as u64;
        Ok(())
    }

    fn u32(&mut self, inside: &'static str) -> Result<u32> {
        let mut b = [0u8; 4];
        self.exact(&mut b, inside)?;
        Ok(u32::from_be_bytes(b))
    }
}

/// Reads the header; returns the input positioned at the first block.
fn header<R: Read>(inner: R) -> Result<Input<R>> {
    let mut input = Input {
        inner,
        sha: ring::digest::Context::new(&ring::digest::SHA256),
        offset: 0,
    };
    let mut magic = [0u8; 8];
    match input.exact(&mut magic, "the header") {
        Err(BackupError::Truncated { offset, inside }) => {
            // A file cut inside the magic is a truncated backup; others are not backups.
            let got = &magic[..offset as usize];
            return Err(if !got.is_empty() && MAGIC.starts_with(got) {
                BackupError::Truncated { offset, inside }
            } else {
                BackupError::NotABackup
            });
        }
        r => r?,
    }
    if &magic != MAGIC {
        return Err(BackupError::NotABackup);
    }
    let version = input.u32("the header")?;
    if version != FORMAT_VERSION {
        return Err(BackupError::Version { found: version });
    }
    Ok(input)
}

/// The entries' bytes: the blocks, decompressed one at a time.
struct Body<R> {
    input: Input<R>,
    block: Vec<u8>,
    pos: usize,
    ended: bool,
    zstd: zstd::bulk::Decompressor<'static>,
}

impl<R: Read> Body<R> {
    fn damaged(&self, reason: impl Into<String>) -> BackupError {
        BackupError::Damaged {
            offset: self.input.offset,
            reason: reason.into(),
        }
    }

    /// Reads the next block; false at the end block.
    fn next_block(&mut self) -> Result<bool> {
        if self.ended {
            return Ok(false);
        }
        let at = self.input.offset;
        let packed = self.input.u32("a block header")?;
        let raw = self.input.u32("a block header")?;
        if packed == 0 && raw == 0 {
            self.ended = true;
            return Ok(false);
        }
        for (what, len, max) in [
            ("a compressed block", packed, MAX_BLOCK_COMPRESSED),
            ("a block", raw, MAX_BLOCK_RAW),
        ] {
            if len > max || len == 0 {
                return Err(BackupError::TooLarge {
                    what,
                    len: len.into(),
                    max: max.into(),
                    offset: at,
                });
            }
        }
        let mut data = vec![0u8; packed as usize];
        self.input.exact(&mut data, "a block")?;
        let out = self
            .zstd
            .decompress(&data, raw as usize)
            .map_err(|e| BackupError::Damaged {
                offset: at,
                reason: format!("a block does not decompress: {e}"),
            })?;
        if out.len() != raw as usize {
            return Err(BackupError::Damaged {
                offset: at,
                reason: format!("a block of {} bytes, its header says {raw}", out.len()),
            });
        }
        self.block = out;
        self.pos = 0;
        Ok(true)
    }

    /// Up to `max` bytes of the entries, at least one; an error at their end.
    fn some(&mut self, max: usize) -> Result<&[u8]> {
        while self.pos == self.block.len() {
            if !self.next_block()? {
                return Err(self.damaged("the entries end inside an entry"));
            }
        }
        let n = max.min(self.block.len() - self.pos);
        let s = &self.block[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn fill(&mut self, out: &mut [u8]) -> Result<()> {
        let mut got = 0;
        while got < out.len() {
            let s = self.some(out.len() - got)?;
            let n = s.len();
            out[got..got + n].copy_from_slice(s);
            got += n;
        }
        Ok(())
    }

    /// `len` bytes, allocated as they arrive (a false length allocates only what the
    /// file holds).
    fn bytes(&mut self, len: usize) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        while out.len() < len {
            let s = self.some(len - out.len())?;
            out.extend_from_slice(s);
        }
        Ok(out)
    }

    fn u8(&mut self) -> Result<u8> {
        let mut b = [0u8; 1];
        self.fill(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> Result<u16> {
        let mut b = [0u8; 2];
        self.fill(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self) -> Result<u32> {
        let mut b = [0u8; 4];
        self.fill(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    fn bounded(&mut self, what: &'static str, max: u32) -> Result<u32> {
        let at = self.input.offset;
        let len = self.u32()?;
        if len > max {
            return Err(BackupError::TooLarge {
                what,
                len: len.into(),
                max: max.into(),
                offset: at,
            });
        }
        Ok(len)
    }
}

/// Where a backup's entries go: nowhere (a check) or a new data directory.
pub(super) trait Sink {
    fn record(&mut self, s: Section, key: &[u8], value: &[u8]) -> Result<()>;
    fn file(&mut self, name: &str) -> Result<Box<dyn Write + '_>>;
}

/// Whether `name` is a file a backup may hold.
pub(super) fn valid_file_name(name: &str) -> bool {
    if KEY_FILES.iter().any(|(k, _)| *k == name) {
        return true;
    }
    match name.split_once('/') {
        Some(("db", rest)) => rest
            .strip_prefix("results/")
            .is_some_and(crate::store::result_log::is_day_file),
        _ => false,
    }
}

/// Reads a whole backup into `sink`, checking its structure, bounds, checksum and
/// counts; returns its manifest.
pub(super) fn read_into(from: impl Read, sink: &mut dyn Sink) -> Result<Manifest> {
    let input = header(from)?;
    let mut body = Body {
        input,
        block: Vec::new(),
        pos: 0,
        ended: false,
        zstd: zstd::bulk::Decompressor::new().map_err(BackupError::Write)?,
    };
    let mut found = Counts::default();
    let mut names = BTreeSet::new();
    loop {
        let at = body.input.offset;
        match body.u8()? {
            TAG_END => break,
            TAG_RECORD => {
                let id = body.u8()?;
                let section = Section::from_id(id)
                    .ok_or_else(|| body.damaged(format!("a record of unknown section {id}")))?;
                let klen = body.bounded("a record key", MAX_KEY_BYTES)?;
                let key = body.bytes(klen as usize)?;
                let vlen = body.bounded("a record value", MAX_VALUE_BYTES)?;
                let value = body.bytes(vlen as usize)?;
                sink.record(section, &key, &value)?;
                *found.of(section) += 1;
            }
            TAG_FILE => {
                let nlen = body.u16()?;
                if nlen > MAX_NAME_BYTES {
                    return Err(BackupError::TooLarge {
                        what: "a file name",
                        len: nlen.into(),
                        max: MAX_NAME_BYTES.into(),
                        offset: at,
                    });
                }
                let raw = body.bytes(nlen.into())?;
                let name = String::from_utf8(raw)
                    .ok()
                    .filter(|n| valid_file_name(n))
                    .ok_or_else(|| body.damaged("a file whose name is not one a backup holds"))?;
                if !names.insert(name.clone()) {
                    return Err(body.damaged(format!("{name} twice")));
                }
                let mut out = sink.file(&name)?;
                loop {
                    let len = body.bounded("a piece of a file", MAX_PIECE_BYTES)?;
                    if len == 0 {
                        break;
                    }
                    let mut left = len as usize;
                    while left > 0 {
                        let s = body.some(left)?;
                        left -= s.len();
                        found.file_bytes += s.len() as u64;
                        out.write_all(s).map_err(io_at(Path::new(&name)))?;
                    }
                }
                out.flush().map_err(io_at(Path::new(&name)))?;
                found.files += 1;
            }
            t => return Err(body.damaged(format!("an entry of unknown kind {t}"))),
        }
    }
    // The end entry ends the last block; then the end block, the manifest, the
    // checksum.
    if body.pos != body.block.len() || body.next_block()? {
        return Err(body.damaged("entries after the end entry"));
    }
    let mut input = body.input;
    let at = input.offset;
    let len = input.u32("the manifest")?;
    if len > MAX_MANIFEST_BYTES {
        return Err(BackupError::TooLarge {
            what: "a manifest",
            len: len.into(),
            max: MAX_MANIFEST_BYTES.into(),
            offset: at,
        });
    }
    let mut json = vec![0u8; len as usize];
    input.exact(&mut json, "the manifest")?;
    let computed = input.sha.clone().finish();
    let mut stored = [0u8; DIGEST_BYTES];
    let at = input.offset;
    let mut got = 0;
    while got < DIGEST_BYTES {
        match input.inner.read(&mut stored[got..]) {
            Ok(0) => {
                return Err(BackupError::Truncated {
                    offset: at + got as u64,
                    inside: "the checksum",
                })
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_at(Path::new("the backup"))(e)),
        }
    }
    if stored != computed.as_ref() {
        return Err(BackupError::Checksum {
            stored: hex(&stored),
            computed: hex(computed.as_ref()),
        });
    }
    let mut extra = [0u8; 1];
    loop {
        match input.inner.read(&mut extra) {
            Ok(0) => break,
            Ok(_) => {
                return Err(BackupError::Damaged {
                    offset: at + DIGEST_BYTES as u64,
                    reason: "bytes after the checksum".into(),
                })
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(io_at(Path::new("the backup"))(e)),
        }
    }
    // Only a manifest the checksum vouches for is read.
    let manifest: Manifest =
        serde_json::from_slice(&json).map_err(|e| BackupError::Manifest(e.to_string()))?;
    manifest.counts.check(&found)?;
    Ok(manifest)
}
