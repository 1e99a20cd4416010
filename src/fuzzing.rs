//! Entry points of the fuzz targets in `fuzz/` (feature `fuzzing`; not part of the API).
//! Each takes the fuzzer's bytes, runs a part of the library that reads what a server or a
//! user sends, and panics when an invariant breaks (a panic in the library is one too):
//!
//! * [`frame`]: the stream's reader on a server's answer split at random points; the same
//!   bytes give the same rows and end whatever the split, the chunk size or the budget, and
//!   a read is always possible once the consumer has taken everything.
//! * [`conninfo`]: connection strings and URIs.
//! * [`scram`]: the SCRAM server-first and server-final messages, as authentication takes
//!   them.
//! * [`json_filter`]: the built-in JSON predicate on any row, cross-checked with `serde_json`
//!   where both can say.
//!
//! The unit tests below replay the committed seeds (`fuzz/corpus/<target>/`) and the inputs
//! of fixed failures (`fuzz/regressions/<target>/`, kept out of the seeds when they are large)
//! on every `cargo test`.

use std::sync::Arc;

use crate::connection::auth;
use crate::conninfo::ConnConfig;
use crate::query::{JsonFilter, JsonOp};
use crate::stream::reader::framing;
use crate::stream::RowPredicate;

/// The reader's framing. `data`: 4 control bytes (budget and predicate, chunk size, split
/// seed), then the server's answer to a query.
pub fn frame(data: &[u8]) {
    let Some((ctl, input)) = data.split_first_chunk::<4>() else {
        return;
    };
    let budget = [16 << 10, 64 << 10, 256 << 10, 2 << 20][usize::from(ctl[0] & 3)];
    let filter = match (ctl[0] >> 2) & 3 {
        0 => None,
        1 => JsonFilter::new("/i", JsonOp::Gt, Some("1")).ok(),
        2 => JsonFilter::new("/a/0", JsonOp::Exists, None).ok(),
        _ => JsonFilter::new("", JsonOp::Contains, Some("\"k\"")).ok(),
    }
    .map(|f| Arc::new(f) as Arc<dyn RowPredicate>);
    let chunk_size = 1 + usize::from(ctl[1]) % 200;
    let whole = framing::run(input, budget, chunk_size, filter.clone(), || usize::MAX);
    let mut x = (u32::from(ctl[2]) << 8 | u32::from(ctl[3])) | 1;
    let split = framing::run(input, budget, chunk_size, filter.clone(), || {
        // xorshift32: pieces of 1 to 64 bytes.
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        1 + (x % 64) as usize
    });
    assert_eq!(
        whole, split,
        "the same answer split differently gave another outcome"
    );
    let mut y = x ^ 0x9e37_79b9;
    let small = framing::run(input, budget, 1, filter, || {
        y ^= y << 13;
        y ^= y >> 17;
        y ^= y << 5;
        1 + (y % 16) as usize
    });
    assert_eq!(
        whole, small,
        "the same answer in one-row chunks, 1 to 16 bytes per read, gave another outcome"
    );
}

/// Connection strings: parsing never panics, a parsed configuration has a host, and an
/// error says something.
pub fn conninfo(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    match ConnConfig::parse(s) {
        Ok(c) => {
            assert!(!c.hosts.is_empty(), "a configuration without a host: {s:?}");
            let _ = format!("{c:?}");
        }
        Err(e) => assert!(!e.message.is_empty(), "an empty error for {s:?}"),
    }
}

/// The SCRAM server messages. `data`: the server-first message, a newline, the server-final
/// message. The client's nonce is put after a leading `r=` (a server echoes it first), so that
/// the rest of the message is reached.
pub fn scram(data: &[u8]) {
    use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256};
    let mut parts = data.splitn(2, |b| *b == b'\n');
    let first = parts.next().unwrap_or_default();
    let last = parts.next().unwrap_or_default();
    let mut scram = ScramSha256::new(b"password", ChannelBinding::unsupported());
    let client_first = scram.message().to_vec();
    let nonce_at = client_first
        .windows(3)
        .position(|w| w == b",r=")
        .expect("the client-first message has a nonce")
        + 3;
    let first = match first.strip_prefix(b"r=") {
        Some(rest) => [b"r=", &client_first[nonce_at..], rest].concat(),
        None => first.to_vec(),
    };
    let count = std::str::from_utf8(&first).ok().and_then(|t| {
        t.split(',')
            .find_map(|a| a.strip_prefix("i="))
            .and_then(|c| c.parse::<i64>().ok())
    });
    if count.is_some_and(|c| c > 10_000) {
        // Valid, but each try would take milliseconds of key stretching.
        return;
    }
    if auth::scram_server_first(&mut scram, &first).is_err() {
        return;
    }
    // A proof is only ever computed with key stretching.
    assert!(
        count.is_some_and(|c| c >= 1),
        "a proof was computed for {:?}",
        String::from_utf8_lossy(&first)
    );
    // Only the server knowing the password's keys can sign.
    assert!(
        auth::scram_server_final(&mut scram, last).is_err(),
        "a forged server signature verified: {:?}",
        String::from_utf8_lossy(last)
    );
}

