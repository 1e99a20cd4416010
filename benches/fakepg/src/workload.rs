//! Workloads: what a query returns, chosen by the query text, and the pre-encoded DataRow
//! blocks the server replays.
//!
//! A workload is named by an identifier in the query, `w_<count>_<size>[__<fault>...]`:
//!
//! * `<count>`: rows, digits with an optional `k` (x1000) or `m` (x1,000,000) suffix;
//! * `<size>`: bytes per document, digits with an optional `k` (KiB) or `mb`/`m` (MiB) suffix;
//! * `w_small` is `w_10_430`.
//!
//! Faults (see [`Faults`]) follow, separated by double underscores:
//! `w_10k_430__cut500__slow100`. `LIMIT n` and `OFFSET n` in the query text are honoured.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex, OnceLock};

/// Faults and shapes injected into a workload's result.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Faults {
    /// `cut<N>`: close the connection (no message) after N rows.
    pub cut_after: Option<u64>,
    /// `error<N>`: send an ErrorResponse (SQLSTATE 22012) after N rows; the session stays usable.
    pub error_after: Option<u64>,
    /// `malformed<N>`: after N rows send a message whose length field is invalid (2), then
    /// wait for the client to close.
    pub malformed_after: Option<u64>,
    /// `badrow<N>`: after N rows send a DataRow that claims two columns, then wait.
    pub badrow_after: Option<u64>,
    /// `unknown<N>`: after N rows send a well-framed message of an unknown type (`~`), then wait.
    pub unknown_after: Option<u64>,
    /// `notice<N>`: send a NoticeResponse and a ParameterStatus after N rows (harmless).
    pub notice_after: Option<u64>,
    /// `slow<US>`: write in 8 KiB pieces and sleep US microseconds after each piece.
    pub slow_us: Option<u64>,
    /// `stall<MS>`: wait MS milliseconds before the first row (a CancelRequest ends the wait).
    pub stall_ms: Option<u64>,
    /// `nulls<K>`: every K-th row is an SQL NULL.
    pub nulls_every: Option<u64>,
    /// `nulbyte<K>`: every K-th row holds a NUL byte in its JSON text (PostgreSQL never sends
    /// one: text cannot hold it).
    pub nul_byte_every: Option<u64>,
    /// `text` / `json`: describe the column as text (oid 25) / json (oid 114) instead of jsonb.
    pub type_oid: Option<u32>,
    /// `twocols`: describe (and send) two columns `data` and `extra`.
    pub two_cols: bool,
    /// `rename`: call the column `doc` instead of `data`.
    pub rename: bool,
    /// `bigmsg<SIZE>`: the messages of `error<N>` and `notice<N>` are padded with SIZE bytes
    /// (suffix k = KiB, mb = MiB), as PostgreSQL's 22P02 quotes a whole bad input.
    pub msg_pad: Option<usize>,
}

