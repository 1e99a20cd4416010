//! The read planner: how much the next socket read may take, and into which buffer, so that
//! what the stream holds (its read buffer's whole capacity, the chunks queued and held, the
//! row tables a read can produce at worst) stays within the stream's memory budget. No I/O:
//! it decides from numbers; the drivers (`super::super::driver`) carry the plan out.

/// Largest single socket read.
pub(crate) const READ_SIZE: usize = 256 * 1024;
/// Do not bother reading into less free budget than this (unless the budget is smaller).
pub(crate) const MIN_READ: usize = 32 * 1024;
/// Granularity of a large row's buffer (see `plan_read`).
const LARGE_BLOCK: usize = 64 * 1024;
/// Bytes of one row-table entry (`(offset, len)`).
pub(crate) const ROW_REF: usize = std::mem::size_of::<(u32, u32)>();
/// The smallest DataRow message: tag, length, column count, column length.
pub(crate) const MIN_DATA_ROW: usize = 11;
/// A row table's first allocation (4 entries) that any read may cause.
pub(crate) const TABLE_SLACK: usize = 4 * ROW_REF;

/// A message the buffer holds only the beginning of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Pending {
    /// Its total size in bytes.
    pub(crate) total: usize,
    /// Whether it is a DataRow (rows are bounded by the budget; other messages are read whole).
    pub(crate) row: bool,
}

/// How the next socket read is done.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReadPlan {
    /// Most bytes to read.
    pub(crate) max: usize,
    /// First move the unparsed bytes to a new buffer of exactly this capacity.
    pub(crate) capacity: Option<usize>,
}

/// Budget cost of reading `r` bytes besides the bytes themselves: the row-table entries they
/// can produce at worst (one per smallest DataRow, twice that while the table doubles), or
/// one entry when they are the rest of a single large message.
fn table_cost(r: usize, one_message: bool) -> usize {
    if one_message {
        TABLE_SLACK
    } else {
        2 * ROW_REF * (r / MIN_DATA_ROW + 1) + TABLE_SLACK
    }
}

/// Largest `r` with `r + table_cost(r) <= room`.
fn max_read(room: usize, one_message: bool) -> usize {
    if one_message {
        room.saturating_sub(TABLE_SLACK)
    } else {
        room.saturating_sub(TABLE_SLACK + 2 * ROW_REF) * MIN_DATA_ROW / (MIN_DATA_ROW + 2 * ROW_REF)
    }
}

/// Decide the next read so that what the stream holds stays within `budget`, counting the
/// read buffer's whole capacity and the worst-case row tables. `free` is the budget left now
/// (the buffer's capacity already counted), `spare`/`len` the buffer's free and used bytes,
/// `pending` the message the buffer ends with. `None`: wait for the consumer to free room.
///
/// * The buffer's spare capacity is used first (it is already counted; only row tables cost).
/// * Otherwise a new buffer of exactly `len + extra` bytes replaces it (the old one's spare
///   is released, so the cost is `extra - spare` plus tables). A large pending row gets room
///   for all of its remaining bytes at once when it fits.
/// * A pending message that is not a row (an error, a notice) is read whole even beyond the
///   budget: the stream cannot go on without it, and nothing the consumer frees can make
///   room for it (the read buffer holding its beginning may be the whole budget). Its header
///   was checked against [`crate::protocol::MAX_MESSAGE`], which bounds it instead. So a
///   non-row pending message always gets a plan: never a wait.
pub(crate) fn plan_read(
    budget: usize,
    free: usize,
    spare: usize,
    len: usize,
    pending: Option<Pending>,
) -> Option<ReadPlan> {
    if let Some(plan) = plan_within_budget(budget, free, spare, len, pending) {
        return Some(plan);
    }
    // Exactly the rest of the pending message: such a read completes at most that one
    // message, so it costs one row-table entry, not one per 11 bytes.
    let p = pending?;
    let rest = p.total.checked_sub(len).filter(|r| *r > 0)?;
    let plan = ReadPlan {
        max: rest,
        capacity: (spare < rest).then_some(len + rest),
    };
    if !p.row {
        return Some(plan);
    }
    // A row within the budget. Once the consumer has taken everything this always fits:
    // the row is at most the budget less its table entry, and a planned buffer leaves room
    // for that entry.
    (rest.saturating_sub(spare) + TABLE_SLACK <= free).then_some(plan)
}

