//! The framer: turns the bytes read from the socket into chunks, without I/O. It splits
//! every complete message out of the read buffer; DataRows become rows of the chunk being
//! built (references into the buffer, no copy), which is handed to a [`ChunkSink`] when it
//! reaches the chunk size or when the buffer has no further complete message (a row never
//! waits for a chunk to fill); the other messages go to the [`ProtocolState`]. The built-in
//! JSON predicates run here, before rows enter the channel.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use postgres_protocol::message::backend::Message;

use super::plan::{Pending, MIN_DATA_ROW, READ_SIZE, TABLE_SLACK};
use super::protocol::DATA_ROW_HEAD;
use super::protocol::{data_row_column, row_fault_error, row_limit_message, ProtocolState};
use crate::error::{Error, ErrorKind, Result};
use crate::metrics;
use crate::protocol::Phase;
use crate::stream::chunk::{terminate_rows, Chunk, NULL_ROW};
use crate::stream::options::MemoryLimits;
use crate::stream::RowPredicate;

/// What the buffer allows next.
#[derive(Debug)]
pub(crate) enum Flow {
    /// Need more bytes from the socket, and the message the buffer ends with, if any.
    NeedMore(Option<Pending>),
    /// The query is over (ReadyForQuery received).
    Finished,
}

/// What the framer hands over: a chunk (none when every row parsed since the last one was
/// rejected by the built-in predicates) and what the stream's counters need.
pub(crate) struct Made {
    pub(crate) chunk: Option<Chunk>,
    /// Bytes of the JSON values of the chunk's rows.
    pub(crate) data_bytes: u64,
    /// Rows the built-in predicates rejected since the last hand-over, and their bytes:
    /// counted as received and filtered.
    pub(crate) rejected: u64,
    pub(crate) rejected_bytes: u64,
}

/// Where the framer's chunks go (the stream's channel; a vector in tests).
pub(crate) trait ChunkSink {
    /// `buf` is the read buffer after the chunk was split off (its capacity is what the
    /// reader still holds).
    fn hand_over(&mut self, made: Made, buf: &BytesMut);
}

pub(crate) struct Framer {
    /// Row references of the chunk being built: `(data offset, len)` into the buffer.
    rows: Vec<(u32, u32)>,
    /// Parsed prefix of the buffer (all of it belongs to the chunk being built).
    pos: usize,
    pub(crate) protocol: ProtocolState,
    /// Rows of the chunk being built that the built-in JSON predicates rejected, and their
    /// JSON bytes: counted as received and filtered when the chunk is handed over.
    rejected: u64,
    rejected_bytes: u64,
    /// Built-in predicate work since the last chunk (for the parse metrics).
    parsed_rows: u64,
    parse_time: Duration,
    parse_failure_logged: bool,
    filters: Vec<Arc<dyn RowPredicate>>,
    entity: String,
    memory: MemoryLimits,
    /// The largest DataRow accepted: the row limit, and it must fit beside its table entry.
    max_row: usize,
    /// A message read whole beyond the normal reads moved what follows it to a new buffer
    /// (the reader's buffer recycling must know). Reset by the reader.
    pub(crate) replaced_buffer: bool,
}

impl Framer {
    pub(crate) fn new(
        entity: &str,
        memory: MemoryLimits,
        filters: Vec<Arc<dyn RowPredicate>>,
    ) -> Framer {
        Framer {
            rows: Vec::new(),
            pos: 0,
            protocol: ProtocolState::default(),
            rejected: 0,
            rejected_bytes: 0,
            parsed_rows: 0,
            parse_time: Duration::ZERO,
            parse_failure_logged: false,
            filters,
            entity: entity.to_string(),
            memory,
            max_row: memory.max_row_bytes().min(memory.bytes - TABLE_SLACK),
            replaced_buffer: false,
        }
    }

    /// Rows of the chunk being built (not handed over yet).
    pub(crate) fn rows_in_progress(&self) -> usize {
        self.rows.len()
    }