impl Faults {
    /// Parse one `__`-separated fault token into `self`.
    pub fn apply_token(&mut self, tok: &str) -> Result<(), String> {
        let num = |prefix: &str| -> Option<Result<u64, String>> {
            tok.strip_prefix(prefix).map(|rest| {
                rest.parse::<u64>()
                    .map_err(|_| format!("fault `{tok}`: `{prefix}` needs a number"))
            })
        };
        if let Some(n) = num("cut") {
            self.cut_after = Some(n?);
        } else if let Some(n) = num("error") {
            self.error_after = Some(n?);
        } else if let Some(n) = num("malformed") {
            self.malformed_after = Some(n?);
        } else if let Some(n) = num("badrow") {
            self.badrow_after = Some(n?);
        } else if let Some(n) = num("unknown") {
            self.unknown_after = Some(n?);
        } else if let Some(n) = num("notice") {
            self.notice_after = Some(n?);
        } else if let Some(n) = num("slow") {
            self.slow_us = Some(n?);
        } else if let Some(n) = num("stall") {
            self.stall_ms = Some(n?);
        } else if let Some(size) = tok.strip_prefix("bigmsg") {
            self.msg_pad = Some(
                parse_size(size).ok_or_else(|| format!("fault `{tok}`: `bigmsg` needs a size"))?,
            );
        } else if let Some(n) = num("nulls") {
            let n = n?;
            if n == 0 {
                return Err("fault `nulls0`: K must be at least 1".into());
            }
            self.nulls_every = Some(n);
        } else if let Some(n) = num("nulbyte") {
            let n = n?;
            if n == 0 {
                return Err("fault `nulbyte0`: K must be at least 1".into());
            }
            self.nul_byte_every = Some(n);
        } else if tok == "text" {
            self.type_oid = Some(TEXT_OID);
        } else if tok == "json" {
            self.type_oid = Some(JSON_OID);
        } else if tok == "twocols" {
            self.two_cols = true;
        } else if tok == "rename" {
            self.rename = true;
        } else {
            return Err(format!("unknown fault `{tok}`"));
        }
        Ok(())
    }

    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for tok in spec.split("__").filter(|t| !t.is_empty()) {
            f.apply_token(&tok.to_ascii_lowercase())?;
        }
        Ok(f)
    }

    /// Faults that change the bytes of individual rows (no block replay).
    pub fn per_row(&self) -> bool {
        self.nulls_every.is_some() || self.nul_byte_every.is_some() || self.two_cols
    }

    /// The row index at which the stream is interrupted by a fault, if any (the smallest).
    pub fn first_interrupt(&self) -> Option<u64> {
        [
            self.cut_after,
            self.error_after,
            self.malformed_after,
            self.badrow_after,
            self.unknown_after,
        ]
        .into_iter()
        .flatten()
        .min()
    }
}

pub const JSONB_OID: u32 = 3802;
pub const JSON_OID: u32 = 114;
pub const TEXT_OID: u32 = 25;

/// A resolved workload for one query.
#[derive(Clone, Debug)]
pub struct Workload {
    #[allow(dead_code)]
    pub name: String,
    /// Rows the query returns (after LIMIT/OFFSET).
    pub rows: u64,
    /// First row index (OFFSET).
    pub offset: u64,
    pub size: usize,
    pub faults: Faults,
}

fn parse_count(s: &str) -> Option<u64> {
    let (digits, mult) = if let Some(d) = s.strip_suffix('m') {
        (d, 1_000_000)
    } else if let Some(d) = s.strip_suffix('k') {
        (d, 1000)
    } else {
        (s, 1)
    };
    digits.parse::<u64>().ok().map(|n| n * mult)
}

fn parse_size(s: &str) -> Option<usize> {
    let (digits, mult) = if let Some(d) = s.strip_suffix("mb") {
        (d, 1 << 20)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 1 << 20)
    } else if let Some(d) = s.strip_suffix("kb") {
        (d, 1 << 10)
    } else if let Some(d) = s.strip_suffix('k') {
        (d, 1 << 10)
    } else {
        (s, 1)
    };
    digits.parse::<usize>().ok().map(|n| n * mult)
}

