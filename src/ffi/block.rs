//! `fw_block`: the rows of one batch as one contiguous byte range (`fw_stream_next_block`).

use std::ffi::c_char;

use crate::stream::block::Block;

/// The rows of one batch as one block of memory, filled by `fw_stream_next_block`:
///
/// ```text
/// data:    row 0 \0 row 1 \0 ... row n-1 \0      (len bytes, NULs included)
/// offsets: 0, start of row 1, ..., start of row n-1, len   (n + 1 entries)
/// ```
///
/// Row `i` starts at `data + offsets[i]` and is `offsets[i + 1] - offsets[i] - 1` bytes long,
/// followed by its NUL. No row holds a NUL byte (see `fw_stream_next_block`), so splitting
/// `data[0 .. len - 1]` on NUL gives exactly the `n` rows. Everything is owned by the stream and
/// valid until the next call on it (or `fw_stream_free`).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
#[allow(non_camel_case_types)]
pub struct fw_block {
    /// The rows, back to back, each followed by a NUL byte.
    pub data: *const c_char,
    /// Bytes at `data`, the NULs included (`offsets[n]`).
    pub len: usize,
    /// `n + 1` offsets into `data`: where each row starts, then `len`.
    pub offsets: *const usize,
    /// Rows in the block (at least 1).
    pub n: usize,
}

impl fw_block {
    /// The C view of `b` (valid as long as `b` is not changed).
    pub(crate) fn of(b: &Block) -> fw_block {
        fw_block {
            data: b.data().as_ptr().cast(),
            len: b.data().len(),
            offsets: b.offsets().as_ptr(),
            n: b.len(),
        }
    }
}