    /// Bytes of the row table of the chunk being built (counted in the stream's budget).
    pub(crate) fn table_bytes(&self) -> usize {
        self.rows.capacity() * super::plan::ROW_REF
    }

    /// Split every complete message in `buf`. DataRows are collected into the chunk being
    /// built, which is handed to `sink` when it reaches `chunk_size` rows or when the buffer
    /// has no further complete message: a row never waits for a chunk to fill.
    pub(crate) fn process(
        &mut self,
        buf: &mut BytesMut,
        chunk_size: usize,
        sink: &mut impl ChunkSink,
    ) -> Result<Flow> {
        let chunk_size = chunk_size.max(1);
        let plain = self.filters.is_empty();
        loop {
            if plain && self.protocol.described {
                self.take_plain_rows(buf, chunk_size);
                if self.rows.len() >= chunk_size {
                    self.emit(buf, sink);
                    continue;
                }
            }
            // One message at a time: whatever the loop above declined (another message, a
            // partial one, a NULL, a malformed or oversized row, predicates to run).
            let avail = buf.len() - self.pos;
            let p = self.pos;
            // The length is checked before any more of the message is read: at least 4, and
            // for messages other than rows within the protocol's limits.
            let Some(header) = crate::protocol::header(&buf[p..], Phase::Session)? else {
                self.emit(buf, sink);
                return Ok(Flow::NeedMore(None));
            };
            let (tag, total) = (header.tag, header.total);
            if tag == b'D' && total > self.max_row {
                self.emit(buf, sink);
                metrics::memory_limit_exceeded(&self.entity);
                return Err(Error::new(
                    ErrorKind::MemoryLimit,
                    row_limit_message(total, self.max_row, &self.memory),
                ));
            }
            if avail < total {
                self.emit(buf, sink);
                return Ok(Flow::NeedMore(Some(Pending {
                    total,
                    row: tag == b'D',
                })));
            }
            if tag == b'D' {
                self.protocol.check_row_allowed()?;
                // A whole message of at least 5 bytes: the head is there, or the row is
                // too short for one column.
                let mut h = [0u8; DATA_ROW_HEAD];
                let n = total.min(DATA_ROW_HEAD);
                h[..n].copy_from_slice(&buf[p..p + n]);
                let row = match data_row_column(&h) {
                    Ok(None) => (0, NULL_ROW),
                    Ok(Some(n)) => ((p + DATA_ROW_HEAD) as u32, n),
                    Err(fault) => return Err(row_fault_error(fault)),
                };
                self.pos += total;
                if !self.filters.is_empty() && !self.json_accepts(buf, row) {
                    // Rejected before the channel: its bytes go with the chunk's region (or
                    // are dropped at once when the chunk has no row yet).
                    self.rejected += 1;
                    if row.1 != NULL_ROW {
                        self.rejected_bytes += u64::from(row.1);
                    }
                    continue;
                }
                self.rows.push(row);
                if self.rows.len() >= chunk_size {
                    self.emit(buf, sink);
                }
                continue;
            }
            // Any other message: rows before it go out first, in order.
            self.emit(buf, sink);
            let msg = Message::parse(buf)
                .map_err(|e| {
                    metrics::protocol_error("malformed");
                    Error::protocol(format!("malformed message from the server: {e}"))
                })?
                .ok_or_else(|| Error::protocol("incomplete message after length check"))?;
            if total > READ_SIZE {
                // A message read whole beyond the normal reads (see `plan_read`): what
                // follows it moves to a buffer of its own, so that the large one is freed
                // with the message instead of staying behind the few bytes after it.
                *buf = BytesMut::from(&buf[..]);
                self.replaced_buffer = true;
            }
            if self.protocol.in_rows(msg)? {
                return Ok(Flow::Finished);
            }
        }
    }

