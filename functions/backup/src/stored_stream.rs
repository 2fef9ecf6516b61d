//! Turns the snapshot's chunks into the parts of the stored object, in
//! bounded memory: optional zstd compression, cutting into parts of a fixed
//! size, SHA-256 over exactly the bytes that are uploaded, and a check of the
//! digest etcd appends to the snapshot.
//!
//! Synchronous and free of I/O, so it is tested without S3 or etcd.

use std::io::Write;

use bytes::Bytes;
use etcd_aws_core::backup::manifest::Compression;
use etcd_aws_io::backup_store::hex;
use sha2::{Digest, Sha256};

/// Bytes etcd appends to the database in a snapshot stream: its SHA-256.
const TRAILER_LEN: usize = 32;

#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("zstd compression failed: {0}")]
    Compression(#[source] std::io::Error),
    #[error("the snapshot stream is damaged: {0}")]
    Damaged(String),
}

/// What was stored, once the stream is finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSummary {
    /// Lower-case hex SHA-256 of the stored (possibly compressed) bytes.
    pub sha256: String,
    pub stored_bytes: u64,
    /// Snapshot bytes as etcd sent them, its trailing digest included.
    pub snapshot_bytes: u64,
}

enum Sink {
    Plain(Vec<u8>),
    Zstd(zstd::stream::write::Encoder<'static, Vec<u8>>),
}

impl Sink {
    fn buffer(&mut self) -> &mut Vec<u8> {
        match self {
            Sink::Plain(buffer) => buffer,
            Sink::Zstd(encoder) => encoder.get_mut(),
        }
    }
}

/// Feed it the snapshot's chunks in order; it hands back full parts.
pub struct StoredStream {
    sink: Sink,
    part_size: usize,
    hasher: Sha256,
    stored_bytes: u64,
    snapshot: SnapshotDigest,
}

impl StoredStream {
    /// `part_size` is the size of every part but the last.
    pub fn new(
        compression: Compression,
        zstd_level: i32,
        part_size: usize,
    ) -> Result<Self, StreamError> {
        // Room for a part plus one chunk, so cutting a part never reallocates.
        let buffer = Vec::with_capacity(part_size + 256 * 1024);
        let sink = match compression {
            Compression::None => Sink::Plain(buffer),
            Compression::Zstd => Sink::Zstd(
                zstd::stream::write::Encoder::new(buffer, zstd_level)
                    .map_err(StreamError::Compression)?,
            ),
        };
        Ok(Self {
            sink,
            part_size: part_size.max(1),
            hasher: Sha256::new(),
            stored_bytes: 0,
            snapshot: SnapshotDigest::default(),
        })
    }

    /// Takes one chunk; returns the parts that are now full, in order.
    pub fn write(&mut self, chunk: &[u8]) -> Result<Vec<Bytes>, StreamError> {
        self.snapshot.update(chunk);
        match &mut self.sink {
            Sink::Plain(buffer) => buffer.extend_from_slice(chunk),
            Sink::Zstd(encoder) => encoder.write_all(chunk).map_err(StreamError::Compression)?,
        }
        Ok(self.full_parts())
    }

    /// Ends the stream: checks etcd's digest, flushes the compressor, and
    /// returns the remaining parts (the last one may be short, or there may be
    /// none) and the summary of everything stored.
    pub fn finish(mut self) -> Result<(Vec<Bytes>, StoredSummary), StreamError> {
        let snapshot_bytes = std::mem::take(&mut self.snapshot).verify()?;
        let mut parts = self.full_parts();
        let rest = match self.sink {
            Sink::Plain(buffer) => buffer,
            Sink::Zstd(encoder) => encoder.finish().map_err(StreamError::Compression)?,
        };
        let mut rest = rest.as_slice();
        while !rest.is_empty() {
            let (part, tail) = rest.split_at(rest.len().min(self.part_size));
            self.hasher.update(part);
            self.stored_bytes += part.len() as u64;
            parts.push(Bytes::copy_from_slice(part));
            rest = tail;
        }
        Ok((
            parts,
            StoredSummary {
                sha256: hex(&self.hasher.finalize()),
                stored_bytes: self.stored_bytes,
                snapshot_bytes,
            },
        ))
    }

    fn full_parts(&mut self) -> Vec<Bytes> {
        let part_size = self.part_size;
        let mut parts = Vec::new();
        let buffer = self.sink.buffer();
        while buffer.len() >= part_size {
            let mut rest = Vec::with_capacity(buffer.capacity());
            rest.extend_from_slice(&buffer[part_size..]);
            buffer.truncate(part_size);
            let part = std::mem::replace(buffer, rest);
            self.hasher.update(&part);
            self.stored_bytes += part.len() as u64;
            parts.push(Bytes::from(part));
        }
        parts
    }
}

/// SHA-256 of the database as it streams past, holding back the last 32
/// bytes, which are etcd's own digest of the database. Matching them proves
/// the stream arrived whole before the backup is published.
#[derive(Default)]
struct SnapshotDigest {
    hasher: Sha256,
    tail: Vec<u8>,
    total: u64,
}

impl SnapshotDigest {
    fn update(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if chunk.len() >= TRAILER_LEN {
            self.hasher.update(&self.tail);
            let (body, tail) = chunk.split_at(chunk.len() - TRAILER_LEN);
            self.hasher.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(tail);
        } else {
            self.tail.extend_from_slice(chunk);
            let excess = self.tail.len().saturating_sub(TRAILER_LEN);
            self.hasher.update(&self.tail[..excess]);
            self.tail.drain(..excess);
        }
    }

