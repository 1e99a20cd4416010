//! Blocks: the rows of one batch copied back to back into one buffer, for consumers that
//! pay per object crossing into them (bindings): one copy of the block, then rows cut from it.
//!
//! Layout: every row's JSON text followed by one NUL byte, with nothing in between, and the
//! start of every row plus the end of the block in `offsets` (`rows + 1` entries, the first
//! 0). Row `i` is `data[offsets[i]..offsets[i + 1] - 1]`.
//!
//! Why a copy rather than the chunk's own memory: a chunk is a region of the socket read
//! buffer, and between two rows lie the next DataRow's header (tag, length, column count,
//! column length: 11 bytes, of which the reader turns the tag into the previous row's NUL). A
//! block of the chunk in place would hand a binding those bytes too, so it would still need
//! one slice per row by offset. Packed, the rows are separated by exactly one NUL, a byte
//! JSON text from PostgreSQL never contains, so a binding can decode the block once and
//! split it on NUL in one native call. The copy costs one `memcpy` per row in the library;
//! the rows of the chunk are released by the next call as before.

use super::{transcode, Next, Stream, Wait};
use crate::error::{Error, Result};

/// The rows of one batch, back to back, each followed by a NUL byte (see the module docs).
/// Reused from call to call: its memory grows to the largest batch and stays.
#[derive(Debug)]
pub struct Block {
    data: Vec<u8>,
    offsets: Vec<usize>,
}

impl Block {
    pub fn new() -> Block {
        Block {
            data: Vec::new(),
            offsets: vec![0],
        }
    }