/// Identifier-like tokens of `sql` (lowercased), in order.
fn tokens(sql: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for c in sql.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            cur.push(c.to_ascii_lowercase());
        } else if !cur.is_empty() {
            out.push(std::mem::take(&mut cur));
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// Find the workload a query names. `Ok(None)`: the query names none (the caller reports an
/// unknown relation); `Err`: a malformed workload name.
pub fn resolve(sql: &str, defaults: &Faults) -> Result<Option<Workload>, String> {
    let toks = tokens(sql);
    let Some(name) = toks.iter().find(|t| t.starts_with("w_")) else {
        return Ok(None);
    };
    let mut parts = name.split("__");
    let base = parts.next().unwrap_or_default();
    let (count, size) = if base == "w_small" {
        (10, 430)
    } else {
        let mut it = base["w_".len()..].splitn(2, '_');
        let c = it.next().and_then(parse_count);
        let s = it.next().and_then(parse_size);
        match (c, s) {
            (Some(c), Some(s)) => (c, s),
            _ => {
                return Err(format!(
                    "bad workload name `{base}`: expected w_<count>_<size> such as w_1m_430"
                ))
            }
        }
    };
    let mut faults = defaults.clone();
    for tok in parts.filter(|t| !t.is_empty()) {
        faults.apply_token(tok)?;
    }
    let after = |kw: &str| -> Option<u64> {
        toks.iter()
            .position(|t| t == kw)
            .and_then(|i| toks.get(i + 1))
            .and_then(|t| t.parse::<u64>().ok())
    };
    let offset = after("offset").unwrap_or(0).min(count);
    let mut rows = count - offset;
    if let Some(l) = after("limit") {
        rows = rows.min(l);
    }
    Ok(Some(Workload {
        name: name.clone(),
        rows,
        offset,
        size: size.max(1),
        faults,
    }))
}

/// Pre-encoded DataRow messages of distinct documents of one size, replayed cyclically.
pub struct Block {
    /// Concatenated DataRow messages.
    pub data: Vec<u8>,
    /// `offs[i]..offs[i + 1]` is row `i`'s message; `offs.len() == rows + 1`.
    pub offs: Vec<usize>,
}

impl Block {
    pub fn rows(&self) -> usize {
        self.offs.len() - 1
    }

    /// The JSON text of row `i`.
    pub fn doc(&self, i: usize) -> &[u8] {
        &self.data[self.offs[i] + 11..self.offs[i + 1]]
    }

    /// Bytes of rows `a..b` (block indices) as one slice of messages.
    pub fn range(&self, a: usize, b: usize) -> &[u8] {
        &self.data[self.offs[a]..self.offs[b]]
    }
}

/// How many distinct documents a block of `size`-byte documents holds (about 4 MiB).
fn block_rows(size: usize) -> usize {
    ((4 << 20) / (size + 11)).clamp(2, 8192)
}

/// The block for `size`, generated once per process.
pub fn block(size: usize) -> Arc<Block> {
    static BLOCKS: OnceLock<Mutex<HashMap<usize, Arc<Block>>>> = OnceLock::new();
    let map = BLOCKS.get_or_init(|| Mutex::new(HashMap::new()));
    if let Some(b) = map.lock().unwrap().get(&size) {
        return b.clone();
    }
    // Generate outside the lock (a 1 MiB-document block takes a moment).
    let n = block_rows(size);
    let mut data = Vec::with_capacity(n * (size + 16));
    let mut offs = Vec::with_capacity(n + 1);
    for i in 0..n {
        offs.push(data.len());
        let doc = make_doc(i as u64 + 1, size);
        data.push(b'D');
        data.extend_from_slice(&((4 + 2 + 4 + doc.len()) as u32).to_be_bytes());
        data.extend_from_slice(&1u16.to_be_bytes());
        data.extend_from_slice(&(doc.len() as u32).to_be_bytes());
        data.extend_from_slice(&doc);
    }
    offs.push(data.len());
    let b = Arc::new(Block { data, offs });
    map.lock().unwrap().entry(size).or_insert(b).clone()
}

fn mix(mut x: u64) -> u64 {
    // splitmix64 finaliser
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

const NAMES: [&str; 8] = [
    "Zoë Ångström",
    "José Núñez",
    "東京 太郎",
    "Ada Lovelace",
    "Søren Ålund",
    "Олег Петров",
    "Chloé Dubois",
    "Ali 🚀",
];
const CITIES: [&str; 5] = ["Zürich", "São Paulo", "Kraków", "Reykjavík", "Montréal"];
const EVENTS: [&str; 5] = ["login", "view", "purchase", "logout", "search"];

/// A user-like JSON document of exactly `size` bytes when `size` is at least the size of its
/// fixed fields (about 400 bytes), formatted as PostgreSQL prints jsonb (`"k": v, ...`).
/// Bigger documents carry a `history` array of event objects; the last bytes are a `pad`
/// string.
pub fn make_doc(i: u64, size: usize) -> Vec<u8> {
    let h = mix(i);
    let h2 = mix(h);
    let mut s = String::with_capacity(size + 128);
    let _ = write!(
        s,
        "{{\"id\": {i}, \"uuid\": \"{h:016x}{h2:016x}\", \"name\": \"{}\", \"email\": \"user{i}@example.com\", \
         \"active\": {}, \"score\": {}.{:02}, \
         \"address\": {{\"street\": \"{} Rue de la Paix\", \"city\": \"{}\", \"zip\": \"{:05}\", \
         \"geo\": {{\"lat\": {}.{:02}, \"lng\": -{}.{:02}}}}}, \
         \"tags\": [\"tag{}\", \"grp{}\", \"célèbre\"], \
         \"prefs\": {{\"theme\": \"{}\", \"lang\": \"fr-CH\", \"notify\": {}}}, \
         \"created_at\": \"2024-{:02}-{:02}T12:34:56Z\"",
        NAMES[(i % 8) as usize],
        i % 3 != 0,
        (i * 7919 % 100000) / 100,
        (i * 7919) % 100,
        i % 9999,
        CITIES[(i % 5) as usize],
        i * 13 % 100000,
        (i * 17) % 90,
        h % 100,
        (i * 23) % 180,
        h2 % 100,
        i % 10,
        i % 7,
        if i % 2 == 0 { "dark" } else { "light" },
        i % 4 == 0,
        1 + i % 12,
        1 + i % 28,
    );
    if size > 1024 {
        s.push_str(", \"history\": [");
        let mut k = 0u64;
        loop {
            let before = s.len();
            let _ = write!(
                s,
                "{}{{\"seq\": {k}, \"at\": \"2024-05-{:02}T08:{:02}:00Z\", \"event\": \"{}\", \"amount\": {}.{:02}, \"label\": \"événement {k}\"}}",
                if k == 0 { "" } else { ", " },
                1 + (i + k) % 28,
                (i * 7 + k) % 60,
                EVENTS[((i + k) % 5) as usize],
                (i * 31 + k * 17) % 1000,
                (i + k) % 100,
            );
            // Stop before the array would leave no room for "]" and a small pad.
            if s.len() + 40 > size {
                s.truncate(before);
                break;
            }
            k += 1;
        }
        s.push(']');
    }
    // `, "pad": "` + filler + `"` + `}`
    let need = size as isize - s.len() as isize - 1;
    if need >= 12 {
        s.push_str(", \"pad\": \"");
        let filler = (need - 11) as usize;
        for j in 0..filler {
            s.push((b'a' + ((i as usize + j) % 26) as u8) as char);
        }
        s.push('"');
    }
    s.push('}');
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_have_the_requested_size() {
        for size in [430usize, 4096, 1 << 20] {
            for i in [1u64, 7, 12345, 999_999] {
                let d = make_doc(i, size);
                assert_eq!(d.len(), size, "size {size} id {i}");
                assert!(std::str::from_utf8(&d).is_ok());
                assert_eq!(d[0], b'{');
                assert_eq!(*d.last().unwrap(), b'}');
            }
        }
    }

    #[test]
    fn names_resolve() {
        let f = Faults::default();
        let w = resolve("SELECT data FROM \"w_1m_430\"", &f)
            .unwrap()
            .unwrap();
        assert_eq!((w.rows, w.size), (1_000_000, 430));
        let w = resolve("SELECT data FROM w_100k_4k", &f).unwrap().unwrap();
        assert_eq!((w.rows, w.size), (100_000, 4096));
        let w = resolve("SELECT data FROM w_1k_1mb LIMIT 5", &f)
            .unwrap()
            .unwrap();
        assert_eq!((w.rows, w.size), (5, 1 << 20));
        let w = resolve("SELECT data FROM w_small", &f).unwrap().unwrap();
        assert_eq!((w.rows, w.size), (10, 430));
        let w = resolve("SELECT data FROM \"w_10_430__cut5__slow7\" OFFSET 4", &f)
            .unwrap()
            .unwrap();
        assert_eq!(w.rows, 6);
        assert_eq!(w.faults.cut_after, Some(5));
        assert_eq!(w.faults.slow_us, Some(7));
        assert!(resolve("SELECT data FROM v_user", &f).unwrap().is_none());
        assert!(resolve("SELECT data FROM w_x_y", &f).is_err());
        assert!(resolve("SELECT data FROM w_1_1__bogus", &f).is_err());
    }
}
