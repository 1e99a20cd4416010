//! Chunks: a run of rows handed from the reader to the consumer as one allocation.
//!
//! A chunk is a region of the socket read buffer (no copy). The reader writes a NUL after each
//! row's JSON text in place before handing the chunk over: for every row but the last, that
//! byte is the tag of the next message, already parsed. The last row gets the byte after it
//! when the reader could append one (the row ends the read buffer and the buffer has room:
//! always so for a large row, whose buffer is sized for it); otherwise it is moved one byte
//! back over its (already parsed) column-length field, so its NUL also lands in the chunk.

use bytes::Bytes;

/// Row length marking an SQL NULL `data` value.
pub(crate) const NULL_ROW: u32 = u32::MAX;

/// What an SQL NULL `data` value yields: the JSON literal `null`.
pub(crate) static NULL_JSON: &[u8] = b"null\0";

/// Rows of one chunk: `(offset, len)` into `buf`, with `buf[offset + len] == 0`.
pub struct Chunk {
    pub(crate) buf: Bytes,
    pub(crate) rows: Vec<(u32, u32)>,
    /// Bytes this chunk holds (region length plus the row table), for memory accounting.
    pub(crate) bytes: usize,
}

impl Chunk {
    pub(crate) fn new(buf: Bytes, rows: Vec<(u32, u32)>) -> Chunk {
        let bytes = buf.len() + rows.capacity() * std::mem::size_of::<(u32, u32)>();
        Chunk { buf, rows, bytes }
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Row `i` as bytes (without the NUL that follows it in memory).
    #[inline]
    pub(crate) fn row(&self, i: usize) -> &[u8] {
        let (off, len) = self.rows[i];
        if len == NULL_ROW {
            &NULL_JSON[..4]
        } else {
            &self.buf[off as usize..off as usize + len as usize]
        }
    }
}

/// Write the NUL terminators of the rows in `region[..end]` (see the module docs) and adjust
/// the offset of the last row. `rows` are `(data_offset, data_len)`; every row's data ends
/// either at the next message's tag byte or, for the last row, at `end`.
pub(crate) fn terminate_rows(region: &mut [u8], rows: &mut [(u32, u32)]) {
    let n = rows.len();
    for (i, (off, len)) in rows.iter_mut().enumerate() {
        if *len == NULL_ROW {
            continue;
        }
        let start = *off as usize;
        let stop = start + *len as usize;
        if i + 1 < n || stop < region.len() {
            // The next message's tag byte (parsed already, free to overwrite), or for the last
            // row a byte the reader appended for this NUL (see `Framer::emit`) or the
            // tag of a rejected row that follows it.
            region[stop] = 0;
        } else {
            // Move the last row one byte back, over the low byte of its column length.
            region.copy_within(start..stop, start - 1);
            region[stop - 1] = 0;
            *off -= 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Build DataRow messages for `rows` (None = NULL) and return bytes and data offsets.
    fn data_rows(rows: &[Option<&[u8]>]) -> (Vec<u8>, Vec<(u32, u32)>) {
        let mut out = Vec::new();
        let mut refs = Vec::new();
        for r in rows {
            out.push(b'D');
            let len = 4 + 2 + 4 + r.map_or(0, |d| d.len());
            out.extend_from_slice(&(len as u32).to_be_bytes());
            out.extend_from_slice(&1u16.to_be_bytes());
            match r {
                Some(d) => {
                    out.extend_from_slice(&(d.len() as i32).to_be_bytes());
                    refs.push((out.len() as u32, d.len() as u32));
                    out.extend_from_slice(d);
                }
                None => {
                    out.extend_from_slice(&(-1i32).to_be_bytes());
                    refs.push((0, NULL_ROW));
                }
            }
        }
        (out, refs)
    }

    #[test]
    fn rows_are_nul_terminated_in_place() {
        let input: Vec<Option<&[u8]>> = vec![
            Some(b"{\"a\":1}"),
            None,
            Some(b"[]"),
            Some(b"\"x\\u0000y\""),
        ];
        let (mut buf, mut rows) = data_rows(&input);
        terminate_rows(&mut buf, &mut rows);
        let chunk = Chunk::new(Bytes::from(buf), rows);
        assert_eq!(chunk.len(), 4);
        for (i, want) in input.iter().enumerate() {
            let got = chunk.row(i);
            assert_eq!(got, want.unwrap_or(b"null"));
            let (off, len) = chunk.rows[i];
            if len != NULL_ROW {
                assert_eq!(chunk.buf[(off + len) as usize], 0, "row {i} not terminated");
            }
        }
    }

    #[test]
    fn single_row_and_empty_row() {
        let (mut buf, mut rows) = data_rows(&[Some(b"")]);
        terminate_rows(&mut buf, &mut rows);
        let c = Chunk::new(Bytes::from(buf), rows);
        assert_eq!(c.row(0), b"");
        assert_eq!(c.buf[c.rows[0].0 as usize], 0);
    }
}