    /// Rows in the block.
    pub fn len(&self) -> usize {
        self.offsets.len().saturating_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The rows, each followed by its NUL byte.
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// `len() + 1` offsets into [`Block::data`]: row `i` starts at `offsets[i]`, and its NUL
    /// is at `offsets[i + 1] - 1`; the last entry is `data().len()`.
    pub fn offsets(&self) -> &[usize] {
        &self.offsets
    }

    /// Row `i` without its NUL.
    pub fn row(&self, i: usize) -> &[u8] {
        &self.data[self.offsets[i]..self.offsets[i + 1] - 1]
    }

    /// The rows in order, without their NULs.
    pub fn rows(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.offsets.windows(2).map(|w| &self.data[w[0]..w[1] - 1])
    }

    /// Bytes of memory the block holds (its capacity), for accounting by the caller.
    pub fn capacity_bytes(&self) -> usize {
        self.data.capacity() + self.offsets.capacity() * std::mem::size_of::<usize>()
    }

    pub(crate) fn clear(&mut self) {
        self.data.clear();
        self.offsets.clear();
        self.offsets.push(0);
    }

    /// Empty the block for a `next_block` call asking for at most `max_rows` rows (at least
    /// one), serial or parallel alike.
    pub(crate) fn begin(&mut self, max_rows: usize) -> Result<()> {
        self.clear();
        if max_rows == 0 {
            return Err(Error::invalid("block: max_rows must be at least 1"));
        }
        Ok(())
    }

    #[inline]
    pub(crate) fn push(&mut self, row: &[u8]) {
        self.data.reserve(row.len() + 1);
        self.data.extend_from_slice(row);
        self.data.push(0);
        self.offsets.push(self.data.len());
    }
}

/// Whether `row` holds a NUL byte (the memchr crate's vectorised search: about a third of
/// the time of `<[u8]>::contains` on rows of ~430 bytes, measured per row of a block).
#[inline]
pub(crate) fn has_nul(row: &[u8]) -> bool {
    memchr::memchr(0, row).is_some()
}

/// The refusal of a row holding a NUL byte (`which`: "row 7", "a row"), serial or parallel.
pub(crate) fn nul_row_error(which: &str) -> Error {
    Error::state(format!(
        "{which} holds a NUL byte, which a block cannot separate (JSON text never holds one); \
         read it with fw_stream_next"
    ))
}

/// A row of [`transcode_rows`]' output in Latin-1 (ISO-8859-1): one byte per character, the
/// byte being the code point.
pub const ROW_LATIN1: u8 = 1;
/// A row of [`transcode_rows`]' output in UTF-16LE: two bytes per code unit.
pub const ROW_UTF16: u8 = 2;

/// The rows of a block (`data` and `offsets` laid out as [`Block`]'s) re-encoded for string
/// types that store text one or two bytes per character (V8, CPython, Java, .NET), where
/// making a string from Latin-1 or UTF-16 is a copy and from UTF-8 a decode. Row `i` goes to
/// `out[ends[i - 1]..ends[i]]` (`ends[-1]` being 0), without its NUL: as Latin-1 when every
/// character of it is below U+0100 (`kinds[i] = ROW_LATIN1`; ASCII rows are copied as they
/// are), else as UTF-16LE (`ROW_UTF16`; invalid UTF-8 becomes U+FFFD, as decoders do).
/// `scratch` holds the UTF-16 of a row that is not UTF-8 on the way (kept by the caller from
/// call to call). Returns
/// the bytes written; `None` (nothing of use written) when `out` is shorter than
/// `2 * data.len()` or `ends` / `kinds` shorter than the rows.
pub fn transcode_rows(
    data: &[u8],
    offsets: &[usize],
    out: &mut [u8],
    ends: &mut [usize],
    kinds: &mut [u8],
    scratch: &mut Vec<u16>,
) -> Option<usize> {
    let n = offsets.len().checked_sub(1)?;
    if out.len() < 2 * data.len() || ends.len() < n || kinds.len() < n {
        return None;
    }
    let mut pos = 0;
    for (i, w) in offsets.windows(2).enumerate() {
        let row = data.get(w[0]..w[1].checked_sub(1)?)?;
        // Room: each row before this one took at most twice its bytes, so at least twice
        // this row's bytes (its NUL included) are left.
        let dst = &mut out[pos..];
        if let Some(n) = transcode::to_latin1(row, dst) {
            pos += n;
            kinds[i] = ROW_LATIN1;
        } else {
            pos += transcode::to_utf16le(row, dst, scratch);
            kinds[i] = ROW_UTF16;
        }
        ends[i] = pos;
    }
    Some(pos)
}

impl Default for Block {
    fn default() -> Block {
        Block::new()
    }
}

/// What [`Stream::next_block`] produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Filled {
    /// The block holds this many rows (at least one).
    Rows(usize),
    /// No row: the status (`Done`, `WouldBlock`, `Timeout`, `Paused`); the block is empty.
    Status(Next<'static>),
}

impl Stream {
    /// Fill `block` with the next rows: the first as [`Stream::next`] finds it (waiting as
    /// `wait` says), then the rows of the same chunk that follow it, until `max_rows` rows or
    /// until the block holds `max_bytes` bytes or more (so at most `max_bytes` plus one row).
    /// Rows already received are delivered before an error, as with `next`. The block's
    /// previous rows are dropped. A row holding a NUL byte (never sent by PostgreSQL) cannot
    /// be separated in a block: it ends the block before it, and a call that starts with it
    /// fails with a `State` error, leaving it to [`Stream::next`].
    pub fn next_block(
        &mut self,
        block: &mut Block,
        max_rows: usize,
        max_bytes: usize,
        wait: Wait,
    ) -> Result<Filled> {
        block.begin(max_rows)?;
        match self.next(wait)? {
            Next::Row(r) if has_nul(r) => {
                // Not JSON text: PostgreSQL never sends one (text cannot hold a NUL byte).
                let i = self.idx - 1;
                self.put_back(i);
                return Err(nul_row_error(&format!("row {}", self.yielded + 1)));
            }
            Next::Row(r) => block.push(r),
            Next::Done => return Ok(Filled::Status(Next::Done)),
            Next::WouldBlock => return Ok(Filled::Status(Next::WouldBlock)),
            Next::Timeout => return Ok(Filled::Status(Next::Timeout)),
            Next::Paused => return Ok(Filled::Status(Next::Paused)),
        }
        // The rest of the chunk being read: no wait, lock or refill (the next call takes the
        // next chunk and releases this one). A row holding a NUL byte ends the block and is
        // left for the next call (which fails on it).
        while block.len() < max_rows && block.data.len() < max_bytes {
            let Some(i) = self.advance() else { break };
            let chunk = self.current.as_ref().expect("advance found a row");
            let row = chunk.row(i);
            if has_nul(row) {
                self.put_back(i);
                break;
            }
            block.push(row);
        }
        Ok(Filled::Rows(block.len()))
    }