    /// The hot loop: take consecutive complete, well-formed one-column non-NULL DataRows
    /// within the row limit into the chunk being built, up to `chunk_size` rows, reading
    /// each 11-byte head once. Stops at anything else, which `process` handles message by
    /// message (so errors are reported exactly as there).
    #[inline]
    fn take_plain_rows(&mut self, buf: &[u8], chunk_size: usize) {
        let mut p = self.pos;
        let mut room = chunk_size.saturating_sub(self.rows.len());
        if self.rows.capacity() == 0 {
            // A new chunk's row table, allocated once at the size it can reach from what the
            // buffer holds (not grown by doubling from 4 entries, then shrunk): within what
            // `plan_read` counted for the tables of this read.
            // The first message's own length bounds it further: a large row followed by
            // nothing (its buffer is planned with room for one table entry) gets one entry,
            // not one per 11 bytes of its text.
            let avail = buf.len() - p;
            let first = buf.get(p + 1..p + 5).map_or(avail, |h| {
                (u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize + 1).min(avail)
            });
            let fit = 1 + (avail - first) / MIN_DATA_ROW;
            self.rows.reserve_exact(room.min(fit));
        }
        while room > 0 {
            let Some(h) = buf.get(p..p + DATA_ROW_HEAD) else {
                break;
            };
            let h: &[u8; DATA_ROW_HEAD] = h.try_into().expect("a slice of the head's length");
            let total = u32::from_be_bytes([h[1], h[2], h[3], h[4]]) as usize + 1;
            if h[0] != b'D' || total > self.max_row || buf.len() - p < total {
                break;
            }
            let Ok(Some(n)) = data_row_column(h) else {
                break;
            };
            self.rows.push(((p + DATA_ROW_HEAD) as u32, n));
            p += total;
            room -= 1;
        }
        self.pos = p;
    }

    /// Hand the rows collected so far to `sink` as one chunk (a split of the read buffer,
    /// no copy).
    pub(crate) fn emit(&mut self, buf: &mut BytesMut, sink: &mut impl ChunkSink) {
        self.flush_parse_metrics();
        if self.rows.is_empty() {
            // A table reserved for rows that did not come (the buffer ended in a partial
            // message, or held another kind): freed, or its bytes would count against the
            // budget while the reader waits for a large row that needs them (a 40 KB row
            // in a 64 KiB budget then found no room, with nothing queued to free).
            if self.rows.capacity() > 0 {
                self.rows = Vec::new();
            }
            if self.pos > 0 {
                // Only rejected rows were parsed: drop their bytes now.
                let _ = buf.split_to(self.pos);
                self.pos = 0;
            }
            if self.rejected > 0 {
                let (rejected, rejected_bytes) = self.take_rejected();
                sink.hand_over(
                    Made {
                        chunk: None,
                        data_bytes: 0,
                        rejected,
                        rejected_bytes,
                    },
                    buf,
                );
            }
            return;
        }
        let mut end = self.pos;
        let mut rows = std::mem::take(&mut self.rows);
        if rows.capacity() > 2 * rows.len() {
            // Sized for more rows than came (the chunk ended at a message of another kind or
            // at the end of the buffer): give the rest back before the chunk is queued.
            rows.shrink_to_fit();
        }
        // Nothing after the chunk in the buffer and room for a byte: the last row's NUL goes
        // there instead of moving the row (a 1 MiB row would be copied whole).
        if end == buf.len() && buf.capacity() > end {
            buf.extend_from_slice(&[0]);
            end += 1;
        }
        terminate_rows(&mut buf[..end], &mut rows);
        let region = buf.split_to(end).freeze();
        let (rejected, rejected_bytes) = self.take_rejected();
        self.pos = 0;
        let data_bytes: u64 = rows
            .iter()
            .filter(|r| r.1 != NULL_ROW)
            .map(|r| r.1 as u64)
            .sum();
        sink.hand_over(
            Made {
                chunk: Some(Chunk::new(region, rows)),
                data_bytes,
                rejected,
                rejected_bytes,
            },
            buf,
        );
    }

    /// Reset the count of rows the built-in predicates rejected since the last chunk; the
    /// sink adds them to the stream's counters.
    fn take_rejected(&mut self) -> (u64, u64) {
        let r = (self.rejected, self.rejected_bytes);
        if r.0 > 0 {
            metrics::reader_filtered(&self.entity, r.0);
        }
        self.rejected = 0;
        self.rejected_bytes = 0;
        r
    }

