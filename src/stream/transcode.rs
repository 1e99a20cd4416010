//! One row of UTF-8 re-encoded as Latin-1 or UTF-16LE, for [`super::block::transcode_rows`].
//!
//! Rows are JSON text: long runs of ASCII between a few other characters. A row is first
//! tried as Latin-1 in one pass: each ASCII run is found 16 bytes at a time and copied, and
//! each character between runs must be U+0080..U+00FF (two bytes, C2 or C3 and a
//! continuation). A row that is not (a character above U+00FF, or not UTF-8) is decoded to
//! UTF-16 by encoding_rs, which replaces what is not UTF-8 with U+FFFD as decoders do.
//!
//! Why the Latin-1 pass is our own: built by stable Rust (without its nightly-only
//! `simd-accel` feature), encoding_rs calls a non-inlined function per 16-byte stride, and
//! took two passes (`is_utf8_latin1`, then `convert_utf8_to_latin1_lossy`): three to six
//! times the time of this one on Latin-1 and ASCII rows of ~430 bytes, twice on the bindings
//! benchmark's mix (`cargo bench --bench transcode` prints both). Its UTF-16 decoder stays: a loop of our own that validated with
//! `str::from_utf8` and widened the ASCII runs was slower.

const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// The length of the ASCII prefix of `s` (the index of its first byte of 0x80 or more).
#[inline]
fn ascii_prefix(s: &[u8]) -> usize {
    let mut chunks = s.chunks_exact(16);
    let mut done = 0;
    for c in &mut chunks {
        let (lo, hi) = c.split_at(8);
        let lo = u64::from_le_bytes(lo.try_into().expect("8 bytes"));
        let hi = u64::from_le_bytes(hi.try_into().expect("8 bytes"));
        if (lo | hi) & HIGH_BITS != 0 {
            let first = if lo & HIGH_BITS != 0 {
                (lo & HIGH_BITS).trailing_zeros() / 8
            } else {
                8 + (hi & HIGH_BITS).trailing_zeros() / 8
            };
            return done + first as usize;
        }
        done += 16;
    }
    let tail = chunks.remainder();
    done + tail.iter().position(|&b| b >= 0x80).unwrap_or(tail.len())
}

/// `row` as Latin-1 into `dst` (at least `row.len()` bytes): the bytes written, or `None`
/// when a character of `row` is not below U+0100 or `row` is not UTF-8 (what was written is
/// then of no use).
pub(crate) fn to_latin1(row: &[u8], dst: &mut [u8]) -> Option<usize> {
    let (mut r, mut w) = (0, 0);
    loop {
        let run = ascii_prefix(&row[r..]);
        dst[w..w + run].copy_from_slice(&row[r..r + run]);
        r += run;
        w += run;
        match row.get(r..r + 2) {
            None if r == row.len() => return Some(w),
            // U+0080..U+00FF: C2 or C3 and a continuation byte
            Some(&[lead @ (0xC2 | 0xC3), cont]) if cont & 0xC0 == 0x80 => {
                dst[w] = ((lead & 0x1F) << 6) | (cont & 0x3F);
                r += 2;
                w += 1;
            }
            _ => return None,
        }
    }
}

/// `row` as UTF-16LE into `dst` (at least `2 * row.len()` bytes) through `scratch`: the
/// bytes written. encoding_rs decodes it (U+FFFD for what is not UTF-8).
pub(crate) fn to_utf16le(row: &[u8], dst: &mut [u8], scratch: &mut Vec<u16>) -> usize {
    scratch.clear();
    scratch.resize(row.len() + 1, 0);
    let units = encoding_rs::mem::convert_utf8_to_utf16(row, scratch);
    for (d, u) in dst.chunks_exact_mut(2).zip(&scratch[..units]) {
        d.copy_from_slice(&u.to_le_bytes());
    }
    2 * units
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The re-encoding of encoding_rs, every row through it: what these functions must give.
    fn reference(row: &[u8]) -> (Option<Vec<u8>>, Vec<u8>) {
        let latin1 = encoding_rs::mem::is_utf8_latin1(row).then(|| {
            let mut out = vec![0; row.len()];
            let n = encoding_rs::mem::convert_utf8_to_latin1_lossy(row, &mut out);
            out.truncate(n);
            out
        });
        let mut units = vec![0u16; row.len() + 1];
        let n = encoding_rs::mem::convert_utf8_to_utf16(row, &mut units);
        let utf16 = units[..n].iter().flat_map(|u| u.to_le_bytes()).collect();
        (latin1, utf16)
    }

    fn check(row: &[u8]) {
        let (latin1, utf16) = reference(row);
        let mut dst = vec![0xAA; 2 * row.len()];
        let got = to_latin1(row, &mut dst).map(|n| dst[..n].to_vec());
        assert_eq!(got, latin1, "Latin-1 of {row:x?}");
        let mut dst = vec![0xAA; 2 * row.len()];
        let n = to_utf16le(row, &mut dst, &mut Vec::new());
        assert_eq!(dst[..n], utf16[..], "UTF-16 of {row:x?}");
        assert_eq!(
            ascii_prefix(row),
            row.iter().position(|&b| b >= 0x80).unwrap_or(row.len())
        );
    }

    /// xorshift64*: a fixed sequence, so a failure repeats.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }
    }

    #[test]
    fn rows_are_encoded_as_encoding_rs_encodes_them() {
        let pieces: &[&[u8]] = &[
            b"{\"a\": 1, \"name\": \"plain ascii text\"}",
            "Zürich ÿ þ ß \u{80}".as_bytes(),
            "東京 Олег Ā \u{FFFF} \u{7FF} \u{800}".as_bytes(),
            "🚀 \u{10000} \u{10FFFF}".as_bytes(),
            // not UTF-8: lone continuation, truncated sequences, overlong, surrogate, > U+10FFFF
            b"\x80",
            b"\xC3",
            b"\xE6\x9D",
            b"\xF0\x9F\x9A",
            b"\xC0\xAF",
            b"\xC1\xBF",
            b"\xE0\x80\xAF",
            b"\xED\xA0\x80",
            b"\xF4\x90\x80\x80",
            b"\xF8\x88\x80\x80\x80",
            b"\xFF",
            b"\xC3\x28",
            b"\xC2",
        ];
        for p in pieces {
            check(p);
        }
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..20_000 {
            let mut row = Vec::new();
            for _ in 0..rng.below(12) {
                match rng.below(4) {
                    // an ASCII run of 0..40 bytes, across the 16-byte strides
                    0 => row.extend((0..rng.below(40)).map(|i| b'a' + (i % 26) as u8)),
                    1 => row.extend_from_slice(pieces[rng.below(pieces.len())]),
                    2 => row.push(rng.next() as u8),
                    _ => {
                        let c = char::from_u32(rng.below(0x11_0000) as u32).unwrap_or('x');
                        row.extend_from_slice(c.to_string().as_bytes());
                    }
                }
            }
            check(&row);
            // every prefix: rows cut inside a sequence
            if row.len() < 24 {
                for k in 0..row.len() {
                    check(&row[..k]);
                }
            }
        }
    }

    #[test]
    fn the_ascii_prefix_ends_at_the_first_high_byte_wherever_it_is() {
        for len in 0..70 {
            let mut s = vec![b'x'; len];
            assert_eq!(ascii_prefix(&s), len);
            for at in 0..len {
                s[at] = 0x80 | (at as u8);
                assert_eq!(ascii_prefix(&s), at, "len {len}, high byte at {at}");
                s[at] = b'x';
            }
        }
    }
}
