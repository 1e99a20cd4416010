//! Adaptive chunk sizing driven by channel occupancy.
//!
//! The consumer reports, each time it takes a chunk, how many rows are still waiting in the
//! channel. Over a sliding window of the last [`WINDOW`] observations:
//!
//! * average occupancy below `LOW * (1 - HYSTERESIS)` (8 rows): the consumer is starved, the
//!   reader hands over too little at a time: grow the chunk size by 50%;
//! * average above `HIGH * (1 + HYSTERESIS)` (240 rows): the consumer is behind, chunks are
//!   too coarse for a smooth flow and hold memory longer: shrink by 50%;
//! * in between (including the ±20% band around each threshold) nothing changes, so the size
//!   does not oscillate around a threshold.
//!
//! A decision needs a full window; at most one change per [`MIN_INTERVAL`]; the window is
//! cleared after a change (observations made under the old size say nothing about the new
//! one). Sizes stay within `[min_rows, max_rows]`. The clock is passed in, so every rule is
//! unit-tested without sleeping.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use super::options::AdaptiveChunking;

pub const WINDOW: usize = 100;
pub const LOW: f64 = 10.0;
pub const HIGH: f64 = 200.0;
pub const HYSTERESIS: f64 = 0.2;
/// The default shortest time between two changes (the stream's `adaptive_interval`).
pub const MIN_INTERVAL: Duration = super::options::DEFAULT_ADAPTIVE_INTERVAL;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    Grow,
    Shrink,
}

