//! Why `fw_block_transcode` re-encodes rows with loops of its own (src/stream/transcode.rs)
//! instead of encoding_rs's `mem` functions: the time per row of each on blocks of rows like
//! the bindings benchmark's. Prints a table; run with `cargo bench --bench transcode`.

use std::hint::black_box;
use std::time::Instant;

use fraiseql_wire::stream::block::transcode_rows;

/// The fake server's documents (`make_doc`), as the bindings benchmark streams them.
#[allow(dead_code, unused_imports)]
#[path = "fakepg/src/workload.rs"]
mod workload;

/// Row `i` of the bindings benchmark (~430 B; 3 rows in 8 hold a character above U+00FF).
fn doc(i: usize) -> String {
    String::from_utf8(workload::make_doc(i as u64 + 1, 430)).expect("UTF-8")
}

/// A block as `fw_stream_next_block` lays it out: rows back to back, each followed by a NUL,
/// and `n + 1` offsets.
struct Block {
    data: Vec<u8>,
    offsets: Vec<usize>,
}

impl Block {
    fn push(&mut self, row: &[u8]) {
        self.data.extend_from_slice(row);
        self.data.push(0);
        self.offsets.push(self.data.len());
    }
}

/// The encoding_rs way, as the library did it before: a Latin-1 check, then the conversion.
fn with_encoding_rs(block: &Block, out: &mut [u8], scratch: &mut Vec<u16>) -> usize {
    let (data, offsets) = (&block.data, &block.offsets);
    let mut pos = 0;
    for w in offsets.windows(2) {
        let row = &data[w[0]..w[1] - 1];
        let dst = &mut out[pos..];
        if encoding_rs::mem::is_utf8_latin1(row) {
            pos += encoding_rs::mem::convert_utf8_to_latin1_lossy(row, dst);
        } else {
            scratch.clear();
            scratch.resize(row.len() + 1, 0);
            let units = encoding_rs::mem::convert_utf8_to_utf16(row, scratch);
            for (d, u) in dst.chunks_exact_mut(2).zip(&scratch[..units]) {
                d.copy_from_slice(&u.to_le_bytes());
            }
            pos += 2 * units;
        }
    }
    pos
}

/// Nanoseconds per row of `f` over `block`, best of 7 runs of `reps` passes.
fn ns_per_row(block: &Block, reps: usize, mut f: impl FnMut(&Block) -> usize) -> f64 {
    let rows = block.offsets.len() - 1;
    (0..7)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..reps {
                black_box(f(black_box(block)));
            }
            t.elapsed().as_nanos() as f64 / (reps * rows) as f64
        })
        .fold(f64::INFINITY, f64::min)
}

/// A set of rows: its name and row `i`.
type RowSet = (&'static str, fn(usize) -> String);

fn main() {
    let sets: [RowSet; 4] = [
        ("ASCII only (other characters as '?')", |i| {
            doc(i)
                .chars()
                .map(|c| if c.is_ascii() { c } else { '?' })
                .collect()
        }),
        ("Latin-1 rows (characters above U+00FF as 'é')", |i| {
            doc(i)
                .chars()
                .map(|c| if u32::from(c) < 0x100 { c } else { 'é' })
                .collect()
        }),
        ("the bindings benchmark's rows", doc),
        ("UTF-16 rows (every 'é' as '東')", |i| {
            doc(i)
                .chars()
                .map(|c| if c == 'é' { '東' } else { c })
                .collect()
        }),
    ];
    println!("| rows of ~430 B | encoding_rs ns/row | fraiseql-wire ns/row | ratio |");
    println!("|---|---:|---:|---:|");
    for (name, make) in &sets {
        let mut block = Block {
            data: Vec::new(),
            offsets: vec![0],
        };
        let mut bytes = 0;
        for i in 0..256 {
            let row = make(i);
            bytes += row.len();
            block.push(row.as_bytes());
        }
        let n = block.offsets.len() - 1;
        let mut out = vec![0u8; 2 * block.data.len()];
        let (mut ends, mut kinds) = (vec![0usize; n], vec![0u8; n]);
        let mut scratch = Vec::new();
        // Both give the same bytes.
        let ours = transcode_rows(
            &block.data,
            &block.offsets,
            &mut out,
            &mut ends,
            &mut kinds,
            &mut scratch,
        )
        .expect("room");
        let mut reference = vec![0u8; out.len()];
        assert_eq!(with_encoding_rs(&block, &mut reference, &mut scratch), ours);
        assert_eq!(out[..ours], reference[..ours], "{name}");
        let reps = 2000;
        let old = ns_per_row(&block, reps, |b| {
            with_encoding_rs(b, &mut reference, &mut scratch)
        });
        let new = ns_per_row(&block, reps, |b| {
            transcode_rows(
                &b.data,
                &b.offsets,
                &mut out,
                &mut ends,
                &mut kinds,
                &mut scratch,
            )
            .expect("room")
        });
        println!(
            "| {name} ({} B avg) | {old:.0} | {new:.0} | {:.2}x |",
            bytes / n,
            new / old
        );
    }
}
