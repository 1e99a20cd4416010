//! `--cpu-file`: the CPU time the fake server spends serving clients, for the benchmark's
//! "cores busy" figure (the server runs on the same cores as the client it feeds).
//!
//! Every session runs on a thread of its own, so a session's CPU is its thread's: the
//! scheduler's exact run time (`/proc/thread-self/schedstat`, nanoseconds, user and kernel
//! time), read when the session ends. The thread last ran after sleeping in a read for the
//! client's next message, so the figure misses at most the few microseconds since then.
//! After each session the file is rewritten (a temporary file renamed over it) as two lines,
//! `sessions N` and `cpu_ns T`: totals since the server started.

use std::io;
use std::path::PathBuf;
use std::sync::Mutex;

#[derive(Debug)]
pub struct CpuLog {
    path: PathBuf,
    /// (sessions ended, their CPU in ns)
    totals: Mutex<(u64, u64)>,
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
            totals: Mutex::new((0, 0)),
        };
        log.write(0, 0)?;
        Ok(log)
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
        let mut t = self.totals.lock().unwrap();
        t.0 += 1;
        t.1 += ns;
        if let Err(e) = self.write(t.0, t.1) {
            eprintln!("fakepg: cannot write {}: {e}", self.path.display());
        }
    }

    fn write(&self, sessions: u64, ns: u64) -> io::Result<()> {
        let tmp = self.path.with_extension("tmp");
        std::fs::write(&tmp, format!("sessions {sessions}\ncpu_ns {ns}\n"))?;
        std::fs::rename(&tmp, &self.path)
    }
}