    /// Undo `advance()` for row `i` of the current chunk: the next call yields it again.
    fn put_back(&mut self, i: usize) {
        self.idx = i;
        self.yielded -= 1;
        self.control
            .shared
            .rows_yielded
            .store(self.yielded, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The rows of `transcode_rows`' output, decoded back to Rust strings.
    fn decode_transcoded(out: &[u8], ends: &[usize], kinds: &[u8]) -> Vec<String> {
        let mut start = 0;
        let mut rows = Vec::new();
        for (&end, &kind) in ends.iter().zip(kinds) {
            let bytes = &out[start..end];
            rows.push(match kind {
                ROW_LATIN1 => bytes.iter().map(|&b| char::from(b)).collect(),
                ROW_UTF16 => {
                    let units: Vec<u16> = bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_le_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).unwrap()
                }
                k => panic!("kind {k}"),
            });
            start = end;
        }
        rows
    }

    #[test]
    fn transcoded_rows_are_latin1_below_u0100_else_utf16() {
        let rows = [
            "{\"a\": 1}",
            "{\"city\": \"Zürich\", \"name\": \"José Núñez\", \"x\": \"ÿ\"}",
            "",
            "{\"name\": \"東京 太郎\", \"city\": \"Zürich\"}",
            "\"Ali 🚀\"",
            "\"Олег\"",
            "\"Ā\"",
        ];
        let mut b = Block::new();
        for r in rows {
            b.push(r.as_bytes());
        }
        // Every row UTF-16 and two bytes per byte is the most the output can need.
        let mut out = vec![0xAAu8; 2 * b.data().len()];
        let mut ends = vec![usize::MAX; rows.len()];
        let mut kinds = vec![0u8; rows.len()];
        let mut scratch = Vec::new();
        let n = transcode_rows(
            b.data(),
            b.offsets(),
            &mut out,
            &mut ends,
            &mut kinds,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(kinds, [1, 1, 1, 2, 2, 2, 2]);
        assert_eq!(n, ends[rows.len() - 1]);
        assert_eq!(decode_transcoded(&out, &ends, &kinds), rows);
        // Latin-1 rows are one byte per character, UTF-16 rows two per code unit.
        for (i, r) in rows.iter().enumerate() {
            let len = ends[i] - if i == 0 { 0 } else { ends[i - 1] };
            let want = if kinds[i] == ROW_LATIN1 {
                r.chars().count()
            } else {
                2 * r.encode_utf16().count()
            };
            assert_eq!(len, want, "row {i}");
        }

        // All UTF-16 at the largest ratio (an ASCII row is Latin-1, so: one 2-byte character
        // per row, 3 UTF-8 bytes incl. the NUL, 2 bytes of UTF-16): fits 2 * len.
        let mut b = Block::new();
        for _ in 0..5 {
            b.push("Ā".as_bytes());
        }
        let mut out = vec![0u8; 2 * b.data().len()];
        let (mut ends, mut kinds) = (vec![0; 5], vec![0; 5]);
        let n = transcode_rows(
            b.data(),
            b.offsets(),
            &mut out,
            &mut ends,
            &mut kinds,
            &mut scratch,
        );
        assert_eq!(n, Some(10));
        assert_eq!(decode_transcoded(&out, &ends, &kinds), vec!["Ā"; 5]);

        // Invalid UTF-8 becomes U+FFFD, as a decoder makes it.
        let mut b = Block::new();
        b.push(b"\"\xC3\"");
        b.push(b"\"\xFF\"");
        let mut out = vec![0u8; 2 * b.data().len()];
        let (mut ends, mut kinds) = (vec![0; 2], vec![0; 2]);
        transcode_rows(
            b.data(),
            b.offsets(),
            &mut out,
            &mut ends,
            &mut kinds,
            &mut scratch,
        )
        .unwrap();
        assert_eq!(
            decode_transcoded(&out, &ends, &kinds),
            ["\"\u{FFFD}\"", "\"\u{FFFD}\""]
        );

        // Too little room: none.
        let mut short = vec![0u8; 2 * b.data().len() - 1];
        assert_eq!(
            transcode_rows(
                b.data(),
                b.offsets(),
                &mut short,
                &mut ends,
                &mut kinds,
                &mut scratch
            ),
            None
        );
        assert_eq!(
            transcode_rows(
                b.data(),
                b.offsets(),
                &mut out,
                &mut ends[..1],
                &mut kinds,
                &mut scratch
            ),
            None
        );
    }

    #[test]
    fn layout_is_rows_each_followed_by_nul() {
        let mut b = Block::new();
        assert!(b.is_empty());
        assert_eq!(b.offsets(), &[0]);
        b.push(b"{\"a\":1}");
        b.push(b"");
        b.push(b"[1,2]");
        assert_eq!(b.len(), 3);
        assert_eq!(b.data(), b"{\"a\":1}\0\0[1,2]\0");
        assert_eq!(b.offsets(), &[0, 8, 9, 15]);
        assert_eq!(b.row(1), b"");
        let rows: Vec<&[u8]> = b.rows().collect();
        assert_eq!(rows, vec![&b"{\"a\":1}"[..], b"", b"[1,2]"]);
        // Splitting on NUL gives the rows back (the last piece is the empty tail).
        let parts: Vec<&[u8]> = b.data()[..b.data().len() - 1].split(|&c| c == 0).collect();
        assert_eq!(parts, rows);
        b.clear();
        assert_eq!(b.len(), 0);
        assert_eq!(b.data(), b"");
        assert_eq!(b.offsets(), &[0]);
    }
}
