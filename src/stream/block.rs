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

use super::{Next, Stream, Wait};
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

    #[inline]
    pub(crate) fn push(&mut self, row: &[u8]) {
        self.data.reserve(row.len() + 1);
        self.data.extend_from_slice(row);
        self.data.push(0);
        self.offsets.push(self.data.len());
    }
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
        block.clear();
        if max_rows == 0 {
            return Err(Error::invalid("block: max_rows must be at least 1"));
        }
        match self.next(wait)? {
            Next::Row(r) if r.contains(&0) => {
                // Not JSON text: PostgreSQL never sends one (text cannot hold a NUL byte).
                let i = self.idx - 1;
                self.put_back(i);
                return Err(Error::state(format!(
                    "row {} holds a NUL byte, which a block cannot separate (JSON text never \
                     holds one); read it with fw_stream_next",
                    self.yielded + 1
                )));
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
            if row.contains(&0) {
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
