//! `fw_block`: the rows of one batch as one contiguous byte range (`fw_stream_next_block`).

use std::cell::RefCell;
use std::ffi::c_char;

use super::{fw_status, guard, null};
use crate::error::Error;
use crate::stream::block::{transcode_rows, Block};

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

/// The rows of a block filled by `fw_stream_next_block` re-encoded for string types that
/// store text one or two bytes per character (V8, CPython, Java, .NET), where making a string
/// from Latin-1 or UTF-16 is a copy and from UTF-8 a decode. Row `i` is written to
/// `out[ends[i - 1] .. ends[i]]` (`ends[-1]` being 0), without a NUL: in Latin-1 (ISO-8859-1,
/// one byte per character) when every character of it is below U+0100, and then
/// `kinds[i] = 1` (ASCII rows are copied as they are); else in UTF-16LE (two bytes per code
/// unit; invalid UTF-8 becomes U+FFFD) and `kinds[i] = 2`. `out` has `out_cap` bytes, at
/// least `2 * block->len`; `ends` and `kinds` have `block->n` entries; else
/// `FW_E_INVALID_ARGUMENT` (nothing written). NULL arguments are `FW_E_NULL`. Reads the block
/// only: call it before the stream's next call.
#[no_mangle]
pub extern "C" fn fw_block_transcode(
    block: *const fw_block,
    out: *mut u8,
    out_cap: usize,
    ends: *mut usize,
    kinds: *mut u8,
) -> fw_status {
    thread_local! {
        static SCRATCH: RefCell<Vec<u16>> = const { RefCell::new(Vec::new()) };
    }
    guard(|| {
        for (p, what) in [
            (block.cast::<u8>(), "block"),
            (out.cast_const(), "out"),
            (ends.cast::<u8>().cast_const(), "ends"),
            (kinds.cast_const(), "kinds"),
        ] {
            if p.is_null() {
                return Err(null(what));
            }
        }
        // SAFETY: `block` checked non-null; the caller passes a block filled by
        // fw_stream_next_block (or laid out as one), valid until the stream's next call.
        let b = unsafe { *block };
        if b.data.is_null() || b.offsets.is_null() {
            return Err(null(if b.data.is_null() {
                "block->data"
            } else {
                "block->offsets"
            }));
        }
        let need = b.len.saturating_mul(2);
        if out_cap < need {
            return Err(Error::invalid(format!(
                "out_cap ({out_cap}) must be at least 2 * block->len ({need})"
            )));
        }
        // SAFETY: a block's `data` holds `len` bytes and `offsets` `n + 1` entries.
        let data = unsafe { std::slice::from_raw_parts(b.data.cast::<u8>(), b.len) };
        // SAFETY: as above.
        let offsets = unsafe { std::slice::from_raw_parts(b.offsets, b.n + 1) };
        if offsets[0] != 0 || offsets[b.n] != b.len || offsets.windows(2).any(|w| w[1] <= w[0]) {
            return Err(Error::invalid(
                "block->offsets must rise from 0 to block->len, each row followed by its NUL",
            ));
        }
        // SAFETY: `out` checked non-null with `out_cap` writable bytes, `ends` and `kinds`
        // with `n` entries (the caller's contract); none overlaps the block (the stream's).
        let (out, ends, kinds) = unsafe {
            (
                std::slice::from_raw_parts_mut(out, out_cap),
                std::slice::from_raw_parts_mut(ends, b.n),
                std::slice::from_raw_parts_mut(kinds, b.n),
            )
        };
        SCRATCH
            .with(|sc| transcode_rows(data, offsets, out, ends, kinds, &mut sc.borrow_mut()))
            .ok_or_else(|| Error::invalid("the block does not fit out, ends and kinds"))?;
        Ok(fw_status::FW_OK)
    })
}