    /// Evaluate the built-in JSON predicates on a row (`(offset, len)` into the buffer).
    /// A row that is not valid JSON is rejected and counted as a parse failure.
    fn json_accepts(&mut self, buf: &[u8], (off, len): (u32, u32)) -> bool {
        let row: &[u8] = if len == NULL_ROW {
            b"null"
        } else {
            &buf[off as usize..off as usize + len as usize]
        };
        let t = Instant::now();
        let mut outcome = Ok(true);
        for f in &self.filters {
            match f.accepts(row) {
                Ok(true) => {}
                other => {
                    outcome = other;
                    break;
                }
            }
        }
        self.parse_time += t.elapsed();
        match outcome {
            Ok(keep) => {
                self.parsed_rows += 1;
                keep
            }
            Err(reason) => {
                let entity = &self.entity;
                metrics::deserialization_failed(entity, reason);
                metrics::json_parse_error(entity);
                if !self.parse_failure_logged {
                    self.parse_failure_logged = true;
                    crate::log::warn(format!(
                        "stream on {entity}: a row could not be parsed for the JSON predicate \
                         ({reason}); such rows are rejected and counted as filtered"
                    ));
                }
                false
            }
        }
    }

    /// Report the built-in predicates' parsing of the chunk being handed over.
    fn flush_parse_metrics(&mut self) {
        if self.parsed_rows == 0 && self.parse_time.is_zero() {
            return;
        }
        let entity = &self.entity;
        metrics::rows_deserialized(entity, self.parsed_rows);
        // The predicate's parse is its whole deserialization: both histograms see it.
        metrics::json_parse(entity, self.parse_time);
        metrics::deserialization_duration(entity, self.parse_time);
        self.parsed_rows = 0;
        self.parse_time = Duration::ZERO;
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::*;
    use super::*;

    /// Keeps rows holding `"i":N` with N above the bound, and NULL; a row that does not
    /// start with `{` cannot be evaluated.
    struct IAbove(u32);

    impl RowPredicate for IAbove {
        fn accepts(&self, row: &[u8]) -> std::result::Result<bool, &'static str> {
            let text = std::str::from_utf8(row).map_err(|_| "invalid_utf8")?;
            if text == "null" {
                return Ok(true);
            }
            if !text.starts_with('{') {
                return Err("invalid_json");
            }
            let i: u32 = text
                .trim_start_matches("{\"i\":")
                .trim_end_matches('}')
                .parse()
                .map_err(|_| "invalid_json")?;
            Ok(i > self.0)
        }
    }

    /// A sink that keeps every chunk's rows (copied out, each checked to be followed by a
    /// NUL) and the counts handed over with them.
    #[derive(Default)]
    struct Kept {
        chunks: Vec<Vec<Vec<u8>>>,
        rejected: u64,
        rejected_bytes: u64,
        data_bytes: u64,
    }

    impl ChunkSink for Kept {
        fn hand_over(&mut self, made: Made, _buf: &BytesMut) {
            self.rejected += made.rejected;
            self.rejected_bytes += made.rejected_bytes;
            self.data_bytes += made.data_bytes;
            if let Some(c) = made.chunk {
                let mut rows = Vec::new();
                for i in 0..c.len() {
                    let (off, len) = c.rows[i];
                    if len != NULL_ROW {
                        assert_eq!(
                            c.buf[off as usize + len as usize],
                            0,
                            "row {i} not NUL-terminated"
                        );
                    }
                    rows.push(c.row(i).to_vec());
                }
                self.chunks.push(rows);
            }
        }
    }

    impl Kept {
        fn rows(&self) -> Vec<String> {
            self.chunks
                .iter()
                .flatten()
                .map(|r| String::from_utf8(r.clone()).unwrap())
                .collect()
        }
        fn sizes(&self) -> Vec<usize> {
            self.chunks.iter().map(Vec::len).collect()
        }
    }

    const MIB: usize = 1024 * 1024;

