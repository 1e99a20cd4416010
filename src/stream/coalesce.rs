//! Read coalescing: fewer, larger socket reads when the server is the slower side.
//!
//! PostgreSQL sends results 8 KiB at a time. A client that waits for socket readiness wakes
//! once per packet, and here twice (the reader task, then the consumer it hands rows to): on a
//! server-bound stream those wake-ups are nearly all of the client's CPU time. When the reads
//! show a steady flow that the reader keeps up with (each read drains the socket of at least
//! one full packet), the reader waits a short, measured time before the next read instead of
//! waiting for the next packet, so that one read takes several packets. The wait is sized
//! from the observed arrival rate to collect about [`TARGET_BYTES`], far below what the
//! kernel buffers hold, so the server never blocks on a full socket because of it; it is
//! bounded by [`StreamOptions::read_coalesce`](super::options::StreamOptions) (default
//! [`DEFAULT_MAX_LINGER`]), which is also the most a row is delayed by it.
//!
//! Nothing is held back when data is already waiting (the reader reads at once), when the
//! consumer is not blocked waiting for rows (it is the slower side: the reader is never the
//! one to make it wait), when the flow is a trickle (less than a packet a millisecond: slow
//! queries), when a read brought far more than aimed at (a server that writes in bursts
//! larger than the socket buffer), or when the budget allows only small reads.

use std::io;
use std::os::fd::OwnedFd;
use std::time::{Duration, Instant};

use rustix::time::{
    timerfd_create, timerfd_settime, Itimerspec, TimerfdClockId, TimerfdFlags, TimerfdTimerFlags,
    Timespec,
};
use tokio::io::unix::AsyncFd;

/// The default (and largest useful) wait: the most a row can be delayed by coalescing.
pub const DEFAULT_MAX_LINGER: Duration = Duration::from_millis(1);
/// Bytes one coalesced read aims at: about half of what a Unix socket's default send buffer
/// holds (net.core.wmem_default, 208 KiB of buffer memory: ~190 KB of 8 KiB packets), so the
/// server keeps writing while the reader waits (TCP buffers are larger). 64 KiB left ~1.6x
/// more wake-ups than 128 KiB; reads of more than 1.5x this turn the wait off (see
/// `after_read`), which with 128 KiB came too close to a full Unix socket buffer.
pub(crate) const TARGET_BYTES: usize = 96 * 1024;
/// A read of at least this much means the server sent at least a full packet since the last
/// read (PostgreSQL's send buffer is 8 KiB): a steady flow, not a trickle.
pub(crate) const STEADY_BYTES: usize = 8 * 1024;
/// Below this arrival rate (bytes per second: less than a packet a millisecond) the flow
/// is a trickle, read as it comes.
const TRICKLE_RATE: f64 = STEADY_BYTES as f64 * 1000.0;
/// Waits shorter than this are not worth a timer.
pub(crate) const MIN_LINGER: Duration = Duration::from_micros(50);

/// The arrival rate is measured over windows of at least this long.
const RATE_WINDOW: Duration = Duration::from_millis(2);

/// Decides, from the reads so far, how long to wait before the next one.
#[derive(Debug)]
pub(crate) struct Coalescer {
    max: Duration,
    /// The current rate window: its start (the end of a read) and the bytes read since.
    window: Option<(Instant, usize)>,
    /// Smoothed arrival rate, bytes per second (0: not known yet).
    rate: f64,
    /// The wait before the next read, when the socket is found empty.
    linger: Option<Duration>,
}

impl Coalescer {
    /// `max`: the longest wait (zero turns coalescing off).
    pub(crate) fn new(max: Duration) -> Coalescer {
        Coalescer {
            max,
            window: None,
            rate: 0.0,
            linger: None,
        }
    }