    fn verify(self) -> Result<u64, StreamError> {
        if self.total <= TRAILER_LEN as u64 {
            return Err(StreamError::Damaged(format!(
                "{} bytes is too short for an etcd snapshot",
                self.total
            )));
        }
        let computed = self.hasher.finalize();
        if computed.as_slice() != self.tail.as_slice() {
            return Err(StreamError::Damaged(format!(
                "the database's SHA-256 is {} but etcd's trailer says {}",
                hex(&computed),
                hex(&self.tail)
            )));
        }
        Ok(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A database of `len` bytes followed by its SHA-256, as etcd streams it.
    /// Half noise, half zeros: it compresses, but not to nothing.
    fn snapshot(len: usize) -> Vec<u8> {
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut data: Vec<u8> = (0..len)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                if i % 2 == 0 {
                    (state >> 24) as u8
                } else {
                    0
                }
            })
            .collect();
        let digest = Sha256::digest(&data);
        data.extend_from_slice(&digest);
        data
    }

    fn stream_in_chunks(
        data: &[u8],
        chunk: usize,
        compression: Compression,
        part_size: usize,
    ) -> Result<(Vec<Bytes>, StoredSummary), StreamError> {
        let mut stream = StoredStream::new(compression, 3, part_size)?;
        let mut parts = Vec::new();
        for piece in data.chunks(chunk) {
            parts.extend(stream.write(piece)?);
        }
        let (rest, summary) = stream.finish()?;
        parts.extend(rest);
        Ok((parts, summary))
    }

    fn joined(parts: &[Bytes]) -> Vec<u8> {
        parts.iter().flat_map(|p| p.iter().copied()).collect()
    }

    #[test]
    fn uncompressed_parts_join_to_the_snapshot() -> Result<(), StreamError> {
        let data = snapshot(100_000);
        let (parts, summary) = stream_in_chunks(&data, 4_096, Compression::None, 30_000)?;
        assert_eq!(joined(&parts), data);
        assert_eq!(summary.stored_bytes, data.len() as u64);
        assert_eq!(summary.snapshot_bytes, data.len() as u64);
        Ok(())
    }

    #[test]
    fn every_part_but_the_last_has_the_part_size() -> Result<(), StreamError> {
        let data = snapshot(100_000);
        let (parts, _) = stream_in_chunks(&data, 4_096, Compression::None, 30_000)?;
        let sizes: Vec<usize> = parts.iter().map(Bytes::len).collect();
        assert_eq!(sizes, vec![30_000, 30_000, 30_000, 10_032]);
        Ok(())
    }

    #[test]
    fn compressed_parts_decompress_to_the_snapshot() -> Result<(), StreamError> {
        let data = snapshot(200_000);
        let (parts, summary) = stream_in_chunks(&data, 4_096, Compression::Zstd, 8_192)?;
        let stored = joined(&parts);
        assert!(parts.len() > 1, "{} parts", parts.len());
        assert_eq!(summary.stored_bytes, stored.len() as u64);
        assert_eq!(zstd::decode_all(stored.as_slice()).ok(), Some(data));
        Ok(())
    }

    #[test]
    fn the_checksum_is_over_the_stored_bytes() -> Result<(), StreamError> {
        let data = snapshot(50_000);
        let (parts, summary) = stream_in_chunks(&data, 1_000, Compression::Zstd, 10_000)?;
        assert_eq!(summary.sha256, hex(&Sha256::digest(joined(&parts))));
        Ok(())
    }

    #[test]
    fn chunks_smaller_than_the_trailer_are_checked_as_well() -> Result<(), StreamError> {
        let data = snapshot(1_000);
        let (parts, _) = stream_in_chunks(&data, 7, Compression::None, 300)?;
        assert_eq!(joined(&parts), data);
        Ok(())
    }

    #[test]
    fn a_trailer_that_does_not_match_the_database_is_refused() {
        let mut data = snapshot(10_000);
        data[100] ^= 1;
        let result = stream_in_chunks(&data, 4_096, Compression::None, 1_000);
        assert!(matches!(result, Err(StreamError::Damaged(_))), "{result:?}");
    }

    #[test]
    fn a_stream_cut_short_is_refused() {
        let data = snapshot(10_000);
        let result = stream_in_chunks(&data[..9_000], 4_096, Compression::None, 1_000);
        assert!(matches!(result, Err(StreamError::Damaged(_))), "{result:?}");
    }

    #[test]
    fn an_empty_stream_is_refused() {
        let result = stream_in_chunks(&[], 4_096, Compression::None, 1_000);
        assert!(matches!(result, Err(StreamError::Damaged(_))), "{result:?}");
    }

    #[test]
    fn memory_stays_within_a_part_and_a_chunk() -> Result<(), StreamError> {
        let mut stream = StoredStream::new(Compression::None, 3, 10_000)?;
        let data = snapshot(1_000_000);
        for piece in data.chunks(4_096) {
            stream.write(piece)?;
            assert!(stream.sink.buffer().len() < 10_000 + 4_096);
        }
        Ok(())
    }
}