/// [`plan_read`] within the budget (`None`: wait for room).
fn plan_within_budget(
    budget: usize,
    free: usize,
    spare: usize,
    len: usize,
    pending: Option<Pending>,
) -> Option<ReadPlan> {
    let rest = pending.map_or(0, |p| p.total.saturating_sub(len));
    let one_message = rest >= MIN_READ;
    let want = if rest > 0 {
        rest.min(MIN_READ)
    } else {
        MIN_READ.min(budget / 4)
    };
    if let Some(p) = pending {
        if !p.row && rest > spare.max(free) {
            return Some(ReadPlan {
                max: rest,
                capacity: Some(len + rest),
            });
        }
    }
    if spare >= want {
        let mut r = spare.min(READ_SIZE);
        if one_message || spare == rest + 1 {
            // The rest of a large message; or the end of a large row whose buffer keeps one
            // byte for its NUL (see below): reading a byte of the next message there would
            // cost a move of the whole row.
            r = spare.min(rest);
        }
        if table_cost(r, one_message) > free {
            // Only the row tables need room: find the largest read they allow.
            let by_table = if one_message {
                0
            } else {
                free.saturating_sub(TABLE_SLACK + 2 * ROW_REF) / (2 * ROW_REF) * MIN_DATA_ROW
            };
            r = r.min(by_table);
        }
        return (r >= want).then_some(ReadPlan {
            max: r,
            capacity: None,
        });
    }
    let limit = max_read(free + spare, one_message);
    let extra = if one_message { rest } else { READ_SIZE }.min(limit);
    // The rest of a large row gets one byte more when the budget allows: the row then ends
    // the buffer with room for its NUL, and is handed over without being moved.
    let nul = usize::from(one_message && extra == rest && extra < limit);
    let mut capacity = len + extra + nul;
    if one_message {
        // A large row's buffer is rounded up to a multiple of LARGE_BLOCK within the budget:
        // rows of similar sizes then get buffers of one size, so a spare one (its row
        // consumed) serves the next row instead of fresh memory (page faults: a 1 MiB buffer
        // is 256 pages). Only the row's bytes are read into it.
        capacity = capacity
            .next_multiple_of(LARGE_BLOCK)
            .min(len + limit)
            .max(capacity);
    }
    (extra >= want).then_some(ReadPlan {
        max: extra,
        capacity: Some(capacity),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: usize = 1024 * 1024;

    /// The budget cost of carrying out `plan` from a buffer holding `len` bytes with `spare`
    /// free bytes: the new buffer's capacity replaces the old one's, plus the row tables.
    fn cost(plan: ReadPlan, len: usize, spare: usize, one_message: bool) -> isize {
        let tables = table_cost(plan.max, one_message) as isize;
        match plan.capacity {
            None => tables,
            Some(cap) => cap as isize - (len + spare) as isize + tables,
        }
    }

    #[test]
    fn first_read_gets_an_exact_buffer() {
        let p = plan_read(4 * MIB, 4 * MIB, 0, 0, None).unwrap();
        assert_eq!(
            p,
            ReadPlan {
                max: READ_SIZE,
                capacity: Some(READ_SIZE)
            }
        );
        // The spare room of the current buffer is used before allocating.
        let p = plan_read(4 * MIB, MIB, 100_000, 50, None).unwrap();
        assert_eq!(
            p,
            ReadPlan {
                max: 100_000,
                capacity: None
            }
        );
    }

    #[test]
    fn full_budget_waits() {
        assert_eq!(plan_read(4 * MIB, 0, 0, 10, None), None);
        assert_eq!(plan_read(4 * MIB, 1000, 0, 10, None), None);
        // Spare room but no room for the row tables of what it would hold.
        assert_eq!(plan_read(4 * MIB, 0, 100_000, 10, None), None);
    }

    #[test]
    fn plans_never_exceed_the_budget() {
        for budget in [16 * 1024, 64 * 1024, 512 * 1024, 4 * MIB] {
            for free in (0..=budget).step_by(budget / 37) {
                for spare in [0, 10, 5000, 40_000, 300_000] {
                    for pending in [None, Some(200), Some(100_000), Some(budget - TABLE_SLACK)] {
                        let len = 7;
                        let pending = pending.map(|total| Pending { total, row: true });
                        if let Some(p) = plan_read(budget, free, spare, len, pending) {
                            let rest = pending.map_or(0, |p| p.total - len);
                            // A read within the pending message completes only that one.
                            let one = rest >= MIN_READ || (rest > 0 && p.max <= rest);
                            let c = cost(p, len, spare, one);
                            assert!(
                                c <= free as isize,
                                "budget {budget} free {free} spare {spare} {pending:?}: {p:?} costs {c}"
                            );
                            assert!(p.max >= 1);
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn a_large_row_gets_room_for_all_of_it() {
        let budget = MIB;
        let total = 500_000;
        let pending = Some(Pending { total, row: true });
        // Everything else consumed: the old buffer (len + spare) is the only thing held.
        let (len, spare) = (200_000, 1000);
        let free = budget - len - spare;
        let p = plan_read(budget, free, spare, len, pending).unwrap();
        // Room for the row and its NUL (no move of the row), rounded up to LARGE_BLOCK; only
        // the row's bytes are read.
        assert_eq!(p.capacity, Some((total + 1).next_multiple_of(LARGE_BLOCK)));
        assert_eq!(p.max, total - len);
        assert!(cost(p, len, spare, true) <= free as isize);
        // Rows of similar sizes get buffers of one size (a spare one serves the next row).
        let similar = Some(Pending {
            total: total - 300,
            row: true,
        });
        let q = plan_read(budget, free, spare, len, similar).unwrap();
        assert_eq!(q.capacity, p.capacity);
        // Rounding stops at the budget.
        let tight = total + 1 + 100 - len - spare + TABLE_SLACK;
        let t = plan_read(budget, tight, spare, len, pending).unwrap();
        assert_eq!(t.capacity, Some(total + 101));
        assert!(cost(t, len, spare, true) <= tight as isize);
        let budget = 512 * 1024;
        // A row of the whole budget (less its table entry) still fits once alone.
        let total = budget - TABLE_SLACK;
        let p = plan_read(
            budget,
            budget - 20,
            10,
            10,
            Some(Pending { total, row: true }),
        );
        assert_eq!(p.unwrap().capacity, Some(total));
    }

    #[test]
    fn a_message_other_than_a_row_always_gets_a_read() {
        // The beginning of a 2.2 MB error fills a buffer as large as the whole 2 MiB budget:
        // nothing the consumer frees makes room, and waiting would never end.
        let total = 2_200_000;
        let pending = Some(Pending { total, row: false });
        for len in [5, 100_000, 2 * MIB] {
            let rest = total - len;
            let p = plan_read(2 * MIB, 0, rest, len, pending).unwrap();
            assert_eq!(
                p,
                ReadPlan {
                    max: rest,
                    capacity: None
                }
            );
            let p = plan_read(2 * MIB, 0, 0, len, pending).unwrap();
            assert_eq!(
                p,
                ReadPlan {
                    max: rest,
                    capacity: Some(total)
                }
            );
        }
        // A row never goes beyond the budget: it waits for the consumer.
        let row = Some(Pending {
            total: 500_000,
            row: true,
        });
        assert_eq!(plan_read(2 * MIB, 0, 1000, 10, row), None);
    }

    #[test]
    fn the_rest_of_a_row_fits_once_the_consumer_took_everything() {
        // Found by fuzzing: a 40 KB row in a 64 KiB budget, its first 7251 bytes in a buffer
        // of 65504 (all the stream holds). The rest, 32762 bytes, is under MIN_READ, and a
        // read of it was charged a table entry per 11 bytes: no plan, and nothing to free.
        let pending = Some(Pending {
            total: 40_013,
            row: true,
        });
        let p = plan_read(65_536, 32, 65_504 - 7_251, 7_251, pending).unwrap();
        assert_eq!(
            p,
            ReadPlan {
                max: 40_013 - 7_251,
                capacity: None
            }
        );
        // Where a new buffer is needed, it is exactly the row.
        let p = plan_read(65_536, 65_536 - 8_000, 8_000 - 7_251, 7_251, pending).unwrap();
        assert_eq!(p.capacity.map(|c| c >= 40_013), Some(true));
    }

    #[test]
    fn other_messages_are_read_whole() {
        let pending = Some(Pending {
            total: 100_000,
            row: false,
        });
        let p = plan_read(16 * 1024, 100, 0, 5, pending).unwrap();
        assert_eq!(p.capacity, Some(100_000));
    }
}