    /// Record a read of `n` bytes that ended at `now`; `allowed` is how much it could have
    /// read (the budget's allowance and the buffer's room).
    pub(crate) fn after_read(&mut self, n: usize, allowed: usize, now: Instant) {
        self.linger = None;
        if self.max < MIN_LINGER {
            return;
        }
        match &mut self.window {
            None => self.window = Some((now, 0)),
            Some((start, bytes)) => {
                *bytes += n;
                let secs = now.duration_since(*start).as_secs_f64();
                if secs >= RATE_WINDOW.as_secs_f64() {
                    let sample = *bytes as f64 / secs;
                    // Smoothed, except that a sharp drop (the flow slowed to a trickle) is
                    // taken at once.
                    self.rate = if self.rate > 0.0 && sample > self.rate / 4.0 {
                        0.5 * (self.rate + sample)
                    } else {
                        sample
                    };
                    self.window = Some((now, 0));
                }
            }
        }
        if n >= allowed || n >= TARGET_BYTES * 3 / 2 || allowed < 2 * STEADY_BYTES {
            // More may be waiting; or far more came than aimed at: the flow is faster than
            // measured, or the socket buffer filled and the server had to wait (a server
            // that writes in large bursts); or a budget too small to gain anything.
            return;
        }
        if self.rate < TRICKLE_RATE {
            // Not known yet, or a trickle (less than a packet a millisecond: a slow query,
            // rows computed one by one): delivered as it comes.
            return;
        }
        let target = TARGET_BYTES.min(allowed / 2) as f64;
        let wait = Duration::from_secs_f64(target / self.rate).min(self.max);
        if wait >= MIN_LINGER {
            self.linger = Some(wait);
        }
    }

    /// How long to wait before reading again when the socket has nothing now (`None`: wait
    /// for readiness as usual).
    pub(crate) fn linger(&self) -> Option<Duration> {
        self.linger
    }
}

/// A one-shot timer with microsecond resolution on the runtime's reactor (a `timerfd`; the
/// runtime's own timers tick in milliseconds, far coarser than the waits needed here).
pub(crate) struct Timer {
    fd: AsyncFd<OwnedFd>,
}