impl Direction {
    pub fn label(self) -> &'static str {
        match self {
            Direction::Grow => "increase",
            Direction::Shrink => "decrease",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Adjustment {
    pub direction: Direction,
    pub old: usize,
    pub new: usize,
}

#[derive(Debug)]
pub struct AdaptiveController {
    bounds: AdaptiveChunking,
    current: usize,
    window: VecDeque<usize>,
    capacity: usize,
    sum: usize,
    last_change: Option<Instant>,
    interval: Duration,
}

impl AdaptiveController {
    pub fn new(bounds: AdaptiveChunking, initial: usize) -> AdaptiveController {
        Self::with_window(bounds, initial, WINDOW, MIN_INTERVAL)
    }

    /// A controller with another window size or interval (tests). A window of 0 never adjusts.
    pub fn with_window(
        bounds: AdaptiveChunking,
        initial: usize,
        capacity: usize,
        interval: Duration,
    ) -> AdaptiveController {
        AdaptiveController {
            bounds,
            current: initial.clamp(bounds.min_rows, bounds.max_rows),
            window: VecDeque::with_capacity(capacity),
            capacity,
            sum: 0,
            last_change: None,
            interval,
        }
    }

    pub fn current(&self) -> usize {
        self.current
    }

    pub fn average(&self) -> Option<f64> {
        if self.window.is_empty() {
            None
        } else {
            Some(self.sum as f64 / self.window.len() as f64)
        }
    }

    /// Record one occupancy observation (rows waiting in the channel) made at `now`.
    pub fn observe(&mut self, occupancy: usize, now: Instant) -> Option<Adjustment> {
        if self.capacity == 0 {
            return None;
        }
        if self.window.len() == self.capacity {
            if let Some(old) = self.window.pop_front() {
                self.sum -= old;
            }
        }
        self.window.push_back(occupancy);
        self.sum += occupancy;
        if self.window.len() < self.capacity {
            return None;
        }
        if let Some(t) = self.last_change {
            if now.saturating_duration_since(t) < self.interval {
                return None;
            }
        }
        let avg = self.sum as f64 / self.window.len() as f64;
        let (direction, new) = if avg < LOW * (1.0 - HYSTERESIS) {
            let grown = self.current + (self.current / 2).max(1);
            (Direction::Grow, grown.min(self.bounds.max_rows))
        } else if avg > HIGH * (1.0 + HYSTERESIS) {
            (
                Direction::Shrink,
                (self.current / 2).max(self.bounds.min_rows),
            )
        } else {
            return None;
        };
        if new == self.current {
            return None; // already at the bound
        }
        let adj = Adjustment {
            direction,
            old: self.current,
            new,
        };
        self.current = new;
        self.last_change = Some(now);
        self.window.clear();
        self.sum = 0;
        Some(adj)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctl(min: usize, max: usize, initial: usize) -> AdaptiveController {
        AdaptiveController::new(AdaptiveChunking::new(min, max).unwrap(), initial)
    }

    fn feed(c: &mut AdaptiveController, occ: usize, n: usize, now: Instant) -> Option<Adjustment> {
        let mut last = None;
        for _ in 0..n {
            if let Some(a) = c.observe(occ, now) {
                last = Some(a);
            }
        }
        last
    }

    #[test]
    fn defaults() {
        let c = AdaptiveController::new(AdaptiveChunking::default(), 256);
        assert_eq!(c.current(), 256);
        assert_eq!(c.capacity, 100);
        assert_eq!(c.interval, Duration::from_secs(5));
        assert_eq!(c.average(), None);
        let c = AdaptiveController::new(AdaptiveChunking::default(), 5000);
        assert_eq!(c.current(), 1024, "initial size is clamped into the bounds");
    }

    #[test]
    fn averaging_over_a_sliding_window() {
        let mut c = ctl(16, 1024, 100);
        let t = Instant::now();
        for i in 0..99 {
            assert_eq!(
                c.observe(i % 3, t),
                None,
                "no decision before the window is full"
            );
        }
        let mut c = ctl(16, 1024, 100);
        for _ in 0..50 {
            c.observe(100, t);
        }
        for _ in 0..49 {
            c.observe(0, t);
        }
        assert_eq!(c.average(), Some(100.0 * 50.0 / 99.0));
        // Sliding: old values leave the window.
        let mut c = AdaptiveController::with_window(
            AdaptiveChunking::default(),
            100,
            4,
            Duration::from_secs(5),
        );
        for v in [100, 100, 100, 100] {
            c.observe(v, t);
        }
        assert_eq!(c.average(), Some(100.0));
        c.observe(20, t);
        assert_eq!(c.average(), Some(80.0));
    }

    #[test]
    fn grows_by_half_when_starved() {
        let mut c = ctl(16, 1024, 100);
        let a = feed(&mut c, 0, 100, Instant::now()).unwrap();
        assert_eq!(
            a,
            Adjustment {
                direction: Direction::Grow,
                old: 100,
                new: 150
            }
        );
        assert_eq!(c.current(), 150);
    }

    #[test]
    fn shrinks_by_half_when_backed_up() {
        let mut c = ctl(16, 1024, 100);
        let a = feed(&mut c, 1000, 100, Instant::now()).unwrap();
        assert_eq!(
            a,
            Adjustment {
                direction: Direction::Shrink,
                old: 100,
                new: 50
            }
        );
    }

    #[test]
    fn hysteresis_band_holds_the_size() {
        let t = Instant::now();
        // Just under the low threshold but inside the band: no change.
        let mut c = ctl(16, 1024, 100);
        assert_eq!(feed(&mut c, 9, 300, t), None);
        // Just above the high threshold but inside the band: no change.
        let mut c = ctl(16, 1024, 100);
        assert_eq!(feed(&mut c, 230, 300, t), None);
        // Outside the band: changes.
        let mut c = ctl(16, 1024, 100);
        assert!(feed(&mut c, 7, 100, t).is_some());
        let mut c = ctl(16, 1024, 100);
        assert!(feed(&mut c, 241, 100, t).is_some());
    }

    #[test]
    fn at_most_one_change_per_interval() {
        let t0 = Instant::now();
        let mut c = ctl(16, 1024, 100);
        assert!(feed(&mut c, 0, 100, t0).is_some());
        assert_eq!(feed(&mut c, 0, 500, t0 + Duration::from_millis(4999)), None);
        let a = feed(&mut c, 0, 100, t0 + Duration::from_secs(5)).unwrap();
        assert_eq!((a.old, a.new), (150, 225));
    }

    #[test]
    fn window_resets_after_a_change() {
        let t0 = Instant::now();
        let mut c = ctl(16, 1024, 100);
        feed(&mut c, 0, 100, t0).unwrap();
        assert_eq!(c.average(), None);
        // 99 observations after the interval are not enough for the next decision.
        assert_eq!(feed(&mut c, 0, 99, t0 + Duration::from_secs(10)), None);
        assert!(c.observe(0, t0 + Duration::from_secs(10)).is_some());
    }

    #[test]
    fn both_bounds_hold() {
        let mut t = Instant::now();
        let mut c = ctl(16, 40, 30);
        let a = feed(&mut c, 0, 100, t).unwrap();
        assert_eq!(a.new, 40, "growth is capped at max");
        t += Duration::from_secs(6);
        assert_eq!(
            feed(&mut c, 0, 100, t),
            None,
            "no change reported at the max bound"
        );
        let mut c = ctl(16, 1024, 20);
        let a = feed(&mut c, 5000, 100, t).unwrap();
        assert_eq!(a.new, 16, "shrink is floored at min");
        t += Duration::from_secs(6);
        assert_eq!(feed(&mut c, 5000, 100, t), None);
        // min == 1: grow from 1 still moves.
        let mut c = ctl(1, 10, 1);
        assert_eq!(feed(&mut c, 0, 100, t).unwrap().new, 2);
    }

    #[test]
    fn zero_capacity_window_never_adjusts() {
        let mut c =
            AdaptiveController::with_window(AdaptiveChunking::default(), 100, 0, Duration::ZERO);
        assert_eq!(feed(&mut c, 0, 1000, Instant::now()), None);
        assert_eq!(c.current(), 100);
    }
}