/// The built-in JSON predicate. `data`: the pointer, a newline, the constant (JSON), a
/// newline, the row. Where `serde_json` parses the row, `exists` must agree with its
/// pointer lookup, `ne` must be "resolves and not `eq`", and `lt`/`ge` must be exact
/// opposites on two numbers or two strings and both false otherwise.
pub fn json_filter(data: &[u8]) {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let (Some(ptr), Some(constant), Some(row)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let (Ok(ptr), Ok(constant)) = (std::str::from_utf8(ptr), std::str::from_utf8(constant)) else {
        return;
    };
    let eval = |op: JsonOp| {
        JsonFilter::new(ptr, op, Some(constant))
            .ok()
            .and_then(|f| f.eval(row).ok())
    };
    let results: Vec<Option<bool>> = [
        JsonOp::Eq,
        JsonOp::Ne,
        JsonOp::Lt,
        JsonOp::Le,
        JsonOp::Gt,
        JsonOp::Ge,
        JsonOp::Exists,
        JsonOp::Contains,
    ]
    .into_iter()
    .map(eval)
    .collect();
    let [eq, ne, lt, _, _, ge, exists, _] = results[..] else {
        unreachable!("eight operators")
    };
    let Ok(doc) = serde_json::from_slice::<serde_json::Value>(row) else {
        return;
    };
    let Some(exists) = exists else {
        return;
    };
    let resolved = doc.pointer(ptr);
    assert_eq!(
        exists,
        resolved.is_some(),
        "exists {ptr:?} on {:?}",
        String::from_utf8_lossy(row)
    );
    if let (Some(eq), Some(ne)) = (eq, ne) {
        assert_eq!(ne, exists && !eq, "eq {eq}, ne {ne}, exists {exists}");
    }
    let (Some(lt), Some(ge), Some(v), Ok(c)) = (
        lt,
        ge,
        resolved,
        serde_json::from_str::<serde_json::Value>(constant),
    ) else {
        return;
    };
    if (v.is_number() && c.is_number()) || (v.is_string() && c.is_string()) {
        assert_ne!(lt, ge, "lt and ge of {v} and {c}");
    } else {
        assert!(!lt && !ge, "lt {lt} / ge {ge} of {v} and {c}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `fuzz/corpus/<target>/` and `fuzz/regressions/<target>/` through `f`.
    fn replay(target: &str, f: fn(&[u8])) {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let mut n = 0;
        for kind in ["corpus", "regressions"] {
            let dir = root.join(kind).join(target);
            let Ok(entries) = std::fs::read_dir(&dir) else {
                assert_eq!(kind, "regressions", "no {}", dir.display());
                continue;
            };
            for entry in entries {
                let path = entry.unwrap().path();
                let data = std::fs::read(&path).unwrap();
                let run = std::panic::catch_unwind(|| f(&data));
                assert!(run.is_ok(), "{} fails", path.display());
                n += 1;
            }
        }
        assert!(n > 0, "no corpus for {target}");
    }

    #[test]
    fn frame_corpus_replays() {
        replay("frame", frame);
    }

    #[test]
    fn conninfo_corpus_replays() {
        replay("conninfo", conninfo);
    }

    #[test]
    fn scram_corpus_replays() {
        replay("scram", scram);
    }

    #[test]
    fn json_filter_corpus_replays() {
        replay("json_filter", json_filter);
    }

    /// The framing driver itself: a known answer gives its rows, whatever the split.
    #[test]
    fn frame_delivers_a_known_answer() {
        let answer = seeds::answer(&[b"{\"i\":1}", b"{\"i\":2}"], true);
        let whole = framing::run(&answer, 16 << 10, 10, None, || usize::MAX);
        assert_eq!(
            whole,
            framing::Outcome {
                rows: vec![b"{\"i\":1}".to_vec(), b"{\"i\":2}".to_vec()],
                end: framing::End::Done,
            }
        );
        let bytewise = framing::run(&answer, 16 << 10, 1, None, || 1);
        assert_eq!(whole, bytewise);
        let cut = framing::run(&answer[..answer.len() - 3], 16 << 10, 10, None, || 7);
        assert_eq!(cut.end, framing::End::Exhausted);
        assert_eq!(cut.rows.len(), 2);
    }
}

/// Builders of server answers, for the seed corpus and the tests.
#[cfg(test)]
pub(crate) mod seeds {
    fn msg(tag: u8, body: &[u8]) -> Vec<u8> {
        let mut out = vec![tag];
        out.extend_from_slice(&((body.len() + 4) as u32).to_be_bytes());
        out.extend_from_slice(body);
        out
    }

    /// ParseComplete, BindComplete, a jsonb `data` description, the rows, and (when `end`)
    /// CommandComplete and ReadyForQuery.
    pub fn answer(rows: &[&[u8]], end: bool) -> Vec<u8> {
        let mut out = msg(b'1', &[]);
        out.extend(msg(b'2', &[]));
        let mut t = 1u16.to_be_bytes().to_vec();
        t.extend_from_slice(b"data\0");
        t.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        t.extend_from_slice(&3802u32.to_be_bytes());
        t.extend_from_slice(&(-1i16).to_be_bytes());
        t.extend_from_slice(&(-1i32).to_be_bytes());
        t.extend_from_slice(&0u16.to_be_bytes());
        out.extend(msg(b'T', &t));
        for r in rows {
            let mut d = 1u16.to_be_bytes().to_vec();
            d.extend_from_slice(&(r.len() as i32).to_be_bytes());
            d.extend_from_slice(r);
            out.extend(msg(b'D', &d));
        }
        if end {
            out.extend(msg(b'C', format!("SELECT {}\0", rows.len()).as_bytes()));
            out.extend(msg(b'Z', b"I"));
        }
        out
    }
}