impl Timer {
    /// A new timer, registered with the current runtime.
    pub(crate) fn new() -> io::Result<Timer> {
        let fd = timerfd_create(
            TimerfdClockId::Monotonic,
            TimerfdFlags::NONBLOCK | TimerfdFlags::CLOEXEC,
        )?;
        // SAFETY: `fd` is an open descriptor owned by the `OwnedFd`, which the `AsyncFd`
        // owns from here on and never hands out mutably, so it stays open and the same until
        // the `AsyncFd` is dropped.
        let fd = unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }
            .map_err(io::Error::from)?;
        Ok(Timer { fd })
    }

    /// Wait `d`. Cancel-safe: a new `sleep` re-arms the timer, which discards an expiry left
    /// over from a cancelled one.
    pub(crate) async fn sleep(&self, d: Duration) -> io::Result<()> {
        let spec = Itimerspec {
            it_interval: Timespec {
                tv_sec: 0,
                tv_nsec: 0,
            },
            it_value: Timespec {
                tv_sec: d.as_secs().min(i64::MAX as u64) as _,
                // At least 1 ns: an all-zero value would disarm the timer instead.
                tv_nsec: d.subsec_nanos().max(1) as _,
            },
        };
        timerfd_settime(self.fd.get_ref(), TimerfdTimerFlags::empty(), &spec)?;
        loop {
            let mut guard = self.fd.readable().await?;
            let mut ticks = [0u8; 8];
            let got = rustix::io::read(self.fd.get_ref(), &mut ticks);
            // Not readable again until re-armed: drop the cached readiness either way, or
            // the next sleep would start with a read that finds nothing.
            guard.clear_ready();
            match got {
                Ok(n) if n == ticks.len() => return Ok(()),
                Ok(_) | Err(rustix::io::Errno::AGAIN) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = DEFAULT_MAX_LINGER;
    const ALLOWED: usize = 256 * 1024;

    /// Feed `k` reads of `n` bytes, one every `every` after `*t`; return the last decision.
    fn feed(
        c: &mut Coalescer,
        t: &mut Instant,
        n: usize,
        every: Duration,
        k: u32,
    ) -> Option<Duration> {
        for _ in 0..k {
            *t += every;
            c.after_read(n, ALLOWED, *t);
        }
        c.linger()
    }

    #[test]
    fn steady_packets_get_a_wait_sized_to_the_rate() {
        let mut c = Coalescer::new(MAX);
        let mut t = Instant::now();
        // 8 KiB every 50 us: ~164 MB/s; 96 KiB take 600 us.
        let d = feed(&mut c, &mut t, 8192, Duration::from_micros(50), 100).unwrap();
        assert!(
            d >= Duration::from_micros(500) && d <= Duration::from_micros(700),
            "{d:?}"
        );
        // Coalesced reads of the same flow keep the same wait.
        let d = feed(&mut c, &mut t, 96 * 1024, Duration::from_micros(600), 10).unwrap();
        assert!(
            d >= Duration::from_micros(500) && d <= Duration::from_micros(700),
            "{d:?}"
        );
    }

    #[test]
    fn slower_flows_wait_at_most_the_maximum() {
        let mut c = Coalescer::new(MAX);
        let mut t = Instant::now();
        // 8 KiB every 500 us (16 MB/s): 96 KiB would take 6 ms.
        assert_eq!(
            feed(&mut c, &mut t, 8192, Duration::from_micros(500), 20),
            Some(MAX)
        );
        let short = Duration::from_micros(300);
        let mut c = Coalescer::new(short);
        assert_eq!(
            feed(&mut c, &mut t, 8192, Duration::from_micros(200), 40),
            Some(short)
        );
    }

    #[test]
    fn fast_flows_do_not_wait() {
        // 64 KiB every 20 us: the next 96 KiB arrive sooner than a timer is worth.
        let mut c = Coalescer::new(MAX);
        let mut t = Instant::now();
        assert_eq!(
            feed(&mut c, &mut t, 64 * 1024, Duration::from_micros(20), 500),
            None
        );
    }

    #[test]
    fn trickles_and_the_first_reads_do_not_wait() {
        let mut c = Coalescer::new(MAX);
        let mut t = Instant::now();
        assert_eq!(
            feed(&mut c, &mut t, 8192, Duration::from_micros(50), 20),
            None,
            "no rate known within the first window"
        );
        assert!(feed(&mut c, &mut t, 8192, Duration::from_micros(50), 100).is_some());
        // Rows computed one by one (300 bytes a millisecond): delivered as they come, at
        // the latest once a window has measured the drop.
        assert_eq!(feed(&mut c, &mut t, 300, Duration::from_millis(1), 5), None);
        // A slow query's rows from the start.
        let mut c = Coalescer::new(MAX);
        assert_eq!(
            feed(&mut c, &mut t, 300, Duration::from_millis(1), 20),
            None
        );
    }

    #[test]
    fn reads_that_may_have_left_data_behind_do_not_wait() {
        let mut c = Coalescer::new(MAX);
        let mut t = Instant::now();
        feed(&mut c, &mut t, 8192, Duration::from_micros(50), 100).unwrap();
        // The allowance was reached: more may be waiting.
        t += Duration::from_micros(50);
        c.after_read(32 * 1024, 32 * 1024, t);
        assert_eq!(c.linger(), None);
        // Far more than aimed at: the flow is faster than measured, or the server waited
        // for a full socket buffer.
        feed(&mut c, &mut t, 8192, Duration::from_micros(50), 1).unwrap();
        t += Duration::from_micros(600);
        c.after_read(TARGET_BYTES * 3 / 2, ALLOWED, t);
        assert_eq!(c.linger(), None);
        // A small budget: allowances under two packets never wait.
        let mut c = Coalescer::new(MAX);
        for _ in 0..100 {
            t += Duration::from_micros(50);
            c.after_read(8192, 12 * 1024, t);
        }
        assert_eq!(c.linger(), None);
    }

    #[test]
    fn zero_maximum_turns_it_off() {
        let mut c = Coalescer::new(Duration::ZERO);
        let mut t = Instant::now();
        assert_eq!(
            feed(&mut c, &mut t, 8192, Duration::from_micros(50), 100),
            None
        );
    }

    #[test]
    fn the_timer_waits_at_least_as_long_as_asked() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let t = Timer::new().unwrap();
            for us in [200u64, 800, 3000] {
                let d = Duration::from_micros(us);
                let start = Instant::now();
                t.sleep(d).await.unwrap();
                assert!(start.elapsed() >= d, "{us} us timer fired early");
            }
            // A cancelled sleep leaves no early expiry behind.
            let _ = tokio::time::timeout(Duration::ZERO, t.sleep(Duration::from_micros(100))).await;
            std::thread::sleep(Duration::from_millis(1));
            let start = Instant::now();
            t.sleep(Duration::from_millis(2)).await.unwrap();
            assert!(start.elapsed() >= Duration::from_millis(2));
        });
    }
}
