//! `--cpu-file`: the CPU time the fake server spends serving clients, for the benchmark's
//! "cores busy" figure (the server runs on the same cores as the client it feeds).
//!
//! Every session runs on a thread of its own, so a session's CPU is its thread's: the
//! scheduler's exact run time (`/proc/thread-self/schedstat`, nanoseconds, user and kernel
//! time), read when the session ends. The thread last ran after sleeping in a read for the
//! client's next message, so the figure misses at most the few microseconds since then.
//! When a session starts and when it ends the file is rewritten (a temporary file renamed
//! over it) as three lines, totals since the server started: `accepted A` (sessions started),
//! `sessions N` (sessions ended) and `cpu_ns T` (the CPU of the ended ones). Every started
//! session ends once, however it ends (see `session::serve`), so `sessions == accepted` means
//! no session is running.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug)]
pub struct CpuLog {
    path: PathBuf,
    /// (sessions started, sessions ended, CPU of the ended ones in ns)
    totals: Mutex<(u64, u64, u64)>,
}

/// The calling thread's CPU time so far, in nanoseconds.
fn thread_cpu_ns() -> io::Result<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat")?;
    s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unexpected schedstat: {s:?}"),
            )
        })
}

impl CpuLog {
    /// Checks that the thread CPU clock can be read here and writes the file with zero totals.
    pub fn new(path: PathBuf) -> io::Result<CpuLog> {
        thread_cpu_ns()?;
        let log = CpuLog {
            path,
            totals: Mutex::new((0, 0, 0)),
        };
        log.write((0, 0, 0))?;
        Ok(log)
    }

    /// Count a session that starts (call when its thread starts).
    pub fn session_started(&self) {
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        t.0 += 1;
        self.write_or_warn(*t);
    }

    /// Add the calling session thread's CPU (call at the end of the session).
    pub fn session_ended(&self) {
        let ns = match thread_cpu_ns() {
            Ok(ns) => ns,
            Err(e) => {
                eprintln!("fakepg: cannot read this thread's CPU time: {e}");
                return;
            }
        };
        let mut t = self.totals.lock().unwrap_or_else(|e| e.into_inner());
        t.1 += 1;
        t.2 += ns;
        self.write_or_warn(*t);
    }

    fn write_or_warn(&self, totals: (u64, u64, u64)) {
        if let Err(e) = self.write(totals) {
            eprintln!("fakepg: cannot write {}: {e}", self.path.display());
        }
    }

    fn write(&self, (accepted, ended, ns): (u64, u64, u64)) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(
            &tmp,
            format!("accepted {accepted}\nsessions {ended}\ncpu_ns {ns}\n"),
        )?;
        std::fs::rename(&tmp, &self.path)
    }
}