    fn framer(budget: usize, filters: Vec<Arc<dyn RowPredicate>>) -> Framer {
        Framer::new(
            "framer_test",
            MemoryLimits::new(budget, 0.8, 1.0).unwrap(),
            filters,
        )
    }

    fn bytes(parts: &[Vec<u8>]) -> BytesMut {
        let mut b = BytesMut::with_capacity(64 * 1024);
        for p in parts {
            b.extend_from_slice(p);
        }
        b
    }

    fn row(i: usize) -> Vec<u8> {
        data_row(Some(format!("{{\"i\":{i}}}").as_bytes()))
    }

    #[test]
    fn rows_go_out_in_chunks_of_the_chunk_size_then_the_query_ends() {
        let mut f = framer(MIB, Vec::new());
        let mut parts = vec![json_description()];
        parts.extend((1..=5).map(row));
        parts.push(command_complete("SELECT 5"));
        parts.push(ready_for_query());
        let mut buf = bytes(&parts);
        let mut out = Kept::default();
        // Undescribed: the description comes through the message-by-message path first.
        let flow = f.process(&mut buf, 2, &mut out).unwrap();
        assert!(matches!(flow, Flow::Finished), "{flow:?}");
        assert_eq!(out.sizes(), [2, 2, 1]);
        assert_eq!(
            out.rows(),
            [
                "{\"i\":1}",
                "{\"i\":2}",
                "{\"i\":3}",
                "{\"i\":4}",
                "{\"i\":5}"
            ]
        );
        assert_eq!(out.data_bytes, 5 * 7);
        assert!(f.protocol.command_complete);
        assert!(f.protocol.outcome(Ok(())).is_ok());
        assert!(buf.is_empty(), "everything parsed");
    }

    #[test]
    fn a_row_split_across_reads_waits_for_its_rest() {
        let mut f = framer(MIB, Vec::new());
        f.protocol.described = true;
        let whole: Vec<u8> = [row(1), row(2), row(3)].concat();
        let cut = row(1).len() + 6;
        let mut buf = bytes(&[whole[..cut].to_vec()]);
        let mut out = Kept::default();
        let flow = f.process(&mut buf, 100, &mut out).unwrap();
        // The first row goes out at once (a row never waits for a chunk to fill); the
        // second is pending with its size known.
        assert_eq!(out.sizes(), [1]);
        match flow {
            Flow::NeedMore(Some(p)) => {
                assert_eq!(p.total, row(2).len());
                assert!(p.row);
            }
            other => panic!("{other:?}"),
        }
        buf.extend_from_slice(&whole[cut..]);
        let flow = f.process(&mut buf, 100, &mut out).unwrap();
        assert!(matches!(flow, Flow::NeedMore(None)), "{flow:?}");
        assert_eq!(out.rows(), ["{\"i\":1}", "{\"i\":2}", "{\"i\":3}"]);
        // Fewer than 5 bytes: not even a header.
        let mut buf = bytes(&[vec![b'D', 0, 0]]);
        assert!(matches!(
            f.process(&mut buf, 100, &mut out).unwrap(),
            Flow::NeedMore(None)
        ));
    }

    #[test]
    fn a_null_value_is_the_json_null() {
        let mut f = framer(MIB, Vec::new());
        f.protocol.described = true;
        let mut buf = bytes(&[row(1), data_row(None), row(3)]);
        let mut out = Kept::default();
        f.process(&mut buf, 10, &mut out).unwrap();
        assert_eq!(out.rows(), ["{\"i\":1}", "null", "{\"i\":3}"]);
        // Its bytes are not data bytes.
        assert_eq!(out.data_bytes, 14);
    }

    #[test]
    fn a_server_error_after_rows_is_reported_after_them() {
        let mut f = framer(MIB, Vec::new());
        f.protocol.described = true;
        let mut buf = bytes(&[
            row(1),
            row(2),
            error_response("ERROR", "22012", "division by zero"),
            ready_for_query(),
        ]);
        let mut out = Kept::default();
        let flow = f.process(&mut buf, 10, &mut out).unwrap();
        assert!(matches!(flow, Flow::Finished));
        assert_eq!(out.sizes(), [2]);
        let e = f.protocol.outcome(Ok(())).unwrap_err();
        assert_eq!(e.sqlstate(), Some("22012"));
    }

    #[test]
    fn a_malformed_row_stops_the_stream_after_the_good_ones() {
        let mut f = framer(MIB, Vec::new());
        f.protocol.described = true;
        let two_columns = message(b'D', &[0, 2, 0, 0, 0, 1, b'1', 0, 0, 0, 1, b'2']);
        let mut buf = bytes(&[row(1), row(2), two_columns, row(3)]);
        let mut out = Kept::default();
        let e = f.process(&mut buf, 10, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Protocol);
        assert!(e.message().contains("column count"), "{}", e.message());
        // The rows before it are complete: the driver hands them over before the error.
        assert_eq!(f.rows_in_progress(), 2);
        f.emit(&mut buf, &mut out);
        assert_eq!(out.rows(), ["{\"i\":1}", "{\"i\":2}"]);
        // A DataRow before the description.
        let mut f = framer(MIB, Vec::new());
        let mut buf = bytes(&[row(1)]);
        let e = f.process(&mut buf, 10, &mut out).unwrap_err();
        assert!(e.message().contains("before the result description"));
    }

    #[test]
    fn a_row_over_the_limit_fails_with_memory_limit() {
        let budget = 64 * 1024;
        let mut f = framer(budget, Vec::new());
        f.protocol.described = true;
        let big = data_row(Some(&vec![b'x'; budget]));
        // Only its header is needed to refuse it.
        let mut buf = bytes(&[row(1), big[..5].to_vec()]);
        let mut out = Kept::default();
        let e = f.process(&mut buf, 10, &mut out).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::MemoryLimit);
        assert!(
            e.message().contains("exceeds the stream's row limit"),
            "{}",
            e.message()
        );
        assert_eq!(
            out.rows(),
            ["{\"i\":1}"],
            "the row before it went out first"
        );
    }

    #[test]
    fn rows_the_json_predicate_rejects_are_counted_not_handed_over() {
        let filter: Arc<dyn RowPredicate> = Arc::new(IAbove(2));
        let mut f = framer(MIB, vec![filter]);
        f.protocol.described = true;
        let mut buf = bytes(&[row(1), row(2), row(3), data_row(Some(b"not json")), row(4)]);
        let mut out = Kept::default();
        f.process(&mut buf, 10, &mut out).unwrap();
        assert_eq!(out.rows(), ["{\"i\":3}", "{\"i\":4}"]);
        // 1, 2 and the row that is not JSON.
        assert_eq!(out.rejected, 3);
        assert_eq!(out.rejected_bytes, 7 + 7 + 8);
        assert!(buf.is_empty());
        // Only rejected rows: their count still goes out, with no chunk.
        let mut out = Kept::default();
        let mut buf = bytes(&[row(1)]);
        f.process(&mut buf, 10, &mut out).unwrap();
        assert!(out.chunks.is_empty());
        assert_eq!(out.rejected, 1);
        assert!(buf.is_empty(), "the rejected row's bytes are dropped");
    }

    #[test]
    fn both_paths_accept_the_same_rows() {
        // With a predicate every row takes the message-by-message path; without, the fast
        // path: the same input gives the same rows either way.
        let accept_all: Arc<dyn RowPredicate> = Arc::new(IAbove(0));
        let parts: Vec<Vec<u8>> = (1..=50)
            .map(|i| if i % 7 == 0 { data_row(None) } else { row(i) })
            .collect();
        let mut fast = framer(MIB, Vec::new());
        let mut slow = framer(MIB, vec![accept_all]);
        fast.protocol.described = true;
        slow.protocol.described = true;
        let (mut a, mut b) = (Kept::default(), Kept::default());
        fast.process(&mut bytes(&parts), 8, &mut a).unwrap();
        slow.process(&mut bytes(&parts), 8, &mut b).unwrap();
        assert_eq!(a.rows(), b.rows());
        assert_eq!(a.rows().len(), 50);
        assert_eq!(a.sizes(), b.sizes());
    }
}
